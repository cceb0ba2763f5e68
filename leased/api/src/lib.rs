//! The contract between socv and leased: API v1's wire types, error codes and limits, the ids
//! either side makes, the default console prompts, where socv's data lives, the clock model
//! ([`time`]) and the located errors of the YAML files either side reads.
//!
//! Both sides depend on this crate (serde only: no tokio, redis, redb or axum; the `yaml`
//! feature adds serde-saphyr for the `located` YAML errors), so a wire change
//! is one edit here, and the golden documents in `leased/api/tests/golden/` make it a visible
//! diff.
//!
//! Requests reject unknown fields (a typo must not be silently ignored); responses use
//! `#[serde(default)]` so an older socv keeps reading a newer daemon's answers.

#[cfg(feature = "yaml")]
pub mod located;
pub mod time;

use serde::{Deserialize, Serialize};

/// A fresh id such as `l-3f2a9c81d0e4`: the prefix says what it names (`l` lease, `t` queue
/// ticket, `r` run), then 48 random bits.
pub fn new_id(prefix: &str) -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random::<u64>() & 0xffff_ffff_ffff;
    format!("{prefix}-{n:012x}")
}

/// 16 bytes in a UUID's text form (`8-4-4-4-12` hex digits).
pub fn uuid_text(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// What a board's console says when it wants the user name, unless boards.yaml says otherwise.
pub const DEFAULT_LOGIN_PROMPT: &str = "login:";
/// What a board's console says when it wants the password, unless boards.yaml says otherwise.
pub const DEFAULT_PASSWORD_PROMPT: &str = "Password:";

/// Where socv and leased keep their data: `SOCV_DATA_DIR`, else `$XDG_DATA_HOME/socv`.
pub fn data_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("SOCV_DATA_DIR") {
        return std::path::PathBuf::from(d);
    }
    dirs::data_dir()
        .unwrap_or_else(|| std::path::PathBuf::from("."))
        .join("socv")
}

/// The API version; socv refuses a daemon whose major version differs.
pub const API_VERSION: &str = "1.0";
/// Response header carrying [`API_VERSION`] on every answer of leased.
pub const API_VERSION_HEADER: &str = "x-socv-api-version";
/// Request header naming the caller (`user@host`) when the daemon runs without tokens.
pub const HOLDER_HEADER: &str = "x-socv-holder";
/// Largest request body leased accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Major part of an API version string (`"1.0"` → `1`).
pub fn api_major(version: &str) -> Option<u32> {
    version.split('.').next()?.trim().parse().ok()
}

/// Scheduling priority of a lease request: 1 high, 2 normal, 3 low.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(into = "u8", try_from = "u8")]
pub enum Priority {
    High = 1,
    #[default]
    Normal = 2,
    Low = 3,
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p as u8
    }
}

impl TryFrom<u8> for Priority {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            1 => Ok(Priority::High),
            2 => Ok(Priority::Normal),
            3 => Ok(Priority::Low),
            other => Err(format!(
                "invalid priority {other}: expected 1 (high), 2 (normal) or 3 (low)"
            )),
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        })
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "high" | "1" => Ok(Priority::High),
            "normal" | "2" => Ok(Priority::Normal),
            "low" | "3" => Ok(Priority::Low),
            other => Err(format!(
                "invalid priority '{other}': expected high, normal or low"
            )),
        }
    }
}

/// `POST /api/v1/lease`: ask for a board of a family, or for one board.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// A family such as `socA`. Exactly one of `board_family` and `board_id` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_family: Option<String>,
    /// One board such as `soc-a-001`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_id: Option<String>,
    /// Preferred lab location: a free board there wins (soft affinity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Lease lifetime; default 30 minutes, capped by the daemon's `max_ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u64>,
    /// How long to wait in the queue when nothing is free. Absent or 0: answer 503 at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_s: Option<u64>,
}

/// `POST /api/v1/lease/{id}/renew` (the body is optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// New lifetime from now; default: the lease's own TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u64>,
}

/// The telnet console of a board, with credentials; given only to the lease holder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Console {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// What the console prints to ask for the user name, when not `login:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_prompt: Option<String>,
    /// What the console prints to ask for the password, when not `Password:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_prompt: Option<String>,
}

