//! `POST /api/v1/power/{board}/{action}` through the router, against fake PDUs: an axum server
//! on 127.0.0.1:0 speaking the http driver's URLs and pdudaemon's API, and `command` PDUs whose
//! shell templates write to a log file.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use leased::api::{self, PowerResult, PowerState};
use leased::config::{Config, StoreSpec};
use serde_json::{Value, json};
use socv_testkit::{Board, LabFile, Pdu, free_port};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;

use crate::common::TOKENS;

/// What the fake PDU server saw, and how it answers.
#[derive(Default)]
struct FakePdu {
    requests: Mutex<Vec<String>>,
    /// Outlet states of the http PDU.
    outlets: Mutex<HashMap<u32, bool>>,
    /// When set, every answer is this status and body.
    fail: Mutex<Option<(u16, String)>>,
}

type Shared = Arc<FakePdu>;

async fn outlet(
    State(pdu): State<Shared>,
    Path((outlet, action)): Path<(u32, String)>,
    headers: axum::http::HeaderMap,
) -> (StatusCode, String) {
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| format!(" auth={}", v.to_str().unwrap_or("?")))
        .unwrap_or_default();
    pdu.requests
        .lock()
        .unwrap()
        .push(format!("{action} {outlet}{auth}"));
    if let Some((status, body)) = pdu.fail.lock().unwrap().clone() {
        return (StatusCode::from_u16(status).unwrap(), body);
    }
    let mut outlets = pdu.outlets.lock().unwrap();
    let on = outlets.entry(outlet).or_insert(true);
    match action.as_str() {
        "on" | "cycle" => *on = true,
        "off" => *on = false,
        _ => {}
    }
    let state = if *on { "on" } else { "off" };
    (
        StatusCode::OK,
        json!({"outlet": outlet, "state": state}).to_string(),
    )
}

async fn pdudaemon(
    State(pdu): State<Shared>,
    Path(action): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let mut keys: Vec<_> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    keys.sort();
    pdu.requests
        .lock()
        .unwrap()
        .push(format!("{action} {}", keys.join("&")));
    if let Some((status, body)) = pdu.fail.lock().unwrap().clone() {
        return (StatusCode::from_u16(status).unwrap(), body);
    }
    (StatusCode::OK, "OK - accepted request\n".to_owned())
}

/// Starts the fake PDU; its base URL.
async fn fake_pdu() -> (String, Shared) {
    let shared = Shared::default();
    let app = Router::new()
        .route(
            "/outlets/{outlet}/{action}",
            get(outlet).post(outlet).put(outlet),
        )
        .route("/power/control/{action}", get(pdudaemon))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, shared)
}

#[derive(Clone)]
struct Lab {
    router: Router,
    dir: Arc<tempfile::TempDir>,
}

async fn lab(pdus: Vec<Pdu>, boards: Vec<Board>, with_tokens: bool) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let path = LabFile::new()
        .pdus(pdus)
        .boards(boards)
        .write(dir.path().join("boards.yaml"));
    let mut config = Config::new(path, StoreSpec::Embedded(dir.path().join("store.redb")));
    if with_tokens {
        let tokens = dir.path().join("tokens.toml");
        std::fs::write(&tokens, TOKENS).unwrap();
        config.tokens = Some(tokens);
    }
    let state = leased::server::build(config).await.unwrap();
    Lab {
        router: leased::server::router(state),
        dir: Arc::new(dir),
    }
}

fn board(id: &str, port: u16, pdu: Option<(&str, u32)>) -> Board {
    let board = Board::new(id, "socA", port);
    match pdu {
        Some((pdu, outlet)) => board.pdu(pdu, outlet),
        None => board,
    }
}

struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<none>")
    }
    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
    fn result(&self) -> PowerResult {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        serde_json::from_value(self.body.clone()).unwrap()
    }
}

