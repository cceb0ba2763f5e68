//! Notifications against a local webhook receiver standing in for Slack and Feishu.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use leased::api::{CaseOutcome, ChannelStatus, Run, RunCase, RunState};
use leased::config::{NotifyConfig, NotifyOn};
use leased::notify::{Notifier, RetryPolicy, feishu_sign};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "test-secret";

/// How the receiver answers on one path.
#[derive(Default, Clone)]
struct Behaviour {
    /// Answer 500 to this many requests first.
    fail_first: u32,
    /// Answer Feishu's code 19021 to this many requests first.
    code_first: u32,
    /// Wait for the gate to open before answering.
    gated: bool,
}

#[derive(Default)]
struct Recorded {
    /// Every request that arrived: (channel, body), in order of arrival.
    arrived: Vec<(String, Value)>,
    /// Requests answered with success.
    accepted: Vec<(String, Value)>,
    slack: Behaviour,
    feishu: Behaviour,
}

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    rec: Arc<Mutex<Recorded>>,
    gate: watch::Sender<bool>,
}

async fn hook(
    State(r): State<Receiver>,
    Path(channel): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).expect("JSON body");
    let behaviour = {
        let mut rec = r.rec.lock().unwrap();
        rec.arrived.push((channel.clone(), body.clone()));
        let b = if channel == "slack" {
            &mut rec.slack
        } else {
            &mut rec.feishu
        };
        let current = b.clone();
        b.fail_first = b.fail_first.saturating_sub(1);
        if current.fail_first == 0 {
            b.code_first = b.code_first.saturating_sub(1);
        }
        current
    };
    if behaviour.gated {
        let mut open = r.gate.subscribe();
        let _ = open.wait_for(|o| *o).await;
    }
    if behaviour.fail_first > 0 {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    if channel == "feishu" {
        if behaviour.code_first > 0 {
            return axum::Json(json!({"code": 19021, "msg": "sign match fail"})).into_response();
        }
        r.rec.lock().unwrap().accepted.push((channel, body));
        return axum::Json(json!({"code": 0, "msg": "success", "data": {}})).into_response();
    }
    r.rec.lock().unwrap().accepted.push((channel, body));
    "ok".into_response()
}

impl Receiver {
    async fn start(slack: Behaviour, feishu: Behaviour) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (gate, _) = watch::channel(false);
        let r = Receiver {
            addr: listener.local_addr().unwrap(),
            rec: Arc::new(Mutex::new(Recorded {
                slack,
                feishu,
                ..Recorded::default()
            })),
            gate,
        };
        let app = Router::new()
            .route("/hook/{channel}", post(hook))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    fn config(&self, on: NotifyOn) -> NotifyConfig {
        NotifyConfig {
            slack_webhook_url: Some(format!("http://{}/hook/slack", self.addr)),
            feishu_webhook_url: Some(format!("http://{}/hook/feishu", self.addr)),
            feishu_secret: Some(SECRET.into()),
            on,
            long_wait: Some(Duration::from_secs(600)),
        }
    }

    fn accepted(&self, channel: &str) -> Vec<Value> {
        let rec = self.rec.lock().unwrap();
        rec.accepted
            .iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, b)| b.clone())
            .collect()
    }

    fn arrived(&self, channel: &str) -> usize {
        let rec = self.rec.lock().unwrap();
        rec.arrived.iter().filter(|(c, _)| c == channel).count()
    }

    fn open_gate(&self) {
        self.gate.send_replace(true);
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        backoff: leased::api::time::Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(40),
        ),
        request_timeout: Duration::from_secs(5),
        ..RetryPolicy::default()
    }
}

fn start(config: &NotifyConfig, policy: RetryPolicy) -> (Notifier, CancellationToken) {
    let notifier = Notifier::with_policy(config, reqwest::Client::new(), policy);
    let cancel = CancellationToken::new();
    notifier.start(cancel.clone());
    (notifier, cancel)
}

fn status(n: &Notifier, name: &str) -> ChannelStatus {
    n.status()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} channel"))
}

