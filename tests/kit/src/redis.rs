//! A throwaway `redis-server` on a free local port.

use crate::port::free_port;
use crate::supervise::{Supervised, log_tail, on_path};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server has to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopped server has to exit before it is killed outright.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Fresh ports to try when another process takes the chosen one first.
const PORT_ATTEMPTS: u32 = 5;

/// Runs redis-server in the background and terminates it when our end of its stdin closes. That
/// happens on [`RedisServer::stop`], but also when the test process dies in any way (a panic,
/// SIGKILL, a server kept in a `static`, which is never dropped), so no server outlives its tests.
/// The background job's stdin is /dev/null in a non-interactive shell, hence the copy on fd 3.
const SUPERVISOR: &str = r#"
exec 3<&0
redis-server "$@" </dev/null >/dev/null 2>&1 &
server=$!
echo "$server"
( cat <&3 >/dev/null; kill "$server" 2>/dev/null ) &
watchdog=$!
exec 3<&-
wait "$server"
status=$?
kill "$watchdog" 2>/dev/null
exit "$status"
"#;

/// A real `redis-server` on 127.0.0.1, without persistence, killed on drop.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    running: Option<Supervised>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    ///
    /// Panics when `redis-server` is missing: the Redis tests must fail, never skip.
    pub fn start() -> RedisServer {
        if !on_path("redis-server") {
            panic!(
                "redis-server is not on PATH; run the test script (.ci/run), which installs it \
                 (the Redis tests never skip)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("socv-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a directory for redis-server: {e}"));
        let mut errors = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match Supervised::launch(port, dir.path()) {
                Ok(running) => {
                    return RedisServer {
                        port,
                        dir,
                        running: Some(running),
                    };
                }
                Err(e) => errors.push(format!("port {port}: {e}")),
            }
        }
        panic!(
            "redis-server did not start in {PORT_ATTEMPTS} attempts:\n{}",
            errors.join("\n")
        );
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (SIGTERM, then SIGKILL after a grace period) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }

    /// Starts the server again on the same port, empty (it never persists anything).
    pub fn start_again(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match Supervised::launch(self.port, self.dir.path()) {
                Ok(running) => {
                    self.running = Some(running);
                    return;
                }
                // The old socket may linger for a moment, or someone took the port.
                Err(e) if Instant::now() >= deadline => {
                    panic!(
                        "redis-server did not start again on port {}: {e}",
                        self.port
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Supervised {
    fn launch(port: u16, dir: &Path) -> Result<Supervised, String> {
        let log = dir.join(format!("redis-{port}.log"));
        let mut supervisor = Command::new("sh");
        supervisor
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("redis-supervisor")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut running = Supervised::spawn(&mut supervisor, "redis-server")?;
        match running.wait_ready(port) {
            Ok(()) => Ok(running),
            Err(e) => {
                running.stop();
                Err(format!("{e}{}", log_tail(&log)))
            }
        }
    }

    /// Waits until this very server (not another one that won the port) answers PING.
    fn wait_ready(&mut self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.supervisor.try_wait() {
                return Err(format!("redis-server exited ({status})"));
            }
            if ask(port, "PING").is_ok_and(|reply| reply == "+PONG") {
                let info = ask(port, "INFO server").unwrap_or_default();
                if info.contains(&format!("process_id:{}\r\n", self.pid)) {
                    return Ok(());
                }
                return Err(format!("port {port} is served by another redis-server"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server did not answer PING on port {port} within {} s",
                    READY_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) {
        drop(self.lifeline.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.supervisor.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        if self.pid != 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
    }
}

/// Sends one inline command and reads one reply: a status line as is, a bulk string's content.
fn ask(port: u16, command: &str) -> io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']).to_string();
    let Some(len) = line.strip_prefix('$') else {
        return Ok(line);
    };
    let len: usize = len
        .parse()
        .map_err(|_| io::Error::other(format!("bad bulk length in {line:?}")))?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_server_answers_and_stops() {
        let mut server = RedisServer::start();
        assert_eq!(
            server.url(),
            format!("redis://127.0.0.1:{}/", server.port())
        );
        assert_eq!(ask(server.port(), "PING").ok().as_deref(), Some("+PONG"));
        server.stop();
        assert!(ask(server.port(), "PING").is_err());
        server.start_again();
        assert_eq!(ask(server.port(), "PING").ok().as_deref(), Some("+PONG"));
    }
}
