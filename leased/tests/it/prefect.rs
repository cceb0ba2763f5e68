//! Run history in a real Prefect server (3.9.1, installed by tests/run.sh): the REST client, and
//! the deliverer carrying a store's outbox there.
//!
//! One server is shared by the tests of this module (it takes 10–15 s to start); every test uses
//! run ids of its own. Tests that need a server of their own (auth, starting late) start one.

use async_trait::async_trait;
use leased::api::{
    CaseOutcome, LogLevel, LogLine, Priority, Run, RunCase, RunQuery, RunState, RunUpdate,
};
use leased::config::PrefectConfig;
use leased::prefect::client::{LogRecord, RetryPolicy, cases_key, summary_key};
use leased::prefect::{DeliverOptions, Deliverer, PrefectClient, PrefectError, StateOutcome};
use leased::store::{EmbeddedStore, Millis, OutboxEntry, RunStore, StoreError};
use serde_json::{Value, json};
use socv_testkit::{PrefectServer, free_port};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

type StoreResult<T> = Result<T, StoreError>;

pub(crate) fn shared() -> &'static PrefectServer {
    static SERVER: OnceLock<PrefectServer> = OnceLock::new();
    SERVER.get_or_init(PrefectServer::started)
}

/// What leased needs to deliver to `server` (with its credentials).
fn config(server: &PrefectServer) -> PrefectConfig {
    PrefectConfig {
        api_url: server.api_url(),
        auth: server.auth().map(str::to_string),
        api_key: None,
        ui_url: None,
    }
}

/// A client of `server` that outlasts SQLite's "database is locked" 503s: the tests of this
/// binary share two cores with other Prefect servers, and Prefect on SQLite answers 503 while
/// another writer holds the lock (docs/reference/prefect-rest.md §5). Up to 8 tries over ~16 s.
pub(crate) fn client(server: &PrefectServer) -> PrefectClient {
    PrefectClient::new(&config(server))
        .expect("client")
        .with_retry(RetryPolicy {
            tries: 8,
            backoff: leased::api::time::Backoff::new(
                Duration::from_millis(250),
                Duration::from_secs(4),
            ),
        })
}

/// A run id no other test (or earlier run of this one) uses.
fn run_id(tag: &str) -> String {
    format!("{tag}-{:08x}", rand::random::<u32>())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn run(id: &str, board: &str) -> Run {
    Run {
        id: id.into(),
        lease_id: Some(format!("lease-{id}")),
        board_id: board.into(),
        family: "socA".into(),
        location: "lab-1".into(),
        holder: "alice@ws1".into(),
        binary: "/srv/tests/mem_stress".into(),
        args: vec!["--quick".into()],
        priority: Priority::High,
        created_at_ms: now_ms(),
        ..Run::default()
    }
}

fn lines(n: usize, from_ms: u64, prefix: &str) -> Vec<LogLine> {
    (0..n)
        .map(|i| LogLine {
            ts_ms: from_ms + i as u64,
            level: if i % 10 == 9 {
                LogLevel::Error
            } else {
                LogLevel::Info
            },
            source: Some(if i % 50 == 0 { "socv" } else { "console" }.into()),
            message: format!("{prefix} line {i}"),
        })
        .collect()
}

/// Every log of a flow run, oldest first.
async fn logs_of(c: &PrefectClient, flow_run_id: &str) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let page = c
            .post_json(
                "/logs/filter",
                &json!({
                    "logs": {"flow_run_id": {"any_": [flow_run_id]}},
                    "sort": "TIMESTAMP_ASC",
                    "limit": 200,
                    "offset": all.len(),
                }),
            )
            .await
            .expect("logs/filter");
        let page = page.as_array().unwrap().clone();
        let n = page.len();
        all.extend(page);
        if n < 200 {
            return all;
        }
    }
}

/// The flow run's states, oldest first, as `TYPE/Name`.
async fn states_of(c: &PrefectClient, flow_run_id: &str) -> Vec<String> {
    let v = c
        .get_json(&format!("/flow_run_states/?flow_run_id={flow_run_id}"))
        .await
        .expect("flow_run_states");
    let mut states: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["timestamp"].as_str().unwrap().to_string(),
                format!(
                    "{}/{}",
                    s["type"].as_str().unwrap(),
                    s["name"].as_str().unwrap()
                ),
            )
        })
        .collect();
    states.sort();
    states.into_iter().map(|(_, s)| s).collect()
}

