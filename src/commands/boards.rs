//! `socv boards`: the lab's boards with their state, health, holder and lease expiry.

use crate::client::Client;
use crate::error::Result;
use crate::output;
use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "\
Columns:
  STATE     free or leased
  HEALTH    healthy, unhealthy (too many infrastructure failures) or maintenance (drained)
  EXPIRES   when the current lease ends unless renewed
  FAILURES  infrastructure failures in a row (3 mark the board unhealthy)

Examples:
  socv boards                   every board of the lab
  socv boards --family socA     only the socA boards
  socv boards --json | jq -r '.[] | select(.availability == \"free\") | .id'

Exit codes:
  0  success
  4  lease, board or family not found
  6  leased unreachable, not a socv daemon, or its store unavailable")]
pub struct BoardsArgs {
    /// Only boards of this family (e.g. socA)
    #[arg(long, value_name = "FAMILY")]
    pub family: Option<String>,
    /// Print one JSON array of boards instead of a table
    #[arg(long)]
    pub json: bool,
}

pub async fn run(client: &Client, args: BoardsArgs) -> Result<()> {
    let boards = client.boards(args.family.as_deref()).await?;
    if args.json {
        return output::print_json(&boards);
    }
    if boards.is_empty() {
        match &args.family {
            Some(family) => eprintln!("socv: leased knows no {family} boards"),
            None => eprintln!("socv: leased knows no boards"),
        }
        return Ok(());
    }
    output::print(&output::boards_table(&boards, output::now_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use socv_api::BoardHealth;
    use socv_api::{Availability, BoardView};

    const NOW: u64 = 1_750_000_000_000;

    #[test]
    fn table_for_people() {
        let boards = vec![
            BoardView {
                id: "soc-a-001".into(),
                family: "socA".into(),
                location: "lab-sh".into(),
                availability: Availability::Leased,
                holder: Some("ann@build7".into()),
                lease_id: Some("l-1".into()),
                lease_expires_at_ms: Some(NOW + 29 * 60_000 + 30_000),
                ..BoardView::default()
            },
            BoardView {
                id: "soc-a-002".into(),
                family: "socA".into(),
                location: "lab-bj".into(),
                health: BoardHealth::Unhealthy,
                failures: 3,
                ..BoardView::default()
            },
            BoardView {
                id: "soc-b-001".into(),
                family: "socB".into(),
                location: "lab-sz".into(),
                health: BoardHealth::Maintenance,
                drain_reason: Some("new PDU".into()),
                ..BoardView::default()
            },
        ];
        insta::assert_snapshot!(output::boards_table(&boards, NOW));
    }

    #[test]
    fn args() {
        let cli = Cli::try_parse_from(["socv", "boards", "--family", "socA", "--json"]).unwrap();
        let Command::Boards(args) = cli.command else {
            panic!("not boards")
        };
        assert_eq!(args.family.as_deref(), Some("socA"));
        assert!(args.json);
    }
}
