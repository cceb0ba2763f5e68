//! socv and the simulated lab over TLS: socv leases, runs and releases against a leased that
//! serves https with a certificate of the lab's own CA (`--ca-cert`, `SOCV_CA_CERT`), and says
//! what is wrong without it; a run's notifications reach https webhooks shaped like Slack's and
//! Feishu's, and a webhook whose certificate is not trusted is counted failed with the reason,
//! the run unaffected. No webhook path or secret shows in what socv prints.

use crate::support::simlab::{SimLeased, expect_code, script, stderr, stdout};
use axum::extract::{Path, State};
use axum::routing::post;
use leased::config::{NotifyConfig, NotifyOn, TlsFiles};
use serde_json::Value;
use socv::exit_codes;
use socv_testkit::{TestCa, serve_https};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SLACK_PATH: &str = "services/T0SOCV/B0SOCV/slack-path-secret-93f1";
const FEISHU_TOKEN: &str = "feishu-hook-token-5b2e";
const FEISHU_SECRET: &str = "feishu-signing-secret-c7d4";

/// An https lab: the CA's file and the daemon's certificate files, in `dir`.
fn https_lab(dir: &std::path::Path, ca: &TestCa) -> SimLeased {
    let ca_file = ca.write_pem(dir, "lab-ca.pem");
    let (cert, key) = ca.issue(&["127.0.0.1", "localhost"]).write(dir, "leased");
    SimLeased::start_https(&["socA:1"], ca_file, move |c| {
        c.tls = Some(TlsFiles { cert, key })
    })
}

#[test]
fn socv_leases_runs_and_releases_over_https_with_the_lab_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("socv lab CA");
    let lab = https_lab(dir.path(), &ca);
    assert!(lab.url.starts_with("https://"), "{}", lab.url);

    let boards = lab.socv("ann", &["boards"]);
    expect_code(&boards, 0);
    assert!(stdout(&boards).contains("soca-001"), "{}", stdout(&boards));

    let test = script(&lab, "hello.sh", "echo hello over tls; exit 3");
    let run = lab.socv("ann", &["run", "socA", test.to_str().unwrap()]);
    expect_code(&run, 3);
    assert!(stdout(&run).contains("hello over tls"), "{}", stdout(&run));

    // The flag instead of the environment.
    let ca_file = lab.ca_cert.clone().unwrap();
    let out = lab
        .command(
            "ann",
            &["--ca-cert", ca_file.to_str().unwrap(), "lease", "socA"],
        )
        .env_remove("SOCV_CA_CERT")
        .output()
        .unwrap();
    expect_code(&out, 0);
    let out = lab
        .command(
            "ann",
            &["--ca-cert", ca_file.to_str().unwrap(), "leases", "--json"],
        )
        .env_remove("SOCV_CA_CERT")
        .output()
        .unwrap();
    expect_code(&out, 0);
    let leases: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(leases.len(), 1, "{leases:?}");
    let board = leases[0]["board_id"].as_str().unwrap();
    expect_code(&lab.socv("ann", &["release", board]), 0);

    // Without the CA: not trusted, the fix, exit 6.
    let out = lab
        .command("ann", &["boards"])
        .env_remove("SOCV_CA_CERT")
        .output()
        .unwrap();
    expect_code(&out, exit_codes::DAEMON_UNAVAILABLE);
    let err = stderr(&out);
    assert!(err.contains("not trusted"), "{err}");
    assert!(err.contains("--ca-cert"), "{err}");
    assert!(err.contains(&lab.url), "names the daemon: {err}");

    // SSL_CERT_FILE, honoured as by other tools: it replaces the system's roots.
    let out = lab
        .command("ann", &["boards"])
        .env_remove("SOCV_CA_CERT")
        .env("SSL_CERT_FILE", &ca_file)
        .output()
        .unwrap();
    expect_code(&out, 0);

    // A CA file that is not one: a usage error naming the setting and the file.
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(&bogus, "no certificate here\n").unwrap();
    let out = lab
        .command("ann", &["boards"])
        .env("SOCV_CA_CERT", &bogus)
        .output()
        .unwrap();
    expect_code(&out, exit_codes::USAGE);
    assert!(stderr(&out).contains("bogus.pem"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ca-cert"), "{}", stderr(&out));
}

type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn hook(State(got): State<Received>, Path(path): Path<String>, body: String) -> String {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let feishu = path.starts_with("open-apis/");
    got.lock().unwrap().push((path, body));
    if feishu {
        r#"{"code":0,"msg":"success","data":{}}"#.into()
    } else {
        "ok".into()
    }
}

/// Slack- and Feishu-shaped webhooks over https with a certificate of `ca`, on a runtime of
/// their own; answers the base URL and what they receive.
fn webhooks(ca: &TestCa) -> (tokio::runtime::Runtime, String, Received) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let got = Received::default();
    let router = axum::Router::new()
        .route("/{*path}", post(hook))
        .with_state(got.clone());
    let cert = ca.issue(&["127.0.0.1"]);
    let addr = runtime.block_on(serve_https(router, &cert));
    (runtime, format!("https://{addr}"), got)
}

