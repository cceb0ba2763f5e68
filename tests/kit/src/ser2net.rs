//! ser2net in front of a pty whose far end runs a login loop, the way labs expose serial
//! consoles. Needs `ser2net` and `socat` (Debian packages of those names); `tests/run.sh`
//! installs them.

use crate::console::{
    BoardShell, login_script, require, spawn, start_on_free_port, write_executable,
};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

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
