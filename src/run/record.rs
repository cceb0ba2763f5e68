//! The run's record in leased's history (`/api/v1/runs`): its start when a board is granted,
//! Running when the binary starts, the console in batches, and its end with the result.
//!
//! Recording never slows or fails a run. The run only enqueues: state changes on an unbounded
//! channel (a handful per run), console lines on a bounded one with `try_send`; a background
//! task makes the calls, each bounded by [`CALL_TIMEOUT`]. When the log channel is full the
//! lines wait, coalesced into one batch, for the next write or the end of the attempt; only
//! beyond [`MAX_PENDING_LINES`] are the oldest dropped, counted and reported at the end. leased
//! refusing or unreachable gives one warning (`run history not recorded: …`) per process and
//! the run goes on; a daemon without the runs API (404 on `POST /api/v1/runs`) turns recording
//! off silently.
//!
//! **One record per attempt.** A record belongs to one lease on one board (leased marks a run
//! Crashed when its lease ends while it is still going, and Prefect tags it with its board), so
//! when a board fails and socv retries elsewhere, the failed attempt's record ends Crashed with
//! the board's failure as its message, and the retry is a new record. The first attempt's
//! record has the run's own id (that of its run directory and `result.json`); attempt `n` has
//! `{id}-{n}` and says in its message which attempt of which run it is. Each record is ended
//! (waiting at most [`SETTLE_TIMEOUT`]) before its lease is given back.

use crate::client::Client;
use crate::error::Error;
use crate::output;
use crate::report::{CaseStatus, TestCase};
use socv_api::{
    self as api, CaseOutcome, Lease, LogLevel, LogLine, MAX_LOG_BATCH_LINES, MAX_LOG_LINE_BYTES,
    RunCase, RunLogs, RunStart, RunState, RunUpdate,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Longest one call to leased may take before the recorder gives up on it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Console lines are sent at least this often while they come.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Longest the end of an attempt (and of the run) waits for the recorder to catch up.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Batches of console lines that may wait for the background task.
const LOG_CHANNEL: usize = 64;
/// Lines kept (coalesced) while the log channel is full; beyond, the oldest are dropped.
pub const MAX_PENDING_LINES: usize = 20 * MAX_LOG_BATCH_LINES;
/// Room for one batch of lines within leased's body limit (the rest is the envelope).
const MAX_BATCH_BODY: usize = api::MAX_BODY_BYTES - 1024;

/// What the recorders of one process learnt about leased, so that a batch of many runs warns
/// once and asks a daemon without the runs API once.
#[derive(Debug, Default)]
pub struct Alerts {
    no_runs_api: AtomicBool,
    warned: AtomicBool,
}

impl Alerts {
    /// The alerts shared by every run of this process.
    pub fn process() -> &'static Alerts {
        static PROCESS: Alerts = Alerts {
            no_runs_api: AtomicBool::new(false),
            warned: AtomicBool::new(false),
        };
        &PROCESS
    }

    fn warn(&self, err: &dyn std::fmt::Display) {
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(error = %err, "run history");
        } else {
            eprintln!("socv: warning: run history not recorded: {err}");
        }
    }

    fn off(&self) -> bool {
        self.no_runs_api.load(Ordering::Relaxed)
    }
}

/// The run's side of the recorder: enqueues and never waits, except (boundedly) at the end of
/// an attempt.
pub struct RunRecorder {
    run_id: String,
    control: mpsc::UnboundedSender<Control>,
    logs: mpsc::Sender<LogBatch>,
    producer: Mutex<Producer>,
    task: tokio::task::JoinHandle<()>,
    /// Set when a wait for the task ran out: later ends do not wait again.
    stalled: AtomicBool,
    alerts: &'static Alerts,
}