impl Lab {
    async fn post(&self, uri: &str, who: &str, body: Option<Value>) -> Answer {
        let mut req = Request::builder().method("POST").uri(uri);
        if who.contains("-token-") {
            req = req.header(header::AUTHORIZATION, format!("Bearer {who}"));
        } else {
            req = req.header(api::HOLDER_HEADER, who);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer { status, body }
    }

    async fn lease(&self, board: &str, who: &str) {
        let a = self
            .post("/api/v1/lease", who, Some(json!({ "board_id": board })))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }

    async fn power(&self, board: &str, action: &str, who: &str) -> Answer {
        self.post(&format!("/api/v1/power/{board}/{action}"), who, None)
            .await
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("power.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn the_http_driver_switches_reads_and_cycles_through_its_urls() {
    let (url, pdu) = fake_pdu().await;
    let pdus = vec![
        Pdu::new("pdu-h", "http")
            .field("base_url", &url)
            .field("username", "ops")
            .field("password", "s3cret"),
    ];
    let boards = vec![board("a-1", 2301, Some(("pdu-h", 3)))];
    let lab = lab(pdus, boards, false).await;
    lab.lease("a-1", "ann@h").await;

    let off = lab.power("a-1", "off", "ann@h").await.result();
    assert_eq!(
        (off.pdu.as_str(), off.outlet, off.state, off.attempts),
        ("pdu-h", 3, PowerState::Off, 1)
    );
    assert_eq!(off.action, "off");
    let status = lab.power("a-1", "status", "ann@h").await.result();
    assert_eq!(status.state, PowerState::Off);
    let on = lab.power("a-1", "on", "ann@h").await.result();
    assert_eq!(on.state, PowerState::On);
    let cycle = lab.power("a-1", "cycle", "ann@h").await.result();
    assert_eq!(cycle.state, PowerState::On);
    // "ops:s3cret" in base64; the native cycle URL, not off + on.
    let auth = " auth=Basic b3BzOnMzY3JldA==";
    assert_eq!(
        *pdu.requests.lock().unwrap(),
        [
            format!("off 3{auth}"),
            format!("status 3{auth}"),
            format!("on 3{auth}"),
            format!("cycle 3{auth}"),
        ]
    );
}

#[tokio::test]
async fn only_the_holder_or_an_admin_may_power_a_board() {
    let (url, pdu) = fake_pdu().await;
    let pdus = vec![Pdu::new("pdu-h", "http").field("base_url", &url)];
    let boards = vec![
        board("a-1", 2301, Some(("pdu-h", 1))),
        board("a-2", 2302, None),
    ];
    let lab = lab(pdus, boards, true).await;

    let a = lab.power("a-1", "off", "alice-token-0123456789").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.message().contains("not leased"), "{}", a.message());
    lab.lease("a-1", "alice-token-0123456789").await;
    let a = lab.power("a-1", "off", "bob-token-0123456789ab").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.code(), "forbidden");
    assert!(a.message().contains("held by alice"), "{}", a.message());
    assert!(pdu.requests.lock().unwrap().is_empty());

    lab.power("a-1", "off", "alice-token-0123456789")
        .await
        .result();
    lab.power("a-1", "on", "root-token-0123456789a")
        .await
        .result();
    assert_eq!(pdu.requests.lock().unwrap().len(), 2);

    let a = lab.power("a-9", "on", "root-token-0123456789a").await;
    assert_eq!((a.status, a.code()), (StatusCode::NOT_FOUND, "not_found"));
    let a = lab.power("a-1", "reboot", "root-token-0123456789a").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.message().contains("'reboot'"), "{}", a.message());
    let a = lab.power("a-2", "on", "root-token-0123456789a").await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, api::codes::NO_PDU)
    );
    assert!(a.message().contains("a-2"), "{}", a.message());
}