/// A granted lease.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub board_id: String,
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub holder: String,
    #[serde(default)]
    pub priority: Priority,
    /// Unix time in milliseconds.
    #[serde(default)]
    pub granted_at_ms: u64,
    /// Unix time in milliseconds; the board is freed within a second after it.
    #[serde(default)]
    pub expires_at_ms: u64,
    #[serde(default)]
    pub ttl_s: u64,
    /// Position of this grant in the lab's global order of queue and grant events.
    #[serde(default)]
    pub grant_seq: u64,
    /// Present only in answers to the holder (or an admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<Console>,
}

/// A place in the wait queue (`202` from `POST /api/v1/lease`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueTicket {
    #[serde(default)]
    pub ticket: String,
    /// 1 = next in line among the waiters for the same family.
    #[serde(default)]
    pub position: u32,
    #[serde(default)]
    pub family: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_id: Option<String>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub holder: String,
    /// Position in the lab's global order of queue and grant events (FIFO within a priority).
    #[serde(default)]
    pub seq: u64,
    /// The ticket lapses unless polled again before this (Unix ms).
    #[serde(default)]
    pub poll_by_ms: u64,
    /// The ticket gives up at this time (Unix ms); absent: waits without limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub give_up_at_ms: Option<u64>,
}

/// Answer of `GET /api/v1/queue/{ticket}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TicketStatus {
    Waiting(QueueTicket),
    Granted { lease: Lease },
}

/// Board availability: the first axis of board state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    #[default]
    Free,
    Leased,
}

/// Board health: the second axis. `Maintenance` is an admin's drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoardHealth {
    #[default]
    Healthy,
    Unhealthy,
    Maintenance,
}

impl std::fmt::Display for BoardHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BoardHealth::Healthy => "healthy",
            BoardHealth::Unhealthy => "unhealthy",
            BoardHealth::Maintenance => "maintenance",
        })
    }
}

impl std::fmt::Display for Availability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Availability::Free => "free",
            Availability::Leased => "leased",
        })
    }
}

/// One board as `GET /api/v1/boards` shows it (no credentials).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardView {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub family: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default)]
    pub location: String,
    /// `host:port` of the telnet console.
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub availability: Availability,
    #[serde(default)]
    pub health: BoardHealth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at_ms: Option<u64>,
    /// Consecutive infrastructure failures.
    #[serde(default)]
    pub failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_reason: Option<String>,
}

/// `POST /api/v1/boards/{id}/drain`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/v1/boards/{id}/health`: a run's verdict on the board's infrastructure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthReport {
    /// `true`: the board worked (resets the failure count); `false`: an infrastructure failure.
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `POST /api/v1/power/{board_id}/{action}` does to a board's PDU outlet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerAction {
    On,
    Off,
    /// Off, the PDU's cycle delay, on (never split by another action on the same outlet).
    Cycle,
    Status,
}

impl std::fmt::Display for PowerAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            PowerAction::Cycle => "cycle",
            PowerAction::Status => "status",
        })
    }
}

impl std::str::FromStr for PowerAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "on" => Ok(PowerAction::On),
            "off" => Ok(PowerAction::Off),
            "cycle" => Ok(PowerAction::Cycle),
            "status" => Ok(PowerAction::Status),
            other => Err(format!(
                "unknown power action '{other}': expected on, off, cycle or status"
            )),
        }
    }
}

/// An outlet's power as the PDU reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    On,
    Off,
    /// The PDU (or its driver) cannot tell.
    #[default]
    Unknown,
}

/// Answer of `POST /api/v1/power/{board_id}/{action}` (after the action has happened).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerResult {
    #[serde(default)]
    pub board_id: String,
    #[serde(default)]
    pub action: String,
    /// The PDU's name in boards.yaml and the outlet.
    #[serde(default)]
    pub pdu: String,
    #[serde(default)]
    pub outlet: u32,
    /// The outlet's state after the action, when the driver can tell.
    #[serde(default)]
    pub state: PowerState,
    /// Tries it took (a failed action is retried a bounded number of times).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub elapsed_ms: u64,
}

