//! A whole lab for end-to-end tests: the simulated boards and an in-process leased on an
//! embedded store, served from a thread of their own; `socv` runs as a real process against it.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SOCV: &str = env!("CARGO_BIN_EXE_socv");

pub struct SimLeased {
    pub url: String,
    pub pdu_url: String,
    pub boards_file: PathBuf,
    pub dir: tempfile::TempDir,
    /// The CA (PEM file) socv is given to trust an https leased (`SOCV_CA_CERT`).
    pub ca_cert: Option<PathBuf>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimLeased {
    /// `families` like `["socA:2", "socB:1"]`.
    pub fn start(families: &[&str]) -> SimLeased {
        Self::start_with(families, |_| {})
    }

    /// Like [`SimLeased::start`], with leased's configuration adjusted first (Prefect,
    /// notifications).
    pub fn start_with(
        families: &[&str],
        configure: impl FnOnce(&mut leased::Config) + Send + 'static,
    ) -> SimLeased {
        Self::launch(families, None, configure)
    }

    /// A lab whose leased serves https: `configure` sets its `tls` files, of a certificate of
    /// the CA in `ca_cert`, which every `socv` of [`SimLeased::command`] is given.
    pub fn start_https(
        families: &[&str],
        ca_cert: PathBuf,
        configure: impl FnOnce(&mut leased::Config) + Send + 'static,
    ) -> SimLeased {
        Self::launch(families, Some(ca_cert), configure)
    }

    fn launch(
        families: &[&str],
        ca_cert: Option<PathBuf>,
        configure: impl FnOnce(&mut leased::Config) + Send + 'static,
    ) -> SimLeased {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let boards_file = dir.path().join("boards.yaml");
        let store = dir.path().join("leases.redb");
        let families: Vec<socv::sim::FamilySpec> = families
            .iter()
            .map(|f| f.parse().expect("a family spec"))
            .collect();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<(String, String)>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let root = dir.path().join("boards");
        let file = boards_file.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the lab");
            runtime.block_on(async move {
                let lab = socv::sim::SimLab::start(socv::sim::SimConfig {
                    families,
                    root_dir: Some(root),
                    boot_delay: Duration::from_millis(100),
                    ..Default::default()
                })
                .await
                .expect("starting the simulated lab");
                lab.write_boards(&file).expect("writing boards.yaml");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("binding leased");
                let mut config =
                    leased::Config::new(&file, leased::config::StoreSpec::Embedded(store));
                configure(&mut config);
                let scheme = if config.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                let url = format!("{scheme}://{}", listener.local_addr().expect("an address"));
                let _ = ready_tx.send((url, lab.pdu_url().to_string()));
                if let Err(e) = leased::serve(config, listener, async move {
                    let _ = stopped.await;
                })
                .await
                {
                    eprintln!("leased failed: {e:#}");
                }
                lab.shutdown().await;
            });
        });
        let (url, pdu_url) = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the lab and leased started");
        let lab = SimLeased {
            url,
            pdu_url,
            boards_file,
            dir,
            ca_cert,
            stop: Some(stop),
            thread: Some(thread),
        };
        lab.wait_ready();
        lab
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.socv("probe", &["status"]).status.code() == Some(0) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("leased at {} did not come up", self.url);
    }

    /// `socv ARGS` as `user`, not yet started.
    pub fn command(&self, user: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(SOCV);
        cmd.args(args)
            .env("SOCV_DAEMON", &self.url)
            .env("USER", user)
            .env("XDG_CONFIG_HOME", self.dir.path())
            .env("RUST_LOG", "warn")
            .env_remove("LOGNAME")
            .env_remove("SOCV_TOKEN")
            .env_remove("DEVICE_MANAGER_URL")
            .env_remove("SOCV_CA_CERT")
            .env_remove("SSL_CERT_FILE")
            .stdin(Stdio::null());
        if let Some(ca) = &self.ca_cert {
            cmd.env("SOCV_CA_CERT", ca);
        }
        cmd
    }

    pub fn socv(&self, user: &str, args: &[&str]) -> Output {
        self.command(user, args).output().expect("running socv")
    }
}

impl Drop for SimLeased {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The exit code, with both streams in the message when it is not `code`.
pub fn expect_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Writes an executable shell script test into `dir`.
pub fn script_in(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Writes an executable shell script test into the lab's directory.
pub fn script(lab: &SimLeased, name: &str, body: &str) -> PathBuf {
    script_in(lab.dir.path(), name, body)
}

/// POSTs JSON (to the sim's PDU API, or to leased as an admin) and insists on a success.
pub fn post(url: &str, body: serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let res = reqwest::Client::new()
            .post(url)
            .header(leased::api::HOLDER_HEADER, "admin@test")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{url}: {}", res.status());
    });
}
