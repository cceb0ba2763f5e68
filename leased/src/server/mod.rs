//! The daemon: its shared state, the HTTP router, and the background work (reaping expired
//! leases, probing unhealthy boards, re-registering the lab after a store wipe).

mod error;
mod handlers;
mod metrics;
mod outbox;
#[cfg(test)]
mod paused;
mod tls;

pub use error::ApiError;
pub use metrics::Metrics;
pub use outbox::Outbox;
pub use tls::{ServerTls, TlsListener};

use crate::api::time::Clock;
use crate::api::{API_VERSION, API_VERSION_HEADER, MAX_BODY_BYTES};
use crate::auth::{Auth, Caller};
use crate::config::{Config, StoreSpec};
use crate::lab::{Board, Lab};
use crate::notify::Notifier;
use crate::store::{BoardKey, EmbeddedStore, LeaseStore, RedisStore, RunStore, Store, StoreError};
use crate::tls::CaBundle;
use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;

/// Longest a single long poll of a queue ticket is held open.
pub const LONG_POLL_MAX: Duration = Duration::from_secs(25);

/// How often runs whose client is gone are looked for (and marked Crashed).
const CRASH_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    /// Where every handler and task reads "now" (a manual clock in tests).
    pub clock: Clock,
    pub lab: Lab,
    pub boards: HashMap<String, Board>,
    pub store: Arc<dyn LeaseStore>,
    /// Run history, in the same store as the leases.
    pub runs: Arc<dyn RunStore>,
    /// Empties the outbox: delivers it to Prefect, or sweeps it when there is no Prefect.
    pub outbox: Outbox,
    pub notifier: Notifier,
    /// Queue tickets this daemon has seen waiting: since when, and whether a long wait was
    /// notified already.
    pub waiting_since: std::sync::Mutex<HashMap<String, (tokio::time::Instant, bool)>>,
    pub auth: Auth,
    pub metrics: Metrics,
    /// Drives the PDUs; serialises actions per outlet.
    pub power: crate::power::PowerController,
    /// The certificate leased serves https with, when it does.
    pub tls: Option<ServerTls>,
    /// The binaries of remote runs, by sha256.
    pub artifacts: crate::artifacts::Artifacts,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Identifies the caller of a request.
    pub fn caller(&self, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
        Ok(self.auth.identify(headers)?)
    }

    /// A queue ticket is (still) waiting: notifies once when it has waited longer than the
    /// configured `notify_long_wait` (as seen by this daemon, from the ticket's first answer).
    pub fn note_waiting(&self, ticket: &crate::store::TicketRecord, position: u32) {
        let Some(after) = self.notifier.long_wait_after() else {
            return;
        };
        let Ok(mut waiting) = self.waiting_since.lock() else {
            return;
        };
        let (since, notified) = waiting
            .entry(ticket.id.clone())
            .or_insert((tokio::time::Instant::now(), false));
        let waited = since.elapsed();
        if !*notified && waited >= after {
            *notified = true;
            let target = ticket.board_id.as_deref().unwrap_or(&ticket.family);
            self.notifier
                .long_wait(&ticket.id, target, &ticket.holder, waited, position);
        }
    }

    /// A queue ticket stopped waiting (granted, cancelled).
    pub fn done_waiting(&self, ticket: &str) {
        if let Ok(mut waiting) = self.waiting_since.lock() {
            waiting.remove(ticket);
        }
    }

    fn board_keys(&self) -> Vec<BoardKey> {
        self.lab
            .boards
            .iter()
            .map(|b| BoardKey {
                id: b.board_id.clone(),
                family: b.soc_family.clone(),
                location: b.lab_location.clone(),
            })
            .collect()
    }
}

/// Opens the store a configuration names.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.store {
        StoreSpec::Redis(url) => Arc::new(RedisStore::connect(url, &config.redis_prefix).await?),
        StoreSpec::Embedded(path) => Arc::new(EmbeddedStore::open(path)?),
    })
}

/// Loads the lab, the tokens and the store, and registers the boards.
pub async fn build(config: Config) -> anyhow::Result<AppState> {
    let store = open_store(&config).await?;
    build_with_store(config, store).await
}

/// Like [`build`], with a store the caller opened (tests, benchmarks).
pub async fn build_with_store(config: Config, store: Arc<dyn Store>) -> anyhow::Result<AppState> {
    build_with_clock(config, store, Clock::system()).await
}

