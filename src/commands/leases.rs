//! `socv leases`: the active leases of the lab; the endpoint is shown only for your own.

use crate::client::Client;
use crate::error::Result;
use crate::output;
use clap::Args;
use socv_api::Lease;

#[derive(Debug, Args)]
#[command(after_help = "\
ENDPOINT is shown only for your own leases (leased gives consoles only to their holder).

Examples:
  socv leases
  socv leases --json | jq -r '.[] | select(.console) | .id'    ids of your own leases

Exit codes:
  0  success
  6  leased unreachable, not a socv daemon, or its store unavailable")]
pub struct LeasesArgs {
    /// Print one JSON array of leases instead of a table (console passwords left out)
    #[arg(long)]
    pub json: bool,
}

pub async fn run(client: &Client, args: LeasesArgs) -> Result<()> {
    let leases = client.leases().await?;
    if args.json {
        let shown: Vec<Lease> = leases.iter().map(output::without_secrets).collect();
        return output::print_json(&shown);
    }
    if leases.is_empty() {
        eprintln!("socv: no active leases");
        return Ok(());
    }
    output::print(&render(&leases, output::now_ms()))
}

/// The leases table for people.
pub fn render(leases: &[Lease], now_ms: u64) -> String {
    output::table(
        &[
            "LEASE", "BOARD", "FAMILY", "LOCATION", "HOLDER", "PRIORITY", "EXPIRES", "ENDPOINT",
        ],
        leases.iter().map(|l| {
            vec![
                l.id.clone(),
                l.board_id.clone(),
                l.family.clone(),
                l.location.clone(),
                l.holder.clone(),
                l.priority.to_string(),
                output::relative(l.expires_at_ms, now_ms),
                output::endpoint(l).unwrap_or_default(),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use socv_api::{Console, Priority};

    #[test]
    fn table_for_people() {
        let now = 1_750_000_000_000;
        let leases = vec![
            Lease {
                id: "l-7f3a".into(),
                board_id: "soc-a-001".into(),
                family: "socA".into(),
                location: "lab-sh".into(),
                holder: "ann@build7".into(),
                expires_at_ms: now + 90 * 60_000,
                ttl_s: 7200,
                console: Some(Console {
                    host: "10.1.0.11".into(),
                    port: 2301,
                    username: Some("root".into()),
                    password: Some("secret".into()),
                    ..Console::default()
                }),
                ..Lease::default()
            },
            Lease {
                id: "l-9c01".into(),
                board_id: "soc-b-002".into(),
                family: "socB".into(),
                location: "lab-bj".into(),
                holder: "ci@jenkins-3".into(),
                priority: Priority::High,
                expires_at_ms: now + 4 * 60_000,
                ..Lease::default()
            },
        ];
        let text = render(&leases, now);
        assert!(!text.contains("secret"));
        insta::assert_snapshot!(text);
    }
}
