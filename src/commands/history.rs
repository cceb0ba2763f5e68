//! `socv history`: the runs leased has recorded, newest first, filtered by board, family,
//! holder, state and age.

use crate::cli::parse_duration;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::output;
use clap::Args;
use socv_api::{MAX_RUN_QUERY_LIMIT, Run, RunQuery, RunState};
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Every `socv run` (and every run of a `socv batch`) is recorded by leased: one record per board
tried, so a run retried after a board failure shows its failed attempt as crashed. RESULT is
the state with the exit code (the test's own, else socv's: 124 timed out, 125 lab failure, 130
interrupted); PREFECT is the run's page in the Prefect UI, shown when leased delivers to one.
Filters combine; without --limit leased answers its 50 newest matches.

Examples:
  socv history
  socv history --board soc-a-001 --since 2h
  socv history --family socA --state failed --since 3d
  socv history --holder ci@jenkins-3 --limit 10
  socv history --json | jq -r '.[] | select(.state == \"failed\") | .id'

Exit codes:
  0  success
  1  other failure
  2  usage error (bad flag, environment variable or config file)
  6  leased unreachable, not a socv daemon, or its store unavailable")]
pub struct HistoryArgs {
    /// Only runs on this board
    #[arg(long, value_name = "BOARD")]
    pub board: Option<String>,
    /// Only runs on boards of this family
    #[arg(long, value_name = "FAMILY")]
    pub family: Option<String>,
    /// Only runs of this holder (user@host, or a token's name)
    #[arg(long, value_name = "HOLDER")]
    pub holder: Option<String>,
    /// Only runs in this state: pending, running, completed, failed, timed_out, crashed or
    /// cancelled
    #[arg(long, value_name = "STATE", value_parser = |s: &str| s.parse::<RunState>())]
    pub state: Option<RunState>,
    /// Only runs started within this long, such as 90m, 2h or 3d
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// At most this many runs (1 to 1000) [default: 50]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=MAX_RUN_QUERY_LIMIT as i64))]
    pub limit: Option<u16>,
    /// Print one JSON array of runs instead of a table
    #[arg(long)]
    pub json: bool,
}