/// Console bytes and lines not yet handed to the task.
#[derive(Default)]
struct Producer {
    /// The record lines go to; `None` between attempts.
    record: Option<String>,
    /// The console's last line until its newline comes.
    partial: Vec<u8>,
    /// The last line was too long and went out in pieces: its newline ends no new line.
    continued: bool,
    /// Complete lines the full channel could not take yet.
    pending: Vec<LogLine>,
    /// Batches handed to the channel so far (state changes say how many came before them).
    sent: u64,
    dropped: u64,
}

struct LogBatch {
    record: String,
    lines: Vec<LogLine>,
}

enum Control {
    Start(RunStart),
    Update {
        record: String,
        update: RunUpdate,
        /// Log batches enqueued before this update: they are sent before it.
        after: u64,
        /// The attempt's last lines, sent before the update.
        lines: Vec<LogLine>,
        done: Option<oneshot::Sender<()>>,
    },
}

impl RunRecorder {
    /// A recorder for the run `run_id` (its run directory's id), with its background task.
    pub fn new(client: Client, run_id: &str) -> RunRecorder {
        RunRecorder::with_alerts(client, run_id, Alerts::process())
    }

    pub fn with_alerts(client: Client, run_id: &str, alerts: &'static Alerts) -> RunRecorder {
        let (control, control_rx) = mpsc::unbounded_channel();
        let (logs, logs_rx) = mpsc::channel(LOG_CHANNEL);
        let task = tokio::spawn(
            Delivery {
                client,
                alerts,
                records: HashMap::new(),
                buffered: Vec::new(),
                received: 0,
            }
            .run(control_rx, logs_rx),
        );
        RunRecorder {
            run_id: run_id.to_owned(),
            control,
            logs,
            producer: Mutex::new(Producer::default()),
            task,
            stalled: AtomicBool::new(false),
            alerts,
        }
    }

    /// The id of the record of attempt `attempt` (1-based).
    pub fn record_id(&self, attempt: u32) -> String {
        record_id(&self.run_id, attempt)
    }

    /// A board was granted: attempt `attempt` begins (state Pending).
    pub fn start(&self, lease: &Lease, binary: &str, args: &[String], attempt: u32, why: &str) {
        if self.alerts.off() {
            return;
        }
        let id = self.record_id(attempt);
        let message = (attempt > 1)
            .then(|| format!("attempt {attempt} of run {} ({why})", self.record_id(1)));
        let start = RunStart {
            id: Some(id.clone()),
            lease_id: Some(lease.id.clone()),
            board_id: lease.board_id.clone(),
            family: Some(lease.family.clone()).filter(|f| !f.is_empty()),
            location: Some(lease.location.clone()).filter(|l| !l.is_empty()),
            binary: binary.to_owned(),
            args: args.to_vec(),
            priority: lease.priority,
            message,
        };
        let mut producer = self.lock();
        producer.record = Some(id);
        producer.partial.clear();
        producer.pending.clear();
        producer.continued = false;
        let _ = self.control.send(Control::Start(start));
    }

    /// The binary starts.
    pub fn running(&self) {
        let producer = self.lock();
        if let Some(record) = &producer.record {
            let _ = self.control.send(Control::Update {
                record: record.clone(),
                update: RunUpdate {
                    state: RunState::Running,
                    ..RunUpdate::default()
                },
                after: producer.sent,
                lines: Vec::new(),
                done: None,
            });
        }
    }

