//! `socv lease`: take a board of a family (or one board), waiting in the queue when asked, and
//! optionally hold it (renewed) until a signal. The taking and keeping are the engine's
//! ([`crate::lease`]); this file turns the flags into a [`LeaseWish`] and prints.

use crate::cli::parse_duration;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::lease::{self, LeaseWish, Target, WaitLimit};
use crate::output;
use crate::signals::Signals;
use clap::Args;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use socv_api::{Lease, Priority};
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    override_usage = "socv lease [OPTIONS] <FAMILY | --board BOARD>",
    after_help = "\
Without --hold, socv prints the lease and leaves it held: release it later with
`socv release LEASE_ID` (or it expires at its TTL). With --hold, socv prints the board and its
telnet endpoint, renews the lease every third of its TTL and releases it on Ctrl-C, SIGTERM or
SIGHUP; if a renewal fails it says so on stderr and exits non-zero.

While waiting, a spinner on stderr shows your place in the queue. Ctrl-C while waiting leaves
the queue.

Examples:
  socv lease socA                            a socA board now, or exit 3
  socv lease socA --wait 10m                 wait up to 10 minutes in the queue
  socv lease socA --wait --priority high     wait as long as it takes, ahead of normal requests
  socv lease --board soc-a-001 --ttl 2h      that one board, for 2 hours
  socv lease socA --location lab-sh --hold   keep a board (preferably in lab-sh) until Ctrl-C
  id=$(socv lease socA --json | jq -r .id)   the lease id, for scripts

Exit codes:
  0  success
  3  no board available in time
  4  lease, board or family not found
  5  permission denied
  6  leased unreachable, not a socv daemon, or its store unavailable"
)]
pub struct LeaseArgs {
    /// Family of boards to lease any one of (e.g. socA)
    #[arg(
        value_name = "FAMILY",
        required_unless_present = "board",
        conflicts_with = "board"
    )]
    pub family: Option<String>,
    /// Lease this one board instead of any board of a family
    #[arg(long, value_name = "BOARD")]
    pub board: Option<String>,
    /// Prefer a board at this lab location (others still qualify when none is free there)
    #[arg(long, value_name = "LOCATION")]
    pub location: Option<String>,
    /// Place in the queue: high goes before normal, normal before low [default: normal]
    #[arg(long, value_name = "PRIORITY", value_parser = priority_parser())]
    pub priority: Option<Priority>,
    /// How long the lease lasts unless renewed, e.g. 30m or 2h [default: the daemon's, 30m]
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: Option<Duration>,
    /// When no board is free, wait in the queue: for DURATION, or without limit when alone
    #[arg(
        long,
        value_name = "DURATION",
        num_args = 0..=1,
        default_missing_value = "forever",
        value_parser = parse_wait
    )]
    pub wait: Option<WaitLimit>,
    /// Keep the lease renewed until Ctrl-C, SIGTERM or SIGHUP, then release it
    #[arg(long)]
    pub hold: bool,
    /// Print the lease as one JSON document (the console password is left out)
    #[arg(long)]
    pub json: bool,
}

fn priority_parser() -> impl TypedValueParser<Value = Priority> {
    PossibleValuesParser::new([
        PossibleValue::new("high").alias("1"),
        PossibleValue::new("normal").alias("2"),
        PossibleValue::new("low").alias("3"),
    ])
    .try_map(|value| value.parse::<Priority>())
}

fn parse_ttl(value: &str) -> Result<Duration, String> {
    let ttl = parse_duration(value)?;
    if ttl < Duration::from_secs(1) {
        return Err("a lease lasts at least 1s".to_owned());
    }
    Ok(ttl)
}

fn parse_wait(value: &str) -> Result<WaitLimit, String> {
    if value == "forever" {
        return Ok(WaitLimit::Forever);
    }
    parse_duration(value).map(WaitLimit::For).map_err(|e| {
        format!(
            "{e}; to wait without limit put --wait last or write --wait=forever \
             (socv lease socA --wait)"
        )
    })
}

impl LeaseArgs {
    /// The lease these flags ask for.
    pub fn wish(&self) -> LeaseWish {
        let target = match (&self.board, &self.family) {
            (Some(board), _) => Target::Board(board.clone()),
            (None, Some(family)) => Target::Family(family.clone()),
            // clap requires one of them.
            (None, None) => Target::Family(String::new()),
        };
        LeaseWish {
            target,
            location: self.location.clone(),
            priority: self.priority,
            ttl: self.ttl,
            wait: self.wait,
            quiet: self.json,
        }
    }
}

pub async fn run(client: &Client, args: LeaseArgs) -> Result<()> {
    // From here on a signal no longer kills socv: it gives back what it got, then exits.
    let mut signals = Signals::install()?;
    let lease = lease::acquire(client, &args.wish(), &mut signals).await?;
    let now = output::now_ms();
    if args.json {
        output::print_json(&output::without_secrets(&lease))?;
    } else {
        output::print(&output::lease_details(&lease, now))?;
    }
    if !args.hold {
        if !args.json {
            eprintln!("socv: release it with: socv release {}", lease.id);
        }
        return Ok(());
    }
    hold(client, lease, &args, &mut signals).await
}