/// Waits (up to 60 s: a guard against a hang, not a speed check) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn run(id: &str, state: RunState) -> Run {
    let case = |name: &str, outcome| RunCase {
        name: name.into(),
        outcome,
        ..RunCase::default()
    };
    Run {
        id: id.into(),
        board_id: "imx8-07".into(),
        family: "imx8".into(),
        location: "lab-a".into(),
        holder: "alice".into(),
        binary: "./boot_test".into(),
        args: vec!["--fast".into()],
        state,
        exit_code: Some(if state == RunState::Completed { 0 } else { 3 }),
        created_at_ms: 1_000,
        started_at_ms: Some(2_000),
        ended_at_ms: Some(2_000 + 83_000),
        cases: vec![
            case("a", CaseOutcome::Pass),
            case("b", CaseOutcome::Pass),
            case("c", CaseOutcome::Fail),
            case("d", CaseOutcome::Skip),
        ],
        ..Run::default()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn feishu_signature_matches_the_reference_vector() {
    assert_eq!(
        feishu_sign(1599360473, "demo-secret"),
        "3/MaVZ8JLIy4TUG+7KSFJqvUkTKd+HWY8g+56DZWq8s="
    );
}

#[tokio::test]
async fn run_ended_reaches_slack_and_feishu() {
    let r = Receiver::start(Behaviour::default(), Behaviour::default()).await;
    let (n, _cancel) = start(&r.config(NotifyOn::Failures), fast());
    let link = "http://prefect.local/runs/flow-run/42";
    n.run_ended(&run("run-0001", RunState::Failed), Some(link.into()));
    until("both delivered", || {
        r.accepted("slack").len() == 1 && r.accepted("feishu").len() == 1
    })
    .await;

    let slack = &r.accepted("slack")[0];
    let text = slack["text"].as_str().unwrap();
    for want in [
        "run-0001",
        "imx8-07",
        "imx8",
        "failed",
        "exit code 3",
        "alice",
        "./boot_test --fast",
        "1m 23s",
        "2 passed, 1 failed, 1 skipped",
        link,
    ] {
        assert!(text.contains(want), "slack text lacks {want:?}: {text}");
    }
    let blocks = serde_json::to_string(&slack["blocks"]).unwrap();
    assert!(slack["blocks"].as_array().is_some_and(|b| !b.is_empty()));
    assert!(blocks.contains(&format!("<{link}|")), "{blocks}");
    assert!(blocks.contains("run-0001") && blocks.contains("imx8-07"));

    let feishu = &r.accepted("feishu")[0];
    assert_eq!(feishu["msg_type"], "post");
    let post = &feishu["content"]["post"]["zh_cn"];
    assert!(post["title"].as_str().unwrap().contains("run-0001"));
    let content = serde_json::to_string(&post["content"]).unwrap();
    for want in [
        "imx8-07",
        "alice",
        "failed",
        "2 passed, 1 failed, 1 skipped",
    ] {
        assert!(content.contains(want), "feishu lacks {want:?}: {content}");
    }
    assert!(
        content.contains(&format!("\"href\":\"{link}\"")),
        "{content}"
    );

    // The signature verifies against the timestamp it came with, which is current.
    let ts: i64 = feishu["timestamp"].as_str().unwrap().parse().unwrap();
    assert!((unix_now() - ts).abs() <= 5, "timestamp {ts} is not now");
    assert_eq!(
        feishu["sign"].as_str().unwrap(),
        feishu_sign(ts as u64, SECRET)
    );

    let st = n.status();
    assert_eq!(
        st.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["slack", "feishu"]
    );
    for s in st {
        assert_eq!((s.sent, s.failed, s.pending), (1, 0, 0), "{s:?}");
        assert_eq!(s.last_error, None);
    }
}

#[tokio::test]
async fn feishu_without_a_secret_is_unsigned() {
    let r = Receiver::start(Behaviour::default(), Behaviour::default()).await;
    let mut config = r.config(NotifyOn::All);
    config.slack_webhook_url = None;
    config.feishu_secret = None;
    let (n, _cancel) = start(&config, fast());
    n.run_ended(&run("run-ok", RunState::Completed), None);
    until("delivered", || r.accepted("feishu").len() == 1).await;
    let body = &r.accepted("feishu")[0];
    assert!(body.get("sign").is_none() && body.get("timestamp").is_none());
    assert_eq!(n.status().len(), 1);
    assert_eq!(n.status()[0].name, "feishu");
}

#[tokio::test]
async fn failures_only_skips_passing_runs() {
    let r = Receiver::start(Behaviour::default(), Behaviour::default()).await;
    let (n, _cancel) = start(&r.config(NotifyOn::Failures), fast());
    n.run_ended(&run("run-pass", RunState::Completed), None);
    n.run_ended(&run("run-cancel", RunState::Cancelled), None);
    n.run_ended(&run("run-going", RunState::Running), None);
    n.run_ended(&run("run-fail", RunState::TimedOut), None);
    until("the failure delivered", || {
        r.accepted("slack").len() == 1 && r.accepted("feishu").len() == 1
    })
    .await;
    let slack = r.accepted("slack");
    assert!(slack[0]["text"].as_str().unwrap().contains("run-fail"));
    assert!(slack[0]["text"].as_str().unwrap().contains("timed_out"));
    assert_eq!(r.arrived("slack"), 1);
    assert_eq!(r.arrived("feishu"), 1);
    for s in n.status() {
        assert_eq!((s.sent, s.failed, s.pending), (1, 0, 0), "{s:?}");
    }
}

#[tokio::test]
async fn all_and_never() {
    let r = Receiver::start(Behaviour::default(), Behaviour::default()).await;
    let mut config = r.config(NotifyOn::All);
    config.feishu_webhook_url = None;
    let (all, _c1) = start(&config, fast());
    config.on = NotifyOn::Never;
    let (never, _c2) = start(&config, fast());
    never.run_ended(&run("run-never", RunState::Crashed), None);
    all.run_ended(&run("run-all", RunState::Completed), None);
    until("delivered", || r.accepted("slack").len() == 1).await;
    // Never still sends long waits.
    never.long_wait("t-1", "imx8", "bob", Duration::from_secs(700), 2);
    until("long wait delivered", || r.accepted("slack").len() == 2).await;
    let slack = r.accepted("slack");
    assert!(slack[0]["text"].as_str().unwrap().contains("run-all"));
    assert!(slack[0]["text"].as_str().unwrap().contains("completed"));
    assert!(slack[1]["text"].as_str().unwrap().contains("t-1"));
}

#[tokio::test]
async fn retries_after_server_errors_then_succeeds() {
    let failing = Behaviour {
        fail_first: 2,
        ..Behaviour::default()
    };
    let coded = Behaviour {
        code_first: 2,
        ..Behaviour::default()
    };
    let r = Receiver::start(failing, coded).await;
    let (n, _cancel) = start(&r.config(NotifyOn::All), fast());
    n.run_ended(&run("run-retry", RunState::Failed), None);
    until("delivered after retries", || {
        r.accepted("slack").len() == 1 && r.accepted("feishu").len() == 1
    })
    .await;
    assert_eq!(r.arrived("slack"), 3);
    assert_eq!(r.arrived("feishu"), 3);
    until("counted", || n.status().iter().all(|s| s.sent == 1)).await;
    for s in n.status() {
        assert_eq!((s.sent, s.failed, s.pending), (1, 0, 0), "{s:?}");
    }
    // Every Feishu try is signed afresh and verifies.
    let rec = r.rec.lock().unwrap();
    for (_, body) in rec.arrived.iter().filter(|(c, _)| c == "feishu") {
        let ts: u64 = body["timestamp"].as_str().unwrap().parse().unwrap();
        assert_eq!(body["sign"].as_str().unwrap(), feishu_sign(ts, SECRET));
    }
}

#[tokio::test]
async fn gives_up_after_the_retries() {
    let failing = Behaviour {
        fail_first: u32::MAX,
        ..Behaviour::default()
    };
    let coded = Behaviour {
        code_first: u32::MAX,
        ..Behaviour::default()
    };
    let r = Receiver::start(failing, coded).await;
    let (n, _cancel) = start(&r.config(NotifyOn::All), fast());
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    n.run_ended(&run("run-doomed", RunState::Failed), None);
    until("given up", || n.status().iter().all(|s| s.failed == 1)).await;
    assert_eq!(r.arrived("slack"), 3);
    assert_eq!(r.arrived("feishu"), 3);
    let slack = status(&n, "slack");
    assert_eq!((slack.sent, slack.pending), (0, 0));
    let err = slack.last_error.unwrap();
    assert!(err.contains("500"), "{err}");
    assert!(slack.last_error_ms.unwrap() >= before);
    let feishu = status(&n, "feishu");
    assert_eq!((feishu.sent, feishu.pending), (0, 0));
    assert!(feishu.last_error.unwrap().contains("19021"));
}

#[tokio::test]
async fn unreachable_channel_error_names_the_origin_never_the_path() {
    // A port nothing listens on.
    let port = socv_testkit::free_port();
    let config = NotifyConfig {
        slack_webhook_url: Some(format!(
            "http://127.0.0.1:{port}/services/T0/B0/sEcReTtOkEn"
        )),
        ..NotifyConfig::default()
    };
    let (n, _cancel) = start(&config, fast());
    n.run_ended(&run("run-x", RunState::Crashed), None);
    until("given up", || status(&n, "slack").failed == 1).await;
    let err = status(&n, "slack").last_error.unwrap();
    assert!(!err.contains("sEcReTtOkEn"), "{err}");
    assert!(!err.contains("/services/"), "no part of the path: {err}");
    assert!(
        err.starts_with(&format!("http://127.0.0.1:{port}: connection refused")),
        "names the origin and the cause: {err}"
    );
}

#[tokio::test]
async fn a_slow_receiver_never_blocks_the_caller_nor_the_other_channel() {
    let held = Behaviour {
        gated: true,
        ..Behaviour::default()
    };
    let r = Receiver::start(held, Behaviour::default()).await;
    let (n, _cancel) = start(&r.config(NotifyOn::All), fast());
    n.run_ended(&run("run-1", RunState::Failed), None);
    // Slack holds the request; the call has returned and Feishu gets its copy regardless.
    until("slack request in flight", || r.arrived("slack") == 1).await;
    until("feishu delivered", || r.accepted("feishu").len() == 1).await;
    assert_eq!(status(&n, "slack").pending, 1);
    assert!(r.accepted("slack").is_empty());

    // A notification behind the held one is not stuck behind it.
    n.run_ended(&run("run-2", RunState::Failed), None);
    n.long_wait("t-9", "imx8-07", "carol", Duration::from_secs(900), 1);
    until("both later ones in flight", || r.arrived("slack") == 3).await;
    until("feishu has all", || r.accepted("feishu").len() == 3).await;
    assert_eq!(status(&n, "slack").pending, 3);
    assert!(r.accepted("slack").is_empty());

    r.open_gate();
    until("slack delivered", || status(&n, "slack").sent == 3).await;
    assert_eq!(status(&n, "slack").pending, 0);
    assert_eq!(r.accepted("slack").len(), 3);
}

#[tokio::test]
async fn queue_full_is_counted_as_failed() {
    let r = Receiver::start(Behaviour::default(), Behaviour::default()).await;
    let mut config = r.config(NotifyOn::All);
    config.feishu_webhook_url = None;
    let policy = RetryPolicy {
        queue_capacity: 1,
        ..fast()
    };
    // Not started yet: the queue fills.
    let n = Notifier::with_policy(&config, reqwest::Client::new(), policy);
    n.run_ended(&run("run-a", RunState::Failed), None);
    n.run_ended(&run("run-b", RunState::Failed), None);
    let s = status(&n, "slack");
    assert_eq!((s.sent, s.failed, s.pending), (0, 1, 1));
    assert_eq!(s.last_error.as_deref(), Some("queue full"));
    let cancel = CancellationToken::new();
    let done = n.start(cancel.clone());
    until("queued one delivered", || status(&n, "slack").sent == 1).await;
    assert_eq!(r.accepted("slack").len(), 1);
    assert!(
        r.accepted("slack")[0]["text"]
            .as_str()
            .unwrap()
            .contains("run-a")
    );
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(60), done)
        .await
        .expect("stops on cancel")
        .unwrap();
}

