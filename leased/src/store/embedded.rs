//! The embedded lease store: the state machine of `lease_book.rs` kept in memory and written through
//! to a redb file on every change, so a restart (or kill -9) of leased loses no lease.
//!
//! One daemon owns the file (redb locks it); operations are serialised by a mutex and each one
//! commits durably before it answers. Run records and their outbox (`runs.rs`) live in the same
//! state and are committed in the same transactions as the leases.

use super::lease_book::{BoardRecord, Dirty, LeaseBook};
use super::runs::{OutboxEntry, RunBook, RunDirty, RunStore};
use super::{
    Acquire, AcquireOutcome, BoardKey, BoardState, LeaseRecord, LeaseStore, Millis, ReapReport,
    StoreCounts, StoreError, StoreResult, TicketPoll, TicketRecord,
};
use crate::api::{LogLine, Run, RunQuery, RunUpdate};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

const BOARDS: TableDefinition<&str, &[u8]> = TableDefinition::new("boards");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const TICKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("tickets");
const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
/// Outbox entries by [`outbox_key`], so that the table's order is the delivery order.
const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SEQ_KEY: &str = "seq";
const OUTBOX_SEQ_KEY: &str = "outbox_seq";

fn outbox_key(seq: u64) -> String {
    format!("{seq:020}")
}

struct Inner {
    state: LeaseBook,
    db: Database,
}

/// An operation for the writer thread; it answers once its batch is durable.
type Job = Box<dyn FnOnce(&mut LeaseBook) -> Finish + Send>;
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Most operations committed together.
const MAX_BATCH: usize = 256;

/// The default store: a single-node, persistent file.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Mutex<Inner>>,
    writer: Arc<Writer>,
    path: PathBuf,
    grants: broadcast::Sender<String>,
}

/// The writer thread; the last store handle stops it and waits, so the file is free again.
struct Writer {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Group commit: applies every queued operation, commits once, then answers them all.
fn write_batches(
    inner: Arc<Mutex<Inner>>,
    jobs: std::sync::mpsc::Receiver<Job>,
    grants: broadcast::Sender<String>,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let Ok(mut guard) = inner.lock() else {
            for job in batch {
                drop(job);
            }
            continue;
        };
        let finishes: Vec<Finish> = batch.into_iter().map(|job| job(&mut guard.state)).collect();
        let granted = std::mem::take(&mut guard.state.granted);
        let persisted = guard.persist().map_err(|e| match e {
            StoreError::Unavailable(m) => m,
            other => other.to_string(),
        });
        drop(guard);
        for t in granted {
            let _ = grants.send(t);
        }
        for finish in finishes {
            finish(persisted.clone());
        }
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{}: {e}", path.display()))
}

fn read_table<T: DeserializeOwned>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<&str, &[u8]>,
) -> StoreResult<Vec<T>> {
    let table = match txn.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(corrupt(def.name(), e)),
    };
    let mut out = Vec::new();
    for row in table.iter().map_err(|e| corrupt(def.name(), e))? {
        let (k, v) = row.map_err(|e| corrupt(def.name(), e))?;
        let rec = serde_json::from_slice(v.value())
            .map_err(|e| corrupt(&format!("{} record '{}'", def.name(), k.value()), e))?;
        out.push(rec);
    }
    Ok(out)
}

