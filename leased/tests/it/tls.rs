//! TLS against real servers: every failure a lab meets (an untrusted certificate, another
//! name's, an expired one, plain http on an https port, a refused connection, a timeout, 401 and
//! 403) is told apart and worded with its fix; leased serves https and re-reads its certificate
//! on SIGHUP without dropping a lease or a connection in flight; Prefect API keys go as bearer
//! tokens and never show.
//!
//! The CA and certificates are made afresh by each test (`socv-testkit`); the https servers are
//! axum on rustls, bound to 127.0.0.1.

use crate::common::{Daemon, call, client_trusting, write_lab};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use leased::config::PrefectConfig;
use leased::prefect::client::RetryPolicy;
use leased::prefect::{PrefectClient, PrefectError};
use leased::tls::{CaBundle, Failure};
use reqwest::Method;
use serde_json::{Value, json};
use socv_testkit::free_port;
use socv_testkit::{ServerCert, TestCa, serve_https};
use std::time::Duration;

/// An https server on 127.0.0.1 with `cert`: `/ok` answers 200, `/401` and `/403` those, and
/// `/api/admin/version` answers like Prefect only to `Authorization: Bearer pnu_test-key`.
async fn https_server(cert: &ServerCert) -> String {
    let router = axum::Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/401", get(|| async { StatusCode::UNAUTHORIZED }))
        .route("/403", get(|| async { StatusCode::FORBIDDEN }))
        .route(
            "/api/admin/version",
            get(|headers: HeaderMap| async move {
                let bearer = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match bearer.as_deref() {
                    Some("Bearer pnu_test-key") => (StatusCode::OK, "\"3.9.1\""),
                    Some(_) => (StatusCode::FORBIDDEN, r#"{"detail":"forbidden"}"#),
                    None => (StatusCode::UNAUTHORIZED, r#"{"detail":"Unauthorized"}"#),
                }
            }),
        );
    format!("https://{}", serve_https(router, cert).await)
}

fn ca_bundle(ca: &TestCa, dir: &std::path::Path) -> CaBundle {
    CaBundle::load(&ca.write_pem(dir, "ca.pem"), "ca_cert (LEASED_CA_CERT)").unwrap()
}

async fn failure_of(client: &reqwest::Client, url: &str) -> Failure {
    match client.get(url).send().await {
        Ok(r) => panic!("{url} answered {}", r.status()),
        Err(e) => Failure::of(&e),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_tls_and_network_failure_is_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("socv test lab CA");
    let trusting = leased::tls::client_builder(Some(&ca_bundle(&ca, dir.path())))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let system_only = leased::tls::client_builder(None).build().unwrap();

    let good = https_server(&ca.issue(&["127.0.0.1", "localhost"])).await;
    let r = trusting.get(format!("{good}/ok")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok", "the lab CA is trusted");
    assert_eq!(
        failure_of(&system_only, &format!("{good}/ok")).await,
        Failure::Untrusted,
        "a private CA is not among the system's roots"
    );
    let fix = Failure::Untrusted.fix("ca_cert (LEASED_CA_CERT)").unwrap();
    assert!(fix.contains("ca_cert (LEASED_CA_CERT)"), "{fix}");

    let other = https_server(&ca.issue(&["other.example"])).await;
    match failure_of(&trusting, &format!("{other}/ok")).await {
        Failure::NameMismatch { presented, .. } => {
            assert_eq!(presented, ["other.example"], "the names it does carry")
        }
        f => panic!("expected a name mismatch, got {f:?}"),
    }

    let expired = https_server(&ca.issue_expired(&["127.0.0.1"])).await;
    let f = failure_of(&trusting, &format!("{expired}/ok")).await;
    assert!(matches!(f, Failure::Expired { .. }), "{f:?}");
    assert!(f.to_string().contains("expired"), "{f}");

    // Plain http where https is expected.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_addr = plain.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            plain,
            axum::Router::new().route("/ok", get(|| async { "ok" })),
        )
        .await
        .unwrap()
    });
    let f = failure_of(&trusting, &format!("https://{plain_addr}/ok")).await;
    assert!(matches!(f, Failure::Handshake(_)), "{f:?}");
    assert!(f.fix("x").unwrap().contains("plain http"), "{f:?}");

    let closed = free_port();
    assert_eq!(
        failure_of(&trusting, &format!("https://127.0.0.1:{closed}/ok")).await,
        Failure::Refused
    );

    // Accepts, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let impatient = leased::tls::client_builder(None)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    assert_eq!(
        failure_of(&impatient, &format!("https://{silent_addr}/ok")).await,
        Failure::Timeout
    );
    drop(silent);

    for (path, code) in [("/401", 401), ("/403", 403)] {
        let r = trusting.get(format!("{good}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), code);
    }
}

fn prefect_at(url: &str, api_key: Option<&str>) -> PrefectConfig {
    PrefectConfig {
        api_url: format!("{url}/api"),
        api_key: api_key.map(str::to_owned),
        ..PrefectConfig::default()
    }
}

fn no_retry() -> RetryPolicy {
    RetryPolicy {
        tries: 1,
        backoff: leased::api::time::Backoff::new(
            Duration::from_millis(1),
            Duration::from_millis(1),
        ),
    }
}

/// The Prefect client's errors: a certificate problem and refused credentials are
/// configuration errors that name the setting, and the key never shows.
#[tokio::test(flavor = "multi_thread")]
async fn prefect_errors_name_the_setting_and_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("socv test lab CA");
    let bundle = ca_bundle(&ca, dir.path());
    let url = https_server(&ca.issue(&["127.0.0.1"])).await;

    let keyed = PrefectClient::with_ca(&prefect_at(&url, Some("pnu_test-key")), Some(&bundle))
        .unwrap()
        .with_retry(no_retry());
    assert_eq!(
        keyed.health().await.unwrap(),
        "3.9.1",
        "the key went as a bearer token"
    );

    let untrusted = PrefectClient::new(&prefect_at(&url, Some("pnu_test-key")))
        .unwrap()
        .with_retry(no_retry());
    let e = untrusted.health().await.unwrap_err();
    assert!(matches!(e, PrefectError::Tls { .. }), "{e:?}");
    assert!(e.is_configuration() && !e.is_retryable(), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("not trusted"), "{text}");
    assert!(text.contains("ca_cert (LEASED_CA_CERT)"), "{text}");

    let keyless = PrefectClient::with_ca(&prefect_at(&url, None), Some(&bundle))
        .unwrap()
        .with_retry(no_retry());
    let e = keyless.health().await.unwrap_err();
    assert!(matches!(e, PrefectError::Unauthorized { .. }), "{e:?}");
    assert!(e.to_string().contains("PREFECT_API_KEY"), "{e}");

    let wrong = PrefectClient::with_ca(&prefect_at(&url, Some("pnu_wrong")), Some(&bundle))
        .unwrap()
        .with_retry(no_retry());
    let e = wrong.health().await.unwrap_err();
    assert!(matches!(e, PrefectError::Forbidden { .. }), "{e:?}");
    assert!(e.is_configuration(), "{e:?}");
    for shown in [
        e.to_string(),
        format!("{wrong:?}"),
        format!("{:?}", prefect_at(&url, Some("pnu_wrong"))),
    ] {
        assert!(!shown.contains("pnu_wrong"), "the key shows: {shown}");
    }

    let closed = PrefectClient::new(&prefect_at(
        &format!("https://127.0.0.1:{}", free_port()),
        None,
    ))
    .unwrap()
    .with_retry(no_retry());
    let e = closed.health().await.unwrap_err();
    assert!(
        e.is_retryable(),
        "a refused connection is worth retrying: {e:?}"
    );
    assert!(e.to_string().contains("connection refused"), "{e}");
}

async fn lease(client: &reqwest::Client, url: &str, who: &str, wait_s: u64) -> (u16, Value) {
    let a = call(
        client,
        Method::POST,
        &format!("{url}/api/v1/lease"),
        who,
        Some(json!({"board_family": "socA", "wait_s": wait_s})),
    )
    .await
    .unwrap_or_else(|e| panic!("lease as {who}: {e}"));
    (a.status, a.body)
}

fn hangup(daemon: &Daemon) {
    let pid = rustix::process::Pid::from_child(&daemon.child);
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP to leased");
}

/// Waits until a fresh connection trusting only `ca_pem` is served (the new certificate is in).
async fn wait_served_for(url: &str, ca_pem: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = client_trusting(Some(ca_pem));
        if fresh
            .get(format!("{url}/api/v1/health"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was not served within 10 s of SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// leased serves https with its certificate; SIGHUP brings in a new one (here from another CA,
/// so that it shows) while a held lease and a long poll in flight carry on; a bad file on
/// SIGHUP keeps the certificate served so far.
#[tokio::test(flavor = "multi_thread")]
async fn leased_serves_https_and_rotates_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let lab = write_lab(dir.path(), "socA", 1);
    let old_ca = TestCa::new("socv old CA");
    let new_ca = TestCa::new("socv new CA");
    let (cert, key) = old_ca
        .issue(&["127.0.0.1", "localhost"])
        .write(dir.path(), "leased");
    let tls_flags = vec![
        "--tls-cert".to_string(),
        cert.display().to_string(),
        "--tls-key".to_string(),
        key.display().to_string(),
    ];
    let store = dir.path().join("leased.redb");
    let daemon = Daemon::start_https(
        free_port(),
        &lab,
        store.to_str().unwrap(),
        dir.path(),
        &tls_flags,
        old_ca.pem(),
    )
    .await;
    assert!(daemon.url.starts_with("https://"), "{}", daemon.url);
    let old = client_trusting(Some(old_ca.pem()));

    // Plain http to the https port gets nothing useful.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/v1/health", daemon.port))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plain http answered: {plain:?}");
    let untrusting = client_trusting(None);
    let e = untrusting
        .get(format!("{}/api/v1/health", daemon.url))
        .send()
        .await
        .unwrap_err();
    assert_eq!(Failure::of(&e), Failure::Untrusted);

    let (status, held) = lease(&old, &daemon.url, "alice@lab", 0).await;
    assert_eq!(status, 201, "{held}");
    let (status, ticket) = lease(&old, &daemon.url, "bob@lab", 60).await;
    assert_eq!(status, 202, "{ticket}");
    let ticket = ticket["ticket"].as_str().unwrap().to_string();
    // Bob's long poll stays open across the rotation, on a connection of the old certificate.
    let poll = {
        let (old, url) = (old.clone(), daemon.url.clone());
        tokio::spawn(async move {
            call(
                &old,
                Method::GET,
                &format!("{url}/api/v1/queue/{ticket}?wait_s=20"),
                "bob@lab",
                None,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    new_ca
        .issue(&["127.0.0.1", "localhost"])
        .write(dir.path(), "leased");
    hangup(&daemon);
    wait_served_for(&daemon.url, new_ca.pem()).await;
    let new = client_trusting(Some(new_ca.pem()));
    let e = client_trusting(Some(old_ca.pem()))
        .get(format!("{}/api/v1/health", daemon.url))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        Failure::of(&e),
        Failure::Untrusted,
        "new handshakes get the new certificate"
    );

    let lease_id = held["id"].as_str().unwrap();
    let read = call(
        &new,
        Method::GET,
        &format!("{}/api/v1/lease/{lease_id}", daemon.url),
        "alice@lab",
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        read.status, 200,
        "the lease outlived the rotation: {}",
        read.body
    );
    let released = call(
        &new,
        Method::DELETE,
        &format!("{}/api/v1/lease/{lease_id}", daemon.url),
        "alice@lab",
        None,
    )
    .await
    .unwrap();
    assert!(released.status < 300, "{}", released.body);
    let granted = tokio::time::timeout(Duration::from_secs(30), poll)
        .await
        .expect("the long poll answered")
        .unwrap()
        .expect("the long poll's connection survived the rotation");
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert_eq!(granted.body["state"], "granted", "{}", granted.body);

    // A broken file on the next SIGHUP: logged, and the current certificate stays.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    hangup(&daemon);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !daemon.log().contains("TLS certificate not reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no error logged for a bad certificate file; log:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(daemon.log().contains("leased.crt"), "{}", daemon.log());
    let r = client_trusting(Some(new_ca.pem()))
        .get(format!("{}/api/v1/health", daemon.url))
        .send()
        .await
        .expect("still served with the certificate of before");
    assert!(r.status().is_success());
}

/// Bad TLS settings stop leased at start with the file and what is wrong.
#[test]
fn bad_tls_files_are_refused_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let lab = write_lab(dir.path(), "socA", 1);
    let ca = TestCa::new("socv test lab CA");
    let (cert, key) = ca.issue(&["127.0.0.1"]).write(dir.path(), "good");
    let (_, other_key) = ca.issue(&["127.0.0.1"]).write(dir.path(), "other");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "nothing\n").unwrap();
    let leased = |args: &[&std::path::Path], names: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_leased"));
        cmd.arg("--boards")
            .arg(&lab)
            .arg("--store")
            .arg(dir.path().join("s.redb"))
            .arg("--config")
            .arg("/dev/null")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .env_remove("LEASED_CA_CERT");
        for (name, path) in names.iter().zip(args) {
            cmd.arg(name).arg(path);
        }
        let out = cmd.output().expect("running leased");
        assert!(!out.status.success(), "leased started with {names:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = leased(&[&cert, &other_key], &["--tls-cert", "--tls-key"]);
    assert!(err.contains("is not the key of the certificate"), "{err}");
    let err = leased(&[&garbage, &key], &["--tls-cert", "--tls-key"]);
    assert!(
        err.contains("tls_cert") && err.contains("garbage.pem"),
        "{err}"
    );
    let err = leased(&[&cert, &garbage], &["--tls-cert", "--tls-key"]);
    assert!(
        err.contains("tls_key") && err.contains("garbage.pem"),
        "{err}"
    );
    let err = leased(&[&garbage], &["--ca-cert"]);
    assert!(
        err.contains("ca_cert (LEASED_CA_CERT)") && err.contains("garbage.pem"),
        "{err}"
    );
    let err = leased(&[&cert], &["--tls-cert"]);
    assert!(err.contains("--tls-key"), "{err}");
}

/// leased with a Prefect API key, Slack and Feishu webhooks and a Feishu secret, all from the
/// environment as a unit file gives them, logging at debug level: a recorded run fails to
/// reach each of them (an https server of a CA leased was not given), and neither the log nor
/// the health answer holds the key, the webhooks' paths or the secret.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_show_in_leased_logs_or_health() {
    const KEY: &str = "pnu_secret-key-8d21c0";
    const SLACK_PATH: &str = "services/T0LAB/B0LAB/slack-secret-path-77aa";
    const FEISHU_TOKEN: &str = "feishu-hook-token-e41f";
    const FEISHU_SECRET: &str = "feishu-signing-secret-09bc";
    let dir = tempfile::tempdir().unwrap();
    let lab = write_lab(dir.path(), "socA", 1);
    let stranger = TestCa::new("a CA leased was not given");
    let url = https_server(&stranger.issue(&["127.0.0.1"])).await;
    let slack = format!("{url}/{SLACK_PATH}");
    let feishu = format!("{url}/open-apis/bot/v2/hook/{FEISHU_TOKEN}");
    let prefect = format!("{url}/api");
    let store = dir.path().join("leased.redb");
    let daemon = Daemon::start_env(
        &lab,
        store.to_str().unwrap(),
        dir.path(),
        &["--notify-on".into(), "all".into()],
        &[
            ("RUST_LOG", "debug"),
            ("PREFECT_API_URL", &prefect),
            ("PREFECT_API_KEY", KEY),
            ("SLACK_WEBHOOK_URL", &slack),
            ("FEISHU_WEBHOOK_URL", &feishu),
            ("FEISHU_SECRET", FEISHU_SECRET),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let (status, held) = lease(&client, &daemon.url, "ann@lab", 0).await;
    assert_eq!(status, 201, "{held}");
    let board = held["board_id"].as_str().unwrap();
    let runs = format!("{}/api/v1/runs", daemon.url);
    let start = json!({"id": "secret-run-1", "board_id": board, "binary": "./t.elf"});
    let a = call(&client, Method::POST, &runs, "ann@lab", Some(start))
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    let end = json!({"state": "failed", "exit_code": 1});
    let a = call(
        &client,
        Method::PATCH,
        &format!("{runs}/secret-run-1"),
        "ann@lab",
        Some(end),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let health = loop {
        let h = call(
            &client,
            Method::GET,
            &format!("{}/api/v1/health", daemon.url),
            "ann@lab",
            None,
        )
        .await
        .unwrap()
        .body;
        let failed = h["notifications"]
            .as_array()
            .is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["failed"] == 1));
        let prefect_said = h["prefect"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not trusted"));
        if failed && prefect_said {
            break h;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not yet failed: {h}\nlog:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = daemon.log();
    assert!(
        log.contains("not trusted"),
        "the failures are logged:\n{log}"
    );
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_leased"))
        .arg("--help")
        .env("PREFECT_API_KEY", KEY)
        .env("SLACK_WEBHOOK_URL", &slack)
        .env("FEISHU_SECRET", FEISHU_SECRET)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for text in [log, health.to_string(), help] {
        for secret in [KEY, SLACK_PATH, FEISHU_TOKEN, FEISHU_SECRET] {
            assert!(!text.contains(secret), "{secret} shows in:\n{text}");
        }
    }
}
