//! Carries the store's outbox to Prefect: in order for each run, several runs at once, at least
//! once and without duplicates (every call of the client is safe to repeat), and never losing an
//! entry while Prefect is slow or down.
//!
//! One pass: claim the outbox (daemons sharing a Redis deliver one at a time), peek a window of
//! entries, group them by run keeping their order, deliver the groups concurrently (a group stops
//! at its first failure; later entries of that run wait for the next pass), ack what got through.
//! Consecutive `Logs` entries of a run go as one bounded delivery. Passes follow each other
//! while there is work; otherwise the deliverer sleeps until poked ([`DelivererHandle::wake`],
//! after every run call) or for the poll interval; after a failure it backs off (1 s doubling to
//! 30 s) and reports the error in its status.

use super::client::{LogRecord, PrefectClient, PrefectError, StateOutcome};
use crate::api::time::{Backoff, Clock};
use crate::api::{PrefectStatus, Run};
use crate::store::{OutboxEntry, OutboxEvent, RunStore};
use anyhow::{Context, anyhow};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How the deliverer paces itself.
#[derive(Debug, Clone)]
pub struct DeliverOptions {
    /// Entries looked at in one pass.
    pub window: usize,
    /// Runs delivered at once.
    pub concurrency: usize,
    /// How often the outbox is looked at when nothing pokes the deliverer.
    pub poll: Duration,
    /// How long a claim on the outbox lasts without renewal.
    pub claim_ttl: Duration,
    /// Pause after a failed pass: 1 s doubling to 30 s (a setting's error waits the longest).
    pub backoff: Backoff,
    /// Most console lines of a run delivered in one step (the client posts them in batches).
    pub max_lines_per_step: usize,
}