impl HistoryArgs {
    /// The query for leased, with `--since` counted back from `now_ms`.
    pub fn query(&self, now_ms: u64) -> RunQuery {
        RunQuery {
            board: self.board.clone(),
            family: self.family.clone(),
            holder: self.holder.clone(),
            state: self.state,
            since_ms: self
                .since
                .map(|d| now_ms.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
            limit: self.limit.map(usize::from),
        }
    }
}

pub async fn run(client: &Client, args: HistoryArgs) -> Result<()> {
    let now = output::now_ms();
    let runs = client.runs(&args.query(now)).await.map_err(|e| match e {
        // Only a daemon from before run history lacks the endpoint.
        Error::NotFound(message) => Error::Daemon {
            doing: "reading the run history".to_owned(),
            status: 404,
            code: socv_api::codes::NOT_FOUND.to_owned(),
            message: format!("{message} (this leased keeps no run history; upgrade it)"),
        },
        e => e,
    })?;
    if args.json {
        return output::print_json(&runs);
    }
    if runs.is_empty() {
        eprintln!("socv: no runs recorded that match");
        return Ok(());
    }
    output::print(&render(&runs, now))
}

/// The history table for people; PREFECT only when some run has a link.
pub fn render(runs: &[Run], now_ms: u64) -> String {
    let links = runs
        .iter()
        .any(|r| r.prefect.as_ref().is_some_and(|p| p.url.is_some()));
    let mut headers = vec![
        "WHEN", "RUN", "BOARD", "BINARY", "HOLDER", "RESULT", "DURATION",
    ];
    if links {
        headers.push("PREFECT");
    }
    output::table(
        &headers,
        runs.iter().map(|r| {
            let mut row = vec![
                output::relative(r.created_at_ms, now_ms),
                r.id.clone(),
                r.board_id.clone(),
                basename(&r.binary).to_owned(),
                r.holder.clone(),
                result(r),
                output::short_duration(Duration::from_millis(r.duration_ms(now_ms))),
            ];
            if links {
                row.push(
                    r.prefect
                        .as_ref()
                        .and_then(|p| p.url.clone())
                        .unwrap_or_default(),
                );
            }
            row
        }),
    )
}

/// `failed (3)`: the state, with the test's exit code, else socv's.
fn result(run: &Run) -> String {
    match run.exit_code.or(run.socv_exit_code) {
        Some(code) => format!("{} ({code})", run.state),
        None => run.state.to_string(),
    }
}

fn basename(path: &str) -> &str {
    path.rsplit(['/', '\\'])
        .find(|part| !part.is_empty())
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::exit_codes;
    use clap::Parser;
    use socv_api::RunPrefect;

    fn parse(args: &[&str]) -> std::result::Result<HistoryArgs, clap::Error> {
        let cli = Cli::try_parse_from(["socv", "history"].iter().chain(args))?;
        match cli.command {
            crate::cli::Command::History(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn flags_become_the_query() {
        let args = parse(&[
            "--board",
            "soc-a-001",
            "--state",
            "timed-out",
            "--since",
            "2h",
            "--limit",
            "7",
        ])
        .unwrap();
        let query = args.query(10_000_000);
        assert_eq!(query.board.as_deref(), Some("soc-a-001"));
        assert_eq!(query.state, Some(RunState::TimedOut));
        assert_eq!(query.since_ms, Some(10_000_000 - 7_200_000));
        assert_eq!(query.limit, Some(7));
        assert_eq!(parse(&[]).unwrap().query(5), RunQuery::default());
    }

    #[test]
    fn bad_values_name_the_flag_and_the_value() {
        for (args, words) in [
            (&["--since", "forever"][..], &["--since", "'forever'"][..]),
            (
                &["--state", "bogus"],
                &["--state", "'bogus'", "completed, failed"],
            ),
            (&["--limit", "0"], &["--limit", "0"]),
            (&["--limit", "1001"], &["--limit", "1001"]),
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), exit_codes::USAGE, "{args:?}");
            let text = err.to_string();
            for word in words {
                assert!(text.contains(word), "{word} not in {text}");
            }
        }
    }

    #[test]
    fn table_for_people() {
        let now = 1_750_000_000_000;
        let runs = vec![
            Run {
                id: "r-0a1b2c3d4e5f".into(),
                board_id: "soc-a-001".into(),
                family: "socA".into(),
                holder: "ann@build7".into(),
                binary: "./out/test.elf".into(),
                state: RunState::Failed,
                exit_code: Some(3),
                socv_exit_code: Some(3),
                created_at_ms: now - 5 * 60_000,
                started_at_ms: Some(now - 5 * 60_000 + 2_000),
                ended_at_ms: Some(now - 5 * 60_000 + 95_000),
                prefect: Some(RunPrefect {
                    flow_run_id: "f1".into(),
                    url: Some("http://prefect:4200/runs/flow-run/f1".into()),
                }),
                ..Run::default()
            },
            Run {
                id: "r-99aa00bb11cc-2".into(),
                board_id: "soc-a-002".into(),
                holder: "ci@jenkins-3".into(),
                binary: "boot-test".into(),
                state: RunState::TimedOut,
                socv_exit_code: Some(124),
                created_at_ms: now - 3 * 3_600_000,
                ended_at_ms: Some(now - 3 * 3_600_000 + 600_000),
                ..Run::default()
            },
            Run {
                id: "r-1234".into(),
                board_id: "soc-b-001".into(),
                holder: "bo@lab".into(),
                binary: "/tmp/x/stress".into(),
                state: RunState::Running,
                created_at_ms: now - 30_000,
                ..Run::default()
            },
        ];
        insta::assert_snapshot!(render(&runs, now));
        let without_links = render(&runs[1..], now);
        assert!(!without_links.contains("PREFECT"), "{without_links}");
    }
}