/// State of the lease store as `GET /api/v1/health` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// `redis` or `embedded`.
    #[serde(default)]
    pub backend: String,
    /// Where it is (a Redis URL without its password, or a file path).
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/v1/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonHealth {
    /// `ok`, or `degraded` when the store is unavailable.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub store: StoreStatus,
    #[serde(default)]
    pub boards: u32,
    #[serde(default)]
    pub leases: u32,
    #[serde(default)]
    pub waiting: u32,
    /// Whether the caller is authenticated and with which role (`admin`, `user`, `local`).
    #[serde(default)]
    pub caller: String,
    #[serde(default)]
    pub caller_role: String,
    /// Run history delivery to Prefect.
    #[serde(default)]
    pub prefect: PrefectStatus,
    /// Configured notification channels.
    #[serde(default)]
    pub notifications: Vec<ChannelStatus>,
}

/// Where a run is. `Pending` → `Running` → one of the terminal states; the names are those of
/// Prefect's state types, except `TimedOut` (a Prefect FAILED state named `TimedOut`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    #[default]
    Pending,
    Running,
    /// The test passed (exit code 0).
    Completed,
    /// The test failed (non-zero exit code).
    Failed,
    /// The test ran past its timeout.
    TimedOut,
    /// socv or the lab failed (the run could not say how the test did), or the client vanished.
    Crashed,
    /// Stopped by a person (Ctrl-C) or by socv before it finished.
    Cancelled,
}

impl RunState {
    pub const ALL: [RunState; 7] = [
        RunState::Pending,
        RunState::Running,
        RunState::Completed,
        RunState::Failed,
        RunState::TimedOut,
        RunState::Crashed,
        RunState::Cancelled,
    ];

    /// Whether the run has ended (no further state changes are accepted).
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunState::Pending | RunState::Running)
    }

    /// Whether the run ended badly (for "failures only" notifications).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            RunState::Failed | RunState::TimedOut | RunState::Crashed
        )
    }

    /// The wire name (`timed_out`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::TimedOut => "timed_out",
            RunState::Crashed => "crashed",
            RunState::Cancelled => "cancelled",
        }
    }

    /// Prefect's state type for this state.
    pub fn prefect_type(self) -> &'static str {
        match self {
            RunState::Pending => "PENDING",
            RunState::Running => "RUNNING",
            RunState::Completed => "COMPLETED",
            RunState::Failed | RunState::TimedOut => "FAILED",
            RunState::Crashed => "CRASHED",
            RunState::Cancelled => "CANCELLED",
        }
    }

    /// Prefect's state name for this state (shown in its UI).
    pub fn prefect_name(self) -> &'static str {
        match self {
            RunState::Pending => "Pending",
            RunState::Running => "Running",
            RunState::Completed => "Completed",
            RunState::Failed => "Failed",
            RunState::TimedOut => "TimedOut",
            RunState::Crashed => "Crashed",
            RunState::Cancelled => "Cancelled",
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        RunState::ALL
            .into_iter()
            .find(|st| st.as_str() == wanted || st.as_str().replace('_', "") == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "invalid run state '{s}': expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Longest run id a client may choose.
pub const MAX_RUN_ID_LEN: usize = 64;

/// Checks a client-chosen run id: 1–64 of `a-z`, `0-9` and `-` (it becomes part of Prefect's
/// idempotency key and artifact keys, which allow no more).
pub fn check_run_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_RUN_ID_LEN {
        return Err(format!(
            "run id '{id}' must be 1 to {MAX_RUN_ID_LEN} characters"
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "run id '{id}' holds '{c}': only a-z, 0-9 and '-' are allowed"
        ));
    }
    Ok(())
}

/// `POST /api/v1/runs`: a run has started on a leased board. The holder is the caller.
/// Posting the same `id` again answers the run already recorded (safe to retry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunStart {
    /// Chosen by the client so that a retried POST does not record the run twice; see
    /// [`check_run_id`]. Absent: the daemon picks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The lease the run uses; when it ends while the run is still going, the run is Crashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    pub board_id: String,
    /// Default: the board's family in the lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Default: the board's location in the lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The test binary as the user named it (a local path).
    pub binary: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Outcome of one test case, as the run's output told it (TAP, KTAP, LAVA markers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseOutcome {
    #[default]
    Pass,
    Fail,
    Skip,
}