    /// Console output as it arrives, cut anywhere.
    pub fn console(&self, bytes: &[u8]) {
        let mut producer = self.lock();
        if producer.record.is_none() || self.alerts.off() {
            return;
        }
        producer.partial.extend_from_slice(bytes);
        let now = output::now_ms();
        let mut lines = Vec::new();
        while let Some(end) = producer.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = producer.partial.drain(..=end).collect();
            let line = &line[..line.len() - 1];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !(line.is_empty() && producer.continued) {
                lines.extend(log_lines(&String::from_utf8_lossy(line), now, "console"));
            }
            producer.continued = false;
        }
        while producer.partial.len() > MAX_LOG_LINE_BYTES {
            // A line that does not end goes in pieces, never splitting a UTF-8 sequence.
            let mut cut = MAX_LOG_LINE_BYTES;
            while cut > MAX_LOG_LINE_BYTES - 4 && producer.partial[cut] & 0xc0 == 0x80 {
                cut -= 1;
            }
            let head: Vec<u8> = producer.partial.drain(..cut).collect();
            lines.extend(log_lines(&String::from_utf8_lossy(&head), now, "console"));
            producer.continued = true;
        }
        self.enqueue(&mut producer, lines);
    }

    /// socv's own message about the run (source `socv`).
    pub fn note(&self, level: LogLevel, text: &str) {
        let mut producer = self.lock();
        if producer.record.is_none() || self.alerts.off() {
            return;
        }
        let mut lines = log_lines(text, output::now_ms(), "socv");
        for line in &mut lines {
            line.level = level;
        }
        self.enqueue(&mut producer, lines);
    }

    /// The attempt ended: sends its last lines and `update`, and waits (at most
    /// [`SETTLE_TIMEOUT`], once) until leased has it, so that the record ends before its lease.
    pub async fn end(&self, update: RunUpdate) {
        let done = {
            let mut producer = self.lock();
            let Some(record) = producer.record.take() else {
                return;
            };
            let mut lines = std::mem::take(&mut producer.pending);
            let partial = std::mem::take(&mut producer.partial);
            producer.continued = false;
            if !partial.is_empty() {
                let text = String::from_utf8_lossy(&partial);
                lines.extend(log_lines(
                    text.trim_end_matches('\r'),
                    output::now_ms(),
                    "console",
                ));
            }
            let (tx, rx) = oneshot::channel();
            let sent = self.control.send(Control::Update {
                record,
                update,
                after: producer.sent,
                lines,
                done: Some(tx),
            });
            sent.ok().map(|()| rx)
        };
        if let Some(done) = done
            && !self.stalled.load(Ordering::Relaxed)
            && tokio::time::timeout(SETTLE_TIMEOUT, done).await.is_err()
        {
            self.stalled.store(true, Ordering::Relaxed);
            self.alerts.warn(&format_args!(
                "leased did not answer within {SETTLE_TIMEOUT:?}"
            ));
        }
    }

    /// The run is over: lets the task deliver what is left (at most [`SETTLE_TIMEOUT`]) and
    /// warns when console lines had to be dropped.
    pub async fn finish(self) {
        let open = self.lock().record.clone();
        if let Some(record) = open {
            // Every path of a run ends its record; this is the net under a missed one.
            tracing::debug!(%record, "run record left open");
            self.end(RunUpdate {
                state: RunState::Crashed,
                message: Some("socv ended the run without a result".to_owned()),
                ..RunUpdate::default()
            })
            .await;
        }
        let dropped = self.lock().dropped;
        let RunRecorder {
            control,
            logs,
            mut task,
            stalled,
            ..
        } = self;
        drop((control, logs));
        let wait = if stalled.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            SETTLE_TIMEOUT
        };
        if tokio::time::timeout(wait, &mut task).await.is_err() {
            task.abort();
        }
        if dropped > 0 {
            eprintln!(
                "socv: warning: run history: {dropped} console lines were not recorded \
                 (leased did not keep up)"
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Producer> {
        self.producer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands lines to the task without waiting; when its channel is full they wait with the
    /// ones before them, as one batch.
    fn enqueue(&self, producer: &mut Producer, lines: Vec<LogLine>) {
        producer.pending.extend(lines);
        if producer.pending.is_empty() {
            return;
        }
        let Some(record) = producer.record.clone() else {
            return;
        };
        let batch = LogBatch {
            record,
            lines: std::mem::take(&mut producer.pending),
        };
        match self.logs.try_send(batch) {
            Ok(()) => producer.sent += 1,
            Err(mpsc::error::TrySendError::Full(batch)) => {
                producer.pending = batch.lines;
                let over = producer.pending.len().saturating_sub(MAX_PENDING_LINES);
                if over > 0 {
                    producer.pending.drain(..over);
                    producer.dropped += over as u64;
                }
            }
            // The task is gone (it only ends after `finish`): nothing can be recorded.
            Err(mpsc::error::TrySendError::Closed(batch)) => {
                producer.dropped += batch.lines.len() as u64;
            }
        }
    }
}

/// The id of attempt `attempt`'s record: `run_id` made to satisfy [`api::check_run_id`], with
/// `-{attempt}` from the second attempt on.
pub fn record_id(run_id: &str, attempt: u32) -> String {
    let suffix = if attempt > 1 {
        format!("-{attempt}")
    } else {
        String::new()
    };
    let mut base: String = run_id
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    base.truncate(api::MAX_RUN_ID_LEN - suffix.len());
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "r" } else { base };
    format!("{base}{suffix}")
}

/// A message as log lines of at most [`MAX_LOG_LINE_BYTES`] each (split, never cut short).
pub fn log_lines(text: &str, ts_ms: u64, source: &str) -> Vec<LogLine> {
    let line = |message: &str| LogLine {
        ts_ms,
        level: LogLevel::Info,
        source: Some(source.to_owned()),
        message: message.to_owned(),
    };
    if text.len() <= MAX_LOG_LINE_BYTES {
        return vec![line(text)];
    }
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_LOG_LINE_BYTES);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        lines.push(line(&rest[..cut]));
        rest = &rest[cut..];
    }
    lines
}