async fn artifacts_of(c: &PrefectClient, flow_run_id: &str) -> Vec<Value> {
    c.post_json(
        "/artifacts/filter",
        &json!({"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}),
    )
    .await
    .expect("artifacts/filter")
    .as_array()
    .unwrap()
    .clone()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        tries: 3,
        backoff: leased::api::time::Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(200),
        ),
    }
}

// ---------------------------------------------------------------- client

#[tokio::test(flavor = "multi_thread")]
async fn flows_and_flow_runs_are_get_or_create() {
    let server = shared();
    let (a, b) = (client(server), client(server));
    let flow = a.ensure_flow().await.unwrap();
    assert_eq!(b.ensure_flow().await.unwrap(), flow, "one flow socv-run");

    let id = run_id("create");
    let r = run(&id, "soc-a-001");
    let fr = a.create_flow_run(&r).await.unwrap();
    assert_eq!(
        b.create_flow_run(&r).await.unwrap(),
        fr,
        "idempotent by run id"
    );
    assert_eq!(a.find_flow_run(&id).await.unwrap().as_deref(), Some(&*fr));
    assert_eq!(a.find_flow_run("no-such-run-id").await.unwrap(), None);

    let v = a.get_json(&format!("/flow_runs/{fr}")).await.unwrap();
    assert_eq!(v["name"], format!("socv-soc-a-001-{id}"));
    assert_eq!(v["flow_id"], flow);
    assert_eq!(v["state_type"], "PENDING");
    assert_eq!(v["state_name"], "Pending");
    let mut tags: Vec<&str> = v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            "board:soc-a-001",
            "family:socA",
            "holder:alice@ws1",
            "location:lab-1"
        ]
    );
    assert_eq!(
        v["parameters"],
        json!({"binary": "/srv/tests/mem_stress", "args": ["--quick"], "family": "socA", "priority": 1})
    );
    assert_eq!(v["idempotency_key"], id);
    assert_eq!(v["labels"]["socv.run_id"], id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_state_change_is_applied_once() {
    let c = client(shared());
    let id = run_id("state");
    let fr = c.create_flow_run(&run(&id, "soc-a-002")).await.unwrap();
    let t1 = "5b0f3d4e-1c2a-4b6d-8e9f-0a1b2c3d4e5f";
    let t2 = "6c1f3d4e-1c2a-4b6d-8e9f-0a1b2c3d4e5f";
    let at = now_ms();
    let running = |t: &'static str| {
        let c = c.clone();
        let fr = fr.clone();
        async move {
            c.set_state(&fr, RunState::Running, Some("booted"), t, at)
                .await
                .unwrap()
        }
    };
    assert_eq!(running(t1).await, StateOutcome::Accepted);
    assert_eq!(running(t1).await, StateOutcome::AlreadyApplied);
    // Running → Pending is refused by Prefect for good (ABORT): reported, not an error.
    let refused = c
        .set_state(&fr, RunState::Pending, None, t2, at)
        .await
        .unwrap();
    assert!(
        matches!(&refused, StateOutcome::Refused { status, .. } if status == "ABORT"),
        "{refused:?}"
    );
    let t3 = "7d2f3d4e-1c2a-4b6d-8e9f-0a1b2c3d4e5f";
    let done = c
        .set_state(&fr, RunState::TimedOut, Some("ran past 10s"), t3, at)
        .await
        .unwrap();
    assert_eq!(done, StateOutcome::Accepted);
    assert_eq!(
        c.set_state(&fr, RunState::TimedOut, Some("ran past 10s"), t3, at)
            .await
            .unwrap(),
        StateOutcome::AlreadyApplied
    );
    assert_eq!(
        states_of(&c, &fr).await,
        ["PENDING/Pending", "RUNNING/Running", "FAILED/TimedOut"]
    );
    let v = c.get_json(&format!("/flow_runs/{fr}")).await.unwrap();
    assert_eq!(v["run_count"], 1, "RUNNING applied once");

    // A transition id that is not a UUID is made into one, the same every time.
    let fr2 = c
        .create_flow_run(&run(&run_id("state-b"), "soc-a-002"))
        .await
        .unwrap();
    let once = c
        .set_state(&fr2, RunState::Running, None, "not-a-uuid-1", 0)
        .await
        .unwrap();
    let twice = c
        .set_state(&fr2, RunState::Running, None, "not-a-uuid-1", 0)
        .await
        .unwrap();
    assert_eq!(
        (once, twice),
        (StateOutcome::Accepted, StateOutcome::AlreadyApplied)
    );

    // Late deliveries say when the change happened.
    let late = now_ms() - 3_600_000;
    c.set_state(
        &fr2,
        RunState::Completed,
        Some("exit 0"),
        "8e3f3d4e-1c2a-4b6d-8e9f-0a1b2c3d4e5f",
        late,
    )
    .await
    .unwrap();
    let v = c.get_json(&format!("/flow_runs/{fr2}")).await.unwrap();
    let msg = v["state"]["message"].as_str().unwrap();
    assert!(msg.starts_with("exit 0 (happened at "), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_go_in_bounded_batches_whole_and_once() {
    let c = client(shared());
    let id = run_id("logs");
    let fr = c.create_flow_run(&run(&id, "soc-a-003")).await.unwrap();
    let t0 = now_ms() - 60_000;
    let mut entry = lines(1200, t0, "boot");
    // A line over a post's limit is split into pieces, never dropped.
    let long = "x".repeat(600 * 1024);
    entry.insert(
        700,
        LogLine {
            ts_ms: t0 + 700,
            level: LogLevel::Warning,
            source: Some("console".into()),
            message: long.clone(),
        },
    );
    let recs: Vec<LogRecord<'_>> = LogRecord::of_entry(41, &entry).collect();
    let first = c.post_logs(&fr, &recs, false).await.unwrap();
    assert_eq!(first.posted, 1200 + 3, "the 600 KiB line goes as 3 pieces");
    assert_eq!(first.skipped, 0);

    let got = logs_of(&c, &fr).await;
    assert_eq!(got.len(), 1203);
    let messages: Vec<&str> = got.iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert_eq!(messages[0], "boot line 0");
    assert_eq!(messages[699], "boot line 699");
    assert_eq!(messages[700..703].concat(), long);
    assert_eq!(messages[703], "boot line 700");
    assert_eq!(messages[1202], "boot line 1199");
    assert_eq!(got[0]["name"], "socv");
    assert_eq!(got[1]["name"], "socv.console");
    assert_eq!(got[9]["level"], 40);
    assert_eq!(got[700]["level"], 30);

    // Delivered again (the answer was lost): everything is found, nothing is posted.
    let again = c.post_logs(&fr, &recs, true).await.unwrap();
    assert_eq!((again.posted, again.skipped), (0, 1203));
    assert_eq!(logs_of(&c, &fr).await.len(), 1203);

    // Half of the next entry got through before a failure: only the rest is posted. An equal
    // line of another entry at the same millisecond is not mistaken for it.
    let next = lines(600, t0 + 5000, "test");
    let recs: Vec<LogRecord<'_>> = LogRecord::of_entry(42, &next).collect();
    c.post_logs(&fr, &recs[..300], false).await.unwrap();
    let twin: Vec<LogRecord<'_>> = LogRecord::of_entry(43, &next[300..301]).collect();
    c.post_logs(&fr, &twin, false).await.unwrap();
    let rest = c.post_logs(&fr, &recs, true).await.unwrap();
    assert_eq!((rest.posted, rest.skipped), (300, 300));
    let got = logs_of(&c, &fr).await;
    assert_eq!(got.len(), 1203 + 600 + 1);
    let tests: Vec<&str> = got
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .filter(|m| m.starts_with("test line"))
        .collect();
    assert_eq!(tests.len(), 601);
    assert_eq!(tests.iter().filter(|m| **m == "test line 300").count(), 2);
    assert_eq!(tests.iter().filter(|m| **m == "test line 299").count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_are_attached_once() {
    let c = client(shared());
    let id = run_id("art");
    let mut r = run(&id, "soc-a-004");
    let fr = c.create_flow_run(&r).await.unwrap();
    r.state = RunState::Failed;
    r.exit_code = Some(1);
    r.started_at_ms = Some(r.created_at_ms + 1000);
    r.ended_at_ms = Some(r.created_at_ms + 13_500);
    r.log_lines = 42;
    r.cases = vec![
        RunCase {
            name: "mem_stress".into(),
            outcome: CaseOutcome::Pass,
            duration_ms: Some(12_500),
            message: None,
        },
        RunCase {
            name: "pcie|link".into(),
            outcome: CaseOutcome::Fail,
            duration_ms: Some(3100),
            message: Some("link down".into()),
        },
    ];
    let posted = c.post_artifacts(&fr, &r).await.unwrap();
    assert_eq!(posted.posted, [summary_key(&id), cases_key(&id)]);
    let again = c.post_artifacts(&fr, &r).await.unwrap();
    assert!(again.posted.is_empty());
    assert_eq!(again.skipped.len(), 2);

    let arts = artifacts_of(&c, &fr).await;
    assert_eq!(arts.len(), 2);
    let summary = arts.iter().find(|a| a["type"] == "markdown").unwrap();
    let md = summary["data"].as_str().unwrap();
    assert!(md.contains("Failed") && md.contains("`soc-a-004`"), "{md}");
    assert!(md.contains("1 passed, 1 failed, 0 skipped"), "{md}");
    assert!(md.contains("pcie\\|link"), "{md}");
    let table = arts.iter().find(|a| a["type"] == "table").unwrap();
    let rows: Value = serde_json::from_str(table["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        rows,
        json!([
            {"case": "mem_stress", "outcome": "pass", "duration_s": 12.5, "message": ""},
            {"case": "pcie|link", "outcome": "fail", "duration_s": 3.1, "message": "link down"},
        ])
    );

    // A run without cases gets the summary only.
    let id2 = run_id("art-b");
    let r2 = run(&id2, "soc-a-004");
    let fr2 = c.create_flow_run(&r2).await.unwrap();
    assert_eq!(
        c.post_artifacts(&fr2, &r2).await.unwrap().posted,
        [summary_key(&id2)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_are_named() {
    let server = PrefectServer::started_with_auth("socv:s3cret");
    let good = client(&server);
    assert_eq!(good.health().await.unwrap(), "3.9.1");
    good.ensure_flow().await.unwrap();

    let wrong = PrefectClient::new(&PrefectConfig {
        auth: Some("socv:wrong".into()),
        api_key: None,
        ..config(&server)
    })
    .unwrap();
    let err = wrong.health().await.unwrap_err();
    assert!(matches!(err, PrefectError::Unauthorized { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("401") && text.contains("PREFECT_API_AUTH_STRING"),
        "{text}"
    );
    assert!(!err.is_retryable());

    let none = PrefectClient::new(&PrefectConfig {
        auth: None,
        api_key: None,
        ..config(&server)
    })
    .unwrap();
    let text = none.ensure_flow().await.unwrap_err().to_string();
    assert!(text.contains("wants credentials"), "{text}");
    assert!(text.contains("PREFECT_API_AUTH_STRING"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_and_wrong_urls_are_named() {
    let port = free_port();
    let c = PrefectClient::new(&PrefectConfig {
        api_url: format!("http://127.0.0.1:{port}/api"),
        auth: Some("u:secret".into()),
        api_key: None,
        ui_url: None,
    })
    .unwrap()
    .with_retry(fast_retry());
    let err = c.health().await.unwrap_err();
    assert!(matches!(err, PrefectError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("http://127.0.0.1:{port}/api")) && text.contains("unreachable"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");

    // The server's root instead of its /api.
    let server = shared();
    let root = PrefectClient::new(&PrefectConfig {
        api_url: server.api_url().trim_end_matches("/api").to_string(),
        auth: None,
        api_key: None,
        ui_url: None,
    })
    .unwrap();
    let text = root.ensure_flow().await.unwrap_err().to_string();
    assert!(text.contains("is this Prefect's /api URL"), "{text}");
}

// ---------------------------------------------------------------- deliverer

/// An embedded store whose acks can be made to fail (a daemon dying between delivering and
/// acking), and whose outbox can be claimed by someone else.
struct Flaky {
    inner: EmbeddedStore,
    fail_acks: AtomicU32,
}

#[async_trait]
impl RunStore for Flaky {
    async fn run_start(&self, run: Run, keep: usize, now: Millis) -> StoreResult<(Run, bool)> {
        self.inner.run_start(run, keep, now).await
    }
    async fn run_update(&self, id: &str, update: RunUpdate, now: Millis) -> StoreResult<Run> {
        self.inner.run_update(id, update, now).await
    }
    async fn run_logs(&self, id: &str, lines: Vec<LogLine>, now: Millis) -> StoreResult<Run> {
        self.inner.run_logs(id, lines, now).await
    }
    async fn run(&self, id: &str) -> StoreResult<Option<Run>> {
        self.inner.run(id).await
    }
    async fn runs(&self, query: &RunQuery) -> StoreResult<Vec<Run>> {
        self.inner.runs(query).await
    }
    async fn unfinished_runs(&self) -> StoreResult<Vec<Run>> {
        self.inner.unfinished_runs().await
    }
    async fn set_flow_run_id(&self, id: &str, flow_run_id: &str) -> StoreResult<()> {
        self.inner.set_flow_run_id(id, flow_run_id).await
    }
    async fn outbox_peek(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
        self.inner.outbox_peek(limit).await
    }
    async fn outbox_ack(&self, seqs: &[u64]) -> StoreResult<()> {
        if self
            .fail_acks
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable("injected: ack lost".into()));
        }
        self.inner.outbox_ack(seqs).await
    }
    async fn outbox_len(&self) -> StoreResult<u64> {
        self.inner.outbox_len().await
    }
    async fn outbox_claim(&self, owner: &str, ttl_ms: Millis, now: Millis) -> StoreResult<bool> {
        self.inner.outbox_claim(owner, ttl_ms, now).await
    }
}

fn store() -> (tempfile::TempDir, Arc<Flaky>) {
    let dir = tempfile::tempdir().unwrap();
    let inner = EmbeddedStore::open(&dir.path().join("leased.redb")).unwrap();
    (
        dir,
        Arc::new(Flaky {
            inner,
            fail_acks: AtomicU32::new(0),
        }),
    )
}

fn quick() -> DeliverOptions {
    DeliverOptions {
        poll: Duration::from_millis(100),
        backoff: leased::api::time::Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(500),
        ),
        ..DeliverOptions::default()
    }
}

/// How a recorded run ends.
#[derive(Clone, Copy)]
enum Ending {
    Passes,
    TimesOut,
    CrashesBeforeRunning,
}

/// Records a run the way the server does: start, running, console lines, end.
async fn record(store: &dyn RunStore, id: &str, ending: Ending, log_batches: usize) -> Run {
    let now = now_ms();
    store
        .run_start(run(id, "soc-b-001"), 1000, now)
        .await
        .unwrap();
    if matches!(ending, Ending::CrashesBeforeRunning) {
        return store
            .run_update(
                id,
                RunUpdate {
                    state: RunState::Crashed,
                    message: Some("lease expired".into()),
                    ..RunUpdate::default()
                },
                now + 5,
            )
            .await
            .unwrap();
    }
    store
        .run_update(
            id,
            RunUpdate {
                state: RunState::Running,
                ..RunUpdate::default()
            },
            now + 1,
        )
        .await
        .unwrap();
    for b in 0..log_batches {
        store
            .run_logs(
                id,
                lines(100, now + 10 + 1000 * b as u64, &format!("b{b}")),
                now + 2,
            )
            .await
            .unwrap();
    }
    let end = match ending {
        Ending::Passes => RunUpdate {
            state: RunState::Completed,
            exit_code: Some(0),
            cases: vec![RunCase {
                name: "boot".into(),
                outcome: CaseOutcome::Pass,
                duration_ms: Some(900),
                message: None,
            }],
            ..RunUpdate::default()
        },
        _ => RunUpdate {
            state: RunState::TimedOut,
            message: Some("ran past 10s".into()),
            socv_exit_code: Some(124),
            ..RunUpdate::default()
        },
    };
    store.run_update(id, end, now + 50_000).await.unwrap()
}

/// Checks what Prefect shows for a run recorded by [`record`].
async fn check_delivered(
    c: &PrefectClient,
    store: &dyn RunStore,
    id: &str,
    ending: Ending,
    log_batches: usize,
) {
    let run = store.run(id).await.unwrap().expect("run kept");
    let fr = run
        .prefect
        .as_ref()
        .map(|p| p.flow_run_id.clone())
        .expect("flow run id recorded");
    let v = c.get_json(&format!("/flow_runs/{fr}")).await.unwrap();
    assert_eq!(v["name"], format!("socv-soc-b-001-{id}"));
    assert!(
        v["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("board:soc-b-001")),
        "{}",
        v["tags"]
    );
    let states = states_of(c, &fr).await;
    let logs = logs_of(c, &fr).await;
    let arts = artifacts_of(c, &fr).await;
    match ending {
        Ending::Passes => {
            assert_eq!(
                states,
                ["PENDING/Pending", "RUNNING/Running", "COMPLETED/Completed"]
            );
            assert_eq!(arts.len(), 2, "summary and cases");
        }
        Ending::TimesOut => {
            assert_eq!(
                states,
                ["PENDING/Pending", "RUNNING/Running", "FAILED/TimedOut"]
            );
            assert_eq!(v["state"]["message"], "ran past 10s");
            assert_eq!(arts.len(), 1, "summary only");
        }
        Ending::CrashesBeforeRunning => {
            assert_eq!(states, ["PENDING/Pending", "CRASHED/Crashed"]);
            assert_eq!(arts.len(), 1);
        }
    }
    let expected: Vec<String> = (0..log_batches)
        .flat_map(|b| (0..100).map(move |i| format!("b{b} line {i}")))
        .collect();
    let got: Vec<&str> = logs
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected, "every console line once, in order");
}

async fn wait_delivered(d: &leased::prefect::DelivererHandle, entries: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let s = d.status();
        if s.backlog == 0 && s.delivered >= entries && s.ok {
            return;
        }
        assert!(Instant::now() < deadline, "not delivered in time: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deliverer_carries_runs_to_prefect() {
    let server = shared();
    let c = client(server);
    let (_dir, store) = store();
    let runs = [
        (run_id("d-pass"), Ending::Passes, 3),
        (run_id("d-timeout"), Ending::TimesOut, 1),
        (run_id("d-crash"), Ending::CrashesBeforeRunning, 0),
        (run_id("d-pass2"), Ending::Passes, 25),
    ];
    for (id, ending, logs) in &runs {
        record(&*store, id, *ending, *logs).await;
    }
    let entries = store.outbox_len().await.unwrap();
    // create + state(s) + logs + artifacts
    assert_eq!(entries, (4 + 3) + (4 + 1) + 3 + (4 + 25));

    let deliverer = Deliverer::with_options(store.clone(), c.clone(), "t-1", quick());
    let handle = deliverer.handle();
    let stop = CancellationToken::new();
    let task = tokio::spawn(deliverer.run(stop.clone()));
    wait_delivered(&handle, entries, Duration::from_secs(60)).await;
    let status = handle.status();
    assert_eq!(status.delivered, entries);
    assert!(status.configured && status.ok && status.error.is_none());
    assert_eq!(status.url.as_deref(), Some(&*server.api_url()));
    assert!(status.last_delivery_ms.is_some());
    for (id, ending, logs) in &runs {
        check_delivered(&c, &*store, id, *ending, *logs).await;
    }

    // A run recorded later is delivered promptly when the deliverer is poked.
    let late = run_id("d-late");
    record(&*store, &late, Ending::Passes, 1).await;
    handle.wake();
    let started = Instant::now();
    while handle.status().delivered < entries + 5 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            handle.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check_delivered(&c, &*store, &late, Ending::Passes, 1).await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_acks_and_restarts_duplicate_nothing() {
    let c = client(shared());
    let (_dir, store) = store();
    let id = run_id("d-acks");
    record(&*store, &id, Ending::Passes, 4).await;
    // Every step is delivered, then its ack is lost: each is delivered again by the next pass,
    // or by a new deliverer (a restarted daemon, with nothing in memory).
    store.fail_acks.store(3, Ordering::SeqCst);
    let first = Deliverer::with_options(store.clone(), c.clone(), "t-2", quick());
    for _ in 0..2 {
        assert!(first.deliver_once().await.is_err());
    }
    let second = Deliverer::with_options(store.clone(), c.clone(), "t-2", quick());
    assert!(second.deliver_once().await.is_err());
    let mut passes = 0;
    while store.outbox_len().await.unwrap() > 0 {
        // A pass may still fail now and then: Prefect on SQLite answers 503 under the load of
        // the tests running beside this one, beyond the client's own retries. The next pass
        // goes on from there, which is what the daemon does too.
        if let Err(e) = second.deliver_once().await {
            eprintln!("a pass failed and is repeated: {e:#}");
        }
        passes += 1;
        assert!(passes < 20, "the outbox never emptied");
    }
    check_delivered(&c, &*store, &id, Ending::Passes, 4).await;
    let fr = store
        .run(&id)
        .await
        .unwrap()
        .unwrap()
        .prefect
        .unwrap()
        .flow_run_id;
    let v = c.get_json(&format!("/flow_runs/{fr}")).await.unwrap();
    assert_eq!(v["run_count"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_claimer_delivers() {
    let c = client(shared());
    let (_dir, store) = store();
    let id = run_id("d-claim");
    record(&*store, &id, Ending::TimesOut, 1).await;
    assert!(
        store
            .outbox_claim("someone-else", 60_000, now_ms())
            .await
            .unwrap()
    );
    let d = Deliverer::with_options(store.clone(), c.clone(), "t-3", quick());
    let pass = d.deliver_once().await.unwrap();
    assert!(!pass.claimed);
    assert_eq!(pass.acked, 0);
    assert_eq!(d.status().backlog, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_recorded_while_prefect_is_down_arrive_when_it_starts() {
    let mut server = PrefectServer::new(None, None);
    let c = client(&server).with_retry(fast_retry());
    let (_dir, store) = store();
    let ids: Vec<String> = (0..3).map(|i| run_id(&format!("d-down{i}"))).collect();
    for id in &ids {
        record(&*store, id, Ending::Passes, 2).await;
    }
    let entries = store.outbox_len().await.unwrap();
    let deliverer = Deliverer::with_options(store.clone(), c.clone(), "t-4", quick());
    let handle = deliverer.handle();
    let stop = CancellationToken::new();
    let task = tokio::spawn(deliverer.run(stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = handle.status();
        if let Some(e) = &s.error {
            assert!(!s.ok);
            assert!(e.contains("unreachable"), "{e}");
            assert_eq!(s.backlog, entries);
            assert_eq!(s.delivered, 0);
            break;
        }
        assert!(Instant::now() < deadline, "no error reported: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let server = tokio::task::spawn_blocking(move || {
        server.start();
        server
    })
    .await
    .unwrap();
    eprintln!(
        "Prefect started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    wait_delivered(&handle, entries, Duration::from_secs(60)).await;
    assert_eq!(handle.status().delivered, entries);
    let c = client(&server);
    for id in &ids {
        check_delivered(&c, &*store, id, Ending::Passes, 2).await;
    }
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn delivery_rate() {
    let c = client(shared());
    let (_dir, store) = store();
    let n = 40;
    let ids: Vec<String> = (0..n).map(|i| run_id(&format!("d-rate{i}"))).collect();
    for id in &ids {
        record(&*store, id, Ending::Passes, 2).await;
    }
    let entries = store.outbox_len().await.unwrap();
    let d = Deliverer::with_options(store.clone(), c.clone(), "t-5", quick());
    let started = Instant::now();
    let mut failed_passes = 0;
    while store.outbox_len().await.unwrap() > 0 {
        // Prefect on SQLite answers 503 under load now and then, beyond the client's retries;
        // the next pass goes on from there (as the deliverer's loop does after a pause).
        if let Err(e) = d.deliver_once().await {
            failed_passes += 1;
            assert!(failed_passes < 20, "{e:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "delivered {n} runs ({entries} outbox entries, 200 console lines each) in {secs:.2} s: \
         {:.1} runs/s ({failed_passes} passes failed and were repeated)",
        n as f64 / secs
    );
    assert_eq!(d.status().delivered, entries);
    check_delivered(&c, &*store, &ids[n - 1], Ending::Passes, 2).await;
}
