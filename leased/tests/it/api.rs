//! The HTTP API through the router (no sockets): status codes, error bodies, auth rules.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use leased::api::{self, BoardView, Lease, QueueTicket, TicketStatus};
use leased::config::{Config, StoreSpec};
use serde_json::{Value, json};
use socv_testkit::{Board, LabFile, Pdu};
use std::path::Path;
use tower::ServiceExt;

use crate::common::TOKENS;

/// A small lab on loopback addresses: socA ×2 (one at "Lab Site B"), socB ×1 with a password.
pub fn write_lab(dir: &Path) -> std::path::PathBuf {
    LabFile::new()
        .pdu(Pdu::new("pdu-1", "http").field("base_url", "http://127.0.0.1:9/pdu"))
        .board(
            Board::new("a-1", "socA", 2301)
                .pdu("pdu-1", 1)
                .telnet_username("root"),
        )
        .board(
            Board::new("a-2", "socA", 2302)
                .pdu("pdu-1", 2)
                .lab_location("Lab Site B")
                .telnet_username("root"),
        )
        .board(
            Board::new("b-1", "socB", 2303)
                .lab_location("Lab Site B")
                .telnet_username("admin")
                .telnet_password("hunter2"),
        )
        .write(dir.join("boards.yaml"))
}

struct Api {
    router: Router,
    _dir: tempfile::TempDir,
}

async fn api(with_tokens: bool) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let boards = write_lab(dir.path());
    let mut config = Config::new(boards, StoreSpec::Embedded(dir.path().join("store.redb")));
    if with_tokens {
        let tokens = dir.path().join("tokens.toml");
        std::fs::write(&tokens, TOKENS).unwrap();
        config.tokens = Some(tokens);
    }
    let state = leased::server::build(config).await.unwrap();
    Api {
        router: leased::server::router(state),
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    version: Option<String>,
    body: Value,
}

impl Api {
    async fn call(&self, method: &str, uri: &str, who: &str, body: Option<String>) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if who.ends_with("-token") || who.contains("-token-") {
            req = req.header(header::AUTHORIZATION, format!("Bearer {who}"));
        } else {
            req = req.header(api::HOLDER_HEADER, who);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let version = res
            .headers()
            .get(api::API_VERSION_HEADER)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            version,
            body,
        }
    }

    async fn post(&self, uri: &str, who: &str, body: Value) -> Answer {
        self.call("POST", uri, who, Some(body.to_string())).await
    }

    async fn get(&self, uri: &str, who: &str) -> Answer {
        self.call("GET", uri, who, None).await
    }
}

fn error_code(a: &Answer) -> &str {
    a.body["error"]["code"]
        .as_str()
        .unwrap_or("<no error code>")
}

fn error_message(a: &Answer) -> &str {
    a.body["error"]["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn every_answer_carries_the_api_version() {
    let api = api(false).await;
    for uri in ["/api/v1/health", "/api/v1/boards", "/nope", "/metrics"] {
        let a = api.get(uri, "alice@h").await;
        assert_eq!(a.version.as_deref(), Some(api::API_VERSION), "{uri}");
    }
    let a = api.get("/nope", "alice@h").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&a), "not_found");
}

#[tokio::test]
async fn health_reports_the_store_and_the_lab() {
    let api = api(false).await;
    let a = api.get("/api/v1/health", "alice@h").await;
    assert_eq!(a.status, StatusCode::OK);
    let h: api::DaemonHealth = serde_json::from_value(a.body).unwrap();
    assert_eq!(h.status, "ok");
    assert_eq!(h.store.backend, "embedded");
    assert!(h.store.ok);
    assert_eq!((h.boards, h.leases, h.waiting), (3, 0, 0));
    assert_eq!(h.caller, "alice@h");
}