/// The report's test cases as the record's.
pub fn run_cases(cases: &[TestCase]) -> Vec<RunCase> {
    cases
        .iter()
        .map(|c| {
            let (outcome, message) = match c.status {
                CaseStatus::Passed => (CaseOutcome::Pass, c.message.clone()),
                CaseStatus::Failed => (CaseOutcome::Fail, c.message.clone()),
                CaseStatus::Skipped => (CaseOutcome::Skip, c.message.clone()),
                // As in the JUnit report: a result nobody can vouch for is not a pass.
                CaseStatus::Unknown => (
                    CaseOutcome::Fail,
                    Some(c.message.clone().unwrap_or_else(|| "result unknown".into())),
                ),
            };
            RunCase {
                name: c.name.clone(),
                outcome,
                duration_ms: None,
                message,
            }
        })
        .collect()
}

/// The end of an attempt whose test ran to its end: Completed for 0, else Failed (also for
/// 126/127 and a test's own 125: the test's doing, not the lab's).
pub fn finished(status: i32, board: &str, cases: Vec<RunCase>) -> RunUpdate {
    RunUpdate {
        state: if status == 0 {
            RunState::Completed
        } else {
            RunState::Failed
        },
        message: None,
        exit_code: Some(status),
        socv_exit_code: Some(status),
        board_id: Some(board.to_owned()),
        cases,
    }
}

/// The end of an attempt without the test's own status: TimedOut, Crashed or Cancelled.
pub fn ended(
    state: RunState,
    message: String,
    socv_exit_code: Option<i32>,
    board: &str,
    cases: Vec<RunCase>,
) -> RunUpdate {
    RunUpdate {
        state,
        message: Some(message),
        exit_code: None,
        socv_exit_code,
        board_id: Some(board.to_owned()),
        cases,
    }
}

/// Per record, what the task knows of it.
struct Tracked {
    start: RunStart,
    /// leased has the record.
    started: bool,
    /// leased refused it for good: its events are not sent.
    refused: bool,
}

/// The background task: makes the calls, in order, each bounded in time.
struct Delivery {
    client: Client,
    alerts: &'static Alerts,
    records: HashMap<String, Tracked>,
    /// Lines received and not yet sent, in order (consecutive lines of one record merged).
    buffered: Vec<LogBatch>,
    /// Log batches received so far.
    received: u64,
}

