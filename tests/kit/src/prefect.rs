//! A real Prefect server (`prefect server start`) for the run-history tests.

use crate::port::free_port;
use crate::supervise::{Supervised, log_tail};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Prefect version the tests pin (the one `tests/run.sh` installs).
pub const PREFECT_VERSION: &str = "3.9.1";
/// How long a started server has to answer `GET /api/health` (10–15 s on a fresh database).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a stopped server has to exit before its process group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a fixed port may stay taken (by the previous run) before a start gives up.
const PORT_FREE_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the server in its own process group (the shell's, made by `process_group(0)`) and
/// kills that whole group when our end of the shell's stdin closes (a stop, or the test
/// process dying in any way, even SIGKILL or a server kept in a `static`) or when the test
/// process is gone (polled once a second). The watchdog ignores SIGTERM so that it outlives
/// the group's TERM and follows up with KILL.
const SUPERVISOR: &str = r#"
exec 3<&0
"$@" </dev/null >>"$SOCV_PREFECT_LOG" 2>&1 &
server=$!
echo "$server"
(
trap '' TERM INT HUP
( cat <&3 >/dev/null ) &
lifeline=$!
while kill -0 "$lifeline" 2>/dev/null && kill -0 "$SOCV_TEST_PID" 2>/dev/null; do
    sleep 1
done
kill -TERM 0 2>/dev/null
sleep 5
kill -KILL 0 2>/dev/null
) &
exec 3<&-
wait "$server"
"#;

/// Where the tests' `prefect` is: `SOCV_TEST_PREFECT`, else the venv `tests/run.sh` makes in
/// `${XDG_CACHE_HOME:-$HOME/.cache}/socv/prefect-3.9.1`. Panics when it is missing: the
/// Prefect tests fail, never skip.
pub fn prefect_executable() -> PathBuf {
    if let Some(p) = std::env::var_os("SOCV_TEST_PREFECT").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            panic!(
                "SOCV_TEST_PREFECT={} is not a file; run tests/run.sh (it installs \
                 prefect=={PREFECT_VERSION} into a venv and sets it)",
                p.display()
            );
        }
        return p;
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    let venv = cache
        .join("socv")
        .join(format!("prefect-{PREFECT_VERSION}"));
    let exe = venv.join("bin").join("prefect");
    if !exe.is_file() {
        panic!(
            "prefect is not installed for the tests: run tests/run.sh (it installs \
             prefect=={PREFECT_VERSION} into {}), or set SOCV_TEST_PREFECT to a prefect \
             executable of that version",
            venv.display()
        );
    }
    exe
}

/// A real Prefect server on 127.0.0.1 with a database of its own, stopped on drop.
pub struct PrefectServer {
    port: u16,
    auth: Option<String>,
    home: tempfile::TempDir,
    running: Option<Running>,
}

type Running = Supervised;

impl PrefectServer {
    /// Starts a server on a free port, without auth, and waits until it answers.
    pub fn started() -> PrefectServer {
        let mut s = PrefectServer::new(None, None);
        s.start();
        s
    }

    /// Starts a server on `port`, off the async threads (it takes 5–15 s), for a test that
    /// records while Prefect is down and then starts it where leased expects it.
    pub async fn started_on(port: u16) -> PrefectServer {
        tokio::task::spawn_blocking(move || {
            let mut s = PrefectServer::new(Some(port), None);
            s.start();
            s
        })
        .await
        .unwrap_or_else(|e| panic!("starting Prefect on port {port}: {e}"))
    }

    /// Starts a server whose API wants basic auth `user:password`.
    pub fn started_with_auth(auth: &str) -> PrefectServer {
        let mut s = PrefectServer::new(None, Some(auth));
        s.start();
        s
    }

    /// A server not started yet, on `port` (a free one when `None`), with its own
    /// `PREFECT_HOME` that every start of it reuses.
    pub fn new(port: Option<u16>, auth: Option<&str>) -> PrefectServer {
        let home = tempfile::Builder::new()
            .prefix("socv-prefect-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a PREFECT_HOME: {e}"));
        PrefectServer {
            port: port.unwrap_or_else(free_port),
            auth: auth.map(str::to_string),
            home,
            running: None,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>/api`
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api", self.port)
    }

    /// The basic auth `user:password` the server's API wants, if any (what leased's
    /// `PrefectConfig::auth` must hold to deliver there).
    pub fn auth(&self) -> Option<&str> {
        self.auth.as_deref()
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Starts the server (a no-op when it runs) and waits until `GET /api/health` answers.
    pub fn start(&mut self) {
        if self.running.is_some() {
            return;
        }
        let deadline = Instant::now() + PORT_FREE_TIMEOUT;
        while TcpListener::bind((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            if Instant::now() >= deadline {
                panic!(
                    "port {} stayed taken for {} s; cannot start Prefect on it",
                    self.port,
                    PORT_FREE_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        match self.launch() {
            Ok(r) => self.running = Some(r),
            Err(e) => panic!("Prefect did not start on port {}: {e}", self.port),
        }
    }

    /// Stops the server (its whole process group) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop_group();
        }
    }

    /// Stops and starts the server again: same port, same database.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    fn launch(&self) -> Result<Running, String> {
        let exe = prefect_executable();
        let log = self.home.path().join("server.log");
        let port = self.port.to_string();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SUPERVISOR)
            .arg("prefect-supervisor")
            .arg(&exe)
            .args(["--no-prompt", "server", "start", "--host", "127.0.0.1"])
            .args(["--port", &port, "--no-ui"])
            .env("SOCV_PREFECT_LOG", &log)
            .env("SOCV_TEST_PID", std::process::id().to_string())
            .env("PREFECT_HOME", self.home.path())
            .env("PREFECT_SERVER_API_HOST", "127.0.0.1")
            .env("PREFECT_SERVER_API_PORT", &port)
            .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
            .env("DO_NOT_TRACK", "1")
            .env_remove("PREFECT_API_URL")
            .env_remove("PREFECT_API_KEY")
            .env_remove("PREFECT_API_AUTH_STRING")
            .env_remove("PREFECT_PROFILE")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        match &self.auth {
            Some(a) => cmd.env("PREFECT_SERVER_API_AUTH_STRING", a),
            None => cmd.env_remove("PREFECT_SERVER_API_AUTH_STRING"),
        };
        let mut running = Running::spawn(&mut cmd, &exe.display().to_string())?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = running.supervisor.try_wait() {
                running.stop_group();
                return Err(format!("prefect exited ({status}){}", log_tail(&log)));
            }
            if health(self.port) {
                return Ok(running);
            }
            if Instant::now() >= deadline {
                running.stop_group();
                return Err(format!(
                    "GET /api/health did not answer within {} s{}",
                    READY_TIMEOUT.as_secs(),
                    log_tail(&log)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for PrefectServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Running {
    /// Stops the server's whole process group (TERM, then KILL after a while).
    fn stop_group(mut self) {
        drop(self.lifeline.take());
        let group = format!("-{}", self.supervisor.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let server_gone = self.pid == 0
                || !Command::new("kill")
                    .args(["-0", &self.pid.to_string()])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
            let shell_gone = !matches!(self.supervisor.try_wait(), Ok(None));
            if server_gone && shell_gone {
                break;
            }
            if Instant::now() >= deadline {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &group])
                    .stderr(Stdio::null())
                    .status();
                let _ = self.supervisor.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.supervisor.wait();
    }
}

/// Whether `GET /api/health` answers 200 `true`.
fn health(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let request = "GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200")
}