/// A lab whose leased notifies every run ending to the webhooks at `base`, trusting the CA in
/// `ca_file`, and runs `body` as a test through `socv run`, expecting `code`.
fn run_notified(
    base: &str,
    ca_file: &std::path::Path,
    body: &str,
    code: i32,
) -> (SimLeased, std::process::Output) {
    let notify = NotifyConfig {
        slack_webhook_url: Some(format!("{base}/{SLACK_PATH}")),
        feishu_webhook_url: Some(format!("{base}/open-apis/bot/v2/hook/{FEISHU_TOKEN}")),
        feishu_secret: Some(FEISHU_SECRET.into()),
        on: NotifyOn::All,
        long_wait: None,
    };
    let ca = ca_file.to_owned();
    let lab = SimLeased::start_with(&["socA:1"], move |c| {
        c.notify = notify;
        c.ca_cert = Some(ca);
    });
    let test = script(&lab, "test.sh", body);
    let run = lab.socv("ann", &["run", "socA", test.to_str().unwrap()]);
    expect_code(&run, code);
    (lab, run)
}

fn status_json(lab: &SimLeased) -> (Value, String) {
    let out = lab.socv("ann", &["status", "--json"]);
    expect_code(&out, 0);
    (serde_json::from_slice(&out.stdout).unwrap(), stdout(&out))
}

fn channel<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["notifications"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} channel in {status}"))
}

#[test]
fn a_runs_notifications_reach_https_webhooks_and_an_untrusted_one_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let lab_ca = TestCa::new("socv lab CA");
    let ca_file = lab_ca.write_pem(dir.path(), "lab-ca.pem");
    let (_trusted_rt, trusted, got) = webhooks(&lab_ca);
    let (lab, run) = run_notified(&trusted, &ca_file, "echo going red; exit 3", 3);

    let deadline = Instant::now() + Duration::from_secs(20);
    while got.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the webhooks got {:?}",
            got.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let received = got.lock().unwrap().clone();
    let slack = received
        .iter()
        .find(|(p, _)| p == SLACK_PATH)
        .expect("a Slack message");
    assert!(
        slack.1.to_string().contains("soca-001"),
        "Slack names the board: {}",
        slack.1
    );
    let feishu = received
        .iter()
        .find(|(p, _)| p.ends_with(FEISHU_TOKEN))
        .expect("a Feishu message");
    let ts: u64 = feishu.1["timestamp"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        feishu.1["sign"].as_str().unwrap(),
        leased::notify::feishu_sign(ts, FEISHU_SECRET),
        "the Feishu message is signed: {}",
        feishu.1
    );
    // The webhook has a message a moment before leased has its answer and counts it sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, shown) = loop {
        let (status, shown) = status_json(&lab);
        let both = ["slack", "feishu"]
            .iter()
            .all(|c| channel(&status, c)["sent"] == 1);
        if both || Instant::now() > deadline {
            break (status, shown);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(channel(&status, "slack")["sent"], 1, "{status}");
    assert_eq!(channel(&status, "feishu")["sent"], 1, "{status}");
    let human = stdout(&lab.socv("ann", &["status"]));
    for text in [stdout(&run), stderr(&run), shown, human] {
        for secret in [SLACK_PATH, FEISHU_TOKEN, FEISHU_SECRET] {
            assert!(!text.contains(secret), "{secret} shows in:\n{text}");
        }
    }
    drop(lab);

    // The same webhooks with a certificate of a CA leased does not know.
    let stranger = TestCa::new("a CA nobody gave leased");
    let (_untrusted_rt, untrusted, untrusted_got) = webhooks(&stranger);
    let (lab, _run) = run_notified(&untrusted, &ca_file, "echo fine; exit 0", 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let (status, shown) = status_json(&lab);
        if channel(&status, "slack")["failed"] == 1 && channel(&status, "feishu")["failed"] == 1 {
            for secret in [SLACK_PATH, FEISHU_TOKEN, FEISHU_SECRET] {
                assert!(!shown.contains(secret), "{secret} shows in:\n{shown}");
            }
            break status;
        }
        assert!(Instant::now() < deadline, "never counted failed: {status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for name in ["slack", "feishu"] {
        let error = channel(&status, name)["last_error"].as_str().unwrap();
        assert!(error.contains("not trusted"), "{name}: {error}");
        assert!(
            error.contains("ca_cert (LEASED_CA_CERT)"),
            "{name}: {error}"
        );
        assert!(
            error.contains(&untrusted),
            "{name} names the origin: {error}"
        );
        assert_eq!(channel(&status, name)["sent"], 0, "{status}");
    }
    assert!(untrusted_got.lock().unwrap().is_empty());
}
