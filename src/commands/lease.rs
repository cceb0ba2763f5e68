//! `socv lease`: get a board now or after waiting in the queue; with `--hold`, keep it renewed
//! until Ctrl-C, SIGTERM or SIGHUP, then release it.

use crate::cli::{ceil_secs, parse_duration};
use crate::client::{Client, LeaseAnswer};
use crate::error::{Error, Result};
use crate::output;
use crate::signals::Signals;
use clap::Args;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use indicatif::{ProgressBar, ProgressStyle};
use socv_api::{Lease, LeaseRequest, Priority, QueueTicket, TicketStatus};
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// `wait_s` that asks the daemon to wait without limit (one year).
pub const WAIT_FOREVER_S: u64 = 31_536_000;
/// Long-poll length of one queue poll; well inside the daemon's 30 s cap and its lapse time.
pub const POLL_WAIT_S: u64 = 20;
/// Renewal attempts before `--hold` gives up on a daemon that does not answer.
const RENEW_ATTEMPTS: u32 = 3;
const RENEW_RETRY_PAUSE: Duration = Duration::from_secs(2);

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

/// How long `--wait` waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitLimit {
    For(Duration),
    Forever,
}

impl WaitLimit {
    /// The `wait_s` of the request.
    pub fn wait_s(self) -> u64 {
        match self {
            WaitLimit::For(d) => ceil_secs(d).min(WAIT_FOREVER_S),
            WaitLimit::Forever => WAIT_FOREVER_S,
        }
    }
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
    /// The request to send.
    pub fn request(&self) -> LeaseRequest {
        LeaseRequest {
            board_family: self.family.clone(),
            board_id: self.board.clone(),
            location: self.location.clone(),
            priority: self.priority,
            ttl_s: self.ttl.map(ceil_secs),
            wait_s: self.wait.map(WaitLimit::wait_s),
        }
    }

    /// What is asked for, in words: `a socA board` or `board soc-a-001`.
    pub fn target(&self) -> String {
        match (&self.board, &self.family) {
            (Some(board), _) => format!("board {board}"),
            (None, Some(family)) => format!("a {family} board"),
            (None, None) => "a board".to_owned(),
        }
    }
}