#[tokio::test]
async fn long_wait_payload() {
    let r = Receiver::start(Behaviour::default(), Behaviour::default()).await;
    let (n, _cancel) = start(&r.config(NotifyOn::Failures), fast());
    assert_eq!(n.long_wait_after(), Some(Duration::from_secs(600)));
    n.long_wait("tkt-77", "imx8", "dave", Duration::from_secs(725), 4);
    until("delivered", || {
        r.accepted("slack").len() == 1 && r.accepted("feishu").len() == 1
    })
    .await;
    let slack = &r.accepted("slack")[0];
    let text = slack["text"].as_str().unwrap();
    for want in ["tkt-77", "imx8", "dave", "12m 5s", "position 4"] {
        assert!(text.contains(want), "slack text lacks {want:?}: {text}");
    }
    assert!(slack["blocks"].as_array().is_some_and(|b| !b.is_empty()));
    let feishu = &r.accepted("feishu")[0];
    assert_eq!(feishu["msg_type"], "text");
    let text = feishu["content"]["text"].as_str().unwrap();
    for want in ["tkt-77", "imx8", "dave", "12m 5s", "position 4"] {
        assert!(text.contains(want), "feishu text lacks {want:?}: {text}");
    }
    let ts: u64 = feishu["timestamp"].as_str().unwrap().parse().unwrap();
    assert_eq!(feishu["sign"].as_str().unwrap(), feishu_sign(ts, SECRET));
}
