//! The lease store: one trait, two backends (Redis and embedded) with the same semantics.
//!
//! Semantics every backend keeps (docs/architecture.md §2), checked by
//! `leased/tests/it/store_conformance.rs`:
//! - A free, healthy, undrained board matching the request is granted at once; among several,
//!   one at the preferred location wins, then the least recently used, then the lowest id.
//! - Otherwise, if the request may wait, it gets a ticket in one queue ordered by priority, then
//!   by arrival (`seq`). When a board becomes grantable (release, expiry, undrain, health back),
//!   it goes to the first live ticket that matches it. Invariant: no waiting ticket ever matches a
//!   grantable board, so an immediate grant never jumps the queue.
//! - A ticket lapses when it is not polled before `poll_by`, or at its `give_up_at`. A ticket
//!   granted but not yet picked up that lapses releases its lease again.
//! - A lease ends at its expiry (every operation first reaps what has expired) or on release;
//!   an ended lease is remembered for [`ENDED_LEASE_MEMORY_MS`] so renewing it answers "ended"
//!   rather than "unknown".
//! - Infrastructure failures count per board; `failure_threshold` consecutive ones mark it
//!   unhealthy; a success resets the count and makes it healthy again.
//!
//! Time is a parameter (`now`, Unix ms) so that the semantics are testable without sleeping and
//! several daemons sharing one Redis agree on one clock model.

pub mod embedded;
pub mod lease_book;
pub mod redis;
pub mod runs;

use crate::api::{Priority, TicketStatus};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use embedded::EmbeddedStore;
pub use redis::RedisStore;
pub use runs::{OutboxEntry, OutboxEvent, RunStore};

/// Unix time in milliseconds.
pub use socv_api::time::Millis;

/// How long an ended lease is remembered (renew answers 410 rather than 404).
pub const ENDED_LEASE_MEMORY_MS: Millis = 3_600_000;

/// What the store needs to know about a board of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardKey {
    pub id: String,
    pub family: String,
    pub location: String,
}

/// What a lease request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Target {
    Family(String),
    Board(String),
}

/// An acquire, as the store sees it (already validated and authenticated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acquire {
    pub target: Target,
    pub location: Option<String>,
    pub priority: Priority,
    pub holder: String,
    pub ttl_ms: Millis,
    /// `None`: never queue. `Some(q)`: queue when nothing is free.
    pub queue: Option<QueueTerms>,
}

/// How a queued request waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueTerms {
    /// The ticket lapses unless polled within this long of its last poll.
    pub lapse_ms: Millis,
    /// The ticket gives up at this time; `None`: no limit.
    pub give_up_at: Option<Millis>,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub id: String,
    pub board_id: String,
    pub family: String,
    pub location: String,
    pub holder: String,
    pub priority: Priority,
    pub granted_at: Millis,
    pub expires_at: Millis,
    pub ttl_ms: Millis,
    pub grant_seq: u64,
    /// Set once the lease has ended.
    #[serde(default)]
    pub ended: Option<LeaseEnd>,
}

/// Why a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseEnd {
    Released,
    Expired,
    /// Granted to a waiter who stopped polling before picking it up.
    Abandoned,
}

impl std::fmt::Display for LeaseEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LeaseEnd::Released => "released",
            LeaseEnd::Expired => "expired",
            LeaseEnd::Abandoned => "abandoned",
        })
    }
}

/// A queue ticket as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRecord {
    pub id: String,
    pub family: String,
    pub board_id: Option<String>,
    pub location: Option<String>,
    pub priority: Priority,
    pub holder: String,
    pub ttl_ms: Millis,
    pub seq: u64,
    pub lapse_ms: Millis,
    pub poll_by: Millis,
    pub give_up_at: Option<Millis>,
    /// Set when a board was granted to this ticket.
    pub lease_id: Option<String>,
    /// Whether the holder has seen the grant (a lapse then no longer releases it).
    pub claimed: bool,
}

/// A board's shared state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardState {
    pub id: String,
    pub family: String,
    pub location: String,
    pub lease: Option<LeaseRecord>,
    pub unhealthy: bool,
    pub failures: u32,
    pub drain_reason: Option<String>,
    pub drained: bool,
    pub last_used: Option<Millis>,
}

/// Result of an acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquireOutcome {
    Granted(LeaseRecord),
    Queued { ticket: TicketRecord, position: u32 },
}

/// Result of polling a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketPoll {
    Waiting { ticket: TicketRecord, position: u32 },
    Granted(LeaseRecord),
}

/// Counts for health and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCounts {
    pub boards: u32,
    pub leases: u32,
    pub waiting: u32,
}

/// What one reap did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapReport {
    pub expired: Vec<String>,
    pub lapsed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unknown board family '{0}'")]
    UnknownFamily(String),
    #[error("unknown board '{0}'")]
    UnknownBoard(String),
    #[error("unknown lease '{0}'")]
    UnknownLease(String),
    #[error("lease '{id}' has ended ({how})")]
    LeaseEnded { id: String, how: LeaseEnd },
    #[error("unknown or lapsed queue ticket '{0}'")]
    UnknownTicket(String),
    #[error("no {0} board is free")]
    NoneFree(String),
    #[error("every {target} board is unhealthy or drained")]
    NoHealthyBoard { target: String },
    #[error("lease '{id}' is held by {holder}")]
    NotHolder { id: String, holder: String },
    #[error("unknown run '{0}'")]
    UnknownRun(String),
    #[error("run '{id}' is {from}: it cannot become {to}")]
    RunTransition {
        id: String,
        from: crate::api::RunState,
        to: crate::api::RunState,
    },
    #[error("lease store unavailable: {0}")]
    Unavailable(String),
    #[error("lease store is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A whole store: leases and run history, in one place (one Redis, or one embedded file).
