//! The `apc-snmp` driver against a real SNMP agent: net-snmp's `snmpd` on a free loopback port,
//! with a `pass` handler that plays the three APC PowerNet-MIB outlet-control tables (it keeps
//! each outlet's state in a file and logs every SET): the test kit's [`ApcSnmpAgent`].

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use leased::api::{self, PowerResult, PowerState};
use leased::config::{Config, StoreSpec};
use serde_json::{Value, json};
use socv_testkit::{ApcSnmpAgent, Board, LabFile, Pdu};
use tower::ServiceExt;

async fn post(router: &Router, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header(api::HOLDER_HEADER, "ann@h")
        .header("content-type", "application/json");
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn power(router: &Router, board: &str, action: &str) -> PowerResult {
    let (status, body) = post(router, &format!("/api/v1/power/{board}/{action}"), None).await;
    assert_eq!(status, StatusCode::OK, "{board} {action}: {body}");
    serde_json::from_value(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apc_outlets_are_switched_and_read_in_all_three_mibs() {
    let dir = tempfile::tempdir().unwrap();
    let agent = ApcSnmpAgent::start(dir.path());
    let port = agent.port;
    let pdu = |name: &str| {
        Pdu::new(name, "apc-snmp")
            .field("host", "127.0.0.1")
            .field("port", port)
            .field("timeout_s", 2)
            .field("retries", 0)
    };
    let pdus = [
        pdu("apc-s").field("mib", "sPDU").field("version", 1),
        pdu("apc-r").field("mib", "rPDU"),
        pdu("apc-r2"),
        pdu("apc-ro").field("community", "public"),
        pdu("apc-wrong").field("community", "nobody-knows"),
    ];
    let boards = [
        ("s-1", "apc-s", 5),
        ("r-1", "apc-r", 2),
        ("r2-1", "apc-r2", 7),
        ("ro-1", "apc-ro", 1),
        ("w-1", "apc-wrong", 1),
    ]
    .iter()
    .enumerate()
    .map(|(i, (id, pdu, outlet))| {
        Board::new(id, "socA", 2300 + i as u16)
            .lab_location("A")
            .pdu(pdu, *outlet)
    });
    let path = LabFile::new()
        .pdus(pdus)
        .boards(boards)
        .write(dir.path().join("boards.yaml"));
    let config = Config::new(path, StoreSpec::Embedded(dir.path().join("store.redb")));
    let router = leased::server::router(leased::server::build(config).await.unwrap());
    for board in ["s-1", "r-1", "r2-1", "ro-1", "w-1"] {
        let (status, body) = post(&router, "/api/v1/lease", Some(json!({"board_id": board}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    for (board, oid) in [
        ("s-1", ".1.3.6.1.4.1.318.1.1.4.4.2.1.3.5"),
        ("r-1", ".1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.2"),
        ("r2-1", ".1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.7"),
    ] {
        assert_eq!(power(&router, board, "status").await.state, PowerState::On);
        assert_eq!(power(&router, board, "off").await.state, PowerState::Off);
        assert_eq!(power(&router, board, "status").await.state, PowerState::Off);
        let cycle = power(&router, board, "cycle").await;
        assert_eq!((cycle.state, cycle.attempts), (PowerState::On, 1));
        assert_eq!(power(&router, board, "status").await.state, PowerState::On);
        let sets: Vec<String> = agent
            .sets()
            .into_iter()
            .filter(|s| s.contains(&format!("{oid} ")))
            .collect();
        // The APC reboot command (3), not off and on.
        assert_eq!(sets, [format!("SET {oid} 2"), format!("SET {oid} 3")]);
    }

    // A read-only community: the agent refuses the SET with an error status.
    let (status, body) = post(&router, "/api/v1/power/ro-1/off", None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("PDU apc-ro (apc-snmp driver), outlet 1: off failed after 1 attempt: SNMP SET 1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.1 = 2"),
        "{message}"
    );
    assert!(message.contains("answered error-status"), "{message}");
    // A wrong community: the agent stays silent.
    let (status, body) = post(&router, "/api/v1/power/w-1/on", None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "PDU apc-wrong (apc-snmp driver), outlet 1: on failed after 1 attempt: no answer within 2s"
    );
    assert!(!message.contains("nobody-knows"));
}