impl Default for DeliverOptions {
    fn default() -> Self {
        DeliverOptions {
            window: 512,
            concurrency: 2,
            poll: Duration::from_secs(1),
            claim_ttl: Duration::from_secs(30),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            max_lines_per_step: 2000,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Whether this deliverer holds the claim (otherwise it did nothing).
    pub claimed: bool,
    /// Entries acked (delivered, or refused by Prefect for good).
    pub acked: u64,
    /// Entries left in the outbox.
    pub backlog: u64,
}

/// The part of a deliverer that the server keeps: its status and its wake-up call.
#[derive(Clone)]
pub struct DelivererHandle {
    shared: Arc<Shared>,
}

struct Shared {
    url: String,
    notify: Notify,
    status: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    error: Option<String>,
    backlog: u64,
    delivered: u64,
    refused: u64,
    last_refusal: Option<String>,
    last_delivery_ms: Option<u64>,
}

impl DelivererHandle {
    /// How delivery goes, for `GET /api/v1/health`.
    pub fn status(&self) -> PrefectStatus {
        let c = self.shared.status.lock().unwrap();
        PrefectStatus {
            configured: true,
            url: Some(self.shared.url.clone()),
            ok: c.error.is_none(),
            error: c.error.clone(),
            backlog: c.backlog,
            delivered: c.delivered,
            refused: c.refused,
            last_refusal: c.last_refusal.clone(),
            last_delivery_ms: c.last_delivery_ms,
        }
    }

    /// New entries are in the outbox: deliver them now rather than at the next poll.
    pub fn wake(&self) {
        self.shared.notify.notify_one();
    }
}

/// Delivers the outbox of a [`RunStore`] to Prefect; see the module documentation.
pub struct Deliverer {
    store: Arc<dyn RunStore>,
    client: PrefectClient,
    owner: String,
    opts: DeliverOptions,
    shared: Arc<Shared>,
    /// Flow run ids of runs seen lately.
    flow_runs: Mutex<HashMap<String, String>>,
    /// Runs whose logs in Prefect are known to this process (every post of theirs here got
    /// its answer): their next post needs no look for what is already there.
    logs_known: Mutex<HashSet<String>>,
    /// Runs whose flow run this process made (Prefect answered 201) and that have had no
    /// artifact post yet: their artifacts need no look for what is already there.
    no_artifacts: Mutex<HashSet<String>>,
    claimed_at: Mutex<Option<Instant>>,
    clock: Clock,
}

/// Caches are cleared beyond this many runs (they are only shortcuts).
const CACHE_RUNS: usize = 10_000;

impl Deliverer {
    /// A deliverer with a fresh owner name (`leased-<pid>-<random>`) and default pacing.
    pub fn new(store: Arc<dyn RunStore>, client: PrefectClient) -> Deliverer {
        let owner = format!(
            "leased-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        Deliverer::with_options(store, client, owner, DeliverOptions::default())
    }

    pub fn with_options(
        store: Arc<dyn RunStore>,
        client: PrefectClient,
        owner: impl Into<String>,
        opts: DeliverOptions,
    ) -> Deliverer {
        let shared = Arc::new(Shared {
            url: client.api_url().to_string(),
            notify: Notify::new(),
            status: Mutex::new(Counters::default()),
        });
        Deliverer {
            store,
            client,
            owner: owner.into(),
            opts,
            shared,
            flow_runs: Mutex::new(HashMap::new()),
            logs_known: Mutex::new(HashSet::new()),
            no_artifacts: Mutex::new(HashSet::new()),
            claimed_at: Mutex::new(None),
            clock: Clock::system(),
        }
    }

    /// Reads "now" (claims, delivery times) from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Deliverer {
        self.clock = clock;
        self
    }

    /// Delivers `n` runs at once (at least one).
    pub fn with_concurrency(mut self, n: usize) -> Deliverer {
        self.opts.concurrency = n.max(1);
        self
    }

    pub fn handle(&self) -> DelivererHandle {
        DelivererHandle {
            shared: self.shared.clone(),
        }
    }

    pub fn status(&self) -> PrefectStatus {
        self.handle().status()
    }

    /// Delivers until `stop` is cancelled. A pass cut short by the stop is repeated by the next
    /// daemon (every delivery is safe to repeat).
    pub async fn run(self, stop: CancellationToken) {
        let mut waits = self.opts.backoff.waits();
        loop {
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                r = self.deliver_once() => r,
            };
            match result {
                Ok(pass) => {
                    waits.reset();
                    if pass.claimed && pass.acked > 0 && pass.backlog > 0 {
                        continue;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = self.shared.notify.notified() => {}
                        _ = tokio::time::sleep(self.opts.poll) => {}
                    }
                }
                Err(e) => {
                    // A refused credential, an untrusted certificate or a wrong URL: the same
                    // for every run, so said without the run, once, and waited out long.
                    let configuration = e
                        .chain()
                        .find_map(|c| c.downcast_ref::<PrefectError>())
                        .filter(|p| p.is_configuration());
                    let text = match configuration {
                        Some(p) => p.to_string(),
                        None => format!("{e:#}"),
                    };
                    let changed = {
                        let mut c = self.shared.status.lock().unwrap();
                        let changed = c.error.as_deref() != Some(text.as_str());
                        c.error = Some(text.clone());
                        changed
                    };
                    let backoff = waits.next_wait();
                    let backoff = if configuration.is_some() {
                        self.opts.backoff.max
                    } else {
                        backoff
                    };
                    if configuration.is_some() {
                        if changed {
                            tracing::error!(
                                "delivering run history to Prefect: {text} (fix the setting; \
                                 every record stays in the outbox and is delivered in order \
                                 once Prefect takes them; trying again every {})",
                                humantime::format_duration(backoff)
                            );
                        }
                    } else if changed {
                        tracing::warn!(
                            "delivering run history to Prefect: {text} (retrying; nothing is lost)"
                        );
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                }
            }
        }
    }

    /// One pass over the outbox (see the module documentation). An error says what failed
    /// first; what was delivered before it stays delivered.
    pub async fn deliver_once(&self) -> anyhow::Result<Pass> {
        let mut pass = Pass::default();
        if !self.claim().await? {
            pass.backlog = self.update_backlog().await?;
            return Ok(pass);
        }
        pass.claimed = true;
        let entries = self
            .store
            .outbox_peek(self.opts.window)
            .await
            .context("reading the outbox")?;
        if !entries.is_empty() {
            self.update_backlog().await?;
        }
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<OutboxEntry>> = HashMap::new();
        for e in entries {
            if !groups.contains_key(&e.run_id) {
                order.push(e.run_id.clone());
            }
            groups.entry(e.run_id.clone()).or_default().push(e);
        }
        let results: Vec<(u64, anyhow::Result<()>)> = futures_util::stream::iter(
            order
                .into_iter()
                .filter_map(|id| groups.remove(&id).map(|g| (id, g))),
        )
        .map(|(run_id, group)| async move {
            let mut acked = 0;
            let r = self.deliver_run(&run_id, &group, &mut acked).await;
            (acked, r.with_context(|| format!("run {run_id}")))
        })
        .buffer_unordered(self.opts.concurrency.max(1))
        .collect()
        .await;
        let mut first_error = None;
        for (acked, r) in results {
            pass.acked += acked;
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        pass.backlog = self.update_backlog().await?;
        match first_error {
            Some(e) => Err(e),
            None => {
                self.shared.status.lock().unwrap().error = None;
                Ok(pass)
            }
        }
    }

    /// Claims or renews the outbox for this deliverer.
    async fn claim(&self) -> anyhow::Result<bool> {
        let ttl = self.opts.claim_ttl.as_millis() as u64;
        let ok = self
            .store
            .outbox_claim(&self.owner, ttl, self.clock.now_ms())
            .await
            .context("claiming the outbox")?;
        *self.claimed_at.lock().unwrap() = ok.then(Instant::now);
        Ok(ok)
    }

    /// Renews the claim when a third of its lifetime has passed; `false`: it was lost.
    async fn keep_claim(&self) -> anyhow::Result<bool> {
        let due = match *self.claimed_at.lock().unwrap() {
            Some(at) => at.elapsed() > self.opts.claim_ttl / 3,
            None => return Ok(false),
        };
        if due { self.claim().await } else { Ok(true) }
    }

    async fn update_backlog(&self) -> anyhow::Result<u64> {
        let n = self
            .store
            .outbox_len()
            .await
            .context("counting the outbox")?;
        self.shared.status.lock().unwrap().backlog = n;
        Ok(n)
    }

    async fn ack(&self, seqs: &[u64], acked: &mut u64) -> anyhow::Result<()> {
        self.store
            .outbox_ack(seqs)
            .await
            .context("acking delivered outbox entries")?;
        *acked += seqs.len() as u64;
        let mut c = self.shared.status.lock().unwrap();
        c.delivered += seqs.len() as u64;
        c.backlog = c.backlog.saturating_sub(seqs.len() as u64);
        c.last_delivery_ms = Some(self.clock.now_ms());
        Ok(())
    }

    /// Delivers one run's entries in order, stopping at the first failure.
    async fn deliver_run(
        &self,
        run_id: &str,
        entries: &[OutboxEntry],
        acked: &mut u64,
    ) -> anyhow::Result<()> {
        let mut i = 0;
        while i < entries.len() {
            if !self.keep_claim().await? {
                return Ok(());
            }
            // A step delivers entries[i..next].
            let next = match &entries[i].event {
                OutboxEvent::Logs { .. } => {
                    let mut j = i;
                    let mut lines = 0;
                    while let Some(OutboxEntry {
                        event: OutboxEvent::Logs { lines: l },
                        ..
                    }) = entries.get(j)
                    {
                        if j > i && lines + l.len() > self.opts.max_lines_per_step {
                            break;
                        }
                        lines += l.len();
                        j += 1;
                    }
                    j
                }
                _ => i + 1,
            };
            let step = &entries[i..next];
            match self.deliver_step(run_id, step, entries).await {
                Ok(()) => {}
                Err(e) if is_permanent(&e) => {
                    // Prefect refuses this data for good: repeating it would block the run's
                    // history forever. Say so loudly and go on.
                    tracing::error!(
                        run = run_id,
                        seq = step[0].seq,
                        "Prefect refused a run record for good, skipping it: {e:#}"
                    );
                    let mut c = self.shared.status.lock().unwrap();
                    c.refused += step.len() as u64;
                    c.last_refusal = Some(format!("run {run_id}: {e:#}"));
                }
                Err(e) => return Err(e),
            }
            let seqs: Vec<u64> = step.iter().map(|e| e.seq).collect();
            if let Err(e) = self.ack(&seqs, acked).await {
                // Delivered but still in the outbox: the next delivery must look before posting.
                self.logs_known.lock().unwrap().remove(run_id);
                return Err(e);
            }
            i = next;
        }
        Ok(())
    }

    async fn deliver_step(
        &self,
        run_id: &str,
        step: &[OutboxEntry],
        all: &[OutboxEntry],
    ) -> anyhow::Result<()> {
        match &step[0].event {
            OutboxEvent::Create { run } => {
                let (fr, made) = self.client.create_or_find_flow_run(run).await?;
                self.remember(run_id, &fr).await?;
                if made {
                    // A new flow run has no logs and no artifacts: no need to look.
                    for set in [&self.logs_known, &self.no_artifacts] {
                        let mut set = set.lock().unwrap();
                        if set.len() >= CACHE_RUNS {
                            set.clear();
                        }
                        set.insert(run_id.to_string());
                    }
                }
            }
            OutboxEvent::State {
                state,
                message,
                at_ms,
                transition_id,
            } => {
                let fr = self.flow_run_id(run_id, all).await?;
                let set = |fr: String| async move {
                    self.client
                        .set_state(&fr, *state, message.as_deref(), transition_id, *at_ms)
                        .await
                };
                let outcome = match set(fr).await {
                    // Prefect lost the flow run (its database was reset): make it again.
                    Err(PrefectError::Missing { .. }) => {
                        self.forget(run_id);
                        let fr = self.recreate(run_id, all).await?;
                        set(fr).await?
                    }
                    other => other?,
                };
                if let StateOutcome::Refused { status, reason } = outcome {
                    tracing::warn!(
                        run = run_id,
                        "Prefect refused the state {} ({status}: {reason}); going on",
                        state.prefect_name()
                    );
                }
            }
            OutboxEvent::Logs { .. } => {
                let fr = self.flow_run_id(run_id, all).await?;
                let records: Vec<LogRecord<'_>> = step
                    .iter()
                    .flat_map(|e| match &e.event {
                        OutboxEvent::Logs { lines } => {
                            LogRecord::of_entry(e.seq, lines).collect::<Vec<_>>()
                        }
                        _ => Vec::new(),
                    })
                    .collect();
                let known = self.logs_known.lock().unwrap().remove(run_id);
                let posted = self.client.post_logs(&fr, &records, !known).await?;
                if posted.skipped > 0 {
                    tracing::info!(
                        run = run_id,
                        "{} log lines were already in Prefect; not posted again",
                        posted.skipped
                    );
                }
                let mut k = self.logs_known.lock().unwrap();
                if k.len() >= CACHE_RUNS {
                    k.clear();
                }
                k.insert(run_id.to_string());
            }
            OutboxEvent::Artifacts { run } => {
                let fr = self.flow_run_id(run_id, all).await?;
                let check = !self.no_artifacts.lock().unwrap().remove(run_id);
                self.client.post_artifacts_checked(&fr, run, check).await?;
                // The run has ended: its shortcuts are no longer needed often.
                self.logs_known.lock().unwrap().remove(run_id);
            }
        }
        Ok(())
    }

    /// The flow run of a run: remembered, recorded in the store, or made (again).
    async fn flow_run_id(&self, run_id: &str, all: &[OutboxEntry]) -> anyhow::Result<String> {
        if let Some(fr) = self.flow_runs.lock().unwrap().get(run_id) {
            return Ok(fr.clone());
        }
        let stored = self.store.run(run_id).await.context("reading the run")?;
        if let Some(fr) = stored
            .as_ref()
            .and_then(|r| r.prefect.as_ref())
            .map(|p| p.flow_run_id.clone())
            .filter(|f| !f.is_empty())
        {
            self.cache(run_id, &fr);
            return Ok(fr);
        }
        self.recreate(run_id, all).await
    }

    /// Creates the run's flow run (or finds it: creation is idempotent by the run id) from the
    /// run's record, else from a record carried by its outbox entries, else looks it up by id.
    async fn recreate(&self, run_id: &str, all: &[OutboxEntry]) -> anyhow::Result<String> {
        let stored = self.store.run(run_id).await.context("reading the run")?;
        let carried = all.iter().find_map(|e| match &e.event {
            OutboxEvent::Create { run } | OutboxEvent::Artifacts { run } => Some(run.clone()),
            _ => None,
        });
        let run: Option<Run> = stored.or(carried);
        let fr = match run {
            Some(run) => self.client.create_flow_run(&run).await?,
            None => match self.client.find_flow_run(run_id).await? {
                Some(fr) => fr,
                None => {
                    return Err(anyhow!(Orphan(
                        "no flow run in Prefect and no record left to create it from".into()
                    )));
                }
            },
        };
        self.remember(run_id, &fr).await?;
        Ok(fr)
    }

    async fn remember(&self, run_id: &str, flow_run_id: &str) -> anyhow::Result<()> {
        self.store
            .set_flow_run_id(run_id, flow_run_id)
            .await
            .context("recording the flow run id")?;
        self.cache(run_id, flow_run_id);
        Ok(())
    }

    fn cache(&self, run_id: &str, flow_run_id: &str) {
        let mut m = self.flow_runs.lock().unwrap();
        if m.len() >= CACHE_RUNS {
            m.clear();
        }
        m.insert(run_id.to_string(), flow_run_id.to_string());
    }

    fn forget(&self, run_id: &str) {
        self.flow_runs.lock().unwrap().remove(run_id);
        self.logs_known.lock().unwrap().remove(run_id);
    }
}

/// An event of a run that can never be delivered (nothing is left to make its flow run from).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Orphan(String);

/// Whether a step failed for good (Prefect refuses the data, or it cannot be delivered at all),
/// so that repeating it cannot help.
fn is_permanent(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<PrefectError>()
            .is_some_and(PrefectError::is_permanent)
            || c.downcast_ref::<Orphan>().is_some()
    })
}