pub trait Store: LeaseStore + RunStore {}

impl<T: LeaseStore + RunStore> Store for T {}

/// The shared state of the lab. See the module documentation for the semantics.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// `redis` or `embedded`.
    fn backend(&self) -> &'static str;
    /// Where the store is, safe to show (no password).
    fn location(&self) -> String;

    /// Registers the lab's boards. Keeps the state of known boards; boards no longer listed are
    /// never granted again (their running lease stays until it ends).
    async fn sync_boards(&self, boards: &[BoardKey], now: Millis) -> StoreResult<()>;

    async fn acquire(&self, req: &Acquire, now: Millis) -> StoreResult<AcquireOutcome>;
    /// Polls a ticket: keeps it alive and, once granted, hands over the lease.
    async fn poll_ticket(&self, ticket: &str, now: Millis) -> StoreResult<TicketPoll>;
    /// Reads a ticket without keeping it alive.
    async fn ticket(&self, ticket: &str, now: Millis) -> StoreResult<Option<TicketRecord>>;
    /// Leaves the queue; a ticket already granted releases its lease.
    async fn cancel_ticket(&self, ticket: &str, now: Millis) -> StoreResult<()>;

    /// Reads a lease, also an ended one still remembered.
    async fn lease(&self, id: &str, now: Millis) -> StoreResult<Option<LeaseRecord>>;
    async fn renew(&self, id: &str, ttl_ms: Millis, now: Millis) -> StoreResult<LeaseRecord>;
    /// Releases a lease, whoever holds it.
    async fn release(&self, id: &str, now: Millis) -> StoreResult<LeaseRecord> {
        self.release_held(id, None, now).await
    }
    /// Releases a lease only when `holder` holds it (`None`: whoever holds it), in one step.
    async fn release_held(
        &self,
        id: &str,
        holder: Option<&str>,
        now: Millis,
    ) -> StoreResult<LeaseRecord>;
    /// Active leases.
    async fn leases(&self, now: Millis) -> StoreResult<Vec<LeaseRecord>>;

    async fn boards(&self, now: Millis) -> StoreResult<Vec<BoardState>>;
    async fn set_drain(
        &self,
        board: &str,
        reason: Option<String>,
        drained: bool,
        now: Millis,
    ) -> StoreResult<BoardState>;
    /// Records a run's verdict on a board's infrastructure.
    async fn report_health(
        &self,
        board: &str,
        ok: bool,
        failure_threshold: u32,
        now: Millis,
    ) -> StoreResult<BoardState>;

    /// Ends expired leases and lapsed tickets, handing freed boards to waiters.
    async fn reap(&self, now: Millis) -> StoreResult<ReapReport>;
    async fn counts(&self, now: Millis) -> StoreResult<StoreCounts>;
    /// Cheap liveness check.
    async fn ping(&self) -> StoreResult<()>;
    /// Tickets granted since subscribing, as they happen (also on other daemons sharing the
    /// store, where the backend can tell). Used to wake long polls; a lag means "poll again".
    fn subscribe_grants(&self) -> tokio::sync::broadcast::Receiver<String>;
}

impl TicketPoll {
    pub fn into_status(
        self,
        to_lease: impl FnOnce(LeaseRecord) -> crate::api::Lease,
    ) -> TicketStatus {
        match self {
            TicketPoll::Waiting { ticket, position } => {
                TicketStatus::Waiting(ticket.to_api(position))
            }
            TicketPoll::Granted(lease) => TicketStatus::Granted {
                lease: to_lease(lease),
            },
        }
    }
}

impl TicketRecord {
    pub fn to_api(&self, position: u32) -> crate::api::QueueTicket {
        crate::api::QueueTicket {
            ticket: self.id.clone(),
            position,
            family: self.family.clone(),
            board_id: self.board_id.clone(),
            priority: self.priority,
            holder: self.holder.clone(),
            seq: self.seq,
            poll_by_ms: self.poll_by,
            give_up_at_ms: self.give_up_at,
        }
    }
}

impl LeaseRecord {
    /// The wire form, without the console (added by the caller for the holder).
    pub fn to_api(&self) -> crate::api::Lease {
        crate::api::Lease {
            id: self.id.clone(),
            board_id: self.board_id.clone(),
            family: self.family.clone(),
            location: self.location.clone(),
            holder: self.holder.clone(),
            priority: self.priority,
            granted_at_ms: self.granted_at,
            expires_at_ms: self.expires_at,
            ttl_s: self.ttl_ms / 1000,
            grant_seq: self.grant_seq,
            console: None,
        }
    }
}

/// A fresh random id with a prefix, such as `l-3f9a0c1b2d4e`.
pub use socv_api::new_id;
