//! Run records and the outbox that carries them to Prefect.
//!
//! Semantics every backend keeps (checked by `tests/it/run_store_conformance.rs`):
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

use super::{Millis, StoreError, StoreResult};
use crate::api::{LogLine, Run, RunPrefect, RunQuery, RunState, RunUpdate};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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

/// A fresh random id for a state change, in the form of a UUID (version 4), as Prefect takes it.
pub fn new_transition_id() -> String {
    use rand::Rng;
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(&b)
}

pub use socv_api::uuid_text;

/// Whether a run in state `from` may move to `to` (a repeat of the current state is not a move).
pub fn transition_allowed(from: RunState, to: RunState) -> bool {
    match from {
        RunState::Pending => to != RunState::Pending,
        RunState::Running => to.is_terminal(),
        _ => false,
    }
}

/// What a run looks like once `update` moved it to a new state at `now` (the move is allowed).
/// Running sets `started_at_ms`; an end sets `ended_at_ms` and the result: exit codes and cases as
/// given, the message and the board only when given. The Redis script (`runs.lua`) does the same.
fn apply_update(run: &mut Run, update: RunUpdate, now: Millis) {
    run.state = update.state;
    if update.state == RunState::Running {
        run.started_at_ms = Some(now);
        return;
    }
    run.ended_at_ms = Some(now);
    run.exit_code = update.exit_code;
    run.socv_exit_code = update.socv_exit_code;
    run.cases = update.cases;
    if let Some(m) = update.message {
        run.message = Some(m);
    }
    if let Some(b) = update.board_id {
        run.board_id = b;
    }
}

/// A new run as recorded by `run_start`.
pub fn started(mut run: Run, now: Millis) -> Run {
    run.state = RunState::Pending;
    run.created_at_ms = now;
    run.started_at_ms = None;
    run.ended_at_ms = None;
    run.log_lines = 0;
    run.prefect = None;
    run
}

/// Whether a run matches every filter of a query (the limit aside).
pub fn query_matches(query: &RunQuery, run: &Run) -> bool {
    query.board.as_ref().is_none_or(|b| *b == run.board_id)
        && query.family.as_ref().is_none_or(|f| *f == run.family)
        && query.holder.as_ref().is_none_or(|h| *h == run.holder)
        && query.state.is_none_or(|s| s == run.state)
        && query.since_ms.is_none_or(|t| run.created_at_ms >= t)
}

/// The limit of a query, with the default applied.
pub fn query_limit(query: &RunQuery) -> usize {
    query.limit.unwrap_or(crate::api::DEFAULT_RUN_QUERY_LIMIT)
}

/// Keys touched by run operations, so the embedded store writes only what changed.
#[derive(Debug, Default)]
pub struct RunDirty {
    pub runs: HashSet<String>,
    pub outbox: HashSet<u64>,
    pub seq: bool,
}

impl RunDirty {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.outbox.is_empty() && !self.seq
    }

    /// Takes in changes that could not be written, to write them with the next ones.
    pub fn merge(&mut self, other: RunDirty) {
        self.runs.extend(other.runs);
        self.outbox.extend(other.outbox);
        self.seq |= other.seq;
    }
}

/// The run semantics as an in-memory state machine (kept by the embedded store; `runs.lua`
/// mirrors it for Redis).
#[derive(Debug, Default)]
pub struct RunBook {
    runs: HashMap<String, Run>,
    /// Every run by `(created_at_ms, id)`: newest first for queries, oldest first for retention.
    by_created: BTreeSet<(Millis, String)>,
    outbox: BTreeMap<u64, OutboxEntry>,
    /// The last outbox `seq` handed out.
    seq: u64,
    /// Who may deliver the outbox, and until when. Not stored: one daemon owns an embedded
    /// store, so a claim never has to outlive it.
    claim: Option<(String, Millis)>,
    pub dirty: RunDirty,
}

impl RunBook {
    /// Builds the book from stored records (after a restart).
    pub fn restore(runs: Vec<Run>, outbox: Vec<OutboxEntry>, seq: u64) -> RunBook {
        let mut book = RunBook {
            seq,
            ..RunBook::default()
        };
        for run in runs {
            book.by_created.insert((run.created_at_ms, run.id.clone()));
            book.runs.insert(run.id.clone(), run);
        }
        for entry in outbox {
            book.seq = book.seq.max(entry.seq);
            book.outbox.insert(entry.seq, entry);
        }
        book
    }

    pub fn get(&self, id: &str) -> Option<&Run> {
        self.runs.get(id)
    }

    pub fn entry(&self, seq: u64) -> Option<&OutboxEntry> {
        self.outbox.get(&seq)
    }

