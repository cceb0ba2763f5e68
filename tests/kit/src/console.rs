//! What the telnet servers of [`crate::telnetd`] and [`crate::ser2net`] share: the board's login
//! program and shell, and starting a server on a free loopback port (retried when another
//! process takes the port first).

use crate::port::free_port;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user name the board's login program accepts.
pub const USER: &str = "root";
/// The password the board's login program accepts.
pub const PASSWORD: &str = "secret";

pub(crate) fn require(tool: &str, check: &[&str], package: &str) {
    let ok = Command::new(tool)
        .args(check)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool} {}` failed: install Debian's {package} (tests/run.sh does)",
        check.join(" ")
    );
}

/// Waits until `child` listens on `port`. `Err` when it exited first, or was not alive a moment
/// after the port answered: then something else holds the port (a free port can be taken by
/// another test's connection between choosing it and binding it), and the caller retries on a
/// fresh one.
pub(crate) fn wait_for_port(port: u16, what: &str, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            std::thread::sleep(Duration::from_millis(100));
            return match child.try_wait() {
                Ok(None) => Ok(()),
                Ok(Some(status)) => Err(format!(
                    "{what} exited with {status}; port {port} is someone else's"
                )),
                Err(e) => Err(format!("{what}: {e}")),
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{what} exited with {status} before listening on port {port}"
            ));
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a server on a fresh free port until one really listens there (a few tries).
pub(crate) fn start_on_free_port(
    what: &str,
    mut spawn_on: impl FnMut(u16) -> Child,
) -> (u16, Child) {
    let mut errors = Vec::new();
    for _ in 0..5 {
        let port = free_port();
        let mut child = spawn_on(port);
        match wait_for_port(port, what, &mut child) {
            Ok(()) => return (port, child),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                errors.push(e);
            }
        }
    }
    panic!("{what} did not start: {}", errors.join("; "));
}

/// Spawns `program args` with SIGINT and SIGQUIT at their defaults: a process started from a
/// background job inherits them ignored, and then Ctrl-C on the board would do nothing (a
/// quirk of the test machine, not of boards, whose telnetd starts from init).
pub(crate) fn spawn(program: &str, args: &[&str], dir: &Path) -> Child {
    Command::new("env")
        .arg("--default-signal=INT,QUIT")
        .arg(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"))
}

/// What the board's shell is like.
#[derive(Debug, Clone)]
pub struct BoardShell {
    /// The shell after login, e.g. `busybox sh` (ash, as on most boards).
    pub shell: String,
    /// `PATH` of the shell.
    pub path: String,
    /// Shell code run before the shell starts (e.g. `ulimit -f 1024`).
    pub setup: String,
    /// Shell code run before the first login prompt (e.g. `sleep 1`: a slow board).
    pub before_login: String,
    /// Shell code run between reading the user name and asking for the password.
    pub after_user: String,
}

impl Default for BoardShell {
    fn default() -> Self {
        BoardShell {
            shell: "busybox sh".into(),
            path: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into(),
            setup: String::new(),
            before_login: String::new(),
            after_user: String::new(),
        }
    }
}

/// The login program: asks `login:` and `Password:` like login(1), says `Login incorrect`
/// to wrong credentials, and starts the shell in the board's home directory. `exec_shell`:
/// the shell replaces it (telnetd: logout ends the connection) or runs under it (a serial
/// console: logout brings the login prompt back).
pub(crate) fn login_script(
    name: &str,
    home: &Path,
    board: &BoardShell,
    exec_shell: bool,
) -> String {
    let start = if exec_shell {
        format!("exec {} -i", board.shell)
    } else {
        // A subshell: the INT trap below is reset there, so the shell gets a working Ctrl-C.
        format!("( exec {} -i )", board.shell)
    };
    format!(
        r#"#!/bin/sh
# Caught (not ignored), so that Ctrl-C at the login prompt only re-prompts.
trap ':' INT
{before_login}
while :; do
  printf '%s login: ' '{name}'
  # dash's read fails alike for Ctrl-C and end of input: ask again, but not forever (a hung
  # up console also gets SIGHUP, which ends this script).
  if ! IFS= read -r user; then
    failures=$((${{failures:-0}} + 1))
    [ "$failures" -lt 50 ] || exit 0
    echo
    continue
  fi
  failures=0
  {after_user}
  printf 'Password: '
  stty -echo 2>/dev/null
  IFS= read -r pass
  stty echo 2>/dev/null
  echo
  if [ "$user" = '{USER}' ] && [ "$pass" = '{PASSWORD}' ]; then
    cd '{home}' || exit 1
    export HOME='{home}' PATH='{path}' PS1='# ' ENV=
    {setup}
    {start}
  else
    echo 'Login incorrect'
  fi
done
"#,
        home = home.display(),
        path = board.path,
        setup = board.setup,
        before_login = board.before_login,
        after_user = board.after_user,
    )
}

pub(crate) fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("writing a script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod a script");
}
