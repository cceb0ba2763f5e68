//! `socv board drain|undrain`: an admin takes a board out of service and puts it back.

use crate::client::Client;
use crate::error::Result;
use crate::output;
use clap::{Args, Subcommand};
use socv_api::{Availability, BoardView};

#[derive(Debug, Args)]
pub struct BoardArgs {
    #[command(subcommand)]
    pub action: BoardAction,
}

#[derive(Debug, Subcommand)]
pub enum BoardAction {
    /// Take a board out of service: no new leases until undrained (needs an admin token)
    Drain(DrainArgs),
    /// Put a drained board back into service (needs an admin token)
    Undrain(UndrainArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
A current lease on the board runs until it ends; the board is not granted again until undrained.

Examples:
  SOCV_TOKEN=… socv board drain soc-a-001 --reason \"flaky UART, replacing the cable\"

Exit codes:
  0  success
  4  lease, board or family not found
  5  permission denied
  6  leased unreachable, not a socv daemon, or its store unavailable")]
pub struct DrainArgs {
    /// The board to drain, e.g. soc-a-001
    #[arg(value_name = "BOARD")]
    pub board: String,
    /// Why, shown to everyone in `socv boards --json` (e.g. "PDU replaced, retest first")
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  SOCV_TOKEN=… socv board undrain soc-a-001

Exit codes:
  0  success
  4  lease, board or family not found
  5  permission denied
  6  leased unreachable, not a socv daemon, or its store unavailable")]
pub struct UndrainArgs {
    /// The board to put back into service
    #[arg(value_name = "BOARD")]
    pub board: String,
}

pub async fn run(client: &Client, args: BoardArgs) -> Result<()> {
    match args.action {
        BoardAction::Drain(args) => {
            let board = client.drain(&args.board, args.reason).await?;
            output::print(&drained(&board))
        }
        BoardAction::Undrain(args) => {
            let board = client.undrain(&args.board).await?;
            output::print(&format!(
                "{} is back in service (health: {})",
                board.id, board.health
            ))
        }
    }
}

fn drained(board: &BoardView) -> String {
    let mut text = format!("drained {} (health: {})", board.id, board.health);
    if let Some(reason) = &board.drain_reason {
        text.push_str(&format!(": {reason}"));
    }
    if board.availability == Availability::Leased {
        text.push_str(&format!(
            "; its lease ({}) runs until it ends",
            board.holder.as_deref().unwrap_or("someone")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use socv_api::BoardHealth;

    #[test]
    fn drain_args() {
        let cli = Cli::try_parse_from(["socv", "board", "drain", "soc-a-001", "--reason", "UART"])
            .unwrap();
        let Command::Board(BoardArgs {
            action: BoardAction::Drain(args),
        }) = cli.command
        else {
            panic!("not drain")
        };
        assert_eq!(args.board, "soc-a-001");
        assert_eq!(args.reason.as_deref(), Some("UART"));
        assert!(Cli::try_parse_from(["socv", "board", "undrain"]).is_err());
        assert!(Cli::try_parse_from(["socv", "board", "reboot", "x"]).is_err());
    }

    #[test]
    fn drained_mentions_the_running_lease() {
        let board = BoardView {
            id: "soc-a-001".into(),
            availability: Availability::Leased,
            health: BoardHealth::Maintenance,
            holder: Some("ann@h".into()),
            drain_reason: Some("UART".into()),
            ..BoardView::default()
        };
        assert_eq!(
            drained(&board),
            "drained soc-a-001 (health: maintenance): UART; its lease (ann@h) runs until it ends"
        );
    }
}
