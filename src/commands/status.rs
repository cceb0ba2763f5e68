//! `socv status`: whether leased and its lease store are up, how run history reaches Prefect
//! and notifications their channels, and who you are to it.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::output;
use clap::Args;
use socv_api::{ChannelStatus, DaemonHealth, PrefectStatus};

#[derive(Debug, Args)]
#[command(after_help = "\
Exits 6 when leased cannot be reached or its lease store is unavailable (after printing the
status), so it serves as a health check. Prefect and the notification channels are shown (with
their backlog and last error) but never change the exit code: runs go on when they are down.

Examples:
  socv status
  socv status --json | jq .store
  socv status --json | jq .prefect.backlog
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
        output::print(&render(&health, client.daemon_url(), output::now_ms()))?;
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
pub fn render(health: &DaemonHealth, url: &str, now_ms: u64) -> String {
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
        ("prefect", prefect(&health.prefect, now_ms)),
    ];
    let mut lines: Vec<(&str, String)> = lines.into();
    if health.notifications.is_empty() {
        lines.push(("notify", "none configured".to_owned()));
    }
    for channel in &health.notifications {
        lines.push(("notify", notify(channel, now_ms)));
    }
    lines.push(("you", caller));
    lines.iter().map(|(k, v)| format!("{k:<8} {v}\n")).collect()
}

/// `http://prefect:4200/api: ok, 0 waiting, 12 delivered (last 3m ago)`.
fn prefect(p: &PrefectStatus, now_ms: u64) -> String {
    if !p.configured {
        return "not configured (run history is kept by leased only)".to_owned();
    }
    let state = if p.ok {
        "ok".to_owned()
    } else {
        format!("ERROR: {}", p.error.as_deref().unwrap_or("no reason given"))
    };
    let last = p
        .last_delivery_ms
        .map(|at| format!(" (last {})", output::relative(at, now_ms)))
        .unwrap_or_default();
    let refused = match (&p.last_refusal, p.refused) {
        (_, 0) => String::new(),
        (Some(why), n) => format!("; {n} refused by Prefect, last: {why}"),
        (None, n) => format!("; {n} refused by Prefect"),
    };
    format!(
        "{}: {state}, {} waiting, {} delivered{last}{refused}",
        p.url.as_deref().unwrap_or("(no URL)"),
        p.backlog,
        p.delivered
    )
}

/// `slack: 5 sent, 1 failed, 0 pending; last error 2h ago: 500 from hooks.slack.com`.
fn notify(c: &ChannelStatus, now_ms: u64) -> String {
    let mut text = format!(
        "{}: {} sent, {} failed, {} pending",
        c.name, c.sent, c.failed, c.pending
    );
    if let Some(error) = &c.last_error {
        let when = c
            .last_error_ms
            .map(|at| format!(" {}", output::relative(at, now_ms)))
            .unwrap_or_default();
        text.push_str(&format!("; last error{when}: {error}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use socv_api::StoreStatus;

    const NOW: u64 = 1_750_000_000_000;

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
            prefect: PrefectStatus {
                configured: true,
                url: Some("http://prefect:4200/api".into()),
                ok: false,
                error: Some("connection refused".into()),
                backlog: 42,
                delivered: 7,
                refused: 1,
                last_refusal: Some("run r-1: 422 from Prefect: name too long".into()),
                last_delivery_ms: Some(NOW - 20 * 60_000),
            },
            notifications: vec![
                ChannelStatus {
                    name: "slack".into(),
                    sent: 5,
                    failed: 1,
                    pending: 0,
                    last_error: Some("hooks.slack.com answered 500".into()),
                    last_error_ms: Some(NOW - 2 * 3_600_000),
                },
                ChannelStatus {
                    name: "feishu".into(),
                    sent: 3,
                    ..ChannelStatus::default()
                },
            ],
        };
        insta::assert_snapshot!(render(&health, "http://127.0.0.1:8000", NOW));
    }

    #[test]
    fn nothing_configured_says_so() {
        let text = render(&DaemonHealth::default(), "http://h:1", NOW);
        assert!(
            text.contains("prefect  not configured (run history is kept by leased only)\n"),
            "{text}"
        );
        assert!(text.contains("notify   none configured\n"), "{text}");
    }
}
