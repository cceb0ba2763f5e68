//! A server under a supervising shell that prints the server's pid first and stops it when our
//! end of its stdin (the lifeline) closes: how the Redis and Prefect servers are run, so that
//! no server outlives the test process that started it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command};

/// One run of a server under its supervising shell, which prints the server's pid first and
/// stops it when our end of its stdin (the lifeline) closes.
pub(crate) struct Supervised {
    pub(crate) supervisor: Child,
    /// Our end of the supervisor's stdin: closing it stops the server.
    pub(crate) lifeline: Option<ChildStdin>,
    pub(crate) pid: u32,
}

impl Supervised {
    /// Spawns the supervising shell `cmd` (stdin and stdout piped) and reads the pid it reports.
    pub(crate) fn spawn(cmd: &mut Command, what: &str) -> Result<Supervised, String> {
        let mut supervisor = cmd
            .spawn()
            .map_err(|e| format!("running sh to start {what}: {e}"))?;
        let lifeline = supervisor.stdin.take();
        let mut pid_line = String::new();
        if let Some(out) = supervisor.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut pid_line);
        }
        match pid_line.trim().parse::<u32>() {
            Ok(pid) => Ok(Supervised {
                supervisor,
                lifeline,
                pid,
            }),
            Err(_) => {
                drop(lifeline);
                let _ = supervisor.kill();
                let _ = supervisor.wait();
                Err(format!(
                    "the supervising shell did not report {what}'s pid (got {pid_line:?})"
                ))
            }
        }
    }
}

/// Whether `program` is an executable file in a directory of `PATH`.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// The end of the server's log, to explain a failed start.
pub(crate) fn log_tail(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    format!("\nlast lines of {}:\n{tail}", log.display())
}
