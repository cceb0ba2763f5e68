//! A simulated board's shell: a real `/bin/sh -i` on a pseudo-terminal, as the session leader
//! with the pty as its controlling tty (so Ctrl-C, echo and canonical mode behave as on a
//! board), and the killing of everything it started when the session ends.

use std::io;
use std::path::Path;
use std::time::Duration;

use pty_process::{OwnedReadPty, OwnedWritePty};
use rustix::process::{Pid, Signal};

/// What the shell sees of the world; nothing of ours leaks in (no tokens, no `$HOME`).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A running shell and the master side of its pty.
pub struct Shell {
    pub reader: OwnedReadPty,
    pub writer: OwnedWritePty,
    pub process: ShellProcess,
}

/// The shell process itself.
pub struct ShellProcess {
    child: tokio::process::Child,
    /// Its pid, which is also its session and process group id (it is a session leader).
    pid: u32,
    /// The shell exited and was reaped: its pid may belong to someone else now.
    reaped: bool,
}

impl ShellProcess {
    /// Waits for the shell to exit by itself (the user typed `exit`). Cancel-safe.
    pub async fn exited(&mut self) {
        if !self.reaped {
            let _ = self.child.wait().await;
            self.reaped = true;
        }
    }
}

impl Shell {
    /// Starts `shell -i` in `workdir` as `user`, on a new pty of `cols`×`rows`.
    pub fn spawn(
        shell: &Path,
        workdir: &Path,
        user: &str,
        (cols, rows): (u16, u16),
    ) -> io::Result<Shell> {
        let (pty, pts) = pty_process::open().map_err(io::Error::other)?;
        pty.resize(pty_process::Size::new(rows, cols))
            .map_err(io::Error::other)?;
        let child = pty_process::Command::new(shell)
            .arg("-i")
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", workdir)
            .env("TERM", "dumb")
            .env("PS1", "# ")
            .env("SHELL", shell)
            .env("USER", user)
            .env("LOGNAME", user)
            .current_dir(workdir)
            // The backstop if this Shell is dropped without `terminate` (a task aborted).
            .kill_on_drop(true)
            // `spawn` takes the pts and closes our copy: the master then sees EOF (EIO) as
            // soon as the shell and its children are gone.
            .spawn(pts)
            .map_err(io::Error::other)?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("the shell exited at once"))?;
        let (reader, writer) = pty.into_split();
        Ok(Shell {
            reader,
            writer,
            process: ShellProcess {
                child,
                pid,
                reaped: false,
            },
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// Sets the terminal size, as the board's telnetd does on NAWS (sends SIGWINCH).
    pub fn resize(&self, (cols, rows): (u16, u16)) {
        // A failed resize leaves the old size; nothing to tell the client.
        let _ = self.writer.resize(pty_process::Size::new(rows, cols));
    }

    /// Kills the shell and everything in its session, then reaps the shell.
    pub async fn terminate(self) {
        let mut process = self.process;
        if process.reaped {
            // Only what is left of the session (background jobs); never the pid itself.
            kill_session_members(process.pid);
            return;
        }
        kill_session(process.pid);
        // The kill above is SIGKILL, so this returns promptly; the bound is a guard against a
        // process stuck in uninterruptible sleep holding the session up forever.
        let _ = tokio::time::timeout(Duration::from_secs(5), process.child.wait()).await;
    }
}

/// SIGKILLs the session `sid`: its leader, its process group, and every other process whose
/// session it is (jobs of an interactive shell run in process groups of their own, so killing
/// one group is not enough). Processes that left the session with `setsid` are not found.
pub fn kill_session(sid: u32) {
    let Some(leader) = i32::try_from(sid).ok().and_then(Pid::from_raw) else {
        return;
    };
    // The leader first, so it cannot start new jobs while the rest is found and killed.
    let _ = rustix::process::kill_process(leader, Signal::KILL);
    let _ = rustix::process::kill_process_group(leader, Signal::KILL);
    kill_session_members(sid);
}

/// SIGKILLs every live process whose session is `sid`.
fn kill_session_members(sid: u32) {
    // Twice: a job that was forking during the first pass is caught by the second.
    for _ in 0..2 {
        for pid in session_members(sid) {
            if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
    }
}

/// The pids of the live (not zombie) processes of session `sid`, from /proc.
pub fn session_members(sid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parse_stat(&stat))
                .is_some_and(|(state, session)| session == sid && state != 'Z')
        })
        .collect()
}

/// The state and the session id from a `/proc/<pid>/stat` line. The command name may hold
/// spaces and parentheses, so the fields are counted from its last `)`.
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state: ppid, pgrp, session.
    let session = fields.nth(2)?.parse().ok()?;
    Some((state, session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_session_from_a_stat_line() {
        let stat = "1234 (my (odd) name) S 1 1234 1230 34816 1234 4194560 101 0 0 0";
        assert_eq!(parse_stat(stat), Some(('S', 1230)));
        assert_eq!(parse_stat("garbage"), None);
    }

    /// A shell we start is a session leader, so its session is found by its pid, and
    /// `terminate` leaves nothing of it. (Our own session is no good for this test: under CI it
    /// may belong to a leader outside our pid namespace, and `getsid` then answers 0.)
    #[tokio::test]
    async fn finds_and_ends_a_shell_session() {
        let dir = tempfile::tempdir().unwrap();
        let shell = Shell::spawn(Path::new("/bin/sh"), dir.path(), "root", (80, 24)).unwrap();
        let pid = shell.pid();
        assert!(session_members(pid).contains(&pid));
        shell.terminate().await;
        assert_eq!(session_members(pid), Vec::<u32>::new());
    }
}
