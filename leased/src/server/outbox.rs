//! Where the outbox goes: run records leave the store's outbox for Prefect through the
//! [`Deliverer`] when one is configured; otherwise a sweeper empties it so that it never grows
//! without bound.

use crate::api::PrefectStatus;
use crate::api::time::{Backoff, Clock};
use crate::config::Config;
use crate::prefect::{Deliverer, DelivererHandle, PrefectClient, setup};
use crate::store::RunStore;
use crate::tls::CaBundle;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often a daemon without Prefect empties the outbox.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Entries swept at once.
const SWEEP_BATCH: usize = 1000;

/// The way out of the outbox: the deliverer to Prefect, or the sweeper.
pub struct Outbox {
    runs: Arc<dyn RunStore>,
    handle: Option<DelivererHandle>,
    /// Taken by [`Outbox::start`].
    deliverer: Mutex<Option<Deliverer>>,
    /// With Prefect: the client and work pool that [`setup::ensure`] lays out at start.
    layout: Option<(PrefectClient, String)>,
    clock: Clock,
}

impl Outbox {
    pub fn new(
        config: &Config,
        ca: Option<&CaBundle>,
        runs: Arc<dyn RunStore>,
        clock: &Clock,
    ) -> anyhow::Result<Outbox> {
        let client = match &config.prefect {
            Some(p) => Some(PrefectClient::with_ca(p, ca)?),
            None => None,
        };
        let deliverer = client.clone().map(|c| {
            Deliverer::new(runs.clone(), c)
                .with_clock(clock.clone())
                .with_concurrency(config.prefect_concurrency)
        });
        Ok(Outbox {
            layout: client.map(|c| (c, config.work_pool.clone())),
            runs,
            handle: deliverer.as_ref().map(Deliverer::handle),
            deliverer: Mutex::new(deliverer),
            clock: clock.clone(),
        })
    }

    /// The Prefect client, when leased has Prefect.
    pub fn prefect(&self) -> Option<&PrefectClient> {
        self.layout.as_ref().map(|(client, _)| client)
    }

    /// New entries are in the outbox.
    pub fn wake(&self) {
        if let Some(h) = &self.handle {
            h.wake();
        }
    }

    /// For `GET /api/v1/health`.
    pub async fn status(&self) -> PrefectStatus {
        let mut status = match &self.handle {
            Some(h) => h.status(),
            None => PrefectStatus {
                ok: true,
                ..PrefectStatus::default()
            },
        };
        // The outbox itself, rather than the deliverer's last look at it.
        if let Ok(n) = self.runs.outbox_len().await {
            status.backlog = n;
        }
        status
    }

    /// Starts delivering (or sweeping) until `stop`; with Prefect, also lays out the work pool,
    /// its queues and the deployment (once, retried until Prefect takes it).
    pub fn start(&self, stop: CancellationToken) -> JoinHandle<()> {
        if let Some((client, pool)) = &self.layout {
            tokio::spawn(lay_out(client.clone(), pool.clone(), stop.clone()));
        }
        let deliverer = self.deliverer.lock().ok().and_then(|mut d| d.take());
        match deliverer {
            Some(d) => tokio::spawn(d.run(stop)),
            None if self.handle.is_some() => tokio::spawn(async {}),
            None => tokio::spawn(sweep(self.runs.clone(), self.clock.clone(), stop)),
        }
    }
}

/// Between tries of the layout: 1 s doubling to 60 s.
const LAYOUT_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

/// Makes sure Prefect holds the flow, the work pool `pool` with its priority queues and the
/// `socv-run` deployment ([`setup::ensure`]), trying again with backoff while Prefect is down or
/// refuses (the error is logged once per change, with what to fix).
async fn lay_out(client: PrefectClient, pool: String, stop: CancellationToken) {
    let mut waits = LAYOUT_BACKOFF.waits();
    let mut last_error = None;
    loop {
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            r = setup::ensure(&client, &pool) => r,
        };
        match &outcome {
            Ok(report) if report.changed.is_empty() => {
                tracing::info!(pool = %pool, deployment = %report.deployment_id, "Prefect's work pool and deployment are as they should be");
                return;
            }
            Ok(report) => {
                tracing::info!(pool = %pool, deployment = %report.deployment_id, changed = %report.changed.join("; "), "Prefect laid out for socv workers");
                return;
            }
            // A setting to fix (credentials, CA, URL) is said once, by the deliverer, which meets
            // it too; meanwhile this tries again only at the longest wait.
            Err(e) if e.is_configuration() => {
                tracing::debug!(error = %e, pool = %pool, "laying out Prefect: a setting to fix");
            }
            Err(e) => {
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(
                        "laying out Prefect's work pool {pool} and the socv-run deployment: {text} (trying again)"
                    );
                    last_error = Some(text);
                }
            }
        }
        let wait = match &outcome {
            Err(e) if e.is_configuration() => LAYOUT_BACKOFF.max,
            _ => waits.next_wait(),
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Without Prefect nobody reads the outbox: its entries are dropped (the run records themselves
/// stay, within the retention). Under the delivery claim, so that a daemon that has Prefect and
/// shares the store delivers them instead whenever it holds the claim.
async fn sweep(runs: Arc<dyn RunStore>, clock: Clock, stop: CancellationToken) {
    let owner = format!("leased-sweeper-{}", std::process::id());
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        let now = clock.now_ms();
        if !matches!(runs.outbox_claim(&owner, 30_000, now).await, Ok(true)) {
            continue;
        }
        while let Ok(entries) = runs.outbox_peek(SWEEP_BATCH).await {
            if entries.is_empty() {
                break;
            }
            let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
            if runs.outbox_ack(&seqs).await.is_err() {
                break;
            }
        }
    }
}