/// One test case of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCase {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub outcome: CaseOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `PATCH /api/v1/runs/{id}`: the run moved on (to Running, or to its end with its result).
/// A run that has ended accepts no other state: 409 `run_ended`. Repeating the very state it
/// ended in answers the run unchanged (safe to retry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunUpdate {
    pub state: RunState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The test's exit code, when it ran to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// socv's own exit code for the run (docker-run style: 124 timeout, 125 lab failure, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socv_exit_code: Option<i32>,
    /// The board the run ended on, when socv retried on another board.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<RunCase>,
}

/// Severity of a log line, as Prefect's integer levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warning,
    Error,
}

impl LogLevel {
    /// Python's logging level (what Prefect's `/logs/` wants).
    pub fn python_level(self) -> u8 {
        match self {
            LogLevel::Debug => 10,
            LogLevel::Info => 20,
            LogLevel::Warning => 30,
            LogLevel::Error => 40,
        }
    }
}

/// One console line (or socv's own message) of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When it was seen, Unix ms.
    #[serde(default)]
    pub ts_ms: u64,
    #[serde(default)]
    pub level: LogLevel,
    /// `console` for the board's output, `socv` for socv's own messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default)]
    pub message: String,
}

/// `POST /api/v1/runs/{id}/logs`: console lines, in order. A batch must fit the body limit;
/// socv sends at most [`MAX_LOG_BATCH_LINES`] lines of at most [`MAX_LOG_LINE_BYTES`] each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunLogs {
    pub lines: Vec<LogLine>,
}

/// Most lines in one `POST /api/v1/runs/{id}/logs`.
pub const MAX_LOG_BATCH_LINES: usize = 1000;
/// Longest log line; a longer one is split into several lines by the sender.
pub const MAX_LOG_LINE_BYTES: usize = 8 * 1024;

/// The Prefect side of a run, once delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPrefect {
    #[serde(default)]
    pub flow_run_id: String,
    /// The flow run's page in the Prefect UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A run as recorded (`GET /api/v1/runs`, and the answer to every run call).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    #[serde(default)]
    pub board_id: String,
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub holder: String,
    #[serde(default)]
    pub binary: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub state: RunState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socv_exit_code: Option<i32>,
    #[serde(default)]
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    #[serde(default)]
    pub cases: Vec<RunCase>,
    /// Console lines recorded so far.
    #[serde(default)]
    pub log_lines: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefect: Option<RunPrefect>,
}

impl Run {
    /// From start to end (or to now, for a run still going), in ms.
    pub fn duration_ms(&self, now_ms: u64) -> u64 {
        let start = self.started_at_ms.unwrap_or(self.created_at_ms);
        self.ended_at_ms.unwrap_or(now_ms).saturating_sub(start)
    }
}

/// `GET /api/v1/runs` query: every filter is optional; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<RunState>,
    /// Only runs created at or after this Unix time (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// At most this many (default 50, at most [`MAX_RUN_QUERY_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Default and largest `limit` of `GET /api/v1/runs`.
pub const DEFAULT_RUN_QUERY_LIMIT: usize = 50;
pub const MAX_RUN_QUERY_LIMIT: usize = 1000;

/// How the delivery of run records to Prefect goes (`GET /api/v1/health`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefectStatus {
    /// Whether a Prefect API URL is configured at all.
    #[serde(default)]
    pub configured: bool,
    /// The API URL, without credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The last delivery attempt succeeded (or nothing was tried yet).
    #[serde(default)]
    pub ok: bool,
    /// What went wrong last, while it is still going wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Records waiting in the outbox.
    #[serde(default)]
    pub backlog: u64,
    /// Records delivered since this daemon started.
    #[serde(default)]
    pub delivered: u64,
    /// Records Prefect refused for good (it answered 4xx to valid-looking data) and that were
    /// skipped, since this daemon started; leased's log says which and why.
    #[serde(default)]
    pub refused: u64,
    /// The last such refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refusal: Option<String>,
    /// When the last record was delivered, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery_ms: Option<u64>,
}

/// One notification channel (Slack, Feishu) as `GET /api/v1/health` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub sent: u64,
    /// Notifications given up on after their retries.
    #[serde(default)]
    pub failed: u64,
    /// Waiting to be sent or retried.
    #[serde(default)]
    pub pending: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_ms: Option<u64>,
}