#[tokio::test]
async fn boards_are_listed_and_filtered_by_family() {
    let api = api(false).await;
    let a = api.get("/api/v1/boards", "alice@h").await;
    let boards: Vec<BoardView> = serde_json::from_value(a.body).unwrap();
    assert_eq!(
        boards.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
        ["a-1", "a-2", "b-1"]
    );
    assert_eq!(boards[0].address, "127.0.0.1:2301");
    let a = api.get("/api/v1/boards?family=socB", "alice@h").await;
    let boards: Vec<BoardView> = serde_json::from_value(a.body).unwrap();
    assert_eq!(boards.len(), 1);
    let a = api.get("/api/v1/boards?family=socZ", "alice@h").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(error_message(&a).contains("socZ"));
}

#[tokio::test]
async fn lease_grant_gives_credentials_to_the_holder_only() {
    let api = api(false).await;
    let a = api
        .post("/api/v1/lease", "alice@h", json!({"board_id": "b-1"}))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let lease: Lease = serde_json::from_value(a.body).unwrap();
    assert_eq!(lease.board_id, "b-1");
    assert_eq!(lease.holder, "alice@h");
    assert_eq!(lease.ttl_s, 1800);
    let console = lease.console.expect("the holder sees the console");
    assert_eq!(
        (
            console.host.as_str(),
            console.port,
            console.password.as_deref()
        ),
        ("127.0.0.1", 2303, Some("hunter2"))
    );

    let mine = api
        .get(&format!("/api/v1/lease/{}", lease.id), "alice@h")
        .await;
    assert!(mine.body["console"]["password"].is_string());
    let theirs = api
        .get(&format!("/api/v1/lease/{}", lease.id), "bob@h")
        .await;
    assert_eq!(theirs.status, StatusCode::OK);
    assert!(theirs.body.get("console").is_none(), "{:?}", theirs.body);
    let all = api.get("/api/v1/leases", "bob@h").await;
    assert!(!all.body.to_string().contains("hunter2"));
    let boards = api.get("/api/v1/boards", "bob@h").await;
    assert!(!boards.body.to_string().contains("hunter2"));
}

#[tokio::test]
async fn preferred_location_wins() {
    let api = api(false).await;
    let a = api
        .post(
            "/api/v1/lease",
            "alice@h",
            json!({"board_family": "socA", "location": "Lab Site B"}),
        )
        .await;
    assert_eq!(a.body["board_id"], "a-2");
}

