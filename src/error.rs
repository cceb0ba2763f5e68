//! The one error type of the socv commands, and the exit code each error maps to.

use crate::exit_codes;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a socv lease command can fail with. Each variant says what was being done and on
/// what; [`Error::exit_code`] maps it to a documented exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad `--daemon`, `SOCV_DAEMON`, `SOCV_TOKEN` or similar.
    #[error("{0}")]
    Usage(String),

    #[error("cannot read config file {}: {message}", path.display())]
    ConfigFile { path: PathBuf, message: String },

    #[error("cannot reach leased at {url}: {reason} (is it running? set --daemon or SOCV_DAEMON)")]
    Unreachable { url: String, reason: String },

    /// The https connection to leased failed: a certificate this side does not trust, one for
    /// another name, an expired one, or no https on that port.
    #[error("cannot reach leased at {url} securely: {problem}; {fix}")]
    Tls {
        url: String,
        problem: String,
        fix: String,
    },

    #[error(
        "{url} is not a socv daemon: its answer to {doing} had no {header} header \
         (check --daemon or SOCV_DAEMON)",
        header = socv_api::API_VERSION_HEADER
    )]
    NotADaemon { url: String, doing: String },

    #[error(
        "the daemon at {url} speaks API {daemon_major}.x, this socv speaks {ours}.x; \
         upgrade {what} so that both speak the same major version",
        ours = crate::client::OUR_API_MAJOR,
        what = if *daemon_major > crate::client::OUR_API_MAJOR { "socv" } else { "leased" }
    )]
    ApiVersion { url: String, daemon_major: u32 },

    #[error("{doing}: leased's lease store is unavailable: {message}")]
    StoreUnavailable { doing: String, message: String },

    /// Nothing free (without `--wait`), no healthy board, or nothing became free in time.
    #[error("{message}")]
    NoBoard {
        message: String,
        /// No board of the kind is healthy and undrained: waiting would not help.
        none_healthy: bool,
    },

    /// A signal (Ctrl-C, SIGTERM, SIGHUP) stopped socv before it was done; what it held was
    /// given back first.
    #[error("stopped by {signal} while {doing}")]
    Interrupted {
        signal: &'static str,
        doing: String,
        /// It came while waiting for a board: `socv lease` documents that as "no board in
        /// time" (exit 3); anything else is 130, as for any process stopped by SIGINT.
        waiting_for_board: bool,
    },

    #[error("{0}")]
    NotFound(String),

    #[error("{doing}: {message}")]
    LeaseEnded { doing: String, message: String },

    #[error("{doing}: permission denied: {message}")]
    PermissionDenied { doing: String, message: String },

    /// The board's PDU failed (unreachable, or it answered an error), or the board has none;
    /// the message names the PDU and what it answered.
    #[error("{doing}: {message}")]
    Power { doing: String, message: String },

    /// Any other error answer of the daemon.
    #[error("{doing}: leased answered {status}: {message}")]
    Daemon {
        doing: String,
        status: u16,
        code: String,
        message: String,
    },

    /// A successful answer whose body socv cannot read.
    #[error("{doing}: cannot read leased's answer: {message}")]
    BadAnswer { doing: String, message: String },

    /// `--hold` could not renew its lease; the board may go to someone else.
    #[error(
        "LEASE RENEWAL FAILED for {board} (lease {lease}): {source}; {expiry}: stop using the \
         board"
    )]
    RenewalFailed {
        lease: String,
        board: String,
        /// What that means in time: `the lease ends in 19m, then the board may go to someone else`.
        expiry: String,
        #[source]
        source: Box<Error>,
    },

    /// The simulated lab (`socv sim`) could not start or write its boards.yaml.
    #[error("simulated lab: {0}")]
    Sim(#[from] crate::sim::SimError),

    /// A board's console failed: connect, login, link, a push.
    #[error("{0}")]
    Session(#[from] crate::session::SessionError),

    /// A local file to push cannot be read.
    #[error("{0}")]
    LocalFile(#[from] crate::session::LocalFileError),

    /// `socv run`: socv or the lab failed; exit 125 like `docker run`, whatever the cause.
    #[error("{0}")]
    LabFailure(Box<Error>),

    /// Writing the output or setting up the process (runtime, signals) failed.
    #[error("{doing}: {source}")]
    Io {
        doing: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The documented exit code of this error (see [`crate::exit_codes`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::ConfigFile { .. } => exit_codes::USAGE,
            Error::Unreachable { .. }
            | Error::Tls { .. }
            | Error::NotADaemon { .. }
            | Error::StoreUnavailable { .. } => exit_codes::DAEMON_UNAVAILABLE,
            Error::NoBoard { .. } => exit_codes::NO_BOARD,
            Error::Interrupted {
                waiting_for_board: true,
                ..
            } => exit_codes::NO_BOARD,
            Error::Interrupted { .. } => exit_codes::INTERRUPTED,
            Error::NotFound(_) | Error::LeaseEnded { .. } => exit_codes::NOT_FOUND,
            Error::PermissionDenied { .. } => exit_codes::PERMISSION_DENIED,
            Error::LabFailure(_) => exit_codes::LAB_FAILURE,
            Error::RenewalFailed { source, .. } => match source.exit_code() {
                exit_codes::OK => exit_codes::FAILURE,
                code => code,
            },
            Error::ApiVersion { .. }
            | Error::Daemon { .. }
            | Error::Power { .. }
            | Error::BadAnswer { .. }
            | Error::Sim(_)
            | Error::Session(_)
            | Error::LocalFile(_)
            | Error::Io { .. } => exit_codes::FAILURE,
        }
    }

    /// Whether trying the same request again soon may succeed (the daemon restarting, the
    /// store coming back).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::StoreUnavailable { .. } => true,
            Error::Daemon { status, .. } => *status >= 500,
            _ => false,
        }
    }

    pub(crate) fn io(doing: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            doing: doing.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_codes::*;

    fn doing() -> String {
        "releasing lease l-1".to_owned()
    }

    #[test]
    fn every_error_maps_to_its_documented_code() {
        let cases: Vec<(Error, i32)> = vec![
            (Error::Usage("bad".into()), USAGE),
            (
                Error::ConfigFile {
                    path: "/x/config.toml".into(),
                    message: "bad".into(),
                },
                USAGE,
            ),
            (
                Error::Unreachable {
                    url: "http://127.0.0.1:1".into(),
                    reason: "connection refused".into(),
                },
                DAEMON_UNAVAILABLE,
            ),
            (
                Error::NotADaemon {
                    url: "http://x".into(),
                    doing: doing(),
                },
                DAEMON_UNAVAILABLE,
            ),
            (
                Error::StoreUnavailable {
                    doing: doing(),
                    message: "redis down".into(),
                },
                DAEMON_UNAVAILABLE,
            ),
            (
                Error::ApiVersion {
                    url: "http://x".into(),
                    daemon_major: 2,
                },
                FAILURE,
            ),
            (
                Error::NoBoard {
                    message: "none".into(),
                    none_healthy: false,
                },
                NO_BOARD,
            ),
            (Error::NotFound("none".into()), NOT_FOUND),
            (
                Error::LeaseEnded {
                    doing: doing(),
                    message: "ended".into(),
                },
                NOT_FOUND,
            ),
            (
                Error::PermissionDenied {
                    doing: doing(),
                    message: "not yours".into(),
                },
                PERMISSION_DENIED,
            ),
            (
                Error::Daemon {
                    doing: doing(),
                    status: 500,
                    code: "internal".into(),
                    message: "boom".into(),
                },
                FAILURE,
            ),
            (
                Error::BadAnswer {
                    doing: doing(),
                    message: "eof".into(),
                },
                FAILURE,
            ),
            (
                Error::io("writing the table", std::io::Error::other("disk")),
                FAILURE,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.exit_code(), code, "{err}");
        }
    }

    #[test]
    fn a_failed_renewal_keeps_the_code_of_its_cause() {
        let err = Error::RenewalFailed {
            lease: "l-1".into(),
            board: "soc-a-001".into(),
            expiry: "the lease ends in 19m".into(),
            source: Box::new(Error::Unreachable {
                url: "http://127.0.0.1:8000".into(),
                reason: "connection refused".into(),
            }),
        };
        assert_eq!(err.exit_code(), DAEMON_UNAVAILABLE);
        let ended = Error::RenewalFailed {
            lease: "l-1".into(),
            board: "soc-a-001".into(),
            expiry: "the lease ends in 19m".into(),
            source: Box::new(Error::LeaseEnded {
                doing: "renewing lease l-1".into(),
                message: "lease l-1 has ended (expired)".into(),
            }),
        };
        assert_eq!(ended.exit_code(), NOT_FOUND);
    }

    #[test]
    fn version_mismatch_names_both_majors_and_what_to_upgrade() {
        let err = Error::ApiVersion {
            url: "http://127.0.0.1:8000".into(),
            daemon_major: 2,
        };
        assert_eq!(
            err.to_string(),
            "the daemon at http://127.0.0.1:8000 speaks API 2.x, this socv speaks 1.x; \
             upgrade socv so that both speak the same major version"
        );
    }

    #[test]
    fn unreachable_says_how_to_fix_it() {
        let err = Error::Unreachable {
            url: "http://127.0.0.1:8000".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot reach leased at http://127.0.0.1:8000: connection refused \
             (is it running? set --daemon or SOCV_DAEMON)"
        );
    }
}
