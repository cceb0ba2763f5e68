//! Run records and the outbox that carries them to Prefect.
//!
//! Semantics every backend keeps (checked by `tests/run_store_conformance.rs`):
//! - `run_start` records a run in state Pending and appends `Create` to the outbox, in one
//!   atomic step. Starting a run id already recorded answers the recorded run unchanged and
//!   appends nothing (a client's retried POST records the run once).
//! - `run_update` moves a run forward: Pending → Running → a terminal state, or Pending → a
//!   terminal state. Each accepted change appends `State` (with a `transition_id` fixed now, so a
//!   retried delivery is recognised by Prefect), and a terminal one then appends `Artifacts`.
//!   Repeating the current state answers the run unchanged and appends nothing. Any other change
//!   (leaving a terminal state, Running → Pending) is refused: [`StoreError::RunTransition`].
//! - `run_logs` appends `Logs` with the lines as given and counts them on the run; also after the
//!   run ended (a late flush).
//! - Outbox entries have one increasing `seq` across all runs, so delivering in `seq` order
//!   delivers every run's events in the order they happened. An entry stays until acked.
//! - At most `keep` runs are kept: starting one more forgets the oldest *ended* runs (by
//!   `created_at_ms`). Their outbox entries stay until delivered. Unfinished runs are never
//!   forgotten.
//! - `outbox_claim` gives one owner at a time the right to deliver (daemons sharing a Redis);
//!   the claim lapses `ttl_ms` after its last renewal.

use super::{Millis, StoreResult};
use crate::api::{LogLine, Run, RunQuery, RunState, RunUpdate};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One thing to tell Prefect about a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboxEvent {
    /// Create the run's flow run (state Pending), from the run as it started.
    Create { run: Run },
    /// The run changed state.
    State {
        state: RunState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        at_ms: Millis,
        /// Fresh per change, kept across retries: Prefect answers a repeat with REJECT
        /// "already made this state transition" instead of applying it twice.
        transition_id: String,
    },
    /// Console lines, in order.
    Logs { lines: Vec<LogLine> },
    /// The summary and test-case artifacts, from the run as it ended.
    Artifacts { run: Run },
}

/// An outbox entry: an event of one run, at its place in the delivery order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    pub run_id: String,
    pub event: OutboxEvent,
}

/// Run history and its outbox. Implemented by both lease store backends, so that a run's
/// records live (and survive restarts) where the leases do.
#[async_trait]
pub trait RunStore: Send + Sync + 'static {
    /// Records a new run (its `state` is set to Pending and `created_at_ms` to `now`) and queues
    /// its creation. Answers the stored run and whether it is new (`false`: that id was known,
    /// nothing changed). Keeps at most `keep` runs (see the module documentation).
    async fn run_start(&self, run: Run, keep: usize, now: Millis) -> StoreResult<(Run, bool)>;
    /// Moves a run on; see the module documentation. Errors: `UnknownRun`, `RunTransition`.
    async fn run_update(&self, id: &str, update: RunUpdate, now: Millis) -> StoreResult<Run>;
    /// Records console lines of a run. Errors: `UnknownRun`.
    async fn run_logs(&self, id: &str, lines: Vec<LogLine>, now: Millis) -> StoreResult<Run>;
    async fn run(&self, id: &str) -> StoreResult<Option<Run>>;
    /// Runs matching every filter of `query`, newest (`created_at_ms`) first, at most
    /// `query.limit` (the caller has applied defaults and caps).
    async fn runs(&self, query: &RunQuery) -> StoreResult<Vec<Run>>;
    /// Runs still Pending or Running.
    async fn unfinished_runs(&self) -> StoreResult<Vec<Run>>;
    /// Remembers the run's Prefect flow run id (once its creation was delivered). A forgotten
    /// run is not an error.
    async fn set_flow_run_id(&self, id: &str, flow_run_id: &str) -> StoreResult<()>;

    /// The first `limit` entries in delivery order.
    async fn outbox_peek(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>>;
    /// Removes delivered entries; unknown seqs are ignored.
    async fn outbox_ack(&self, seqs: &[u64]) -> StoreResult<()>;
    async fn outbox_len(&self) -> StoreResult<u64>;
    /// Claims or renews the right to deliver the outbox until `now + ttl_ms`. `false`: another
    /// owner holds an unexpired claim.
    async fn outbox_claim(&self, owner: &str, ttl_ms: Millis, now: Millis) -> StoreResult<bool>;
}