/// Like [`build_with_store`], reading "now" from `clock` (a test's manual clock).
pub async fn build_with_clock(
    config: Config,
    store: Arc<dyn Store>,
    clock: Clock,
) -> anyhow::Result<AppState> {
    config.check()?;
    let ca = config
        .ca_cert
        .as_deref()
        .map(|p| CaBundle::load(p, "ca_cert (LEASED_CA_CERT)"))
        .transpose()?;
    let tls = match &config.tls {
        Some(files) => Some(ServerTls::load(&files.cert, &files.key)?),
        None => None,
    };
    let lab = Lab::load(&config.boards)?;
    let auth = match &config.tokens {
        Some(path) => Auth::load(path)?,
        None => Auth::open(),
    };
    let boards = lab
        .boards
        .iter()
        .map(|b| (b.board_id.clone(), b.clone()))
        .collect();
    let power = crate::power::PowerController::with_ca(&lab, ca.as_ref());
    let http = crate::tls::client_builder(ca.as_ref())
        .timeout(Duration::from_secs(15))
        .build()
        .context("building the HTTP client")?;
    let notifier = Notifier::new(&config.notify, http);
    let runs: Arc<dyn RunStore> = store.clone();
    let outbox = Outbox::new(&config, ca.as_ref(), runs.clone(), &clock)?;
    let artifacts = crate::artifacts::Artifacts::new(config.artifacts.clone());
    let state = AppState(Arc::new(Inner {
        artifacts,
        config,
        clock,
        power,
        lab,
        boards,
        store,
        runs,
        outbox,
        notifier,
        waiting_since: Default::default(),
        auth,
        metrics: Metrics::default(),
        tls,
    }));
    match state
        .store
        .sync_boards(&state.board_keys(), state.clock.now_ms())
        .await
    {
        Ok(()) => {}
        // The maintenance loop registers the lab once the store answers.
        Err(StoreError::Unavailable(e)) => {
            tracing::warn!(error = %e, "lease store unavailable at start; serving 503 until it answers")
        }
        Err(e) => return Err(e).context("registering the lab's boards in the lease store"),
    }
    Ok(state)
}

/// The HTTP API of docs/architecture.md §3.
pub fn router(state: AppState) -> Router {
    use handlers::*;
    Router::new()
        .route("/api/v1/health", get(health::get))
        .route("/api/v1/boards", get(boards::list))
        .route("/api/v1/boards/{id}/drain", post(boards::drain))
        .route("/api/v1/boards/{id}/undrain", post(boards::undrain))
        .route("/api/v1/boards/{id}/health", post(boards::report_health))
        .route("/api/v1/lease", post(lease::acquire))
        .route("/api/v1/leases", get(lease::list))
        .route(
            "/api/v1/lease/{id}",
            get(lease::read).delete(lease::release),
        )
        .route("/api/v1/lease/{id}/renew", post(lease::renew))
        .route(
            "/api/v1/queue/{ticket}",
            get(queue::poll).delete(queue::cancel),
        )
        .route("/api/v1/power/{board_id}/{action}", post(power::act))
        .route("/api/v1/runs", get(runs::list).post(runs::start))
        .route("/api/v1/runs/{id}", get(runs::read).patch(runs::update))
        .route("/api/v1/runs/{id}/logs", post(runs::logs))
        .route("/api/v1/workers", get(workers::list))
        .route("/api/v1/remote-runs", post(remote::submit))
        .route(
            "/api/v1/artifacts/{sha256}",
            get(artifacts::get).put(artifacts::put),
        )
        .route("/metrics", get(metrics::get))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static(API_VERSION_HEADER),
            HeaderValue::from_static(API_VERSION),
        ))
        .with_state(state)
}

async fn fallback(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        crate::api::codes::BAD_REQUEST,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Runs the daemon on `listener` until `shutdown` completes.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = build(config).await?;
    serve_state(state, listener, shutdown).await
}

