//! busybox telnetd on a free loopback port, with a login program: a board's own telnetd. Needs
//! `busybox` with the telnetd applet (Debian `busybox-static`); `tests/run.sh` installs it.

use crate::console::{
    BoardShell, login_script, require, spawn, start_on_free_port, write_executable,
};
use std::path::PathBuf;
use std::process::Child;

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
