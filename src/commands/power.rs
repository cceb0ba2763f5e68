//! `socv power`: switch, power-cycle or read the PDU outlet of a board you hold.

use crate::client::Client;
use crate::error::Result;
use crate::output;
use clap::{Args, ValueEnum};
use socv_api::{PowerAction, PowerResult, PowerState};
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Only the holder of the board's lease (or an admin) may power it, also to read its state.
leased retries a failed PDU action a few times (the PDU's `retries` in boards.yaml) and then
reports the PDU and what it answered. A cycle is never split by another action on the outlet.

Examples:
  socv power soc-a-001 cycle           off and on again (the PDU's own cycle, or off, delay, on)
  socv power soc-a-001 off             cut the board's power
  socv power soc-a-001 status --json   the outlet's state as JSON (on, off or unknown)

Exit codes:
  0  success
  1  other failure
  4  lease, board or family not found
  5  permission denied
  6  leased unreachable, not a socv daemon, or its store unavailable")]
pub struct PowerArgs {
    /// The board, e.g. soc-a-001
    #[arg(value_name = "BOARD")]
    pub board: String,
    /// What to do with its PDU outlet
    #[arg(value_enum, value_name = "ACTION")]
    pub action: Action,
    /// Print the result as JSON (board_id, action, pdu, outlet, state, attempts, elapsed_ms)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Action {
    /// Switch the outlet on
    On,
    /// Switch the outlet off
    Off,
    /// Off, then on again (the PDU's own cycle, or off, its cycle delay, on)
    Cycle,
    /// Read the outlet's state
    Status,
}

impl From<Action> for PowerAction {
    fn from(action: Action) -> PowerAction {
        match action {
            Action::On => PowerAction::On,
            Action::Off => PowerAction::Off,
            Action::Cycle => PowerAction::Cycle,
            Action::Status => PowerAction::Status,
        }
    }
}

pub async fn run(client: &Client, args: PowerArgs) -> Result<()> {
    let result = client.power(&args.board, args.action.into()).await?;
    if args.json {
        output::print_json(&result)
    } else {
        output::print(&describe(&result, args.action))
    }
}

/// One line for people: what happened, and on which outlet.
fn describe(r: &PowerResult, action: Action) -> String {
    let state = match r.state {
        PowerState::On => "on",
        PowerState::Off => "off",
        PowerState::Unknown => "unknown",
    };
    let what = match (action, r.state) {
        (Action::Status, PowerState::Unknown) => format!(
            "{}: power state unknown (the PDU cannot report it)",
            r.board_id
        ),
        (Action::Status, _) => format!("{}: power is {state}", r.board_id),
        (Action::Cycle, _) => format!("{} was power-cycled; power is {state}", r.board_id),
        (Action::On | Action::Off, _) => format!("{} is {state}", r.board_id),
    };
    let took = output::short_duration(Duration::from_millis(r.elapsed_ms));
    let took = if r.elapsed_ms < 1000 {
        format!("{}ms", r.elapsed_ms)
    } else {
        took
    };
    let attempts = if r.attempts > 1 {
        format!(", {} attempts", r.attempts)
    } else {
        String::new()
    };
    format!(
        "{what} (PDU {} outlet {}, {took}{attempts})",
        r.pdu, r.outlet
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn result(state: PowerState, attempts: u32, elapsed_ms: u64) -> PowerResult {
        PowerResult {
            board_id: "soc-a-001".into(),
            action: "cycle".into(),
            pdu: "pdu-a".into(),
            outlet: 3,
            state,
            attempts,
            elapsed_ms,
        }
    }

    #[test]
    fn args() {
        let cli = Cli::try_parse_from(["socv", "power", "soc-a-001", "cycle", "--json"]).unwrap();
        let Command::Power(args) = cli.command else {
            panic!("not power")
        };
        assert_eq!(
            (args.board.as_str(), args.action, args.json),
            ("soc-a-001", Action::Cycle, true)
        );
        assert!(Cli::try_parse_from(["socv", "power", "soc-a-001", "reboot"]).is_err());
        assert!(Cli::try_parse_from(["socv", "power", "soc-a-001"]).is_err());
    }

    #[test]
    fn descriptions() {
        assert_eq!(
            describe(&result(PowerState::On, 2, 2300), Action::Cycle),
            "soc-a-001 was power-cycled; power is on (PDU pdu-a outlet 3, 2s, 2 attempts)"
        );
        assert_eq!(
            describe(&result(PowerState::Off, 1, 40), Action::Off),
            "soc-a-001 is off (PDU pdu-a outlet 3, 40ms)"
        );
        assert_eq!(
            describe(&result(PowerState::Unknown, 1, 0), Action::Status),
            "soc-a-001: power state unknown (the PDU cannot report it) (PDU pdu-a outlet 3, 0ms)"
        );
    }
}