fn read_meta(txn: &redb::ReadTransaction, key: &str) -> StoreResult<u64> {
    match txn.open_table(META) {
        Ok(t) => Ok(t
            .get(key)
            .map_err(|e| corrupt("meta", e))?
            .map(|v| v.value())
            .unwrap_or(0)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(corrupt("meta", e)),
    }
}

/// Writes the changed rows: each key with its record, or `None` to delete it.
fn write_rows<'a, K: AsRef<str>, T: Serialize + 'a>(
    txn: &redb::WriteTransaction,
    def: TableDefinition<&str, &[u8]>,
    rows: impl IntoIterator<Item = (K, Option<&'a T>)>,
) -> Result<(), redb::Error> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut table = txn.open_table(def)?;
    for (key, rec) in rows {
        let key = key.as_ref();
        match rec {
            Some(rec) => {
                let bytes = serde_json::to_vec(rec).map_err(|e| {
                    redb::Error::Io(std::io::Error::other(format!("encoding {key}: {e}")))
                })?;
                table.insert(key, bytes.as_slice())?;
            }
            None => {
                table.remove(key)?;
            }
        }
    }
    Ok(())
}

impl Inner {
    /// Writes what the last operation changed, durably.
    fn persist(&mut self) -> StoreResult<()> {
        let dirty = std::mem::take(&mut self.state.dirty);
        let run_dirty = std::mem::take(&mut self.state.runs.dirty);
        if dirty.is_empty() && run_dirty.is_empty() {
            return Ok(());
        }
        self.write(&dirty, &run_dirty).map_err(|e| {
            // Keep the changes pending so that the next operation writes them again.
            self.state.dirty.merge(dirty);
            self.state.runs.dirty.merge(run_dirty);
            StoreError::Unavailable(format!("writing the lease store: {e}"))
        })
    }

    fn write(&self, dirty: &Dirty, run_dirty: &RunDirty) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        let s = &self.state;
        write_rows(
            &txn,
            BOARDS,
            dirty.boards.iter().map(|k| (k, s.boards.get(k))),
        )?;
        write_rows(
            &txn,
            LEASES,
            dirty.leases.iter().map(|k| (k, s.leases.get(k))),
        )?;
        write_rows(
            &txn,
            TICKETS,
            dirty.tickets.iter().map(|k| (k, s.tickets.get(k))),
        )?;
        write_rows(
            &txn,
            RUNS,
            run_dirty.runs.iter().map(|k| (k, s.runs.get(k))),
        )?;
        write_rows(
            &txn,
            OUTBOX,
            run_dirty
                .outbox
                .iter()
                .map(|q| (outbox_key(*q), s.runs.entry(*q))),
        )?;
        if dirty.seq || run_dirty.seq {
            let mut meta = txn.open_table(META)?;
            if dirty.seq {
                meta.insert(SEQ_KEY, s.seq)?;
            }
            if run_dirty.seq {
                meta.insert(OUTBOX_SEQ_KEY, s.runs.seq())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store file, creating its directory.
    pub fn open(path: &Path) -> StoreResult<EmbeddedStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let db = Database::builder()
            .set_cache_size(4 * 1024 * 1024)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
                    "{} is already in use by another leased",
                    path.display()
                )),
                other => io_err(path, other),
            })?;
        let txn = db.begin_read().map_err(|e| io_err(path, e))?;
        let boards: Vec<BoardRecord> = read_table(&txn, BOARDS)?;
        let leases: Vec<LeaseRecord> = read_table(&txn, LEASES)?;
        let tickets: Vec<TicketRecord> = read_table(&txn, TICKETS)?;
        let seq = read_meta(&txn, SEQ_KEY)?;
        let runs: Vec<Run> = read_table(&txn, RUNS)?;
        let outbox: Vec<OutboxEntry> = read_table(&txn, OUTBOX)?;
        let outbox_seq = read_meta(&txn, OUTBOX_SEQ_KEY)?;
        drop(txn);
        let mut state = LeaseBook::restore(boards, leases, tickets, seq);
        state.runs = RunBook::restore(runs, outbox, outbox_seq);
        let (grants, _) = broadcast::channel(1024);
        let inner = Arc::new(Mutex::new(Inner { state, db }));
        let (jobs, queue) = std::sync::mpsc::channel();
        let thread = {
            let (inner, grants) = (inner.clone(), grants.clone());
            std::thread::Builder::new()
                .name("leased-store".into())
                .spawn(move || write_batches(inner, queue, grants))
                .map_err(|e| io_err(path, e))?
        };
        Ok(EmbeddedStore {
            inner,
            writer: Arc::new(Writer {
                jobs: Some(jobs),
                thread: Some(thread),
            }),
            path: path.to_path_buf(),
            grants,
        })
    }

    /// Runs one operation on the state and commits what it changed, off the async threads.
    async fn op<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut LeaseBook) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |state: &mut LeaseBook| {
            let result = f(state);
            Box::new(move |persisted: Result<(), String>| {
                let _ = tx.send(persisted.map_err(StoreError::Unavailable).and(result));
            }) as Finish
        });
        self.writer
            .jobs
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("lease store writer stopped".into()))?
            .send(job)
            .map_err(|_| StoreError::Unavailable("lease store writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("lease store writer stopped".into()))?
    }

    fn read<T>(&self, f: impl FnOnce(&LeaseBook) -> T) -> StoreResult<T> {
        let guard = self
            .inner
            .lock()
            .map_err(|_| StoreError::Unavailable("lease store lock poisoned".into()))?;
        Ok(f(&guard.state))
    }
}

