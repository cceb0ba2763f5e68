//! The run directories under the data dir (`runs/<YYYYmmdd-HHMMSS>-<run id>/` with
//! `console.log` and `result.json`) and their pruning by age and total size.

use crate::report::result::RunResult;
use crate::report::{ReportError, write_atomically};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const CONSOLE_LOG: &str = "console.log";
pub const RESULT_JSON: &str = "result.json";

/// A run without `result.json` that was written to this recently is taken to be still going
/// (another `socv` process's run) and is never pruned.
pub const IN_PROGRESS_GRACE: Duration = Duration::from_secs(60 * 60);

const DAY: f64 = 24.0 * 60.0 * 60.0;
/// Disk sizes are decimal, as disks are sold and `df -H` shows them.
const GB: f64 = 1e9;

/// The data dir socv and leased share: `SOCV_DATA_DIR`, else `$XDG_DATA_HOME/socv`.
pub fn default_data_dir() -> PathBuf {
    socv_api::data_dir()
}

/// Where the run directories live.
pub fn runs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("runs")
}

/// One run's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates `<data_dir>/runs/<YYYYmmdd-HHMMSS>-<run_id>/` (UTC, now) with an empty
    /// `console.log`.
    pub fn create(data_dir: &Path, run_id: &str) -> Result<Self, ReportError> {
        Self::create_at(data_dir, run_id, SystemTime::now())
    }

    /// As [`RunDir::create`], stamped with `started` instead of now.
    pub fn create_at(
        data_dir: &Path,
        run_id: &str,
        started: SystemTime,
    ) -> Result<Self, ReportError> {
        let runs = runs_dir(data_dir);
        std::fs::create_dir_all(&runs)
            .map_err(|e| ReportError::io("creating the runs directory", &runs, e))?;
        let path = runs.join(format!("{}-{}", stamp(started), safe_file_name(run_id)));
        // Not create_dir_all: two runs must never share a directory.
        std::fs::create_dir(&path)
            .map_err(|e| ReportError::io("creating the run directory", &path, e))?;
        let log = path.join(CONSOLE_LOG);
        std::fs::File::create(&log).map_err(|e| ReportError::io("creating", &log, e))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn console_log_path(&self) -> PathBuf {
        self.path.join(CONSOLE_LOG)
    }

    pub fn result_path(&self) -> PathBuf {
        self.path.join(RESULT_JSON)
    }

    /// The writer the run streams its console output into (appending; flush it at the end).
    pub async fn open_console_log(
        &self,
    ) -> Result<tokio::io::BufWriter<tokio::fs::File>, ReportError> {
        let path = self.console_log_path();
        let file = tokio::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .await
            .map_err(|e| ReportError::io("opening", &path, e))?;
        Ok(tokio::io::BufWriter::new(file))
    }

    /// Writes `result.json` (atomically: `socv history` may read it at any time).
    pub fn write_result(&self, result: &RunResult) -> Result<(), ReportError> {
        let mut json = serde_json::to_vec_pretty(result)?;
        json.push(b'\n');
        write_atomically(&self.result_path(), &json)
    }
}

/// `YYYYmmdd-HHMMSS` in UTC.
fn stamp(t: SystemTime) -> String {
    // `2026-11-29T01:53:14Z` → `20261129-015314`.
    let rfc = humantime::format_rfc3339_seconds(t).to_string();
    let digits: String = rfc.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 14 {
        format!("{}-{}", &digits[..8], &digits[8..14])
    } else {
        digits
    }
}

/// A run id as a path component: no separators, no `..`, nothing a shell trips on.
fn safe_file_name(id: &str) -> String {
    let cleaned: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match cleaned.trim_matches('.') {
        "" => "run".to_string(),
        s => s.to_string(),
    }
}

/// Whether a name is one [`RunDir::create`] makes; pruning touches nothing else.
fn is_run_dir_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'-'
}

/// How long and how much the run directories are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_total_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            max_total_bytes: 100_000_000_000,
        }
    }
}