#[tokio::test]
async fn only_the_holder_renews_and_releases() {
    let api = api(false).await;
    let a = api
        .post(
            "/api/v1/lease",
            "alice@h",
            json!({"board_family": "socA", "ttl_s": 60}),
        )
        .await;
    let id = a.body["id"].as_str().unwrap().to_string();
    let renew = format!("/api/v1/lease/{id}/renew");
    let r = api.call("POST", &renew, "bob@h", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(error_message(&r).contains("alice@h"));
    let r = api.post(&renew, "alice@h", json!({"ttl_s": 120})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["ttl_s"], 120);
    let r = api.call("POST", &renew, "alice@h", None).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "an empty body renews with the lease's TTL"
    );
    let del = format!("/api/v1/lease/{id}");
    assert_eq!(
        api.call("DELETE", &del, "bob@h", None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call("DELETE", &del, "alice@h", None).await.status,
        StatusCode::OK
    );
    let again = api.call("DELETE", &del, "alice@h", None).await;
    assert_eq!(again.status, StatusCode::GONE);
    assert_eq!(error_code(&again), "lease_ended");
    let r = api.call("POST", &renew, "alice@h", None).await;
    assert_eq!(r.status, StatusCode::GONE);
}

#[tokio::test]
async fn renewing_an_expired_lease_is_gone() {
    let api = api(false).await;
    let a = api
        .post(
            "/api/v1/lease",
            "alice@h",
            json!({"board_id": "a-1", "ttl_s": 1}),
        )
        .await;
    let id = a.body["id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = api
        .call(
            "POST",
            &format!("/api/v1/lease/{id}/renew"),
            "alice@h",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(error_message(&r).contains("expired"), "{:?}", r.body);
}

#[tokio::test]
async fn unknown_things_are_404() {
    let api = api(false).await;
    for (uri, body, needle) in [
        ("/api/v1/lease", json!({"board_family": "socZ"}), "socZ"),
        ("/api/v1/lease", json!({"board_id": "z-9"}), "z-9"),
    ] {
        let a = api.post(uri, "alice@h", body).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert!(error_message(&a).contains(needle), "{:?}", a.body);
    }
    for uri in ["/api/v1/lease/l-nope", "/api/v1/queue/q-nope"] {
        let a = api.get(uri, "alice@h").await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(error_code(&a), "not_found");
    }
    let a = api
        .call("DELETE", "/api/v1/lease/l-nope", "alice@h", None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = api
        .post("/api/v1/boards/z-9/health", "alice@h", json!({"ok": false}))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_field() {
    let api = api(false).await;
    let cases = [
        ("{\"board_family\": ", "EOF"),
        ("{\"board_famly\": \"socA\"}", "board_famly"),
        ("{\"board_family\": 7}", "board_family"),
        ("{\"board_family\": \"socA\", \"priority\": 9}", "priority"),
        ("{\"board_family\": \"socA\", \"ttl_s\": -1}", "ttl_s"),
        ("{\"board_family\": \"socA\", \"ttl_s\": 0}", "ttl_s"),
        ("{}", "board_family or board_id"),
        (
            "{\"board_family\": \"socA\", \"board_id\": \"a-1\"}",
            "not both",
        ),
        ("[1,2]", "invalid type"),
    ];
    for (body, needle) in cases {
        let a = api
            .call("POST", "/api/v1/lease", "alice@h", Some(body.into()))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {:?}", a.body);
        assert_eq!(error_code(&a), "bad_request", "{body}");
        assert!(
            error_message(&a).contains(needle),
            "{body}: message {:?} lacks {needle}",
            error_message(&a)
        );
    }
    let a = api
        .call("GET", "/api/v1/queue/q-1?wait_s=soon", "alice@h", None)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = api
        .post("/api/v1/boards/a-1/health", "alice@h", json!({"ok": "yes"}))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(error_message(&a).contains("ok"));
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let api = api(false).await;
    let big = format!(
        "{{\"board_family\": \"socA\", \"location\": \"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let a = api
        .call("POST", "/api/v1/lease", "alice@h", Some(big))
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&a), "payload_too_large");
}

#[tokio::test]
async fn nothing_free_is_503_and_a_waiter_gets_the_next_board() {
    let api = api(false).await;
    let first = api
        .post("/api/v1/lease", "alice@h", json!({"board_family": "socB"}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let busy = api
        .post("/api/v1/lease", "bob@h", json!({"board_family": "socB"}))
        .await;
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&busy), "no_board_available");

    let queued = api
        .post(
            "/api/v1/lease",
            "bob@h",
            json!({"board_family": "socB", "wait_s": 60}),
        )
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED);
    let ticket: QueueTicket = serde_json::from_value(queued.body).unwrap();
    assert_eq!(ticket.position, 1);
    let poll = format!("/api/v1/queue/{}?wait_s=0", ticket.ticket);
    let waiting: TicketStatus = serde_json::from_value(api.get(&poll, "bob@h").await.body).unwrap();
    assert!(matches!(waiting, TicketStatus::Waiting(_)));
    assert_eq!(
        api.get(&poll, "alice@h").await.status,
        StatusCode::FORBIDDEN,
        "another caller may not poll bob's ticket"
    );

    // A long poll wakes as soon as the board is released.
    let long_poll = {
        let api_router = api.router.clone();
        let uri = format!("/api/v1/queue/{}?wait_s=20", ticket.ticket);
        tokio::spawn(async move {
            let req = Request::builder()
                .uri(uri)
                .header(api::HOLDER_HEADER, "bob@h")
                .body(Body::empty())
                .unwrap();
            let res = api_router.oneshot(req).await.unwrap();
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            serde_json::from_slice::<TicketStatus>(&bytes).unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let id = first.body["id"].as_str().unwrap();
    api.call("DELETE", &format!("/api/v1/lease/{id}"), "alice@h", None)
        .await;
    let status = long_poll.await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    match status {
        TicketStatus::Granted { lease } => {
            assert_eq!(lease.holder, "bob@h");
            assert_eq!(lease.board_id, "b-1");
            assert!(lease.console.is_some());
        }
        other => panic!("expected a grant, got {other:?}"),
    }
}

#[tokio::test]
async fn drained_boards_are_refused_and_come_back() {
    let api = api(false).await;
    let a = api
        .post(
            "/api/v1/boards/b-1/drain",
            "alice@h",
            json!({"reason": "rewiring"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["health"], "maintenance");
    assert_eq!(a.body["drain_reason"], "rewiring");
    let r = api
        .post("/api/v1/lease", "bob@h", json!({"board_family": "socB"}))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&r), "no_healthy_board");
    let a = api
        .call("POST", "/api/v1/boards/b-1/undrain", "alice@h", None)
        .await;
    assert_eq!(a.body["health"], "healthy");
    let r = api
        .post("/api/v1/lease", "bob@h", json!({"board_family": "socB"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn three_failures_quarantine_a_board_and_a_success_restores_it() {
    let api = api(false).await;
    for n in 1..=3 {
        let a = api
            .post(
                "/api/v1/boards/b-1/health",
                "alice@h",
                json!({"ok": false, "reason": "telnet refused"}),
            )
            .await;
        assert_eq!(a.body["failures"], n);
        let expect = if n < 3 { "healthy" } else { "unhealthy" };
        assert_eq!(a.body["health"], expect);
    }
    let a = api
        .post("/api/v1/boards/b-1/health", "alice@h", json!({"ok": true}))
        .await;
    assert_eq!(
        (a.body["failures"].clone(), a.body["health"].clone()),
        (json!(0), json!("healthy"))
    );
}

#[tokio::test]
async fn tokens_decide_who_may_do_what() {
    let api = api(true).await;
    let a = api.get("/api/v1/boards", "nobody").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&a), "unauthorized");
    let a = api.get("/api/v1/boards", "wrong-token-0000000000").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    let alice = "alice-token-0123456789";
    let bob = "bob-token-0123456789ab";
    let root = "root-token-0123456789a";
    let lease = api
        .post("/api/v1/lease", alice, json!({"board_id": "b-1"}))
        .await;
    assert_eq!(lease.status, StatusCode::CREATED);
    assert_eq!(
        lease.body["holder"], "alice",
        "the holder comes from the token"
    );
    let id = lease.body["id"].as_str().unwrap().to_string();
    let by_id = format!("/api/v1/lease/{id}");
    assert!(api.get(&by_id, bob).await.body.get("console").is_none());
    assert!(api.get(&by_id, root).await.body["console"]["password"].is_string());

    let drain = api.post("/api/v1/boards/a-1/drain", alice, json!({})).await;
    assert_eq!(drain.status, StatusCode::FORBIDDEN);
    let drain = api.post("/api/v1/boards/a-1/drain", root, json!({})).await;
    assert_eq!(drain.status, StatusCode::OK);

    assert_eq!(
        api.call("DELETE", &by_id, bob, None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call("DELETE", &by_id, root, None).await.status,
        StatusCode::OK,
        "an admin may release anyone's lease"
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let api = api(false).await;
    api.post("/api/v1/lease", "alice@h", json!({"board_family": "socA"}))
        .await;
    let a = api.get("/metrics", "alice@h").await;
    let text = a.body.as_str().unwrap();
    assert!(text.contains("socv_lease_grants_total 1"), "{text}");
    assert!(text.contains("socv_leases_active 1"), "{text}");
    assert!(
        text.contains("socv_boards{family=\"socA\",availability=\"leased\",health=\"healthy\"} 1"),
        "{text}"
    );
    assert!(text.contains("socv_store_up 1"));
}