#[tokio::test]
async fn a_failing_http_pdu_is_retried_then_reported_with_its_answer() {
    let (url, pdu) = fake_pdu().await;
    *pdu.fail.lock().unwrap() = Some((500, "relay 4 jammed".to_owned()));
    let pdus = vec![
        Pdu::new("pdu-h", "http")
            .field("base_url", &url)
            .field("retries", 2),
    ];
    let lab = lab(pdus, vec![board("a-1", 2301, Some(("pdu-h", 4)))], false).await;
    lab.lease("a-1", "ann@h").await;
    let a = lab.power("a-1", "off", "ann@h").await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_GATEWAY, api::codes::PDU_FAILED)
    );
    assert_eq!(
        a.message(),
        format!(
            "PDU pdu-h (http driver), outlet 4: off failed after 3 attempts: POST \
             {url}/outlets/4/off answered 500 Internal Server Error (expected 200): relay 4 jammed"
        )
    );
    assert_eq!(pdu.requests.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn an_unreachable_pdu_says_so() {
    // A port nothing listens on.
    let port = free_port();
    let pdus = vec![
        Pdu::new("pdu-h", "http")
            .field("base_url", format!("http://127.0.0.1:{port}"))
            .field("retries", 1),
        Pdu::new("pdu-d", "pdudaemon")
            .field("url", format!("http://127.0.0.1:{port}"))
            .field("retries", 0),
    ];
    let boards = vec![
        board("a-1", 2301, Some(("pdu-h", 1))),
        board("a-2", 2302, Some(("pdu-d", 1))),
    ];
    let lab = lab(pdus, boards, false).await;
    lab.lease("a-1", "ann@h").await;
    lab.lease("a-2", "ann@h").await;
    let a = lab.power("a-1", "on", "ann@h").await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    assert!(
        a.message()
            .starts_with("PDU pdu-h (http driver), outlet 1: on failed after 2 attempts:"),
        "{}",
        a.message()
    );
    assert!(
        a.message().ends_with("cannot connect: connection refused"),
        "{}",
        a.message()
    );
    let a = lab.power("a-2", "cycle", "ann@h").await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    assert!(
        a.message()
            .starts_with("PDU pdu-d (pdudaemon driver), outlet 1: cycle failed after 1 attempt:"),
        "{}",
        a.message()
    );
    assert!(
        a.message().contains("connection refused"),
        "{}",
        a.message()
    );
}

#[tokio::test]
async fn the_pdudaemon_driver_speaks_its_api() {
    let (url, pdu) = fake_pdu().await;
    let pdus = vec![
        Pdu::new("lab-pdu1", "pdudaemon")
            .field("url", &url)
            .field("delay_s", 3)
            .field("retries", 1),
        Pdu::new("pdu-2", "pdudaemon")
            .field("url", &url)
            .field("hostname", "other-key"),
    ];
    let boards = vec![
        board("a-1", 2301, Some(("lab-pdu1", 2))),
        board("a-2", 2302, Some(("pdu-2", 5))),
    ];
    let lab = lab(pdus, boards, false).await;
    lab.lease("a-1", "ann@h").await;
    lab.lease("a-2", "ann@h").await;
    assert_eq!(
        lab.power("a-1", "on", "ann@h").await.result().state,
        PowerState::On
    );
    assert_eq!(
        lab.power("a-1", "off", "ann@h").await.result().state,
        PowerState::Off
    );
    assert_eq!(
        lab.power("a-1", "cycle", "ann@h").await.result().state,
        PowerState::On
    );
    lab.power("a-2", "cycle", "ann@h").await.result();
    // pdudaemon cannot read an outlet: unknown, not an error, and nothing is asked.
    let status = lab.power("a-1", "status", "ann@h").await.result();
    assert_eq!(status.state, PowerState::Unknown);
    assert_eq!(
        *pdu.requests.lock().unwrap(),
        [
            "on hostname=lab-pdu1&port=2",
            "off hostname=lab-pdu1&port=2",
            "reboot delay=3&hostname=lab-pdu1&port=2",
            "reboot hostname=other-key&port=5",
        ]
    );
    *pdu.fail.lock().unwrap() = Some((500, "Invalid request\n".to_owned()));
    let a = lab.power("a-1", "off", "ann@h").await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        a.message(),
        format!(
            "PDU lab-pdu1 (pdudaemon driver), outlet 2: off failed after 2 attempts: pdudaemon \
             GET {url}/power/control/off (hostname lab-pdu1, port 2) answered 500 Internal \
             Server Error: Invalid request"
        )
    );
}

/// A `command` PDU whose templates append `<what> <outlet>` to power.log in `dir`, taking
/// `secs` each.
fn command_pdu(name: &str, dir: &std::path::Path, secs: f64) -> Pdu {
    let log = dir.join("power.log");
    let log = log.display();
    Pdu::new(name, "command")
        .field(
            "on",
            format!("echo {name} on {{outlet}} >> {log}; sleep {secs}"),
        )
        .field(
            "off",
            format!("echo {name} off {{outlet}} >> {log}; sleep {secs}"),
        )
        .field("status", "echo on")
        .field("cycle_delay_s", 0.1)
}