impl Retention {
    /// From `ARTIFACT_RETENTION_DAYS` (default 7) and `MAX_DISK_USAGE_GB` (default 100);
    /// both accept decimals (`0.5`).
    pub fn from_env() -> Result<Self, ReportError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Retention::from_env`] with the variables as `lookup` finds them; empty is unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ReportError> {
        let mut retention = Self::default();
        if let Some(days) = non_negative(
            &lookup,
            "ARTIFACT_RETENTION_DAYS",
            "not a number of days (e.g. 7 or 0.5)",
        )? {
            retention.max_age =
                Duration::try_from_secs_f64(days * DAY).map_err(|_| ReportError::BadEnv {
                    var: "ARTIFACT_RETENTION_DAYS",
                    value: lookup("ARTIFACT_RETENTION_DAYS").unwrap_or_default(),
                    reason: "too many days",
                })?;
        }
        if let Some(gb) = non_negative(
            &lookup,
            "MAX_DISK_USAGE_GB",
            "not a number of gigabytes (e.g. 100 or 0.5)",
        )? {
            // `as` saturates: an absurdly large limit is simply no limit.
            retention.max_total_bytes = (gb * GB) as u64;
        }
        Ok(retention)
    }
}

fn non_negative(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    reason: &'static str,
) -> Result<Option<f64>, ReportError> {
    let Some(value) = lookup(var).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    match value.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
        _ => Err(ReportError::BadEnv { var, value, reason }),
    }
}

/// What [`prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The run directories deleted, oldest first.
    pub removed: Vec<PathBuf>,
    pub freed_bytes: u64,
    /// What the run directories left take.
    pub kept_bytes: u64,
}

struct Candidate {
    path: PathBuf,
    modified: SystemTime,
    bytes: u64,
    protected: bool,
}

/// Deletes run directories last written to more than `max_age` before `now`, then the oldest
/// until all of them take at most `max_total_bytes`. Never deletes `in_progress` nor a run
/// that looks like it is still going elsewhere (no `result.json`, written to within
/// [`IN_PROGRESS_GRACE`]). A directory that cannot be deleted is logged and skipped: pruning
/// never fails a run.
pub fn prune(
    data_dir: &Path,
    retention: &Retention,
    now: SystemTime,
    in_progress: Option<&Path>,
) -> Result<PruneReport, ReportError> {
    let runs = runs_dir(data_dir);
    let entries = match std::fs::read_dir(&runs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PruneReport::default()),
        Err(e) => return Err(ReportError::io("reading", &runs, e)),
    };
    let in_progress_name = in_progress.and_then(Path::file_name);
    let mut candidates = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name_str) = name.to_str() else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || !is_run_dir_name(name_str) {
            continue;
        }
        let path = entry.path();
        let (bytes, modified) = usage(&path);
        let unfinished = !path.join(RESULT_JSON).exists();
        let recent = now
            .duration_since(modified)
            .map_or(true, |age| age < IN_PROGRESS_GRACE);
        candidates.push(Candidate {
            protected: in_progress_name == Some(name.as_os_str()) || (unfinished && recent),
            path,
            modified,
            bytes,
        });
    }
    // Oldest first; the name (which starts with the start time) breaks ties.
    candidates.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.path.cmp(&b.path)));

    let mut report = PruneReport::default();
    let mut total: u64 = candidates.iter().map(|c| c.bytes).sum();
    for c in &candidates {
        if c.protected {
            continue;
        }
        let too_old = now
            .duration_since(c.modified)
            .is_ok_and(|age| age > retention.max_age);
        if !(too_old || total > retention.max_total_bytes) {
            continue;
        }
        match std::fs::remove_dir_all(&c.path) {
            Ok(()) => {}
            // Another socv pruned it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!("cannot delete old run directory {}: {e}", c.path.display());
                continue;
            }
        }
        total = total.saturating_sub(c.bytes);
        report.freed_bytes += c.bytes;
        report.removed.push(c.path.clone());
    }
    report.kept_bytes = total;
    Ok(report)
}