impl Delivery {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut logs: mpsc::Receiver<LogBatch>,
    ) {
        let mut next_flush: Option<Instant> = None;
        let mut logs_open = true;
        loop {
            let flush_at = next_flush;
            tokio::select! {
                biased;
                event = control.recv() => {
                    let Some(event) = event else { break };
                    // Lines enqueued before a state change go before it.
                    if let Control::Update { after, .. } = &event {
                        while self.received < *after {
                            match logs.try_recv() {
                                Ok(batch) => self.buffer(batch),
                                Err(_) => break,
                            }
                        }
                    }
                    self.handle(event).await;
                    next_flush = None;
                    if !self.buffered.is_empty() {
                        next_flush = Some(Instant::now() + FLUSH_EVERY);
                    }
                }
                batch = logs.recv(), if logs_open => match batch {
                    Some(batch) => {
                        self.buffer(batch);
                        if self.buffered_lines() >= MAX_LOG_BATCH_LINES {
                            self.flush().await;
                            next_flush = None;
                        } else if next_flush.is_none() {
                            next_flush = Some(Instant::now() + FLUSH_EVERY);
                        }
                    }
                    None => logs_open = false,
                },
                () = sleep_until(flush_at), if flush_at.is_some() => {
                    self.flush().await;
                    next_flush = None;
                }
            }
        }
        while let Ok(batch) = logs.try_recv() {
            self.buffer(batch);
        }
        self.flush().await;
    }

    /// A batch from the log channel.
    fn buffer(&mut self, batch: LogBatch) {
        self.received += 1;
        self.push(batch);
    }

    fn push(&mut self, batch: LogBatch) {
        match self.buffered.last_mut() {
            Some(last) if last.record == batch.record => last.lines.extend(batch.lines),
            _ => self.buffered.push(batch),
        }
    }

    fn buffered_lines(&self) -> usize {
        self.buffered.iter().map(|b| b.lines.len()).sum()
    }

    async fn handle(&mut self, event: Control) {
        match event {
            Control::Start(start) => {
                let id = start.id.clone().unwrap_or_default();
                self.records.insert(
                    id.clone(),
                    Tracked {
                        start,
                        started: false,
                        refused: false,
                    },
                );
                self.ensure_started(&id).await;
            }
            Control::Update {
                record,
                update,
                lines,
                done,
                ..
            } => {
                self.push(LogBatch {
                    record: record.clone(),
                    lines,
                });
                self.flush().await;
                if self.ensure_started(&record).await {
                    let answer = call(&self.client, self.client.update_run(&record, &update)).await;
                    if let Err(e) = answer {
                        self.failed(&record, &e);
                    }
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Sends the buffered lines, in batches within leased's limits.
    async fn flush(&mut self) {
        for batch in std::mem::take(&mut self.buffered) {
            if batch.lines.is_empty() || !self.ensure_started(&batch.record).await {
                continue;
            }
            for chunk in chunks(batch.lines) {
                let logs = RunLogs { lines: chunk };
                let answer = call(&self.client, self.client.run_logs(&batch.record, &logs)).await;
                if let Err(e) = answer {
                    self.failed(&batch.record, &e);
                    break;
                }
            }
        }
    }

    /// Records the start unless leased has it; `false` when the record's events cannot go.
    /// A start that failed is tried again with the next event (the POST is idempotent by id).
    async fn ensure_started(&mut self, id: &str) -> bool {
        if self.alerts.off() {
            return false;
        }
        let Some(record) = self.records.get(id) else {
            return false;
        };
        if record.refused {
            return false;
        }
        if record.started {
            return true;
        }
        let start = record.start.clone();
        match call(&self.client, self.client.start_run(&start)).await {
            Ok(_) => {
                if let Some(record) = self.records.get_mut(id) {
                    record.started = true;
                }
                true
            }
            Err(Error::NotFound(message)) => {
                // A daemon from before run history: recording is simply off.
                tracing::debug!(%message, "leased has no run history; not recording");
                self.alerts.no_runs_api.store(true, Ordering::Relaxed);
                false
            }
            Err(e) => {
                self.failed(id, &e);
                false
            }
        }
    }

    fn failed(&mut self, id: &str, err: &Error) {
        self.alerts.warn(err);
        if !err.is_transient()
            && let Some(record) = self.records.get_mut(id)
        {
            record.refused = true;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One call to leased, given up after [`CALL_TIMEOUT`].
async fn call<T>(
    client: &Client,
    fut: impl std::future::Future<Output = crate::Result<T>>,
) -> crate::Result<T> {
    tokio::time::timeout(CALL_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Unreachable {
                url: client.daemon_url().to_owned(),
                reason: format!("no answer within {CALL_TIMEOUT:?}"),
            })
        })
}

/// Splits lines into batches of at most [`MAX_LOG_BATCH_LINES`] lines that fit the body limit.
fn chunks(lines: Vec<LogLine>) -> Vec<Vec<LogLine>> {
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for line in lines {
        let size =
            serde_json::to_string(&line).map_or(line.message.len() * 6 + 100, |s| s.len()) + 1;
        if !batch.is_empty()
            && (batch.len() == MAX_LOG_BATCH_LINES || bytes + size > MAX_BATCH_BODY)
        {
            batches.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += size;
        batch.push(line);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_satisfy_the_daemon_and_number_the_attempts() {
        assert_eq!(record_id("r-0a1b2c3d4e5f", 1), "r-0a1b2c3d4e5f");
        assert_eq!(record_id("r-0a1b2c3d4e5f", 2), "r-0a1b2c3d4e5f-2");
        assert_eq!(record_id("Nightly_Run.7", 1), "nightly-run-7");
        let long = "x".repeat(100);
        for attempt in [1, 3, 12] {
            let id = record_id(&long, attempt);
            api::check_run_id(&id).unwrap();
        }
        api::check_run_id(&record_id("__", 1)).unwrap();
    }

    #[test]
    fn long_lines_are_split_never_cut() {
        let text = "é".repeat(MAX_LOG_LINE_BYTES); // two bytes each
        let lines = log_lines(&text, 7, "console");
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.message.len() <= MAX_LOG_LINE_BYTES));
        let joined: String = lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(joined, text);
        assert_eq!(lines[0].source.as_deref(), Some("console"));
        assert_eq!(log_lines("", 7, "socv").len(), 1);
    }

    #[test]
    fn batches_respect_the_line_count_and_the_body_limit() {
        let short: Vec<LogLine> = (0..2500)
            .flat_map(|i| log_lines(&format!("{i}"), 1, "c"))
            .collect();
        let sizes: Vec<usize> = chunks(short).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1000, 1000, 500]);
        let long: Vec<LogLine> = (0..20)
            .flat_map(|_| log_lines(&"x".repeat(MAX_LOG_LINE_BYTES), 1, "c"))
            .collect();
        let batches = chunks(long);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 20);
        for batch in &batches {
            let body = serde_json::to_vec(&RunLogs {
                lines: batch.clone(),
            })
            .unwrap();
            assert!(body.len() <= api::MAX_BODY_BYTES, "{}", body.len());
        }
    }

    /// What a fake leased was asked: `POST runs r-1`, `PATCH r-1 running`, `LOGS r-1 n`.
    #[derive(Clone, Default)]
    struct Seen {
        calls: std::sync::Arc<Mutex<Vec<String>>>,
        lines: std::sync::Arc<Mutex<Vec<LogLine>>>,
    }

    /// A leased that keeps what it is told; `runs_api: false` is one from before run history.
    async fn fake_leased(runs_api: bool) -> (Client, Seen) {
        use axum::extract::{Path, State};
        use axum::routing::{patch, post};
        let seen = Seen::default();
        let app = axum::Router::new();
        let app = if runs_api {
            app.route(
                "/api/v1/runs",
                post(
                    |State(s): State<Seen>, axum::Json(r): axum::Json<RunStart>| async move {
                        s.calls
                            .lock()
                            .unwrap()
                            .push(format!("POST {}", r.id.unwrap_or_default()));
                        (
                            axum::http::StatusCode::CREATED,
                            axum::Json(api::Run::default()),
                        )
                    },
                ),
            )
            .route(
                "/api/v1/runs/{id}",
                patch(
                    |State(s): State<Seen>,
                     Path(id): Path<String>,
                     axum::Json(u): axum::Json<RunUpdate>| async move {
                        s.calls
                            .lock()
                            .unwrap()
                            .push(format!("PATCH {id} {}", u.state));
                        axum::Json(api::Run::default())
                    },
                ),
            )
            .route(
                "/api/v1/runs/{id}/logs",
                post(
                    |State(s): State<Seen>,
                     Path(id): Path<String>,
                     axum::Json(l): axum::Json<RunLogs>| async move {
                        s.calls
                            .lock()
                            .unwrap()
                            .push(format!("LOGS {id} {}", l.lines.len()));
                        s.lines.lock().unwrap().extend(l.lines);
                        axum::http::StatusCode::NO_CONTENT
                    },
                ),
            )
        } else {
            app
        };
        let app = app
            .fallback(|| async {
                (
                    axum::http::StatusCode::NOT_FOUND,
                    "{\"error\":{\"code\":\"not_found\",\"message\":\"no such endpoint\"}}",
                )
            })
            .layer(axum::middleware::map_response(
                |mut r: axum::response::Response| async move {
                    r.headers_mut().insert(
                        api::API_VERSION_HEADER,
                        axum::http::HeaderValue::from_static(api::API_VERSION),
                    );
                    r
                },
            ))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = crate::config::Config {
            daemon: crate::config::parse_daemon_url(&url).unwrap(),
            token: None,
            holder: "ann@host".into(),
            ca_cert: None,
        };
        (Client::new(&config).unwrap(), seen)
    }

    fn lease(board: &str) -> Lease {
        Lease {
            id: format!("l-{board}"),
            board_id: board.into(),
            family: "socA".into(),
            ..Lease::default()
        }
    }

    fn alerts() -> &'static Alerts {
        Box::leak(Box::default())
    }

    #[tokio::test]
    async fn every_line_arrives_in_order_in_batches_before_the_end() {
        let (client, seen) = fake_leased(true).await;
        let alerts = alerts();
        let recorder = RunRecorder::with_alerts(client, "r-00000000000a", alerts);
        recorder.start(&lease("b1"), "./t.elf", &[], 1, "");
        recorder.note(LogLevel::Info, "pushing");
        recorder.running();
        let mut text = String::new();
        for i in 0..2500 {
            text.push_str(&format!("line {i}\r\n"));
        }
        // Cut anywhere, also inside a line.
        for chunk in text.as_bytes().chunks(777) {
            recorder.console(chunk);
        }
        recorder.console("y".repeat(2 * MAX_LOG_LINE_BYTES + 5).as_bytes());
        recorder.console(b"\ntail without newline");
        recorder.end(finished(0, "b1", vec![])).await;
        recorder.finish().await;

        let calls = seen.calls.lock().unwrap().clone();
        assert_eq!(
            calls.first().map(String::as_str),
            Some("POST r-00000000000a")
        );
        assert_eq!(
            calls.last().map(String::as_str),
            Some("PATCH r-00000000000a completed")
        );
        // The line before Running goes before it; the console after.
        assert_eq!(
            calls[1..3],
            ["LOGS r-00000000000a 1", "PATCH r-00000000000a running"],
            "{calls:?}"
        );
        let lines = seen.lines.lock().unwrap().clone();
        assert_eq!(lines[0].message, "pushing");
        assert_eq!(lines[0].source.as_deref(), Some("socv"));
        let console: Vec<&str> = lines[1..].iter().map(|l| l.message.as_str()).collect();
        assert_eq!(console.len(), 2500 + 3 + 1, "{calls:?}");
        for (i, line) in console[..2500].iter().enumerate() {
            assert_eq!(*line, format!("line {i}"));
        }
        assert_eq!(
            console[2500..2503].concat(),
            "y".repeat(2 * MAX_LOG_LINE_BYTES + 5)
        );
        assert_eq!(console[2503], "tail without newline");
        assert!(lines.iter().all(|l| l.message.len() <= MAX_LOG_LINE_BYTES));
        assert!(!alerts.warned.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_retry_is_a_new_record_and_the_failed_attempt_is_crashed() {
        let (client, seen) = fake_leased(true).await;
        let recorder = RunRecorder::with_alerts(client, "r-00000000000b", alerts());
        recorder.start(&lease("b1"), "./t.elf", &[], 1, "");
        let crashed = ended(RunState::Crashed, "link dropped".into(), None, "b1", vec![]);
        recorder.end(crashed).await;
        recorder.start(
            &lease("b2"),
            "./t.elf",
            &[],
            2,
            "after b1 failed: link dropped",
        );
        recorder.end(finished(1, "b2", vec![])).await;
        recorder.finish().await;
        assert_eq!(
            seen.calls.lock().unwrap().clone(),
            [
                "POST r-00000000000b",
                "PATCH r-00000000000b crashed",
                "POST r-00000000000b-2",
                "PATCH r-00000000000b-2 failed",
            ]
        );
    }

    #[tokio::test]
    async fn a_daemon_without_run_history_turns_recording_off_silently() {
        let (client, seen) = fake_leased(false).await;
        let alerts = alerts();
        let recorder = RunRecorder::with_alerts(client, "r-00000000000c", alerts);
        recorder.start(&lease("b1"), "./t.elf", &[], 1, "");
        recorder.console(b"hello\n");
        recorder.end(finished(0, "b1", vec![])).await;
        recorder.finish().await;
        assert!(alerts.off());
        assert!(!alerts.warned.load(Ordering::Relaxed));
        assert!(seen.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_daemon_warns_and_never_holds_the_run_up() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = crate::config::Config {
            daemon: crate::config::parse_daemon_url(&format!("http://127.0.0.1:{port}")).unwrap(),
            token: None,
            holder: "ann@host".into(),
            ca_cert: None,
        };
        let alerts = alerts();
        let recorder = RunRecorder::with_alerts(Client::new(&config).unwrap(), "r-d", alerts);
        // A guard against a hang, not a speed check: the bounded waits make it end anyway.
        tokio::time::timeout(Duration::from_secs(60), async {
            recorder.start(&lease("b1"), "./t.elf", &[], 1, "");
            for _ in 0..10_000 {
                recorder.console(b"a line of output\n");
            }
            recorder.end(finished(0, "b1", vec![])).await;
            recorder.finish().await;
        })
        .await
        .expect("the recorder held the run up");
        assert!(alerts.warned.load(Ordering::Relaxed));
        assert!(!alerts.off());
    }

    #[test]
    fn endings_map_to_states() {
        let done = finished(0, "b", vec![]);
        assert_eq!((done.state, done.exit_code), (RunState::Completed, Some(0)));
        let failed = finished(3, "b", vec![]);
        assert_eq!(
            (failed.state, failed.socv_exit_code),
            (RunState::Failed, Some(3))
        );
        let cases = run_cases(&[TestCase {
            name: "x".into(),
            status: CaseStatus::Unknown,
            measurement: None,
            message: None,
            output: String::new(),
        }]);
        assert_eq!(cases[0].outcome, CaseOutcome::Fail);
        assert_eq!(cases[0].message.as_deref(), Some("result unknown"));
    }
}