/// Runs a built daemon on `listener` until `shutdown` completes.
pub async fn serve_state(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let maintenance = tokio::spawn(maintain(state.clone(), stop.clone()));
    let probe = tokio::spawn(probe_unhealthy(state.clone(), stop.clone()));
    let notifier = state.notifier.start(stop.clone());
    let delivery = state.outbox.start(stop.clone());
    handlers::runs::crash_abandoned(&state).await;
    let addr = listener.local_addr().ok();
    tracing::info!(
        listen = ?addr,
        tls = state.tls.is_some(),
        store = %state.store.location(),
        backend = state.store.backend(),
        boards = state.lab.boards.len(),
        "leased serving"
    );
    if state.config.tokens_in_clear() {
        tracing::warn!(
            listen = %state.config.listen,
            "serving plain http beyond loopback: API tokens cross the network in clear text, \
             where anyone on the way can read and reuse them; give --tls-cert and --tls-key \
             (or put a TLS proxy in front and listen on loopback)"
        );
    }
    let result = match state.tls.clone() {
        Some(tls) => {
            let reload = tokio::spawn(reload_on_hangup(tls.clone(), stop.clone()));
            let served = axum::serve(tls.listen(listener), router(state))
                .with_graceful_shutdown(shutdown)
                .await;
            reload.abort();
            served
        }
        None => {
            axum::serve(listener, router(state))
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    stop.cancel();
    let _ = tokio::join!(maintenance, probe, notifier, delivery);
    result.context("serving HTTP")
}

/// Re-reads the TLS certificate and key on every SIGHUP (certificates rotate); a bad file is
/// logged and the certificate served so far stays.
async fn reload_on_hangup(tls: ServerTls, stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP; the TLS certificate is not reloaded");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = hangup.recv() => if got.is_none() { return },
            }
            match tls.reload() {
                Ok(()) => {
                    tracing::info!(cert = %tls.cert_path().display(), "TLS certificate reloaded")
                }
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "TLS certificate not reloaded; still serving the previous one"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tls;
        stop.cancelled().await;
    }
}

/// Reaps expired leases and lapsed tickets often (expiry frees a board within a second), and
/// registers the lab again when the store has lost it (a Redis restart without persistence).
async fn maintain(state: AppState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(state.config.reap_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_check = tokio::time::Instant::now() - Duration::from_secs(60);
    let mut last_crash_check = tokio::time::Instant::now();
    let mut store_was_down = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = state.clock.now_ms();
        match state.store.reap(now).await {
            Ok(report) => {
                state.metrics.expired(report.expired.len());
                state.metrics.lapsed(report.lapsed.len());
                for id in &report.expired {
                    tracing::info!(lease = %id, "lease expired");
                }
                if !report.lapsed.is_empty()
                    && let Ok(mut waiting) = state.waiting_since.lock()
                {
                    for t in &report.lapsed {
                        waiting.remove(t);
                    }
                }
                if store_was_down {
                    tracing::info!("lease store answers again");
                    store_was_down = false;
                    last_check -= Duration::from_secs(60);
                }
            }
            Err(e) => {
                if !store_was_down {
                    tracing::warn!(error = %e, "lease store unavailable");
                }
                store_was_down = true;
                continue;
            }
        }
        if last_crash_check.elapsed() >= CRASH_CHECK_EVERY {
            last_crash_check = tokio::time::Instant::now();
            handlers::runs::crash_abandoned(&state).await;
        }
        if last_check.elapsed() >= Duration::from_secs(5) {
            last_check = tokio::time::Instant::now();
            let listed = state.lab.boards.len() as u32;
            if let Ok(counts) = state.store.counts(now).await
                && counts.boards != listed
            {
                tracing::info!(
                    stored = counts.boards,
                    listed,
                    "registering the lab's boards in the lease store"
                );
                if let Err(e) = state.store.sync_boards(&state.board_keys(), now).await {
                    tracing::warn!(error = %e, "registering boards failed");
                }
            }
        }
    }
}

/// Brings unhealthy boards back when their console answers a TCP connect again.
async fn probe_unhealthy(state: AppState, stop: CancellationToken) {
    let every = state.config.probe_interval;
    if every.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let Ok(boards) = state.store.boards(state.clock.now_ms()).await else {
            continue;
        };
        for b in boards.iter().filter(|b| b.unhealthy) {
            let Some(board) = state.boards.get(&b.id) else {
                continue;
            };
            let addr = board.address();
            let connect = tokio::net::TcpStream::connect(addr.clone());
            if let Ok(Ok(_)) = tokio::time::timeout(state.config.probe_timeout, connect).await {
                tracing::info!(board = %b.id, %addr, "console answers again; board healthy");
                if let Err(e) = state
                    .store
                    .report_health(
                        &b.id,
                        true,
                        state.config.failure_threshold,
                        state.clock.now_ms(),
                    )
                    .await
                {
                    tracing::warn!(board = %b.id, error = %e, "marking board healthy failed");
                }
            }
        }
    }
}
