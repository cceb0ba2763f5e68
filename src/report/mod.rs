//! The results of a run: test cases found in its output, the result object, JUnit XML and the
//! run directory under the data dir (used by `socv run` and `socv batch`).

pub mod cases;
pub mod junit;
pub mod result;
pub mod rundir;

pub use cases::{CaseScanner, CaseStatus, Measurement, Scanned, TestCase};
pub use junit::{junit_xml, write_junit};
pub use result::{BinaryInfo, BoardFailure, JenkinsBuild, Outcome, RunResult};
pub use rundir::{PruneReport, Retention, RunDir, default_data_dir, prune, runs_dir};

use std::path::PathBuf;

/// What writing or pruning the results of a run can fail with; each says what and where.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{doing} {}: {source}", path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("bad {var}={value:?}: {reason}")]
    BadEnv {
        var: &'static str,
        value: String,
        reason: &'static str,
    },

    #[error("encoding the run result as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl ReportError {
    pub(crate) fn io(
        doing: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            doing,
            path: path.into(),
            source,
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader (Jenkins picking up the JUnit file, `socv history`) never sees half a file.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), ReportError> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".socv-").suffix(".tmp");
    // tempfile's default 0600 would hide the report from a CI agent running as another user.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| ReportError::io("creating a temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| ReportError::io("writing", tmp.path().to_path_buf(), e))?;
    tmp.persist(path)
        .map_err(|e| ReportError::io("renaming into place", path, e.error))?;
    Ok(())
}

/// The last `max` bytes of `s`, cut at a character boundary (an excerpt keeps the end, where
/// the failure usually is).
pub(crate) fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
