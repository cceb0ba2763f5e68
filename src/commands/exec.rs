//! `socv exec`: run one shell command on a board you hold; its exit status is socv's.

use crate::cli::parse_duration;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::lease::held;
use crate::session::{BoardSession, TimedOutcome};
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "\
The words after `--` are joined with spaces and run by the board's shell (as ssh does), with
stdin from /dev/null; quote what the local shell must not expand. Output streams as it comes.
socv exits with the command's own exit status (0-255); its own failures use the codes below.

Examples:
  socv exec soc-a-001 -- uname -a
  socv exec l-7f3a0c1b2d4e -- 'cd /tmp && ./test.elf --quick'
  socv exec soc-a-001 --timeout 5m -- /tmp/stress

Exit codes:
  1  other failure
  4  lease, board or family not found
  5  permission denied
  6  leased unreachable, not a socv daemon, or its store unavailable
  124  the command ran past its time limit and was interrupted")]
pub struct ExecArgs {
    /// The lease id, or the board whose lease you hold
    #[arg(value_name = "LEASE | BOARD")]
    pub target: String,
    /// Interrupt the command (Ctrl-C) after this long, e.g. 30s or 10m
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub async fn run(client: &Client, args: ExecArgs) -> Result<i32> {
    let board = held::resolve(client, &args.target).await?;
    let command = args.command.join(" ");
    let mut session = BoardSession::connect(board.session).await?;
    let mut out = tokio::io::stdout();
    let status = match args.timeout {
        None => session.run(&command, &mut out).await?.status,
        Some(limit) => match session.run_with_timeout(&command, limit, &mut out).await? {
            TimedOutcome::Finished(outcome) => outcome.status,
            TimedOutcome::TimedOut => {
                eprintln!(
                    "socv: `{command}` on {} ran past {} and was interrupted",
                    board.lease.board_id,
                    humantime::format_duration(limit)
                );
                exit_codes::TIMED_OUT
            }
        },
    };
    tokio::io::AsyncWriteExt::flush(&mut out)
        .await
        .map_err(|e| Error::io("writing the output", e))?;
    // The command's status is the answer; a failed logout does not change it.
    if let Err(e) = session.close().await {
        tracing::debug!(error = %e, "logging out");
    }
    Ok(status)
}
