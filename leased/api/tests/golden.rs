//! The golden documents of API v1 (`tests/golden/*.json`): each is read as its wire type and
//! written back, and must come back unchanged. A renamed, removed or added field, or a changed
//! spelling of a value, fails here, so a wire change is always a visible, deliberate diff of
//! these files. After a deliberate change: `SOCV_BLESS_GOLDEN=1 cargo test -p socv-api` rewrites
//! them from what the types now write; review the diff.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use socv_api::*;
use std::path::PathBuf;

fn golden<T: DeserializeOwned + Serialize>(name: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let committed: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let typed: T = serde_json::from_value(committed.clone())
        .unwrap_or_else(|e| panic!("{} no longer reads as its type: {e}", path.display()));
    let written = serde_json::to_value(&typed).unwrap();
    if std::env::var_os("SOCV_BLESS_GOLDEN").is_some() {
        let pretty = serde_json::to_string_pretty(&written).unwrap() + "\n";
        std::fs::write(&path, pretty).unwrap();
        return;
    }
    assert_eq!(
        written,
        committed,
        "{} is not what API v1 writes; if the change is deliberate, bless it (see the module doc)",
        path.display()
    );
}

#[test]
fn requests() {
    golden::<LeaseRequest>("lease_request");
    golden::<LeaseRequest>("lease_request_board");
    golden::<RenewRequest>("renew_request");
    golden::<DrainRequest>("drain_request");
    golden::<HealthReport>("health_report");
    golden::<RunStart>("run_start");
    golden::<RunUpdate>("run_update");
    golden::<RunLogs>("run_logs");
    golden::<RunQuery>("run_query");
    golden::<RemoteRunRequest>("remote_run_request");
}

#[test]
fn responses() {
    golden::<Lease>("lease");
    golden::<QueueTicket>("queue_ticket");
    golden::<TicketStatus>("ticket_waiting");
    golden::<TicketStatus>("ticket_granted");
    golden::<BoardView>("board_view");
    golden::<BoardView>("board_view_drained");
    golden::<PowerResult>("power_result");
    golden::<DaemonHealth>("daemon_health");
    golden::<Run>("run");
    golden::<PoolWorkers>("pool_workers");
    golden::<ArtifactInfo>("artifact_info");
    golden::<RemoteRun>("remote_run");
}

#[test]
fn error_bodies() {
    golden::<ErrorBody>("error_body");
    let body: ErrorBody = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/error_body.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(body.error.code, codes::NO_BOARD_AVAILABLE);
}
