//! `socv status`: whether leased and its lease store are up, and who you are to it.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::output;
use clap::Args;
use leased::api::DaemonHealth;

#[derive(Debug, Args)]
#[command(after_help = "\
Exits 6 when leased cannot be reached or its lease store is unavailable (after printing the
status), so it serves as a health check.

Examples:
  socv status
  socv status --json | jq .store
  socv --daemon http://lab-gw:8000 status

Exit codes:
  0  success
  6  leased unreachable, not a socv daemon, or its store unavailable")]
pub struct StatusArgs {
    /// Print leased's health as one JSON document
    #[arg(long)]
    pub json: bool,
}

pub async fn run(client: &Client, args: StatusArgs) -> Result<()> {
    let health = client.health().await?;
    if args.json {
        output::print_json(&health)?;
    } else {
        output::print(&render(&health, client.daemon_url()))?;
    }
    if health.store.ok {
        Ok(())
    } else {
        Err(Error::StoreUnavailable {
            doing: format!("status of {}", client.daemon_url()),
            message: health
                .store
                .error
                .unwrap_or_else(|| format!("{} store not ok", health.store.backend)),
        })
    }
}

/// The status for people, one `key  value` line each.
pub fn render(health: &DaemonHealth, url: &str) -> String {
    let store = &health.store;
    let store_state = if store.ok {
        "ok".to_owned()
    } else {
        format!(
            "UNAVAILABLE: {}",
            store.error.as_deref().unwrap_or("no reason given")
        )
    };
    let caller = match (health.caller.as_str(), health.caller_role.as_str()) {
        ("", "") => "-".to_owned(),
        (who, "") => who.to_owned(),
        (who, role) => format!("{who} ({role})"),
    };
    let lines = [
        ("daemon", url.to_owned()),
        (
            "version",
            format!("leased {}, API {}", health.version, health.api_version),
        ),
        ("status", health.status.clone()),
        (
            "store",
            format!("{} {}: {store_state}", store.backend, store.location),
        ),
        ("boards", health.boards.to_string()),
        ("leases", health.leases.to_string()),
        ("waiting", health.waiting.to_string()),
        ("you", caller),
    ];
    lines.iter().map(|(k, v)| format!("{k:<8} {v}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use leased::api::StoreStatus;

    #[test]
    fn status_for_people() {
        let health = DaemonHealth {
            status: "degraded".into(),
            version: "0.1.0".into(),
            api_version: "1.0".into(),
            store: StoreStatus {
                backend: "redis".into(),
                location: "redis://lab-redis:6379/0".into(),
                ok: false,
                error: Some("connection refused".into()),
            },
            boards: 20,
            leases: 3,
            waiting: 1,
            caller: "ann@build7".into(),
            caller_role: "local".into(),
        };
        insta::assert_snapshot!(render(&health, "http://127.0.0.1:8000"));
    }
}