pub async fn run(client: &Client, args: LeaseArgs) -> Result<()> {
    // From here on a signal no longer kills socv: it gives back what it got, then exits.
    let mut signals = Signals::install()?;
    let lease = acquire(client, &args, &mut signals).await?;
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

/// Asks for the lease and waits in the queue when told to; gives back what it got when
/// interrupted.
pub async fn acquire(client: &Client, args: &LeaseArgs, signals: &mut Signals) -> Result<Lease> {
    let request = args.request();
    let started = Instant::now();
    let post = client.request_lease(&request);
    tokio::pin!(post);
    let answer = tokio::select! {
        answer = &mut post => answer,
        signal = signals.recv() => {
            // The daemon may have granted or queued already: let the answer arrive, undo it.
            tokio::select! {
                answer = &mut post => undo(client, answer).await,
                _ = signals.recv() => {}
            }
            return Err(interrupted(signal, args));
        }
    };
    match answer.map_err(|e| explain_no_board(e, args))? {
        LeaseAnswer::Granted(lease) => Ok(lease),
        LeaseAnswer::Queued(ticket) => {
            let deadline = match args.wait {
                Some(WaitLimit::For(d)) => Some(started + d),
                _ => None,
            };
            wait_in_queue(client, args, ticket, deadline, signals).await
        }
    }
}

async fn undo(client: &Client, answer: Result<LeaseAnswer>) {
    let result = match answer {
        Ok(LeaseAnswer::Granted(lease)) => client.release(&lease.id).await.map(drop),
        Ok(LeaseAnswer::Queued(ticket)) => client.leave_queue(&ticket.ticket).await,
        Err(_) => Ok(()),
    };
    if let Err(e) = result {
        eprintln!("socv: warning: {e}");
    }
}

fn interrupted(signal: &str, args: &LeaseArgs) -> Error {
    Error::NoBoard {
        message: format!("stopped by {signal} while asking for {}", args.target()),
        none_healthy: false,
    }
}

fn explain_no_board(err: Error, args: &LeaseArgs) -> Error {
    match err {
        Error::NoBoard {
            message,
            none_healthy: false,
        } if args.wait.is_none() => Error::NoBoard {
            message: format!("{message} (add --wait to queue for one)"),
            none_healthy: false,
        },
        other => other,
    }
}

/// Shows the place in the queue: a spinner for a person, a line per change for a log, nothing
/// under `--json`.
struct QueueProgress {
    spinner: Option<ProgressBar>,
    quiet: bool,
    target: String,
}

impl QueueProgress {
    fn new(args: &LeaseArgs) -> QueueProgress {
        let spinner = output::interactive(args.json).then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        QueueProgress {
            spinner,
            quiet: args.json,
            target: args.target(),
        }
    }

    fn show(&self, ticket: &QueueTicket) {
        let text = format!(
            "waiting for {}: position {} in the queue",
            self.target, ticket.position
        );
        match &self.spinner {
            Some(bar) => bar.set_message(text),
            None if !self.quiet => eprintln!("socv: {text} (ticket {})", ticket.ticket),
            None => {}
        }
    }

    fn warn(&self, text: &str) {
        match &self.spinner {
            Some(bar) => bar.suspend(|| eprintln!("socv: warning: {text}")),
            None => eprintln!("socv: warning: {text}"),
        }
    }
}

impl Drop for QueueProgress {
    fn drop(&mut self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

/// Long-polls the ticket until granted, the deadline, or a signal; leaves the queue on the
/// way out unless granted.
async fn wait_in_queue(
    client: &Client,
    args: &LeaseArgs,
    mut ticket: QueueTicket,
    deadline: Option<Instant>,
    signals: &mut Signals,
) -> Result<Lease> {
    let progress = QueueProgress::new(args);
    progress.show(&ticket);
    loop {
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if remaining == Some(Duration::ZERO) {
            drop(progress);
            leave_queue(client, &ticket).await;
            return Err(timed_out(args));
        }
        let wait_s = remaining.map_or(POLL_WAIT_S, |r| ceil_secs(r).clamp(1, POLL_WAIT_S));
        let asked = Instant::now();
        let status = tokio::select! {
            status = client.poll_ticket(&ticket.ticket, wait_s) => status,
            signal = signals.recv() => {
                drop(progress);
                leave_queue(client, &ticket).await;
                return Err(interrupted(signal, args));
            }
        };
        match status {
            Ok(TicketStatus::Granted { lease }) => return Ok(lease),
            Ok(TicketStatus::Waiting(now)) => {
                if now.position != ticket.position {
                    progress.show(&now);
                }
                ticket = now;
                // A daemon that answers a long poll at once must not make socv spin.
                let floor = Duration::from_millis(250);
                if asked.elapsed() < floor {
                    sleep(floor).await;
                }
            }
            Err(e) if e.is_transient() && output::now_ms() + 1500 < ticket.poll_by_ms => {
                // The ticket survives until its poll_by: ride out a daemon restart.
                progress.warn(&format!("{e}; retrying"));
                tokio::select! {
                    _ = sleep(Duration::from_secs(1)) => {}
                    signal = signals.recv() => {
                        drop(progress);
                        leave_queue(client, &ticket).await;
                        return Err(interrupted(signal, args));
                    }
                }
            }
            // The daemon gives the ticket up at its give_up_at, which may come a moment
            // before the local deadline: that is the ordinary end of the wait.
            Err(Error::LeaseEnded { .. } | Error::NotFound(_))
                if ticket
                    .give_up_at_ms
                    .is_some_and(|at| output::now_ms() + 1000 >= at) =>
            {
                return Err(timed_out(args));
            }
            Err(Error::LeaseEnded { message, .. }) => {
                return Err(Error::NoBoard {
                    message: format!("the daemon ended the wait for {}: {message}", args.target()),
                    none_healthy: false,
                });
            }
            Err(Error::NotFound(message)) => {
                return Err(Error::NoBoard {
                    message: format!(
                        "{message}: the queue ticket lapsed (socv could not poll it in time) \
                         or leased lost it; ask again"
                    ),
                    none_healthy: false,
                });
            }
            Err(e) => {
                drop(progress);
                leave_queue(client, &ticket).await;
                return Err(e);
            }
        }
    }
}

fn timed_out(args: &LeaseArgs) -> Error {
    let waited = match args.wait {
        Some(WaitLimit::For(d)) => humantime::format_duration(d).to_string(),
        _ => "the time asked".to_owned(),
    };
    Error::NoBoard {
        message: format!(
            "no {} became free within {waited}",
            args.target().trim_start_matches("a ")
        ),
        none_healthy: false,
    }
}

async fn leave_queue(client: &Client, ticket: &QueueTicket) {
    match client.leave_queue(&ticket.ticket).await {
        Ok(()) | Err(Error::NotFound(_) | Error::LeaseEnded { .. }) => {}
        Err(e) => eprintln!("socv: warning: {e} (the ticket lapses by itself)"),
    }
}

/// How long to sleep before the next renewal: a third of the lease's TTL.
pub fn renew_interval(lease: &Lease, now_ms: u64) -> Duration {
    let ttl = if lease.ttl_s > 0 {
        Duration::from_secs(lease.ttl_s)
    } else {
        Duration::from_millis(lease.expires_at_ms.saturating_sub(now_ms))
    };
    (ttl / 3).max(Duration::from_secs(1))
}

/// Keeps the lease renewed until a signal, then releases it.
async fn hold(
    client: &Client,
    mut lease: Lease,
    args: &LeaseArgs,
    signals: &mut Signals,
) -> Result<()> {
    if !args.json {
        eprintln!(
            "socv: holding {} (lease {}), renewing every {}; Ctrl-C releases it",
            lease.board_id,
            lease.id,
            output::short_duration(renew_interval(&lease, output::now_ms()))
        );
    }
    loop {
        let pause = renew_interval(&lease, output::now_ms());
        tokio::select! {
            _ = sleep(pause) => {}
            signal = signals.recv() => return release_on_signal(client, &lease, signal, args).await,
        }
        match renew(client, &lease, signals).await {
            Renewal::Renewed(renewed) => {
                tracing::debug!(lease = %renewed.id, expires_at_ms = renewed.expires_at_ms, "renewed");
                lease = Lease {
                    // The daemon may leave the console out of a renewal answer.
                    console: renewed.console.clone().or(lease.console),
                    ..renewed
                };
            }
            Renewal::Interrupted(signal) => {
                return release_on_signal(client, &lease, signal, args).await;
            }
            Renewal::Failed(err) => {
                if err.is_transient() {
                    // Best effort: the daemon may answer a release even if the renewal failed.
                    let _ = tokio::time::timeout(Duration::from_secs(3), client.release(&lease.id))
                        .await;
                }
                return Err(Error::RenewalFailed {
                    lease: lease.id.clone(),
                    board: lease.board_id.clone(),
                    expiry: expiry(&lease, output::now_ms()),
                    source: Box::new(err),
                });
            }
        }
    }
}

/// What a failed renewal means in time, for the loud message.
fn expiry(lease: &Lease, now_ms: u64) -> String {
    if lease.expires_at_ms > now_ms {
        format!(
            "the lease ends {}, then the board may go to someone else",
            output::relative(lease.expires_at_ms, now_ms)
        )
    } else {
        "the lease has expired and the board may already be someone else's".to_owned()
    }
}

enum Renewal {
    Renewed(Lease),
    Interrupted(&'static str),
    Failed(Error),
}

/// Renews, retrying a daemon that does not answer a few times; a definite "no" is final.
async fn renew(client: &Client, lease: &Lease, signals: &mut Signals) -> Renewal {
    let mut attempt = 1;
    loop {
        let result = tokio::select! {
            result = client.renew(&lease.id, None) => result,
            signal = signals.recv() => return Renewal::Interrupted(signal),
        };
        match result {
            Ok(renewed) => return Renewal::Renewed(renewed),
            // Retry a daemon that does not answer, while the lease still outlives the pause.
            Err(e)
                if e.is_transient()
                    && attempt < RENEW_ATTEMPTS
                    && output::now_ms() + (RENEW_RETRY_PAUSE.as_millis() as u64)
                        < lease.expires_at_ms =>
            {
                eprintln!("socv: warning: {e}; trying again");
                attempt += 1;
                tokio::select! {
                    _ = sleep(RENEW_RETRY_PAUSE) => {}
                    signal = signals.recv() => return Renewal::Interrupted(signal),
                }
            }
            Err(e) => return Renewal::Failed(e),
        }
    }
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
            args.request(),
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
        assert_eq!(args.target(), "a socA board");
    }

    #[test]
    fn one_board_without_waiting() {
        let args = parse(&["--board", "soc-a-001"]).unwrap();
        let request = args.request();
        assert_eq!(request.board_id.as_deref(), Some("soc-a-001"));
        assert_eq!(request.board_family, None);
        assert_eq!(request.wait_s, None);
        assert_eq!(request.ttl_s, None);
        assert_eq!(request.priority, None);
        assert_eq!(args.target(), "board soc-a-001");
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
            assert_eq!(args.request().wait_s, Some(WAIT_FOREVER_S));
        }
        let args = parse(&["socA", "--wait", "90s"]).unwrap();
        assert_eq!(args.wait, Some(WaitLimit::For(Duration::from_secs(90))));
        let args = parse(&["socA", "--wait=1500ms"]).unwrap();
        assert_eq!(args.request().wait_s, Some(2));
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

    #[test]
    fn renewal_runs_at_a_third_of_the_ttl() {
        let lease = Lease {
            ttl_s: 1800,
            ..Lease::default()
        };
        assert_eq!(renew_interval(&lease, 0), Duration::from_secs(600));
        let lease = Lease {
            ttl_s: 0,
            expires_at_ms: 90_000,
            ..Lease::default()
        };
        assert_eq!(renew_interval(&lease, 0), Duration::from_secs(30));
        let lease = Lease {
            ttl_s: 1,
            ..Lease::default()
        };
        assert_eq!(renew_interval(&lease, 0), Duration::from_secs(1));
    }

    #[test]
    fn no_board_without_wait_suggests_waiting() {
        let args = parse(&["socA"]).unwrap();
        let err = explain_no_board(
            Error::NoBoard {
                message: "asking for a socA board: all 4 socA boards are leased".into(),
                none_healthy: false,
            },
            &args,
        );
        assert!(
            err.to_string().ends_with("(add --wait to queue for one)"),
            "{err}"
        );
        let err = explain_no_board(
            Error::NoBoard {
                message: "no healthy socA board".into(),
                none_healthy: true,
            },
            &args,
        );
        assert!(!err.to_string().contains("--wait"), "{err}");
    }
}