#[async_trait]
impl LeaseStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn sync_boards(&self, boards: &[BoardKey], now: Millis) -> StoreResult<()> {
        let boards = boards.to_vec();
        self.op(move |s| {
            s.sync_boards(&boards, now);
            Ok(())
        })
        .await
    }

    async fn acquire(&self, req: &Acquire, now: Millis) -> StoreResult<AcquireOutcome> {
        let req = req.clone();
        self.op(move |s| s.acquire(&req, now)).await
    }

    async fn poll_ticket(&self, ticket: &str, now: Millis) -> StoreResult<TicketPoll> {
        let ticket = ticket.to_string();
        self.op(move |s| s.poll_ticket(&ticket, now)).await
    }

    async fn ticket(&self, ticket: &str, now: Millis) -> StoreResult<Option<TicketRecord>> {
        let ticket = ticket.to_string();
        self.op(move |s| {
            s.reap(now);
            Ok(s.tickets.get(&ticket).cloned())
        })
        .await
    }

    async fn cancel_ticket(&self, ticket: &str, now: Millis) -> StoreResult<()> {
        let ticket = ticket.to_string();
        self.op(move |s| s.cancel_ticket(&ticket, now)).await
    }

    async fn lease(&self, id: &str, now: Millis) -> StoreResult<Option<LeaseRecord>> {
        let id = id.to_string();
        self.op(move |s| {
            s.reap(now);
            Ok(s.leases.get(&id).cloned())
        })
        .await
    }

    async fn renew(&self, id: &str, ttl_ms: Millis, now: Millis) -> StoreResult<LeaseRecord> {
        let id = id.to_string();
        self.op(move |s| s.renew(&id, ttl_ms, now)).await
    }

    async fn release_held(
        &self,
        id: &str,
        holder: Option<&str>,
        now: Millis,
    ) -> StoreResult<LeaseRecord> {
        let id = id.to_string();
        let holder = holder.map(str::to_string);
        self.op(move |s| s.release_held(&id, holder.as_deref(), now))
            .await
    }

    async fn leases(&self, now: Millis) -> StoreResult<Vec<LeaseRecord>> {
        self.op(move |s| {
            s.reap(now);
            Ok(s.active_leases())
        })
        .await
    }

    async fn boards(&self, now: Millis) -> StoreResult<Vec<BoardState>> {
        self.op(move |s| {
            s.reap(now);
            Ok(s.board_states())
        })
        .await
    }

    async fn set_drain(
        &self,
        board: &str,
        reason: Option<String>,
        drained: bool,
        now: Millis,
    ) -> StoreResult<BoardState> {
        let board = board.to_string();
        self.op(move |s| s.set_drain(&board, reason, drained, now))
            .await
    }

    async fn report_health(
        &self,
        board: &str,
        ok: bool,
        failure_threshold: u32,
        now: Millis,
    ) -> StoreResult<BoardState> {
        let board = board.to_string();
        self.op(move |s| s.report_health(&board, ok, failure_threshold, now))
            .await
    }

    async fn reap(&self, now: Millis) -> StoreResult<ReapReport> {
        self.op(move |s| Ok(s.reap(now))).await
    }

    async fn counts(&self, now: Millis) -> StoreResult<StoreCounts> {
        self.op(move |s| {
            s.reap(now);
            Ok(s.counts())
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|_| ())
    }

    fn subscribe_grants(&self) -> broadcast::Receiver<String> {
        self.grants.subscribe()
    }
}

#[async_trait]
impl RunStore for EmbeddedStore {
    async fn run_start(&self, run: Run, keep: usize, now: Millis) -> StoreResult<(Run, bool)> {
        self.op(move |s| Ok(s.runs.start(run, keep, now))).await
    }

    async fn run_update(&self, id: &str, update: RunUpdate, now: Millis) -> StoreResult<Run> {
        let id = id.to_string();
        self.op(move |s| s.runs.update(&id, update, now)).await
    }

    async fn run_logs(&self, id: &str, lines: Vec<LogLine>, _now: Millis) -> StoreResult<Run> {
        let id = id.to_string();
        self.op(move |s| s.runs.logs(&id, lines)).await
    }

    async fn run(&self, id: &str) -> StoreResult<Option<Run>> {
        let id = id.to_string();
        self.op(move |s| Ok(s.runs.get(&id).cloned())).await
    }

    async fn runs(&self, query: &RunQuery) -> StoreResult<Vec<Run>> {
        let query = query.clone();
        self.op(move |s| Ok(s.runs.query(&query))).await
    }

    async fn unfinished_runs(&self) -> StoreResult<Vec<Run>> {
        self.op(|s| Ok(s.runs.unfinished())).await
    }

    async fn set_flow_run_id(&self, id: &str, flow_run_id: &str) -> StoreResult<()> {
        let (id, flow_run_id) = (id.to_string(), flow_run_id.to_string());
        self.op(move |s| {
            s.runs.set_flow_run_id(&id, &flow_run_id);
            Ok(())
        })
        .await
    }

    async fn outbox_peek(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
        self.op(move |s| Ok(s.runs.peek(limit))).await
    }

    async fn outbox_ack(&self, seqs: &[u64]) -> StoreResult<()> {
        let seqs = seqs.to_vec();
        self.op(move |s| {
            s.runs.ack(&seqs);
            Ok(())
        })
        .await
    }

    async fn outbox_len(&self) -> StoreResult<u64> {
        self.op(|s| Ok(s.runs.outbox_len())).await
    }

    async fn outbox_claim(&self, owner: &str, ttl_ms: Millis, now: Millis) -> StoreResult<bool> {
        let owner = owner.to_string();
        self.op(move |s| Ok(s.runs.claim(&owner, ttl_ms, now)))
            .await
    }
}
