//! The errors of a board session: each names the board, its console address and what socv
//! was doing.

use crate::telnet::TelnetError;
use std::path::PathBuf;
use std::time::Duration;

/// A failure of a [`BoardSession`](super::BoardSession), on one board.
///
/// Displays as `board soc-a-001 (10.0.0.5:2001): <what went wrong>`; match on
/// [`SessionError::kind`] to decide what to do (retry on another board, power-cycle, …).
#[derive(Debug)]
pub struct SessionError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    board: String,
    addr: String,
    kind: ErrorKind,
}

impl SessionError {
    pub(crate) fn new(board: String, addr: String, kind: ErrorKind) -> Self {
        SessionError(Box::new(Inner { board, addr, kind }))
    }

    /// The board's id (or label) from the session config.
    pub fn board(&self) -> &str {
        &self.0.board
    }

    /// `host:port` of its console.
    pub fn addr(&self) -> &str {
        &self.0.addr
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// Whether the session can no longer be used (the link or the shell is gone), so that
    /// cleaning up on the board is pointless.
    pub(crate) fn link_lost(&self) -> bool {
        use ErrorKind::*;
        matches!(
            &self.0.kind,
            Connect { .. }
                | ConnectTimeout { .. }
                | LoginRejected { .. }
                | MissingCredential { .. }
                | Closed { .. }
                | Io { .. }
                | Protocol { .. }
                | Unresponsive { .. }
        )
    }

    /// Whether the fault is the board's or the lab's (console unreachable, login refused,
    /// link dropped, shell hung), as opposed to the command or the file being pushed. Such a
    /// failure counts against the board's health and is worth a retry on another board.
    pub fn is_board_fault(&self) -> bool {
        use ErrorKind::*;
        match &self.0.kind {
            Connect { .. }
            | ConnectTimeout { .. }
            | LoginRejected { .. }
            | MissingCredential { .. }
            | Timeout { .. }
            | Closed { .. }
            | Io { .. }
            | Protocol { .. }
            | Unresponsive { .. }
            // A corrupt or failed copy (a full disk, a flaky link, no base64) is the board's
            // trouble, not the test's: another board may well take it.
            | ToolMissing { .. }
            | PushFailed { .. }
            | ChecksumMismatch { .. } => true,
            CommandTooLong { .. } | Output { .. } | InvalidRemotePath { .. } => false,
        }
    }
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "board {} ({}): {}",
            self.0.board, self.0.addr, self.0.kind
        )
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0.kind)
    }
}

/// `300ms`, `2.5s`, `2m 30s`: how long, for messages, without the milliseconds of noise
/// that measured waits carry.
pub(crate) fn human(d: &Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let tenths = (ms + 50) / 100;
        if tenths.is_multiple_of(10) {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        }
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

/// What went wrong in a [`SessionError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("cannot connect to the console: {source}")]
    Connect {
        #[source]
        source: std::io::Error,
    },

    #[error("connecting to the console timed out after {}", human(after))]
    ConnectTimeout { after: Duration },

    #[error("the board refused the login as {user:?} (wrong user name or password?)")]
    LoginRejected { user: String },

    /// The console asks for a user name or password that the board's config does not have.
    #[error("the console asks for a {what}, but none is configured for this board")]
    MissingCredential { what: &'static str },

    /// Nothing socv was waiting for came in time (a prompt, a marker).
    #[error("no {waiting_for} within {}; last output: {tail}", human(after))]
    Timeout {
        waiting_for: String,
        after: Duration,
        /// The end of what the board printed, sanitized and quoted.
        tail: String,
    },

    #[error("the connection closed while {doing}; last output: {tail}")]
    Closed { doing: String, tail: String },

    #[error("{doing}: {source}")]
    Io {
        doing: String,
        #[source]
        source: std::io::Error,
    },

    #[error("telnet protocol error: {source}")]
    Protocol {
        #[source]
        source: TelnetError,
    },

    /// Ctrl-C did not bring the shell back: the board needs a power cycle.
    #[error(
        "the shell did not come back within {} after Ctrl-C ({doing}); the board needs a power \
         cycle; last output: {tail}",
        human(grace)
    )]
    Unresponsive {
        doing: String,
        grace: Duration,
        tail: String,
    },

    #[error(
        "the command is {len} bytes; a console line holds at most {max} (the tty's canonical \
         limit): push a script instead"
    )]
    CommandTooLong { len: usize, max: usize },

    /// Writing the command's output locally failed (or `exec_capture`'s limit was reached).
    #[error("writing the command's output: {source}")]
    Output {
        #[source]
        source: std::io::Error,
    },

    #[error("the board has no `{tool}` (checked with `command -v`), which pushing a file needs")]
    ToolMissing { tool: String },

    #[error("cannot push to {path:?}: {reason}")]
    InvalidRemotePath { path: String, reason: String },

    /// The file could not be written on the board; nothing was left at the destination.
    #[error("pushing {local} to {remote}: {reason}", local = local.display())]
    PushFailed {
        local: PathBuf,
        remote: String,
        reason: String,
    },

    /// The board's copy differs from the local file; it was removed, nothing was installed.
    #[error(
        "pushing {local} to {remote}: the board's {algorithm} is {board_digest}, the local file's \
         is {local_digest}; the corrupt copy was removed",
        local = local.display()
    )]
    ChecksumMismatch {
        local: PathBuf,
        remote: String,
        algorithm: &'static str,
        local_digest: String,
        board_digest: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_board_and_what_happened() {
        let e = SessionError::new(
            "soc-a-001".into(),
            "127.0.0.1:2323".into(),
            ErrorKind::Timeout {
                waiting_for: "login or shell prompt".into(),
                after: Duration::from_millis(5_004),
                tail: "\"Starting kernel ...\"".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "board soc-a-001 (127.0.0.1:2323): no login or shell prompt within 5s; last output: \
             \"Starting kernel ...\""
        );
        assert!(e.is_board_fault());
        assert_eq!(human(&Duration::from_millis(300)), "300ms");
        assert_eq!(human(&Duration::from_millis(2_540)), "2.5s");
        assert_eq!(human(&Duration::from_secs(150)), "2m 30s");
        let e = SessionError::new(
            e.board().to_owned(),
            e.addr().to_owned(),
            ErrorKind::LoginRejected {
                user: "root".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "board soc-a-001 (127.0.0.1:2323): the board refused the login as \"root\" (wrong \
             user name or password?)"
        );
    }
}