/// Bytes taken by the files under `dir` and the last time anything there was written (the
/// directory's own mtime only moves when files are added, not when `console.log` grows).
/// Symlinks are not followed.
fn usage(dir: &Path) -> (u64, SystemTime) {
    let mut bytes = 0;
    let mut modified = std::fs::symlink_metadata(dir)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                bytes += meta.len();
            }
            if let Ok(m) = meta.modified() {
                modified = modified.max(m);
            }
        }
    }
    (bytes, modified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::result::BinaryInfo;
    use std::fs::File;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// A finished run of `bytes` bytes last written at `modified`.
    fn fake_run(
        data: &Path,
        id: &str,
        bytes: usize,
        modified: SystemTime,
        finished: bool,
    ) -> PathBuf {
        let dir = RunDir::create_at(data, id, modified).unwrap();
        std::fs::write(dir.console_log_path(), vec![b'x'; bytes]).unwrap();
        let mut files = vec![dir.console_log_path()];
        if finished {
            std::fs::write(dir.result_path(), b"{}").unwrap();
            files.push(dir.result_path());
        }
        for f in files {
            File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(modified)
                .unwrap();
        }
        File::open(dir.path())
            .unwrap()
            .set_modified(modified)
            .unwrap();
        dir.path().to_path_buf()
    }

    #[test]
    fn create_names_the_directory_and_keeps_the_id_safe() {
        let data = tempfile::tempdir().unwrap();
        let dir = RunDir::create_at(data.path(), "../evil/id", at(1_795_917_194)).unwrap();
        assert_eq!(
            dir.path(),
            data.path().join("runs").join("20261129-015314-_evil_id")
        );
        assert!(dir.console_log_path().is_file());
        assert!(RunDir::create_at(data.path(), "../evil/id", at(1_795_917_194)).is_err());
    }

    #[tokio::test]
    async fn console_log_and_result_json() {
        use tokio::io::AsyncWriteExt as _;
        let data = tempfile::tempdir().unwrap();
        let dir = RunDir::create(data.path(), "r1").unwrap();
        let mut log = dir.open_console_log().await.unwrap();
        log.write_all(b"hello\n").await.unwrap();
        log.flush().await.unwrap();
        assert_eq!(std::fs::read(dir.console_log_path()).unwrap(), b"hello\n");
        let result = RunResult::new("r1", BinaryInfo::default(), 1, 2, 0);
        dir.write_result(&result).unwrap();
        let back: RunResult =
            serde_json::from_slice(&std::fs::read(dir.result_path()).unwrap()).unwrap();
        assert_eq!(back, result);
    }

    #[test]
    fn prune_by_age_then_size_oldest_first() {
        let data = tempfile::tempdir().unwrap();
        let now = at(1_800_000_000);
        let day = 24 * HOUR;
        let ancient = fake_run(data.path(), "ancient", 10, now - 8 * day, true);
        let old = fake_run(data.path(), "old", 400, now - 3 * day, true);
        let mid = fake_run(data.path(), "mid", 400, now - 2 * day, true);
        let new = fake_run(data.path(), "new", 400, now - day, true);
        let current = fake_run(data.path(), "current", 400, now - 10 * day, false);
        let elsewhere = fake_run(data.path(), "elsewhere", 400, now - HOUR / 2, false);
        std::fs::create_dir_all(data.path().join("runs").join("not-a-run")).unwrap();

        let retention = Retention {
            max_age: 7 * day,
            max_total_bytes: 1700,
        };
        let report = prune(data.path(), &retention, now, Some(&current)).unwrap();
        assert_eq!(report.removed, vec![ancient.clone(), old.clone()]);
        for kept in [&mid, &new, &current, &elsewhere] {
            assert!(kept.exists(), "{} deleted", kept.display());
        }
        assert!(!ancient.exists() && !old.exists());
        assert_eq!(report.kept_bytes, 4 * 400 + 2 * 2);
        assert!(data.path().join("runs").join("not-a-run").exists());
    }

    #[test]
    fn an_abandoned_unfinished_run_is_pruned() {
        let data = tempfile::tempdir().unwrap();
        let now = at(1_800_000_000);
        let crashed = fake_run(data.path(), "crashed", 1, now - 2 * HOUR, false);
        let retention = Retention {
            max_age: HOUR,
            ..Retention::default()
        };
        let report = prune(data.path(), &retention, now, None).unwrap();
        assert_eq!(report.removed, vec![crashed]);
    }

    #[test]
    fn prune_without_runs_dir_is_a_no_op() {
        let data = tempfile::tempdir().unwrap();
        let report = prune(data.path(), &Retention::default(), SystemTime::now(), None).unwrap();
        assert_eq!(report, PruneReport::default());
    }

    #[test]
    fn retention_from_the_environment() {
        let env = |days: &'static str, gb: &'static str| {
            move |name: &str| match name {
                "ARTIFACT_RETENTION_DAYS" => Some(days.to_string()),
                "MAX_DISK_USAGE_GB" => Some(gb.to_string()),
                _ => None,
            }
        };
        assert_eq!(
            Retention::from_lookup(|_| None).unwrap(),
            Retention::default()
        );
        assert_eq!(
            Retention::from_lookup(env("", " ")).unwrap(),
            Retention::default()
        );
        let r = Retention::from_lookup(env("0.5", "0.5")).unwrap();
        assert_eq!(r.max_age, 12 * HOUR);
        assert_eq!(r.max_total_bytes, 500_000_000);
        let r = Retention::from_lookup(env("30", "2")).unwrap();
        assert_eq!(r.max_age, 30 * 24 * HOUR);
        assert_eq!(r.max_total_bytes, 2_000_000_000);

        let err = Retention::from_lookup(env("a week", "1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ARTIFACT_RETENTION_DAYS") && err.contains("a week"),
            "{err}"
        );
        let err = Retention::from_lookup(env("7", "-1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MAX_DISK_USAGE_GB") && err.contains("-1"),
            "{err}"
        );
        assert!(Retention::from_lookup(env("NaN", "1")).is_err());
        assert!(Retention::from_lookup(env("1e300", "1")).is_err());
    }
}
