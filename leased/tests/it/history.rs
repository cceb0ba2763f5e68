//! Run history end to end, with the leased binary as a process and a real Prefect server:
//! records while Prefect is down are all delivered once it starts, in order and once each, also
//! when leased is killed with SIGKILL in the middle of delivering; bad calls get clear errors;
//! abandoned runs are marked Crashed; a failed run is notified.
//!
//! What Prefect holds is read back through its own REST API, not through leased.

use crate::common::{Answer, Daemon, call, write_lab};
use reqwest::Method;
use serde_json::{Value, json};
use socv_testkit::{PrefectServer, RedisServer, free_port};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Console lines each test run records.
const LINES_PER_RUN: usize = 30;

async fn ok(a: Result<Answer, reqwest::Error>, what: &str, want: u16) -> Value {
    let a = a.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(a.status, want, "{what}: {}", a.body);
    a.body
}

/// How the n-th test run ends, so that every terminal state is exercised.
fn ending(n: usize) -> (&'static str, Option<i32>) {
    match n % 5 {
        0 | 1 => ("completed", Some(0)),
        2 => ("failed", Some(3)),
        3 => ("timed_out", None),
        _ => ("crashed", None),
    }
}

fn prefect_name(state: &str) -> &'static str {
    match state {
        "completed" => "Completed",
        "failed" => "Failed",
        "timed_out" => "TimedOut",
        "crashed" => "Crashed",
        other => panic!("unexpected state {other}"),
    }
}

/// Records `n` whole runs (start, running, console lines, end) as `holder`, through leased's API.
async fn record_runs(client: &reqwest::Client, url: &str, holder: &str, tag: &str, n: usize) {
    for i in 0..n {
        let id = format!("{tag}-{i:03}");
        let board = format!("socA-{:03}", i % 3 + 1);
        let start = json!({"id": id, "board_id": board, "binary": "./t.elf", "args": ["-n", i.to_string()]});
        let runs = format!("{url}/api/v1/runs");
        send(
            client,
            Method::POST,
            &runs,
            holder,
            Some(start),
            "start",
            201,
        )
        .await;
        send(
            client,
            Method::PATCH,
            &format!("{url}/api/v1/runs/{id}"),
            holder,
            Some(json!({"state": "running"})),
            "running",
            200,
        )
        .await;
        // Two batches, so that ordering across batches is checked too.
        for half in [0..LINES_PER_RUN / 2, LINES_PER_RUN / 2..LINES_PER_RUN] {
            let lines: Vec<Value> = half
                .map(|l| json!({"ts_ms": 1_700_000_000_000u64 + l as u64, "message": format!("{id} line {l:02}")}))
                .collect();
            send(
                client,
                Method::POST,
                &format!("{url}/api/v1/runs/{id}/logs"),
                holder,
                Some(json!({ "lines": lines })),
                "logs",
                204,
            )
            .await;
        }
        let (state, exit_code) = ending(i);
        send(client, Method::PATCH, &format!("{url}/api/v1/runs/{id}"), holder, Some(json!({
                    "state": state,
                    "exit_code": exit_code,
                    "cases": [{"name": "boot", "outcome": "pass"}, {"name": "mem", "outcome": if state == "completed" {"pass"} else {"fail"}}],
                })), "end", 200).await;
    }
}

/// A call of leased's API as `who`, insisting on the status `want`; answers the body.
async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    who: &str,
    body: Option<Value>,
    what: &str,
    want: u16,
) -> Value {
    ok(call(client, method, url, who, body).await, what, want).await
}

/// A successful `GET` of leased's API, as some caller.
async fn get(client: &reqwest::Client, url: &str) -> Value {
    ok(call(client, Method::GET, url, "t@h", None).await, url, 200).await
}

async fn health(client: &reqwest::Client, url: &str) -> Value {
    get(client, &format!("{url}/api/v1/health")).await
}

