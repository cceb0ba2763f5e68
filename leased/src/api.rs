//! Wire types of leased's HTTP API: the one definition that leased serves and socv speaks.
//!
//! Requests reject unknown fields (a typo must not be silently ignored); responses use
//! `#[serde(default)]` so an older socv keeps reading a newer daemon's answers.

use serde::{Deserialize, Serialize};

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
