//! The result of one run: the `--json` object, the run directory's `result.json` and what the
//! JUnit report is made from.

use crate::exit_codes;
use crate::report::cases::{CaseStatus, TestCase};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How a run ended, in the words of the exit code it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The test exited 0.
    Passed,
    /// The test exited with its own non-zero code.
    Failed,
    /// The test ran past its time limit (124).
    TimedOut,
    /// socv or the lab failed, after the retries (125).
    LabFailure,
    /// The binary could not be executed on the board (126).
    CannotExecute,
    /// The binary or its interpreter was not found on the board (127).
    NotFound,
    /// Stopped by Ctrl-C (130), after giving back the lease.
    Cancelled,
}

impl Outcome {
    /// The outcome a `socv run` exit code stands for (docker-run style: anything that is not
    /// one of socv's own codes is the test's).
    pub fn from_exit_code(code: i32) -> Self {
        match code {
            exit_codes::OK => Self::Passed,
            exit_codes::TIMED_OUT => Self::TimedOut,
            exit_codes::LAB_FAILURE => Self::LabFailure,
            exit_codes::CANNOT_EXECUTE => Self::CannotExecute,
            exit_codes::NOT_FOUND_ON_BOARD => Self::NotFound,
            exit_codes::INTERRUPTED => Self::Cancelled,
            _ => Self::Failed,
        }
    }

    /// The failure was the lab's or socv's, not the test's (JUnit `<error>`, not `<failure>`).
    pub fn is_error(self) -> bool {
        !matches!(self, Self::Passed | Self::Failed)
    }

    /// The snake_case name used in JSON and JUnit.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::LabFailure => "lab_failure",
            Self::CannotExecute => "cannot_execute",
            Self::NotFound => "not_found",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The binary that ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryInfo {
    /// As given on the command line.
    pub path: String,
    /// Lowercase hex SHA-256 of the file pushed.
    #[serde(default)]
    pub sha256: String,
}

impl BinaryInfo {
    /// The file name, the way a report names the binary (`./build/test.elf` → `test.elf`).
    pub fn name(&self) -> &str {
        std::path::Path::new(&self.path)
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.path)
    }
}

/// An infrastructure failure on one board that made the run move to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardFailure {
    pub board: String,
    pub error: String,
}

/// The Jenkins build a run belongs to, from the variables Jenkins sets for every build step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JenkinsBuild {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_number: Option<String>,
}

impl JenkinsBuild {
    /// From the process environment; `None` outside Jenkins.
    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From `BUILD_URL`, `JOB_NAME` and `BUILD_NUMBER` as `lookup` finds them (empty counts as
    /// unset); `None` when none is set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let build = Self {
            build_url: get("BUILD_URL"),
            job_name: get("JOB_NAME"),
            build_number: get("BUILD_NUMBER"),
        };
        (build != Self::default()).then_some(build)
    }
}

/// Everything known about one run once it has ended. Times are Unix milliseconds, as leased's
/// `*_ms` fields. Fields added later must be `#[serde(default)]` so old `result.json` files
/// keep reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    pub run_id: String,
    pub binary: BinaryInfo,
    #[serde(default)]
    pub args: Vec<String>,
    /// The board it last ran on; `None` when no board was ever leased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    pub started_at_ms: u64,
    pub ended_at_ms: u64,
    pub duration_ms: u64,
    /// socv's exit code for this run (docker-run style).
    pub exit_code: i32,
    pub outcome: Outcome,
    /// Why socv or the lab failed (for lab failures, timeouts, cannot execute, not found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Infrastructure failures that were retried on another board, in order (`attempts` in
    /// result.json: each is an attempt the board ended).
    #[serde(default)]
    pub attempts: Vec<BoardFailure>,
    #[serde(default)]
    pub test_cases: Vec<TestCase>,
    /// The end of the console output, for reports of a run without test cases.
    #[serde(default)]
    pub output_tail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jenkins: Option<JenkinsBuild>,
    /// The run's `console.log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_path: Option<PathBuf>,
}

impl RunResult {
    /// A result with the given identity and end, everything else empty; callers fill in what
    /// they know.
    pub fn new(
        run_id: impl Into<String>,
        binary: BinaryInfo,
        started_at_ms: u64,
        ended_at_ms: u64,
        exit_code: i32,
    ) -> Self {
        Self {
            run_id: run_id.into(),
            binary,
            args: Vec::new(),
            board: None,
            family: None,
            location: None,
            lease_id: None,
            holder: None,
            started_at_ms,
            ended_at_ms,
            duration_ms: ended_at_ms.saturating_sub(started_at_ms),
            exit_code,
            outcome: Outcome::from_exit_code(exit_code),
            error: None,
            attempts: Vec::new(),
            test_cases: Vec::new(),
            output_tail: String::new(),
            jenkins: None,
            log_path: None,
        }
    }

    /// How many test cases ended with `status`.
    pub fn count(&self, status: CaseStatus) -> usize {
        self.test_cases
            .iter()
            .filter(|c| c.status == status)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_outcomes() {
        assert_eq!(Outcome::from_exit_code(0), Outcome::Passed);
        assert_eq!(Outcome::from_exit_code(3), Outcome::Failed);
        assert_eq!(Outcome::from_exit_code(124), Outcome::TimedOut);
        assert_eq!(Outcome::from_exit_code(125), Outcome::LabFailure);
        assert_eq!(Outcome::from_exit_code(126), Outcome::CannotExecute);
        assert_eq!(Outcome::from_exit_code(127), Outcome::NotFound);
        assert_eq!(Outcome::from_exit_code(130), Outcome::Cancelled);
        assert!(!Outcome::Failed.is_error());
        assert!(Outcome::TimedOut.is_error());
    }

    #[test]
    fn jenkins_from_a_lookup() {
        let env = |name: &str| match name {
            "BUILD_URL" => Some("https://ci/job/x/7/".to_string()),
            "BUILD_NUMBER" => Some("7".to_string()),
            "JOB_NAME" => Some(String::new()),
            _ => None,
        };
        assert_eq!(
            JenkinsBuild::from_lookup(env),
            Some(JenkinsBuild {
                build_url: Some("https://ci/job/x/7/".into()),
                job_name: None,
                build_number: Some("7".into()),
            })
        );
        assert_eq!(JenkinsBuild::from_lookup(|_| None), None);
    }

    #[test]
    fn json_round_trip_and_field_names() {
        let mut r = RunResult::new(
            "r1",
            BinaryInfo {
                path: "./build/test.elf".into(),
                sha256: "ab".into(),
            },
            1_000,
            4_500,
            3,
        );
        r.board = Some("imx8-01".into());
        r.attempts.push(BoardFailure {
            board: "imx8-02".into(),
            error: "telnet refused".into(),
        });
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["outcome"], "failed");
        assert_eq!(json["duration_ms"], 3_500);
        assert_eq!(json["binary"]["path"], "./build/test.elf");
        assert!(json.get("lease_id").is_none());
        let back: RunResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.binary.name(), "test.elf");
    }

    #[test]
    fn old_minimal_json_still_reads() {
        let r: RunResult = serde_json::from_str(
            r#"{"run_id":"x","binary":{"path":"t"},"started_at_ms":1,"ended_at_ms":2,
                "duration_ms":1,"exit_code":0,"outcome":"passed"}"#,
        )
        .unwrap();
        assert_eq!(r.outcome, Outcome::Passed);
    }
}
