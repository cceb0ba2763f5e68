//! The board behind a `LEASE | BOARD` argument: a lease the caller holds, and how to reach and
//! log in to its console.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::session::SessionConfig;
use socv_api::Lease;

/// A board the caller holds, ready to connect to.
pub struct HeldBoard {
    pub lease: Lease,
    pub session: SessionConfig,
}

/// Finds the caller's lease named by `target` (a lease id or a board id). A board someone
/// else holds is refused, naming the holder; the daemon only hands the console and its
/// credentials to the holder (or an admin).
pub async fn resolve(client: &Client, target: &str) -> Result<HeldBoard> {
    let leases = client.leases().await?;
    let Some(lease) = find(&leases, target) else {
        return Err(Error::NotFound(format!(
            "you hold no lease on '{target}': take one with `socv lease --board {target}` \
             or `socv lease FAMILY` (see `socv leases`)"
        )));
    };
    let Some(console) = &lease.console else {
        return Err(Error::PermissionDenied {
            doing: format!("using board {}", lease.board_id),
            message: format!(
                "it is held by {} (lease {}), not by you",
                lease.holder, lease.id
            ),
        });
    };
    Ok(HeldBoard {
        session: session_config(&lease.board_id, console),
        lease: lease.clone(),
    })
}

/// The lease named by `target`: a lease id first, else a board id.
pub fn find<'a>(leases: &'a [Lease], target: &str) -> Option<&'a Lease> {
    leases
        .iter()
        .find(|l| l.id == target)
        .or_else(|| leases.iter().find(|l| l.board_id == target))
}

/// The session settings for a lease's console, with the board's own prompts.
pub fn session_config(board: &str, console: &socv_api::Console) -> SessionConfig {
    let mut config = SessionConfig::from_console(board, console);
    if let Some(p) = &console.login_prompt {
        config.login_prompt = p.clone();
    }
    if let Some(p) = &console.password_prompt {
        config.password_prompt = p.clone();
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: &str, board: &str) -> Lease {
        Lease {
            id: id.into(),
            board_id: board.into(),
            ..Lease::default()
        }
    }

    #[test]
    fn finds_by_id_before_board() {
        let leases = vec![lease("l-1", "soc-a-001"), lease("soc-a-001", "soc-b-001")];
        assert_eq!(find(&leases, "l-1").map(|l| l.id.as_str()), Some("l-1"));
        assert_eq!(
            find(&leases, "soc-a-001").map(|l| l.id.as_str()),
            Some("soc-a-001")
        );
        assert_eq!(
            find(&leases, "soc-b-001").map(|l| l.id.as_str()),
            Some("soc-a-001")
        );
        assert_eq!(find(&leases, "x"), None);
    }
}
