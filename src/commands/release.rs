//! `socv release`: give back a lease you hold, named by its id or by its board.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::lease::find;
use crate::output;
use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  socv release l-7f3a        by lease id (as `socv lease` printed it)
  socv release soc-a-001     by board: releases your lease on that board

Exit codes:
  0  success
  4  lease, board or family not found
  5  permission denied
  6  leased unreachable, not a socv daemon, or its store unavailable")]
pub struct ReleaseArgs {
    /// The lease id, or the board whose lease you hold
    #[arg(value_name = "LEASE_ID | BOARD")]
    pub target: String,
}

pub async fn run(client: &Client, args: ReleaseArgs) -> Result<()> {
    let target = args.target.trim();
    let leases = client.leases().await?;
    let found = find(&leases, target);
    let id = found.map_or(target, |l| l.id.as_str());
    match client.release(id).await {
        Ok(ended) => {
            let board = match (ended.board_id.as_str(), found) {
                ("", Some(lease)) => lease.board_id.as_str(),
                (board, _) => board,
            };
            let lease_id = if ended.id.is_empty() { id } else { &ended.id };
            output::print(&format!("released {board} (lease {lease_id})"))
        }
        Err(Error::NotFound(_)) => Err(not_held(target)),
        Err(Error::PermissionDenied { doing, message }) => Err(match found {
            Some(lease) if lease.id != target => Error::PermissionDenied {
                doing: format!("releasing board {}", lease.board_id),
                message: format!(
                    "it is held by {} (lease {}), not by you",
                    lease.holder, lease.id
                ),
            },
            _ => Error::PermissionDenied { doing, message },
        }),
        Err(e) => Err(e),
    }
}

/// The active lease named by `target`: by lease id first, else the lease on that board.
fn not_held(target: &str) -> Error {
    Error::NotFound(format!(
        "no lease or board named '{target}' is held by you (see `socv leases`)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_held_names_the_thing() {
        let err = not_held("x");
        assert_eq!(err.exit_code(), crate::exit_codes::NOT_FOUND);
        assert!(
            err.to_string()
                .starts_with("no lease or board named 'x' is held by you"),
            "{err}"
        );
    }
}