/// Keeps the lease renewed until a signal, then releases it; a renewal that fails for good
/// ends the hold loudly.
async fn hold(
    client: &Client,
    lease: Lease,
    args: &LeaseArgs,
    signals: &mut Signals,
) -> Result<()> {
    if !args.json {
        eprintln!(
            "socv: holding {} (lease {}), renewing every {}; Ctrl-C releases it",
            lease.board_id,
            lease.id,
            output::short_duration(lease::renew_interval(&lease, output::now_ms()))
        );
    }
    let failed = tokio::select! {
        failed = lease::keep_renewed(client, lease.clone()) => failed,
        signal = signals.recv() => return release_on_signal(client, &lease, signal, args).await,
    };
    if let Error::RenewalFailed { source, .. } = &failed
        && source.is_transient()
    {
        // Best effort: the daemon may answer a release even if the renewal failed.
        let _ = tokio::time::timeout(Duration::from_secs(3), client.release(&lease.id)).await;
    }
    Err(failed)
}

async fn release_on_signal(
    client: &Client,
    lease: &Lease,
    signal: &str,
    args: &LeaseArgs,
) -> Result<()> {
    match client.release(&lease.id).await {
        Ok(_) => {
            if !args.json {
                eprintln!(
                    "socv: {signal}: released {} (lease {})",
                    lease.board_id, lease.id
                );
            }
            Ok(())
        }
        Err(Error::LeaseEnded { .. }) => {
            eprintln!("socv: {signal}: lease {} had already ended", lease.id);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::exit_codes;
    use clap::Parser;
    use socv_api::LeaseRequest;

    fn parse(args: &[&str]) -> Result<LeaseArgs, clap::Error> {
        let mut argv = vec!["socv", "lease"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Lease(args) => args,
            other => panic!("parsed as {other:?}"),
        })
    }

    #[test]
    fn a_family_with_everything() {
        let args = parse(&[
            "socA",
            "--location",
            "lab-sh",
            "--priority",
            "high",
            "--ttl",
            "2h",
            "--wait",
            "5m",
            "--hold",
            "--json",
        ])
        .unwrap();
        assert_eq!(
            args.wish().request(),
            LeaseRequest {
                board_family: Some("socA".into()),
                board_id: None,
                location: Some("lab-sh".into()),
                priority: Some(Priority::High),
                ttl_s: Some(7200),
                wait_s: Some(300),
            }
        );
        assert!(args.hold && args.json);
        assert_eq!(args.wish().describe(), "a socA board");
    }

    #[test]
    fn one_board_without_waiting() {
        let args = parse(&["--board", "soc-a-001"]).unwrap();
        let request = args.wish().request();
        assert_eq!(request.board_id.as_deref(), Some("soc-a-001"));
        assert_eq!(request.board_family, None);
        assert_eq!(request.wait_s, None);
        assert_eq!(request.ttl_s, None);
        assert_eq!(request.priority, None);
        assert_eq!(args.wish().describe(), "board soc-a-001");
    }

    #[test]
    fn wait_without_a_value_waits_without_limit() {
        for argv in [
            &["socA", "--wait"][..],
            &["--wait", "--board", "b"],
            &["socA", "--wait=forever"],
        ] {
            let args = parse(argv).unwrap();
            assert_eq!(args.wait, Some(WaitLimit::Forever), "{argv:?}");
            assert_eq!(args.wish().request().wait_s, Some(lease::WAIT_FOREVER_S));
        }
        let args = parse(&["socA", "--wait", "90s"]).unwrap();
        assert_eq!(args.wait, Some(WaitLimit::For(Duration::from_secs(90))));
        let args = parse(&["socA", "--wait=1500ms"]).unwrap();
        assert_eq!(args.wish().request().wait_s, Some(2));
    }

    #[test]
    fn a_family_after_a_bare_wait_gets_a_helpful_error() {
        let err = parse(&["--wait", "socA"]).unwrap_err().to_string();
        assert!(err.contains("'socA' is not a duration"), "{err}");
        assert!(err.contains("--wait=forever"), "{err}");
    }

    #[test]
    fn priorities_by_name_or_number() {
        for (given, want) in [
            ("high", Priority::High),
            ("normal", Priority::Normal),
            ("low", Priority::Low),
            ("1", Priority::High),
            ("3", Priority::Low),
        ] {
            let args = parse(&["socA", "--priority", given]).unwrap();
            assert_eq!(args.priority, Some(want), "{given}");
        }
        let err = parse(&["socA", "--priority", "urgent"]).unwrap_err();
        assert_eq!(err.exit_code(), exit_codes::USAGE);
        assert!(err.to_string().contains("high, normal, low"), "{err}");
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for argv in [
            &[][..],
            &["socA", "--board", "b"],
            &["socA", "--ttl", "0s"],
            &["socA", "--ttl", "soon"],
            &["socA", "--wait", "later"],
        ] {
            let err = parse(argv).unwrap_err();
            assert_eq!(err.exit_code(), exit_codes::USAGE, "{argv:?}: {err}");
        }
    }
}