async fn command_lab(pdus: impl Fn(&std::path::Path) -> Vec<Pdu>, boards: Vec<Board>) -> Lab {
    // The lab's dir is made first so the templates can name its log.
    let dir = tempfile::tempdir().unwrap();
    let path = LabFile::new()
        .pdus(pdus(dir.path()))
        .boards(boards)
        .write(dir.path().join("boards.yaml"));
    let config = Config::new(path, StoreSpec::Embedded(dir.path().join("store.redb")));
    let state = leased::server::build(config).await.unwrap();
    Lab {
        router: leased::server::router(state),
        dir: Arc::new(dir),
    }
}

#[tokio::test]
async fn a_cycle_is_never_split_and_different_pdus_work_in_parallel() {
    let boards = vec![
        board("a-1", 2301, Some(("cmd-1", 1))),
        board("a-2", 2302, Some(("cmd-2", 1))),
    ];
    let lab = command_lab(
        |dir| {
            vec![
                command_pdu("cmd-1", dir, 0.3),
                command_pdu("cmd-2", dir, 0.3),
            ]
        },
        boards,
    )
    .await;
    lab.lease("a-1", "ann@h").await;
    lab.lease("a-2", "ann@h").await;
    let started = Instant::now();
    // On one outlet: a cycle (off, on) and an on that arrives in the middle of it.
    // Spawned, so that the three requests are in flight at once.
    let spawn = |board: &'static str, action: &'static str, after_ms: u64| {
        let lab = lab.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            lab.power(board, action, "ann@h").await
        })
    };
    let cycle = spawn("a-1", "cycle", 0);
    let on = spawn("a-1", "on", 100);
    let other = spawn("a-2", "cycle", 0);
    let (cycle, on, other) = (
        cycle.await.unwrap(),
        on.await.unwrap(),
        other.await.unwrap(),
    );
    let elapsed = started.elapsed();
    assert_eq!(cycle.result().attempts, 2);
    assert_eq!(on.result().state, PowerState::On);
    assert_eq!(other.result().state, PowerState::On);
    let log = lab.log();
    let one: Vec<_> = log.iter().filter(|l| l.starts_with("cmd-1")).collect();
    assert_eq!(one, ["cmd-1 off 1", "cmd-1 on 1", "cmd-1 on 1"], "{log:?}");
    // cmd-1 did three 0.3 s steps, cmd-2 two; in parallel that is about 1 s, serially 1.6 s.
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    let status = lab.power("a-1", "status", "ann@h").await.result();
    assert_eq!(status.state, PowerState::On);
}

#[tokio::test]
async fn a_command_pdu_retries_times_out_and_quotes_stderr() {
    let boards = vec![
        board("a-1", 2301, Some(("flaky", 2))),
        board("a-2", 2302, Some(("slow", 1))),
        board("a-3", 2303, Some(("broken", 1))),
    ];
    let lab = command_lab(
        |dir| {
            let count = dir.join("count");
            let count = count.display();
            vec![
                Pdu::new("flaky", "command")
                    .field(
                        "on",
                        format!(
                            "n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}; \
                             [ $n -ge 3 ] || {{ echo not yet >&2; exit 1; }}"
                        ),
                    )
                    .field("off", "true")
                    .field("retries", 3),
                Pdu::new("slow", "command")
                    .field("on", "sleep 5")
                    .field("off", "true")
                    .field("timeout_s", 1)
                    .field("retries", 0),
                Pdu::new("broken", "command")
                    .field("on", "echo relay {outlet} stuck >&2; exit 4")
                    .field("off", "true")
                    .field("retries", 1),
            ]
        },
        boards,
    )
    .await;
    for b in ["a-1", "a-2", "a-3"] {
        lab.lease(b, "ann@h").await;
    }
    let on = lab.power("a-1", "on", "ann@h").await.result();
    assert_eq!((on.attempts, on.state), (3, PowerState::On));
    // No status command: the state is unknown, not an error.
    let status = lab.power("a-1", "status", "ann@h").await.result();
    assert_eq!(status.state, PowerState::Unknown);

    let started = Instant::now();
    let a = lab.power("a-2", "on", "ann@h").await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        a.message(),
        "PDU slow (command driver), outlet 1: on failed after 1 attempt: no answer within 1s"
    );
    let a = lab.power("a-3", "on", "ann@h").await;
    assert_eq!(
        a.message(),
        "PDU broken (command driver), outlet 1: on failed after 2 attempts: \
         `echo relay 1 stuck >&2; exit 4` exited with status 4 (stderr: relay 1 stuck)"
    );
}
