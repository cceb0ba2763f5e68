//! Where a run's output goes as it arrives: the terminal (stdout; stderr under `--json`, where
//! stdout carries the result) or nowhere (one run of a batch), the run's console.log, the
//! test-case scanner, and the run's record.

use super::record::RunRecorder;
use crate::report::CaseScanner;
use socv_api::{Lease, LogLevel};
use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// Where the test's output goes as it arrives: the terminal (stdout; stderr under `--json`,
/// where stdout carries the result) or nowhere (one run of a batch), the run's console.log, and
/// the test-case scanner. Writes are plain blocking writes: a terminal or a file keeps up with
/// any console.
pub struct RunOutput {
    shown: Shown,
    pub(super) log: Option<std::fs::File>,
    pub(super) scanner: CaseScanner,
    /// Told of every board the run goes to (a batch's progress line names it).
    on_lease: Option<OnLease>,
    /// The run's record in leased's history, when it is recorded.
    pub(super) recorder: Option<RunRecorder>,
}

type OnLease = Box<dyn Fn(&Lease) + Send + Sync>;

enum Shown {
    Stdout,
    Stderr,
    /// Neither the output nor socv's notes about the run (a batch reports them itself).
    Hidden,
}

impl RunOutput {
    /// `socv run`: the output on stdout, or on stderr under `--json`.
    pub fn terminal(json: bool) -> RunOutput {
        RunOutput {
            shown: if json { Shown::Stderr } else { Shown::Stdout },
            log: None,
            scanner: CaseScanner::new(),
            on_lease: None,
            recorder: None,
        }
    }

    /// One run of many: the output only in console.log and the scanner, no progress or notes.
    pub fn hidden(on_lease: impl Fn(&Lease) + Send + Sync + 'static) -> RunOutput {
        RunOutput {
            shown: Shown::Hidden,
            log: None,
            scanner: CaseScanner::new(),
            on_lease: Some(Box::new(on_lease)),
            recorder: None,
        }
    }

    /// Whether a progress bar may be drawn (a person's terminal, not `--json` or a batch).
    pub(super) fn shows_progress(&self) -> bool {
        matches!(self.shown, Shown::Stdout)
    }

    pub(super) fn hides(&self) -> bool {
        matches!(self.shown, Shown::Hidden)
    }

    /// A note about the run on stderr, unless the run is one of a batch.
    pub(super) fn say(&self, text: impl std::fmt::Display) {
        let text = text.to_string();
        if let Some(recorder) = &self.recorder {
            recorder.note(LogLevel::Info, &text);
        }
        if !self.hides() {
            eprintln!("socv: {text}");
        }
    }

    /// A failure of the board or of socv, for the record only (the caller says it its way).
    pub(super) fn note_failure(&self, text: &str) {
        if let Some(recorder) = &self.recorder {
            recorder.note(LogLevel::Error, text);
        }
    }

    /// A new board: test cases of an attempt that failed do not count.
    pub(super) fn start_attempt(&mut self, lease: &Lease) {
        self.scanner = CaseScanner::new();
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "--- socv: {} (lease {}) ---", lease.board_id, lease.id);
        }
        if let Some(on_lease) = &self.on_lease {
            on_lease(lease);
        }
    }
}

impl AsyncWrite for RunOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.scanner.feed(buf);
        if let Some(recorder) = &this.recorder {
            recorder.console(buf);
        }
        if let Some(log) = &mut this.log
            && let Err(e) = log.write_all(buf)
        {
            eprintln!("socv: warning: console.log: {e}; no longer written");
            this.log = None;
        }
        let shown = match this.shown {
            Shown::Stderr => std::io::stderr().write_all(buf),
            Shown::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(buf).and_then(|()| stdout.flush())
            }
            Shown::Hidden => Ok(()),
        };
        Poll::Ready(shown.map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.hides() {
            return Poll::Ready(Ok(()));
        }
        Poll::Ready(std::io::stdout().flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}