/// Waits until leased's outbox is empty, failing with its health and log when it never is.
async fn wait_delivered(client: &reqwest::Client, daemon: &Daemon, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let h = health(client, &daemon.url).await;
        if h["prefect"]["backlog"] == 0 && h["prefect"]["ok"] == true {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "outbox not delivered within {limit:?}: {}\nleased's log:\n{}",
                h["prefect"],
                daemon.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Prefect's REST API, read directly.
struct Prefect {
    client: reqwest::Client,
    api: String,
}

impl Prefect {
    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .client
            .post(format!("{}{path}", self.api))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Prefect {path}: {e}"));
        assert!(r.status().is_success(), "Prefect {path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .client
            .get(format!("{}{path}", self.api))
            .send()
            .await
            .unwrap_or_else(|e| panic!("Prefect {path}: {e}"));
        assert!(r.status().is_success(), "Prefect {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// The flow runs carrying `tag`, by name.
    async fn runs_tagged(&self, tag: &str) -> HashMap<String, Value> {
        let mut out = HashMap::new();
        let mut offset = 0;
        loop {
            let page = self
                .post(
                    "/flow_runs/filter",
                    json!({"flow_runs": {"tags": {"all_": [tag]}}, "sort": "NAME_ASC", "limit": 200, "offset": offset}),
                )
                .await;
            let page = page.as_array().unwrap().clone();
            offset += page.len();
            for r in &page {
                let key = r["idempotency_key"].as_str().unwrap().to_string();
                assert!(
                    out.insert(key.clone(), r.clone()).is_none(),
                    "two flow runs for run {key}"
                );
            }
            if page.len() < 200 {
                return out;
            }
        }
    }

    /// The names of a flow run's states, oldest first.
    async fn state_names(&self, flow_run_id: &str) -> Vec<String> {
        let mut states = self
            .get(&format!("/flow_run_states/?flow_run_id={flow_run_id}"))
            .await
            .as_array()
            .unwrap()
            .clone();
        states.sort_by_key(|s| s["timestamp"].as_str().unwrap().to_string());
        states
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    }

    async fn log_messages(&self, flow_run_id: &str) -> Vec<String> {
        let logs = self
            .post(
                "/logs/filter",
                json!({"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}),
            )
            .await;
        logs.as_array()
            .unwrap()
            .iter()
            .map(|l| l["message"].as_str().unwrap().to_string())
            .collect()
    }

    async fn artifact_keys(&self, flow_run_id: &str) -> Vec<String> {
        let arts = self
            .post(
                "/artifacts/filter",
                json!({"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}),
            )
            .await;
        let mut keys: Vec<String> = arts
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["key"].as_str().unwrap_or("").to_string())
            .collect();
        keys.sort();
        keys
    }
}

/// Every one of the `n` runs tagged `holder:{holder}` is in Prefect exactly once, with its tags,
/// its states in order (each once), its console lines in order (each once) and its artifacts.
async fn check_in_prefect(prefect: &Prefect, holder: &str, tag: &str, n: usize) {
    let runs = prefect.runs_tagged(&format!("holder:{holder}")).await;
    assert_eq!(runs.len(), n, "flow runs in Prefect: {:?}", runs.keys());
    for i in 0..n {
        let id = format!("{tag}-{i:03}");
        let run = runs
            .get(&id)
            .unwrap_or_else(|| panic!("run {id} is not in Prefect"));
        let fr = run["id"].as_str().unwrap();
        let tags: Vec<&str> = run["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let board = format!("board:socA-{:03}", i % 3 + 1);
        for want in [board.as_str(), "family:socA", "location:Lab Site A"] {
            assert!(tags.contains(&want), "run {id}: tags {tags:?} lack {want}");
        }
        let (state, _) = ending(i);
        assert_eq!(
            prefect.state_names(fr).await,
            ["Pending", "Running", prefect_name(state)],
            "run {id}: state history"
        );
        let want: Vec<String> = (0..LINES_PER_RUN)
            .map(|l| format!("{id} line {l:02}"))
            .collect();
        assert_eq!(prefect.log_messages(fr).await, want, "run {id}: logs");
        let keys = prefect.artifact_keys(fr).await;
        assert_eq!(keys.len(), 2, "run {id}: artifacts {keys:?}");
        assert!(
            keys.iter().all(|k| k.contains(&id)),
            "run {id}: artifacts {keys:?}"
        );
    }
}

fn prefect_flags(api_url: &str) -> Vec<String> {
    vec!["--prefect-url".into(), api_url.into()]
}

/// 50 runs while Prefect is down: runs are recorded at full speed, health says what is wrong;
/// Prefect starts and gets every record once, in order.
#[tokio::test(flavor = "multi_thread")]
async fn records_made_while_prefect_is_down_are_delivered_once_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let lab = write_lab(dir.path(), "socA", 3);
    let client = reqwest::Client::new();
    let prefect_port = free_port();
    let api_url = format!("http://127.0.0.1:{prefect_port}/api");
    let store = dir.path().join("leased.redb");
    let daemon = Daemon::start_with(
        free_port(),
        &lab,
        store.to_str().unwrap(),
        dir.path(),
        &prefect_flags(&api_url),
    )
    .await;

    record_runs(&client, &daemon.url, "down@h", "down", 50).await;
    let h = health(&client, &daemon.url).await;
    assert_eq!(h["prefect"]["configured"], true);
    assert!(h["prefect"]["backlog"].as_u64().unwrap() > 0, "{h}");
    // The delivery is tried and fails (after the client's own retries, about 5 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = health(&client, &daemon.url).await;
        if h["prefect"]["ok"] == false {
            let err = h["prefect"]["error"].as_str().unwrap_or_default();
            assert!(err.contains(&prefect_port.to_string()), "{err}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health never said Prefect is down: {h}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runs = get(
        &client,
        &format!("{}/api/v1/runs?holder=down@h&limit=100", daemon.url),
    )
    .await;
    assert_eq!(runs.as_array().unwrap().len(), 50);

    let server = PrefectServer::started_on(prefect_port).await;
    wait_delivered(&client, &daemon, Duration::from_secs(180)).await;
    let prefect = Prefect {
        client: client.clone(),
        api: server.api_url(),
    };
    check_in_prefect(&prefect, "down@h", "down", 50).await;

    // Every run now links to its flow run.
    let runs = get(
        &client,
        &format!("{}/api/v1/runs?holder=down@h&limit=100", daemon.url),
    )
    .await;
    for r in runs.as_array().unwrap() {
        let url = r["prefect"]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("no link: {r}"));
        assert!(
            url.starts_with(&format!("http://127.0.0.1:{prefect_port}/runs/flow-run/")),
            "{url}"
        );
    }
}

/// leased on Redis, killed with SIGKILL while it delivers: after a restart every record still
/// reaches Prefect, and none twice (idempotency keys, transition ids, and checks before posting
/// logs and artifacts again).
#[tokio::test(flavor = "multi_thread")]
async fn leased_killed_mid_delivery_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lab = write_lab(dir.path(), "socA", 3);
    let redis = RedisServer::start();
    let client = reqwest::Client::new();
    let prefect_port = free_port();
    let api_url = format!("http://127.0.0.1:{prefect_port}/api");
    let port = free_port();
    let flags = prefect_flags(&api_url);
    let mut daemon = Daemon::start_with(port, &lab, &redis.url(), dir.path(), &flags).await;
    record_runs(&client, &daemon.url, "kill@h", "kill", 50).await;

    let server = PrefectServer::started_on(prefect_port).await;
    // Kill it once some, not all, of the records are delivered.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let h = health(&client, &daemon.url).await;
        let delivered = h["prefect"]["delivered"].as_u64().unwrap_or(0);
        if delivered > 20 {
            assert!(
                h["prefect"]["backlog"].as_u64().unwrap() > 0,
                "all delivered before the kill: {h}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery began: {h}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.kill9();
    let daemon = Daemon::start_with(port, &lab, &redis.url(), dir.path(), &flags).await;
    wait_delivered(&client, &daemon, Duration::from_secs(180)).await;
    let prefect = Prefect {
        client: client.clone(),
        api: server.api_url(),
    };
    check_in_prefect(&prefect, "kill@h", "kill", 50).await;
}

async fn patch(
    c: &reqwest::Client,
    runs: &str,
    id: &str,
    who: &str,
    body: Value,
) -> Result<Answer, reqwest::Error> {
    call(c, Method::PATCH, &format!("{runs}/{id}"), who, Some(body)).await
}

/// A local Slack webhook: records every body it is sent.
async fn slack_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// Bad calls get errors that name the field; a run whose lease ends is marked Crashed (and
/// notified, being a failure); a passing run is not notified with the default `failures`.
#[tokio::test(flavor = "multi_thread")]
async fn bad_calls_are_refused_and_abandoned_runs_crash() {
    let dir = tempfile::tempdir().unwrap();
    let lab = write_lab(dir.path(), "socA", 3);
    let client = reqwest::Client::new();
    let (hook, mut received) = slack_receiver().await;
    let store = dir.path().join("leased.redb");
    let daemon = Daemon::start_with(
        free_port(),
        &lab,
        store.to_str().unwrap(),
        dir.path(),
        &["--slack-webhook-url".into(), hook],
    )
    .await;
    let url = &daemon.url;
    let runs = format!("{url}/api/v1/runs");
    let c = &client;

    let start = |body: Value| call(c, Method::POST, &runs, "alice@h", Some(body));
    for (what, body, status, names) in [
        (
            "bad id",
            json!({"id": "Bad_Id", "board_id": "socA-001", "binary": "t"}),
            400,
            "id",
        ),
        (
            "unknown board",
            json!({"board_id": "nope-1", "binary": "t"}),
            404,
            "nope-1",
        ),
        (
            "no binary",
            json!({"board_id": "socA-001", "binary": ""}),
            400,
            "binary",
        ),
        (
            "unknown field",
            json!({"board_id": "socA-001", "binary": "t", "colour": 1}),
            400,
            "colour",
        ),
        (
            "unknown lease",
            json!({"board_id": "socA-001", "binary": "t", "lease_id": "l-none"}),
            404,
            "l-none",
        ),
    ] {
        let bad = ok(start(body).await, what, status).await;
        let message = bad["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{what}: {bad}");
    }
    // Nothing of that was recorded.
    let listed = get(c, &runs).await;
    assert_eq!(listed, json!([]));

    // A passing run: recorded, answered again on a retried POST, and closed to changes.
    let run = ok(
        start(json!({"id": "pass-1", "board_id": "socA-001", "binary": "./ok"})).await,
        "start",
        201,
    )
    .await;
    assert_eq!(run["state"], "pending");
    assert_eq!(run["holder"], "alice@h");
    assert_eq!(run["family"], "socA");
    ok(
        start(json!({"id": "pass-1", "board_id": "socA-001", "binary": "./ok"})).await,
        "again",
        200,
    )
    .await;
    let taken = send(
        c,
        Method::POST,
        &runs,
        "mallory@h",
        Some(json!({"id": "pass-1", "board_id": "socA-001", "binary": "./ok"})),
        "someone else's id",
        409,
    )
    .await;
    assert!(
        taken["error"]["message"]
            .as_str()
            .unwrap()
            .contains("alice@h"),
        "{taken}"
    );
    for (what, id, who, state, want) in [
        ("not holder", "pass-1", "mallory@h", "running", 403),
        ("unknown run", "nope", "alice@h", "running", 404),
        ("bad state", "pass-1", "alice@h", "sleeping", 400),
        ("running", "pass-1", "alice@h", "running", 200),
    ] {
        let body = json!({ "state": state });
        ok(patch(c, &runs, id, who, body).await, what, want).await;
    }
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"message": format!("l{i}")}))
        .collect();
    let bad = send(
        c,
        Method::POST,
        &format!("{runs}/pass-1/logs"),
        "alice@h",
        Some(json!({"lines": too_many})),
        "too many lines",
        400,
    )
    .await;
    assert!(
        bad["error"]["message"].as_str().unwrap().contains("split"),
        "{bad}"
    );
    send(
        c,
        Method::POST,
        &format!("{runs}/nope/logs"),
        "alice@h",
        Some(json!({"lines": [{"message": "x"}]})),
        "logs of an unknown run",
        404,
    )
    .await;
    let done = ok(
        patch(
            c,
            &runs,
            "pass-1",
            "alice@h",
            json!({"state": "completed", "exit_code": 0}),
        )
        .await,
        "end",
        200,
    )
    .await;
    assert_eq!(done["state"], "completed");
    assert!(done["ended_at_ms"].as_u64().is_some(), "{done}");
    ok(
        patch(
            c,
            &runs,
            "pass-1",
            "alice@h",
            json!({"state": "completed", "exit_code": 0}),
        )
        .await,
        "same end again",
        200,
    )
    .await;
    let bad = ok(
        patch(c, &runs, "pass-1", "alice@h", json!({"state": "running"})).await,
        "reopen",
        409,
    )
    .await;
    assert_eq!(bad["error"]["code"], "run_ended");
    ok(
        call(c, Method::GET, &format!("{runs}?limit=0"), "t@h", None).await,
        "limit 0",
        400,
    )
    .await;
    ok(
        call(c, Method::GET, &format!("{runs}?state=bogus"), "t@h", None).await,
        "bad state filter",
        400,
    )
    .await;

    // A run under a lease that is then released (socv killed): Crashed, and notified.
    let lease = send(
        c,
        Method::POST,
        &format!("{url}/api/v1/lease"),
        "bob@h",
        Some(json!({"board_id": "socA-002"})),
        "lease",
        201,
    )
    .await;
    let lease_id = lease["id"].as_str().unwrap();
    send(
        c,
        Method::POST,
        &runs,
        "bob@h",
        Some(
            json!({"id": "gone-1", "board_id": "socA-002", "binary": "./t", "lease_id": lease_id}),
        ),
        "start under lease",
        201,
    )
    .await;
    ok(
        patch(c, &runs, "gone-1", "bob@h", json!({"state": "running"})).await,
        "running",
        200,
    )
    .await;
    send(
        c,
        Method::DELETE,
        &format!("{url}/api/v1/lease/{lease_id}"),
        "bob@h",
        None,
        "release",
        200,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = get(c, &format!("{runs}/gone-1")).await;
        if run["state"] == "crashed" {
            assert!(run["message"].as_str().unwrap().contains("lease"), "{run}");
            break;
        }
        assert!(Instant::now() < deadline, "never marked crashed: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let note = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("no Slack notification of the crashed run")
        .unwrap();
    let text = note.to_string();
    assert!(
        text.contains("gone-1") && text.contains("socA-002"),
        "{text}"
    );
    assert!(
        !text.contains("pass-1"),
        "a passing run was notified: {text}"
    );

    // Filters.
    let by_state = get(c, &format!("{runs}?state=crashed")).await;
    assert_eq!(by_state.as_array().unwrap().len(), 1);
    assert_eq!(by_state[0]["id"], "gone-1");
    let by_board = get(c, &format!("{runs}?board=socA-001")).await;
    assert_eq!(by_board[0]["id"], "pass-1");
    let newest = get(c, &format!("{runs}?limit=1")).await;
    assert_eq!(newest.as_array().unwrap().len(), 1);
    assert_eq!(newest[0]["id"], "gone-1");
    let health = health(c, url).await;
    assert_eq!(health["prefect"]["configured"], false);
    assert_eq!(health["notifications"][0]["name"], "slack");
}

/// A local Feishu custom bot: records every body, answers `{"code":0}`.
async fn feishu_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/open-apis/bot/v2/hook/t0k3n",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                axum::Json(json!({"code": 0, "msg": "success", "data": {}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/open-apis/bot/v2/hook/t0k3n",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// Checks a Feishu body's signature the way Feishu does: HMAC-SHA256 keyed by
/// `timestamp + "\n" + secret` over nothing, base64; the timestamp within an hour of now.
fn assert_signed(body: &Value, secret: &str) {
    let ts: u64 = body["timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("no timestamp: {body}"))
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(ts) < 3600, "timestamp {ts}, now {now}");
    assert_eq!(
        body["sign"].as_str(),
        Some(leased::notify::feishu_sign(ts, secret).as_str()),
        "{body}"
    );
}

/// Through the daemon: a lease request waiting longer than `--notify-long-wait` is notified
/// once, and with `--notify-on all` a passing run is too; both signed for the Feishu bot.
#[tokio::test(flavor = "multi_thread")]
async fn long_waits_and_run_endings_reach_a_signed_feishu_bot() {
    let dir = tempfile::tempdir().unwrap();
    let lab = write_lab(dir.path(), "socA", 1);
    let client = reqwest::Client::new();
    let (hook, mut received) = feishu_receiver().await;
    let secret = "s3cret-for-the-bot";
    let store = dir.path().join("leased.redb");
    let daemon = Daemon::start_with(
        free_port(),
        &lab,
        store.to_str().unwrap(),
        dir.path(),
        &[
            "--feishu-webhook-url".into(),
            hook,
            "--feishu-secret".into(),
            secret.into(),
            "--notify-on".into(),
            "all".into(),
            "--notify-long-wait".into(),
            "1s".into(),
        ],
    )
    .await;
    let url = &daemon.url;
    let c = &client;
    let lease = send(
        c,
        Method::POST,
        &format!("{url}/api/v1/lease"),
        "bob@h",
        Some(json!({"board_family": "socA"})),
        "lease",
        201,
    )
    .await;
    let ticket = send(
        c,
        Method::POST,
        &format!("{url}/api/v1/lease"),
        "carol@h",
        Some(json!({"board_family": "socA", "wait_s": 60})),
        "queue",
        202,
    )
    .await;
    let ticket = ticket["ticket"].as_str().unwrap().to_string();
    // Carol keeps polling, as socv does, past the long-wait threshold.
    for _ in 0..3 {
        let polled = ok(
            call(
                c,
                Method::GET,
                &format!("{url}/api/v1/queue/{ticket}?wait_s=1"),
                "carol@h",
                None,
            )
            .await,
            "poll",
            200,
        )
        .await;
        assert_eq!(polled["state"], "waiting", "{polled}");
    }
    let note = tokio::time::timeout(Duration::from_secs(60), received.recv())
        .await
        .expect("no Feishu notification of the long wait")
        .unwrap();
    assert_signed(&note, secret);
    let text = note["content"].to_string();
    assert!(
        text.contains(&ticket) && text.contains("carol@h") && text.contains("socA"),
        "{note}"
    );

    // Once only, however long it goes on: the next message is the run's.
    let lease_id = lease["id"].as_str().unwrap();
    send(
        c,
        Method::POST,
        &format!("{url}/api/v1/runs"),
        "bob@h",
        Some(
            json!({"id": "fine-1", "board_id": "socA-001", "binary": "./t", "lease_id": lease_id}),
        ),
        "start",
        201,
    )
    .await;
    ok(
        patch(
            c,
            &format!("{url}/api/v1/runs"),
            "fine-1",
            "bob@h",
            json!({"state": "completed", "exit_code": 0}),
        )
        .await,
        "end",
        200,
    )
    .await;
    let note = tokio::time::timeout(Duration::from_secs(60), received.recv())
        .await
        .expect("no Feishu notification of the run")
        .unwrap();
    assert_signed(&note, secret);
    let text = note["content"].to_string();
    assert!(
        text.contains("fine-1") && text.contains("socA-001"),
        "{note}"
    );
    // The bot has the message a moment before leased has its answer and counts it sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let h = health(c, url).await;
        if h["notifications"][0]["sent"] == 2 || Instant::now() > deadline {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(health["notifications"][0]["name"], "feishu");
    assert_eq!(health["notifications"][0]["sent"], 2, "{health}");
    assert_eq!(health["notifications"][0]["failed"], 0, "{health}");
}

/// Waits until leased's health says of Prefect an error containing each of `words`.
async fn wait_prefect_error(client: &reqwest::Client, daemon: &Daemon, words: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = health(client, &daemon.url).await;
        let error = h["prefect"]["error"].as_str().unwrap_or("");
        if words.iter().all(|w| error.contains(w)) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "leased never said {words:?} of Prefect: {}\nlog:\n{}",
            h["prefect"],
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prefect behind a TLS terminator (socat: an OpenSSL server, as a lab's proxy would be) that
/// wants basic auth. Without the lab's CA leased says the certificate is not trusted; with it but
/// without the auth string Prefect refuses it (logged once, not retried in a tight loop); every
/// record meanwhile stays in the outbox, and leased restarted with both settings delivers them
/// all, once each and in order, over https. The auth string never shows.
#[tokio::test(flavor = "multi_thread")]
async fn prefect_over_https_with_auth_gets_every_record_once_the_settings_are_right() {
    const AUTH: &str = "socv:https-s3cret-0451";
    let dir = tempfile::tempdir().unwrap();
    let lab = write_lab(dir.path(), "socA", 3);
    let prefect = tokio::task::spawn_blocking(|| PrefectServer::started_with_auth(AUTH))
        .await
        .unwrap();
    let ca = socv_testkit::TestCa::new("socv lab CA");
    let ca_file = ca.write_pem(dir.path(), "lab-ca.pem");
    let terminator =
        socv_testkit::TlsTerminator::start(&ca.issue(&["127.0.0.1"]), dir.path(), prefect.port());
    let api = format!("https://127.0.0.1:{}/api", terminator.port);
    let store = dir.path().join("leased.redb");
    let store = store.to_str().unwrap();
    let client = reqwest::Client::new();
    let flags = |more: &[&str]| -> Vec<String> {
        let mut f = prefect_flags(&api);
        f.extend(more.iter().map(|s| s.to_string()));
        f
    };
    let mut shown = Vec::new();

    let untrusting = Daemon::start_with(
        free_port(),
        &lab,
        store,
        dir.path(),
        &flags(&["--prefect-auth", AUTH]),
    )
    .await;
    record_runs(&client, &untrusting.url, "tls-holder", "tls", 3).await;
    let h = wait_prefect_error(
        &client,
        &untrusting,
        &["not trusted", "ca_cert (LEASED_CA_CERT)"],
    )
    .await;
    assert!(
        h["prefect"]["backlog"].as_u64().unwrap() > 0,
        "{}",
        h["prefect"]
    );
    shown.push(h.to_string());
    shown.push(untrusting.log());
    drop(untrusting);

    let ca_flag = ca_file.to_str().unwrap();
    let unauthorized = Daemon::start_with(
        free_port(),
        &lab,
        store,
        dir.path(),
        &flags(&["--ca-cert", ca_flag]),
    )
    .await;
    let h = wait_prefect_error(&client, &unauthorized, &["401", "PREFECT_API_AUTH_STRING"]).await;
    let backlog = h["prefect"]["backlog"].as_u64().unwrap();
    assert!(
        backlog >= 3 * 5,
        "every record waits in the outbox: {}",
        h["prefect"]
    );
    // Refused credentials are said once, and not tried again at once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = unauthorized.log();
    assert_eq!(log.matches("401 Unauthorized").count(), 1, "log:\n{log}");
    let h = health(&client, &unauthorized.url).await;
    assert_eq!(
        h["prefect"]["backlog"].as_u64(),
        Some(backlog),
        "{}",
        h["prefect"]
    );
    shown.push(h.to_string());
    shown.push(log);
    drop(unauthorized);

    let right = Daemon::start_with(
        free_port(),
        &lab,
        store,
        dir.path(),
        &flags(&["--ca-cert", ca_flag, "--prefect-auth", AUTH]),
    )
    .await;
    wait_delivered(&client, &right, Duration::from_secs(120)).await;
    let (user, pass) = AUTH.split_once(':').unwrap();
    let mut auth_header = reqwest::header::HeaderMap::new();
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{user}:{pass}"),
    );
    auth_header.insert(
        reqwest::header::AUTHORIZATION,
        format!("Basic {basic}").parse().unwrap(),
    );
    let reader = Prefect {
        client: reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
            .default_headers(auth_header)
            .build()
            .unwrap(),
        api: api.clone(),
    };
    check_in_prefect(&reader, "tls-holder", "tls", 3).await;
    shown.push(health(&client, &right.url).await.to_string());
    shown.push(right.log());
    for text in &shown {
        assert!(!text.contains(pass), "the auth string shows:\n{text}");
    }
}
