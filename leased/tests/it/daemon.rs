//! The leased binary as a process: kill -9 loses no lease (both stores), Redis going away is a
//! fast 503 and leased recovers by itself, and expired leases free their board.

use crate::common::{Daemon, call, write_lab};
use reqwest::Method;
use serde_json::json;
use socv_testkit::RedisServer;
use std::time::{Duration, Instant};

async fn take_three(client: &reqwest::Client, url: &str) -> Vec<(String, String)> {
    let mut held = Vec::new();
    for who in ["alice@h", "bob@h", "carol@h"] {
        let a = call(
            client,
            Method::POST,
            &format!("{url}/api/v1/lease"),
            who,
            Some(json!({"board_family": "socA", "ttl_s": 600})),
        )
        .await
        .unwrap();
        assert_eq!(a.status, 201, "{:?}", a.body);
        held.push((
            a.body["id"].as_str().unwrap().to_string(),
            a.body["board_id"].as_str().unwrap().to_string(),
        ));
    }
    held
}

/// Takes three leases and queues a waiter, kills leased with SIGKILL, starts it again on the same
/// store: every lease is still held by the same holder on the same board, and still renewable.
async fn leases_survive_kill9(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let lab = write_lab(dir.path(), "socA", 3);
    let client = reqwest::Client::new();
    let mut daemon = Daemon::start(&lab, store, dir.path()).await;
    let held = take_three(&client, &daemon.url).await;
    let queued = call(
        &client,
        Method::POST,
        &format!("{}/api/v1/lease", daemon.url),
        "dave@h",
        Some(json!({"board_family": "socA", "wait_s": 600})),
    )
    .await
    .unwrap();
    assert_eq!(queued.status, 202);
    let ticket = queued.body["ticket"].as_str().unwrap().to_string();

    let port = daemon.port;
    daemon.kill9();
    let daemon = Daemon::start_on(port, &lab, store, dir.path()).await;

    let boards = call(
        &client,
        Method::GET,
        &format!("{}/api/v1/boards", daemon.url),
        "x@h",
        None,
    )
    .await
    .unwrap();
    for (i, (id, board)) in held.iter().enumerate() {
        let who = ["alice@h", "bob@h", "carol@h"][i];
        let a = call(
            &client,
            Method::GET,
            &format!("{}/api/v1/lease/{id}", daemon.url),
            who,
            None,
        )
        .await
        .unwrap();
        assert_eq!(a.status, 200, "lease {id} after restart: {:?}", a.body);
        assert_eq!(a.body["board_id"], board.as_str());
        assert_eq!(a.body["holder"], who);
        let view = boards
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == board.as_str());
        assert_eq!(view.unwrap()["holder"], who);
        let renew = call(
            &client,
            Method::POST,
            &format!("{}/api/v1/lease/{id}/renew", daemon.url),
            who,
            None,
        )
        .await
        .unwrap();
        assert_eq!(renew.status, 200);
    }
    // The waiter kept its place: releasing one lease hands that board to it.
    let (id, board) = &held[0];
    call(
        &client,
        Method::DELETE,
        &format!("{}/api/v1/lease/{id}", daemon.url),
        "alice@h",
        None,
    )
    .await
    .unwrap();
    let polled = call(
        &client,
        Method::GET,
        &format!("{}/api/v1/queue/{ticket}?wait_s=5", daemon.url),
        "dave@h",
        None,
    )
    .await
    .unwrap();
    assert_eq!(polled.body["state"], "granted", "{:?}", polled.body);
    assert_eq!(polled.body["lease"]["board_id"], board.as_str());
}

#[tokio::test]
async fn embedded_store_keeps_leases_across_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("leased.redb");
    leases_survive_kill9(store.to_str().unwrap()).await;
}

#[tokio::test]
async fn redis_store_keeps_leases_across_kill9() {
    let redis = RedisServer::start();
    leases_survive_kill9(&redis.url()).await;
}

#[tokio::test]
async fn redis_down_is_a_fast_503_and_leased_recovers() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lab = write_lab(dir.path(), "socA", 2);
    let daemon = Daemon::start(&lab, &redis.url(), dir.path()).await;
    let client = reqwest::Client::new();
    let lease_url = format!("{}/api/v1/lease", daemon.url);
    let first = call(
        &client,
        Method::POST,
        &lease_url,
        "alice@h",
        Some(json!({"board_family": "socA"})),
    )
    .await
    .unwrap();
    assert_eq!(first.status, 201);

    redis.stop();
    let started = Instant::now();
    let a = call(
        &client,
        Method::POST,
        &lease_url,
        "bob@h",
        Some(json!({"board_family": "socA"})),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert_eq!(a.body["error"]["code"], "store_unavailable");
    // Generous against a loaded machine; the daemon's own bound is 800 ms.
    assert!(took < Duration::from_secs(2), "503 took {took:?}");
    let health = call(
        &client,
        Method::GET,
        &format!("{}/api/v1/health", daemon.url),
        "x@h",
        None,
    )
    .await
    .unwrap();
    assert_eq!(health.body["status"], "degraded");
    assert_eq!(health.body["store"]["ok"], false);

    // Redis returns, empty (this one keeps nothing on disk): leased registers the lab again and
    // grants without a restart.
    redis.start_again();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = call(
            &client,
            Method::POST,
            &lease_url,
            "bob@h",
            Some(json!({"board_family": "socA"})),
        )
        .await
        .unwrap();
        if a.status == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leased did not recover after Redis returned: {} {:?}",
            a.status,
            a.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_expired_lease_frees_its_board_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let lab = write_lab(dir.path(), "socA", 1);
    let store = dir.path().join("s.redb");
    let daemon = Daemon::start(&lab, store.to_str().unwrap(), dir.path()).await;
    let client = reqwest::Client::new();
    let lease_url = format!("{}/api/v1/lease", daemon.url);
    let a = call(
        &client,
        Method::POST,
        &lease_url,
        "alice@h",
        Some(json!({"board_family": "socA", "ttl_s": 2})),
    )
    .await
    .unwrap();
    let expires = a.body["expires_at_ms"].as_u64().unwrap();
    let q = call(
        &client,
        Method::POST,
        &lease_url,
        "bob@h",
        Some(json!({"board_family": "socA", "wait_s": 60})),
    )
    .await
    .unwrap();
    assert_eq!(q.status, 202);
    // Nobody touches the lease: the daemon's own reaper must end it and wake the waiter's long
    // poll (which by itself only looks again every 2 s).
    let ticket = q.body["ticket"].as_str().unwrap();
    let polled = call(
        &client,
        Method::GET,
        &format!("{}/api/v1/queue/{ticket}?wait_s=20", daemon.url),
        "bob@h",
        None,
    )
    .await
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(polled.body["state"], "granted", "{:?}", polled.body);
    assert!(now >= expires, "granted before the old lease expired");
    assert!(
        now <= expires + 1000,
        "the board was freed {} ms after expiry",
        now - expires
    );
}
