//! Real telnet servers for the session tests, started on free loopback ports and killed on
//! drop: busybox telnetd with a login program, and ser2net in front of a pty whose far end
//! runs a login loop (the way labs expose serial consoles). Never system services.
//!
//! Needs `busybox` with the telnetd applet (Debian `busybox-static`), `ser2net` and `socat`;
//! `tests/run.sh` installs them.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "root";
pub const PASSWORD: &str = "secret";

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

fn require(tool: &str, check: &[&str], package: &str) {
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
fn wait_for_port(port: u16, what: &str, child: &mut Child) -> Result<(), String> {
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
fn start_on_free_port(what: &str, mut spawn_on: impl FnMut(u16) -> Child) -> (u16, Child) {
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
fn spawn(program: &str, args: &[&str], dir: &Path) -> Child {
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
fn login_script(name: &str, home: &Path, board: &BoardShell, exec_shell: bool) -> String {
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

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("writing a script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod a script");
}

/// busybox telnetd: a fresh login per connection.
pub struct BusyboxTelnetd {
    pub port: u16,
    /// The board's home directory (the shell starts there).
    pub home: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl BusyboxTelnetd {
    pub fn start() -> BusyboxTelnetd {
        BusyboxTelnetd::start_with(BoardShell::default())
    }

    pub fn start_with(board: BoardShell) -> BusyboxTelnetd {
        require("busybox", &["telnetd", "--help"], "busybox-static");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).expect("creating the board's home");
        let login = dir.path().join("login.sh");
        write_executable(&login, &login_script("telnetd-board", &home, &board, true));
        let login_arg = login.display().to_string();
        let (port, child) = start_on_free_port("busybox telnetd", |port| {
            let bind = format!("127.0.0.1:{port}");
            spawn(
                "busybox",
                &["telnetd", "-F", "-K", "-b", &bind, "-l", &login_arg],
                dir.path(),
            )
        });
        BusyboxTelnetd {
            port,
            home,
            child,
            _dir: dir,
        }
    }
}

impl Drop for BusyboxTelnetd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ser2net (telnet with RFC 2217) in front of a pty whose other end runs a login loop: a
/// serial console. It prints nothing on connect, and its shell outlives the connection.
pub struct Ser2net {
    pub port: u16,
    pub home: PathBuf,
    ser2net: Child,
    socat: Child,
    _dir: tempfile::TempDir,
}

impl Ser2net {
    pub fn start() -> Ser2net {
        require("ser2net", &["-v"], "ser2net");
        require("socat", &["-V"], "socat");
        let board = BoardShell::default();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).expect("creating the board's home");
        let console = dir.path().join("console.sh");
        write_executable(
            &console,
            &login_script("serial-board", &home, &board, false),
        );
        let tty = dir.path().join("ttyBOARD");
        let pty = format!("PTY,link={},raw,echo=0", tty.display());
        let exec = format!("EXEC:{},pty,setsid,ctty,stderr", console.display());
        let mut socat = spawn("socat", &[&pty, &exec], dir.path());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tty.exists() {
            if let Ok(Some(status)) = socat.try_wait() {
                panic!(
                    "socat exited with {status} before creating {}",
                    tty.display()
                );
            }
            assert!(Instant::now() < deadline, "socat made no pty within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        let config = dir.path().join("ser2net.yaml");
        let config_arg = config.display().to_string();
        let pid_arg = dir.path().join("ser2net.pid").display().to_string();
        let (port, ser2net) = start_on_free_port("ser2net", |port| {
            std::fs::write(
                &config,
                format!(
                    "%YAML 1.1\n---\nconnection: &board\n  \
                     accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n  \
                     connector: serialdev(nouucplock=true),{},115200n81,local\n  \
                     options:\n    kickolduser: true\n",
                    tty.display()
                ),
            )
            .expect("writing ser2net.yaml");
            spawn(
                "ser2net",
                &["-n", "-c", &config_arg, "-P", &pid_arg],
                dir.path(),
            )
        });
        Ser2net {
            port,
            home,
            ser2net,
            socat,
            _dir: dir,
        }
    }
}

impl Drop for Ser2net {
    fn drop(&mut self) {
        let _ = self.ser2net.kill();
        let _ = self.ser2net.wait();
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}

/// A small tmpfs mounted for a disk-full test, unmounted on drop. `None` where mounting is
/// not permitted (not root, or no CAP_SYS_ADMIN).
pub struct SmallDisk {
    pub path: PathBuf,
}

impl SmallDisk {
    pub fn mount(path: PathBuf, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(&path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(SmallDisk { path })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