/// A test to run on the lab through its Prefect work pool (`POST /api/v1/remote-runs`): a flow
/// run of the pool's deployment that a `socv worker` claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteRunRequest {
    /// Chosen by the client, one per submission (a run id's alphabet): a retried request makes
    /// no second flow run.
    pub submission: String,
    /// The binary: the sha256 of an artifact uploaded to leased, or an http(s):// URL.
    pub test_binary: String,
    pub board_family: String,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Seconds before the test is interrupted (1 to 86400; default 1800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Other boards to try after a failure of the board itself (0 to 10; default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// The binary's sha256, for a URL `test_binary` (checked after download).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The flow run's name as people see it (default: family and binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The flow run a remote run is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRun {
    pub flow_run_id: String,
    pub name: String,
    pub pool: String,
    /// The queue of its priority (`p1`, `p2`, `p3`).
    pub queue: String,
    /// Its page in Prefect's UI.
    pub url: String,
    /// `false`: this submission had made it before (the answer to a retried request).
    pub created: bool,
}

/// An artifact leased keeps: a remote run's binary, named by its sha256
/// (`PUT /api/v1/artifacts/{sha256}` answers it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactInfo {
    pub sha256: String,
    pub size: u64,
}

/// The workers of the lab's Prefect work pool, as Prefect sees them (`GET /api/v1/workers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolWorkers {
    /// The work pool (leased's `work_pool`).
    pub pool: String,
    #[serde(default)]
    pub workers: Vec<WorkerView>,
}

/// One worker of the pool: its heartbeat as Prefect keeps it and the runs it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerView {
    pub name: String,
    /// `ONLINE` or `OFFLINE` (Prefect's word: no heartbeat for three intervals).
    pub status: String,
    /// RFC 3339, as Prefect keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
    /// The lab location of its runs (their `socv.location` label), when they say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Flow runs it has claimed and not ended (Pending or Running).
    #[serde(default)]
    pub runs: Vec<WorkerRun>,
}

/// A flow run a worker holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRun {
    pub flow_run_id: String,
    pub name: String,
    /// Prefect's state name (`Pending`, `Running`, …).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
}

/// Machine-readable error codes of [`ErrorBody`].
pub mod codes {
    pub const BAD_REQUEST: &str = "bad_request";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const FORBIDDEN: &str = "forbidden";
    pub const NOT_FOUND: &str = "not_found";
    pub const LEASE_ENDED: &str = "lease_ended";
    pub const TICKET_ENDED: &str = "ticket_ended";
    pub const NO_BOARD_AVAILABLE: &str = "no_board_available";
    pub const NO_HEALTHY_BOARD: &str = "no_healthy_board";
    pub const STORE_UNAVAILABLE: &str = "store_unavailable";
    /// The board has no PDU in boards.yaml.
    pub const NO_PDU: &str = "no_pdu";
    /// The PDU was unreachable or answered an error (after the retries).
    pub const PDU_FAILED: &str = "pdu_failed";
    /// The run has ended and accepts no other state.
    pub const RUN_ENDED: &str = "run_ended";
    /// leased has no Prefect configured (`PREFECT_API_URL`).
    pub const NO_PREFECT: &str = "no_prefect";
    /// Prefect did not answer, or answered an error.
    pub const PREFECT_FAILED: &str = "prefect_failed";
    pub const INTERNAL: &str = "internal";
}

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_is_a_number_on_the_wire_and_rejects_others() {
        assert_eq!(serde_json::to_string(&Priority::High).unwrap(), "1");
        let err = serde_json::from_str::<LeaseRequest>(r#"{"board_family":"socA","priority":7}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid priority 7"), "{err}");
    }

    #[test]
    fn lease_request_rejects_unknown_fields() {
        let err = serde_json::from_str::<LeaseRequest>(r#"{"board_famly":"socA"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("board_famly"), "{err}");
    }

    #[test]
    fn responses_tolerate_new_fields() {
        let lease: Lease =
            serde_json::from_str(r#"{"id":"l-1","board_id":"b","future_field":true}"#).unwrap();
        assert_eq!(lease.id, "l-1");
    }

    #[test]
    fn ticket_status_is_tagged() {
        let s = TicketStatus::Granted {
            lease: Lease::default(),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["state"], "granted");
    }

    #[test]
    fn api_major_parses() {
        assert_eq!(api_major("1.0"), Some(1));
        assert_eq!(api_major("x"), None);
    }
}
