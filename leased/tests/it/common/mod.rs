//! Shared pieces of the daemon-level tests: a leased process and a small HTTP client.

pub mod backends;

use leased::api;
use serde_json::Value;
use socv_testkit::{LabFile, free_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// API tokens of the router-level tests: users alice and bob, admin root.
pub const TOKENS: &str = r#"
[[tokens]]
name = "alice"
token = "alice-token-0123456789"

[[tokens]]
name = "bob"
token = "bob-token-0123456789ab"

[[tokens]]
name = "root"
token = "root-token-0123456789a"
role = "admin"
"#;

/// Writes a lab of `n` boards of one family on loopback addresses nobody listens on.
pub fn write_lab(dir: &Path, family: &str, n: usize) -> PathBuf {
    LabFile::new()
        .family(family, n, 20000, |board| board)
        .write(dir.join(format!("boards-{family}-{n}.yaml")))
}

/// A leased process, killed on drop.
pub struct Daemon {
    pub child: Child,
    pub url: String,
    pub port: u16,
    log: PathBuf,
}

impl Daemon {
    /// Starts leased with `--boards` and `--store`, waits until it answers.
    pub async fn start(boards: &Path, store: &str, log_dir: &Path) -> Daemon {
        Self::start_on(free_port(), boards, store, log_dir).await
    }

    pub async fn start_on(port: u16, boards: &Path, store: &str, log_dir: &Path) -> Daemon {
        Self::start_with(port, boards, store, log_dir, &[]).await
    }

    /// Like [`Daemon::start_on`], with more flags (Prefect, notifications).
    pub async fn start_with(
        port: u16,
        boards: &Path,
        store: &str,
        log_dir: &Path,
        extra: &[String],
    ) -> Daemon {
        Self::spawn(port, boards, store, log_dir, extra, None, &[]).await
    }

    /// Like [`Daemon::start_with`], with environment variables set for leased (a secret that
    /// must not show, a log level).
    pub async fn start_env(
        boards: &Path,
        store: &str,
        log_dir: &Path,
        extra: &[String],
        env: &[(&str, &str)],
    ) -> Daemon {
        Self::spawn(free_port(), boards, store, log_dir, extra, None, env).await
    }

    /// Like [`Daemon::start_with`] for a daemon that serves https (`extra` holds its
    /// `--tls-cert` and `--tls-key`) with a certificate of the CA `ca_pem`.
    pub async fn start_https(
        port: u16,
        boards: &Path,
        store: &str,
        log_dir: &Path,
        extra: &[String],
        ca_pem: &str,
    ) -> Daemon {
        Self::spawn(port, boards, store, log_dir, extra, Some(ca_pem), &[]).await
    }

    async fn spawn(
        port: u16,
        boards: &Path,
        store: &str,
        log_dir: &Path,
        extra: &[String],
        ca_pem: Option<&str>,
        env: &[(&str, &str)],
    ) -> Daemon {
        let log = log_dir.join(format!("leased-{port}.log"));
        // Appends: a restarted daemon keeps the log of the one before it.
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("creating the daemon log");
        let child = Command::new(env!("CARGO_BIN_EXE_leased"))
            .args(extra)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--boards")
            .arg(boards)
            .arg("--store")
            .arg(store)
            .arg("--config")
            .arg("/dev/null")
            .env_remove("REDIS_URL")
            .env_remove("PREFECT_API_URL")
            .env_remove("PREFECT_API_AUTH_STRING")
            .env_remove("PREFECT_API_KEY")
            .env_remove("SLACK_WEBHOOK_URL")
            .env_remove("FEISHU_WEBHOOK_URL")
            .env_remove("FEISHU_WEBHOOK_SECRET")
            .env_remove("FEISHU_SECRET")
            .env_remove("LEASED_CA_CERT")
            .env_remove("LEASED_TLS_CERT")
            .env_remove("LEASED_TLS_KEY")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("starting leased");
        let scheme = if ca_pem.is_some() { "https" } else { "http" };
        let d = Daemon {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
            port,
            log,
        };
        d.wait_ready(client_trusting(ca_pem)).await;
        d
    }

    async fn wait_ready(&self, client: reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(r) = client
                .get(format!("{}/api/v1/health", self.url))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "leased did not answer within 10 s; its log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A client that trusts the CA `ca_pem` besides the system's roots.
pub fn client_trusting(ca_pem: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem.as_bytes()).expect("the CA PEM") {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().expect("an https client")
}

/// A JSON answer.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// Calls leased as `who` (the claimed holder; the test daemons run without tokens).
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    who: &str,
    body: Option<Value>,
) -> Result<Answer, reqwest::Error> {
    let mut req = client.request(method, url).header(api::HOLDER_HEADER, who);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let bytes = res.bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer { status, body })
}