    /// The last outbox `seq` handed out.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn push(&mut self, run_id: &str, event: OutboxEvent) {
        self.seq += 1;
        self.dirty.seq = true;
        self.dirty.outbox.insert(self.seq);
        self.outbox.insert(
            self.seq,
            OutboxEntry {
                seq: self.seq,
                run_id: run_id.to_string(),
                event,
            },
        );
    }

    fn known(&mut self, id: &str) -> StoreResult<&mut Run> {
        self.runs
            .get_mut(id)
            .ok_or_else(|| StoreError::UnknownRun(id.to_string()))
    }

    pub fn start(&mut self, run: Run, keep: usize, now: Millis) -> (Run, bool) {
        if let Some(known) = self.runs.get(&run.id) {
            return (known.clone(), false);
        }
        let run = started(run, now);
        self.by_created.insert((run.created_at_ms, run.id.clone()));
        self.runs.insert(run.id.clone(), run.clone());
        self.dirty.runs.insert(run.id.clone());
        self.push(&run.id, OutboxEvent::Create { run: run.clone() });
        self.retain(keep);
        (run, true)
    }

    /// Forgets the oldest ended runs while more than `keep` are kept.
    fn retain(&mut self, keep: usize) {
        if self.runs.len() <= keep {
            return;
        }
        let excess = self.runs.len() - keep;
        let forget: Vec<(Millis, String)> = self
            .by_created
            .iter()
            .filter(|(_, id)| self.runs.get(id).is_some_and(|r| r.state.is_terminal()))
            .take(excess)
            .cloned()
            .collect();
        for key in forget {
            self.by_created.remove(&key);
            self.runs.remove(&key.1);
            self.dirty.runs.insert(key.1);
        }
    }

    pub fn update(&mut self, id: &str, update: RunUpdate, now: Millis) -> StoreResult<Run> {
        let run = self.known(id)?;
        let (from, to) = (run.state, update.state);
        if from == to {
            return Ok(run.clone());
        }
        if !transition_allowed(from, to) {
            return Err(StoreError::RunTransition {
                id: id.to_string(),
                from,
                to,
            });
        }
        let message = update.message.clone();
        apply_update(run, update, now);
        let run = run.clone();
        self.dirty.runs.insert(id.to_string());
        self.push(
            id,
            OutboxEvent::State {
                state: to,
                message,
                at_ms: now,
                transition_id: new_transition_id(),
            },
        );
        if to.is_terminal() {
            self.push(id, OutboxEvent::Artifacts { run: run.clone() });
        }
        Ok(run)
    }

    pub fn logs(&mut self, id: &str, lines: Vec<LogLine>) -> StoreResult<Run> {
        let run = self.known(id)?;
        if lines.is_empty() {
            return Ok(run.clone());
        }
        run.log_lines += lines.len() as u64;
        let run = run.clone();
        self.dirty.runs.insert(id.to_string());
        self.push(id, OutboxEvent::Logs { lines });
        Ok(run)
    }

    pub fn query(&self, query: &RunQuery) -> Vec<Run> {
        let since = query.since_ms.unwrap_or(0);
        self.by_created
            .range((since, String::new())..)
            .rev()
            .filter_map(|(_, id)| self.runs.get(id))
            .filter(|r| query_matches(query, r))
            .take(query_limit(query))
            .cloned()
            .collect()
    }

    /// Runs still Pending or Running, newest first.
    pub fn unfinished(&self) -> Vec<Run> {
        self.by_created
            .iter()
            .rev()
            .filter_map(|(_, id)| self.runs.get(id))
            .filter(|r| !r.state.is_terminal())
            .cloned()
            .collect()
    }

    pub fn set_flow_run_id(&mut self, id: &str, flow_run_id: &str) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        run.prefect
            .get_or_insert_with(RunPrefect::default)
            .flow_run_id = flow_run_id.to_string();
        self.dirty.runs.insert(id.to_string());
    }

    pub fn peek(&self, limit: usize) -> Vec<OutboxEntry> {
        self.outbox.values().take(limit).cloned().collect()
    }

    pub fn ack(&mut self, seqs: &[u64]) {
        for seq in seqs {
            if self.outbox.remove(seq).is_some() {
                self.dirty.outbox.insert(*seq);
            }
        }
    }

    pub fn outbox_len(&self) -> u64 {
        self.outbox.len() as u64
    }

    pub fn claim(&mut self, owner: &str, ttl_ms: Millis, now: Millis) -> bool {
        if let Some((holder, until)) = &self.claim
            && holder != owner
            && *until > now
        {
            return false;
        }
        self.claim = Some((owner.to_string(), now + ttl_ms));
        true
    }
}
