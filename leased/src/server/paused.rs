//! The daemon's timed behaviour with time in the test's hands: a manual [`Clock`] for lease
//! expiry and claims, `tokio::time::pause` for the background tasks' sleeps and the long-wait
//! threshold. Nothing here sleeps for real; requests go through the router in-process on the
//! embedded store.

use super::{AppState, build_with_clock, open_store, router};
use crate::api::HOLDER_HEADER;
use crate::api::time::Clock;
use crate::config::{Config, StoreSpec};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// 2026-12-07T00:00:00Z, as a lease's clock would read it.
const T0: u64 = 1_796_601_600_000;

struct Lab {
    _dir: tempfile::TempDir,
    state: AppState,
    clock: Clock,
}

impl Lab {
    /// One socA board on a loopback port nobody listens on, leases in an embedded store.
    async fn start() -> Lab {
        Lab::start_with(|_| {}).await
    }

    /// Like [`Lab::start`], with the configuration changed by `change`.
    async fn start_with(change: impl FnOnce(&mut Config)) -> Lab {
        let dir = tempfile::tempdir().expect("a temp dir");
        let boards = dir.path().join("boards.yaml");
        std::fs::write(
            &boards,
            "boards:\n  - board_id: soc-a-001\n    soc_family: socA\n    board_ip: 127.0.0.1\n    \
             telnet_port: 9\n    lab_location: Lab Site A\n",
        )
        .expect("writing boards.yaml");
        let mut config = Config::new(&boards, StoreSpec::Embedded(dir.path().join("leases.redb")));
        change(&mut config);
        let store = open_store(&config).await.expect("the embedded store");
        let clock = Clock::manual(T0);
        let state = build_with_clock(config, store, clock.clone())
            .await
            .expect("the daemon's state");
        Lab {
            _dir: dir,
            state,
            clock,
        }
    }

    /// `POST /api/v1/lease` for a socA board as `who`, with `extra` fields (`ttl_s`).
    async fn lease(&self, who: &str, extra: Value) -> (StatusCode, Value) {
        let mut body = json!({"board_family": "socA"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.call(Method::POST, "/api/v1/lease", who, body).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        who: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOLDER_HEADER, who)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("a request");
        let response = router(self.state.clone())
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("the body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

#[tokio::test]
async fn a_lease_ends_when_the_clock_passes_its_ttl_and_the_board_goes_to_the_next_caller() {
    let lab = Lab::start().await;
    let (status, lease) = lab.lease("ann@a", json!({"ttl_s": 60})).await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    assert_eq!(lease["granted_at_ms"], T0);
    assert_eq!(lease["expires_at_ms"], T0 + 60_000);
    let id = lease["id"].as_str().expect("a lease id").to_owned();

    let (status, refused) = lab.lease("bob@b", json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
    assert_eq!(
        refused["error"]["code"], "no_board_available",
        "the only board is held: {refused}"
    );

    // One second before the end a renewal still holds it, for another minute from then.
    lab.clock.advance(Duration::from_secs(59));
    let renew = format!("/api/v1/lease/{id}/renew");
    let (status, renewed) = lab
        .call(Method::POST, &renew, "ann@a", json!({"ttl_s": 60}))
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["expires_at_ms"], T0 + 119_000);

    // Past the renewed end the lease is over: its renewal is told so, the board is free.
    lab.clock.advance(Duration::from_secs(61));
    let (status, gone) = lab
        .call(Method::POST, &renew, "ann@a", json!({"ttl_s": 60}))
        .await;
    assert_eq!(status, StatusCode::GONE, "{gone}");
    let (status, next) = lab.lease("bob@b", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{next}");
    assert_eq!(next["board_id"], "soc-a-001");
    assert_eq!(next["holder"], "bob@b");
    assert_eq!(next["granted_at_ms"], T0 + 120_000);
}

#[tokio::test(start_paused = true)]
async fn without_prefect_the_outbox_is_swept_on_the_sweepers_beat_not_before() {
    let lab = Lab::start().await;
    let (status, lease) = lab.lease("ann@a", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let (status, run) = lab
        .call(
            Method::POST,
            "/api/v1/runs",
            "ann@a",
            json!({
                "id": "r-0123456789ab",
                "lease_id": lease["id"],
                "board_id": "soc-a-001",
                "family": "socA",
                "binary": "./test.elf",
            }),
        )
        .await;
    assert!(status.is_success(), "{status}: {run}");
    let backlog = || async {
        lab.state
            .runs
            .outbox_len()
            .await
            .expect("the outbox's length")
    };
    assert!(backlog().await > 0, "a run's start waits in the outbox");

    let stop = CancellationToken::new();
    let sweeper = lab.state.outbox.start(stop.clone());
    // Time stands still: however often the sweeper is polled, its 5 s have not passed.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(backlog().await > 0, "swept before its beat");

    tokio::time::advance(super::outbox::SWEEP_EVERY).await;
    let mut looks = 0;
    while backlog().await > 0 {
        looks += 1;
        assert!(
            looks < 100,
            "the outbox was not swept after the sweeper's beat"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        lab.state
            .runs
            .run("r-0123456789ab")
            .await
            .expect("the run store")
            .is_some(),
        "sweeping drops the outbox's entries, never the run record"
    );
    stop.cancel();
    sweeper.await.expect("the sweeper stops when asked");
}

#[tokio::test(start_paused = true)]
async fn a_long_wait_is_notified_once_when_it_passes_the_threshold_not_before() {
    let lab = Lab::start_with(|c| {
        // Never sent here (the notifier is not started): the test reads what was queued.
        c.notify.slack_webhook_url = Some("http://127.0.0.1:9/hook".into());
        c.notify.long_wait = Some(Duration::from_secs(15 * 60));
    })
    .await;
    let pending = || lab.state.notifier.status()[0].pending;
    let (status, _) = lab.lease("ann@a", json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, ticket) = lab.lease("bob@b", json!({"wait_s": 3600})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{ticket}");
    let poll = format!(
        "/api/v1/queue/{}",
        ticket["ticket"].as_str().expect("a ticket id")
    );

    // Bob keeps polling; 14 minutes in, nothing is said.
    tokio::time::advance(Duration::from_secs(14 * 60)).await;
    let (status, waiting) = lab.call(Method::GET, &poll, "bob@b", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{waiting}");
    assert_eq!(pending(), 0, "notified before the threshold");

    // Past 15 minutes: one notification, and only one however often he polls.
    tokio::time::advance(Duration::from_secs(2 * 60)).await;
    for _ in 0..3 {
        let (status, _) = lab.call(Method::GET, &poll, "bob@b", Value::Null).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(pending(), 1, "one long-wait notification");
}
