//! A small client of Prefect 3's REST API (verified against 3.9.1; see
//! `docs/reference/prefect-rest.md`): the flow `socv-run`, one flow run per socv run, its
//! states, its console lines as logs, and its summary artifacts.
//!
//! Every call is safe to repeat, because the outbox delivers at least once:
//! - flows and flow runs are get-or-create (by name, by `idempotency_key` = the run id);
//! - states carry the transition id fixed when the change was recorded (Prefect answers a repeat
//!   with REJECT "already made this state transition");
//! - logs and artifacts have no dedupe in Prefect, so before (re)posting what may already be
//!   there, the client looks for it (`/logs/filter`, `/artifacts/filter`) and skips what it finds.
//!
//! Transient failures (connection refused or reset, timeouts, 408/429/502/503/504; SQLite answers
//! 503 "database is locked" under load and then drops the connection) are retried with
//! exponential backoff and jitter. Errors say what is wrong in words a person can act on.

use crate::FLOW_NAME;
use crate::PrefectConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use socv_api::time::{Backoff, now_ms, system_time};
use socv_api::{CaseOutcome, LogLine, Run, RunState};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

/// Most log lines in one `POST /logs/`.
pub const MAX_LINES_PER_POST: usize = 500;
/// Largest body of one `POST /logs/` (what the lines weigh as JSON).
pub const MAX_POST_BYTES: usize = 1024 * 1024;
/// Longest message of one posted log, JSON-escaped; a longer line goes as several pieces.
pub const MAX_PIECE_BYTES: usize = 256 * 1024;
/// What a log weighs in JSON besides its message (name, level, timestamp, flow run id, keys).
const LOG_OVERHEAD_BYTES: usize = 200;
/// Largest `limit` Prefect's filters accept.
const FILTER_LIMIT: usize = 200;
/// How often a WAIT answer to a state change is waited out before giving up on it.
const MAX_WAITS: u32 = 5;
/// Longest WAIT honoured at once.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// A state change delivered later than this after it happened says when it happened (Prefect
/// stamps states with the time they arrive).
const LATE_NOTE_AFTER_MS: u64 = 60_000;

/// What went wrong talking to Prefect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefectError {
    #[error("Prefect at {url} is unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("Prefect at {url} refused the credentials (401 Unauthorized): {hint}")]
    Unauthorized { url: String, hint: &'static str },
    #[error("Prefect at {url} forbids this (403 Forbidden): {hint}")]
    Forbidden { url: String, hint: &'static str },
    /// The TLS connection failed: a certificate this side does not trust, or another name's,
    /// or an expired one; or no https on that port.
    #[error("Prefect at {url}: {problem}; {fix}")]
    Tls {
        url: String,
        problem: String,
        fix: String,
    },
    #[error(
        "Prefect at {url} has no {path} (404 Not Found): is this Prefect's /api URL, such as \
         http://127.0.0.1:4200/api?"
    )]
    WrongUrl { url: String, path: String },
    #[error("Prefect at {url} does not know it: {detail} (404 on {what})")]
    Missing {
        url: String,
        what: String,
        detail: String,
    },
    #[error("Prefect refused {what} as invalid (422): {message}")]
    Invalid { what: String, message: String },
    #[error("Prefect answered {status} to {what}: {message}")]
    Status {
        status: u16,
        what: String,
        message: String,
    },
    #[error("Prefect's answer to {what} is not what Prefect 3 answers: {detail}")]
    Unexpected { what: String, detail: String },
}

impl PrefectError {
    /// Whether trying again later may succeed (a transient failure of the network or server).
    pub fn is_retryable(&self) -> bool {
        match self {
            PrefectError::Unreachable { .. } => true,
            PrefectError::Status { status, .. } => matches!(status, 408 | 429 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// Whether a person must change a setting (credentials, CA, URL) before any call can
    /// succeed: retrying soon only repeats it.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            PrefectError::Unauthorized { .. }
                | PrefectError::Forbidden { .. }
                | PrefectError::Tls { .. }
                | PrefectError::WrongUrl { .. }
        )
    }

    /// Whether this request can never succeed as it is (the data is refused), as opposed to a
    /// failure of the server, the network or the configuration that a person can fix.
    pub fn is_permanent(&self) -> bool {
        match self {
            PrefectError::Invalid { .. } => true,
            PrefectError::Status { status, .. } => matches!(status, 400 | 409 | 413),
            _ => false,
        }
    }
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub tries: u32,
    /// The pause before each further attempt (with ±50 % jitter, so that daemons retrying
    /// one Prefect do not move in step).
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            tries: 5,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(4)),
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt number `attempt` (1-based).
    fn delay(&self, attempt: u32) -> Duration {
        self.backoff
            .after(attempt)
            .mul_f64(0.5 + rand::random::<f64>())
    }
}

/// How Prefect took a state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOutcome {
    /// ACCEPT: the flow run is now in that state.
    Accepted,
    /// REJECT "already made this state transition": an earlier delivery got through.
    AlreadyApplied,
    /// ABORT or another REJECT (or WAIT for too long): Prefect will not take it. Repeating it
    /// would not help.
    Refused { status: String, reason: String },
}

/// What `post_logs` did, counted in posted logs (a long line counts once per piece).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogsPosted {
    pub posted: usize,
    /// Already in Prefect (an earlier delivery got through) and not posted again.
    pub skipped: usize,
}

/// What `post_artifacts` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtifactsPosted {
    pub posted: Vec<String>,
    /// Keys this flow run already had.
    pub skipped: Vec<String>,
}

/// A console line to post, with its place in the outbox (which makes its posted timestamp
/// recognisable: the microseconds below the line's millisecond are derived from `seq` and
/// `index`, so a line already delivered is told apart from an equal line of another batch).
#[derive(Debug, Clone, Copy)]
pub struct LogRecord<'a> {
    pub line: &'a LogLine,
    /// The outbox entry's seq.
    pub seq: u64,
    /// The line's index in that entry.
    pub index: usize,
}

impl<'a> LogRecord<'a> {
    /// The lines of one outbox entry.
    pub fn of_entry(seq: u64, lines: &'a [LogLine]) -> impl Iterator<Item = LogRecord<'a>> + 'a {
        lines
            .iter()
            .enumerate()
            .map(move |(index, line)| LogRecord { line, seq, index })
    }
}

/// A Prefect REST client. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct PrefectClient {
    inner: Arc<Inner>,
    retry: RetryPolicy,
}

struct Inner {
    http: reqwest::Client,
    /// The API URL without a trailing slash.
    base: String,
    /// The API URL without credentials, for messages.
    shown: String,
    auth: Option<(String, String)>,
    api_key: Option<String>,
    flow_id: Mutex<Option<String>>,
}

impl std::fmt::Debug for PrefectClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefectClient")
            .field("url", &self.inner.shown)
            .field("auth", &self.inner.auth.is_some())
            .field("api_key", &self.inner.api_key.is_some())
            .finish()
    }
}

impl PrefectClient {
    pub fn new(config: &PrefectConfig) -> Result<PrefectClient, PrefectError> {
        PrefectClient::with_ca(config, None)
    }

    /// A client that trusts `ca` besides the system's roots (a Prefect behind a lab's CA).
    pub fn with_ca(
        config: &PrefectConfig,
        ca: Option<&socv_http::tls::CaBundle>,
    ) -> Result<PrefectClient, PrefectError> {
        let shown = url_without_credentials(&config.api_url);
        let http = socv_http::tls::client_builder(ca)
            // The server closes idle connections after 5 s; never reuse one that old.
            .pool_idle_timeout(Duration::from_secs(4))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("socv-leased/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PrefectError::Unexpected {
                what: "building the HTTP client".into(),
                detail: e.to_string(),
            })?;
        let auth = config.auth.as_deref().map(|a| match a.split_once(':') {
            Some((user, pass)) => (user.to_string(), pass.to_string()),
            None => (a.to_string(), String::new()),
        });
        Ok(PrefectClient {
            inner: Arc::new(Inner {
                http,
                base: config.api_url.trim_end_matches('/').to_string(),
                shown,
                auth,
                api_key: config.api_key.clone(),
                flow_id: Mutex::new(None),
            }),
            retry: RetryPolicy::default(),
        })
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> PrefectClient {
        self.retry = RetryPolicy {
            tries: retry.tries.max(1),
            ..retry
        };
        self
    }

    /// The API URL, without credentials.
    pub fn api_url(&self) -> &str {
        &self.inner.shown
    }

    /// Checks that Prefect answers with these credentials; answers its version (`3.9.1`).
    pub async fn health(&self) -> Result<String, PrefectError> {
        let v = self.call(Method::GET, "/admin/version", None).await?;
        Ok(v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()))
    }

    /// The id of the flow `socv-run`, created when missing (cached).
    pub async fn ensure_flow(&self) -> Result<String, PrefectError> {
        if let Some(id) = self.inner.flow_id.lock().unwrap().clone() {
            return Ok(id);
        }
        let body = json!({"name": FLOW_NAME, "tags": ["socv"]});
        let v = self.call(Method::POST, "/flows/", Some(&body)).await?;
        let id = str_field(&v, "id", "POST /flows/")?;
        *self.inner.flow_id.lock().unwrap() = Some(id.clone());
        Ok(id)
    }

    /// Creates the run's flow run in state Pending, or finds the one created before (the run
    /// id is the idempotency key). Answers the flow run id.
    pub async fn create_flow_run(&self, run: &Run) -> Result<String, PrefectError> {
        Ok(self.create_or_find_flow_run(run).await?.0)
    }

    /// Like [`PrefectClient::create_flow_run`], also saying whether this very call made it
    /// (Prefect answered 201: it has no logs and no artifacts yet). `false` when it existed, or
    /// when an earlier try of this call may have made it (its answer was lost).
    pub async fn create_or_find_flow_run(&self, run: &Run) -> Result<(String, bool), PrefectError> {
        let mut fresh_flow = false;
        loop {
            let flow_id = self.ensure_flow().await?;
            let body = flow_run_body(&flow_id, run);
            match self
                .call_with_status(Method::POST, "/flow_runs/", Some(&body))
                .await
            {
                Ok((status, tries, v)) => {
                    let made = status == StatusCode::CREATED && tries == 1;
                    return Ok((str_field(&v, "id", "POST /flow_runs/")?, made));
                }
                // 409: the cached flow is gone (Prefect's database was reset); make it again.
                Err(PrefectError::Status { status: 409, .. }) if !fresh_flow => {
                    *self.inner.flow_id.lock().unwrap() = None;
                    fresh_flow = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The flow run made for socv run `run_id` before, if any (for a run whose record is gone).
    pub async fn find_flow_run(&self, run_id: &str) -> Result<Option<String>, PrefectError> {
        let body = json!({
            "flow_runs": {"name": {"like_": run_id}},
            "flows": {"name": {"any_": [FLOW_NAME]}},
            "limit": FILTER_LIMIT,
        });
        let v = self
            .call(Method::POST, "/flow_runs/filter", Some(&body))
            .await?;
        Ok(v.as_array().and_then(|runs| {
            runs.iter()
                .find(|r| r["idempotency_key"].as_str() == Some(run_id))
                .and_then(|r| r["id"].as_str().map(str::to_string))
        }))
    }

    /// Moves a flow run to `state`. `transition_id` is the one recorded with the change (any
    /// string; one that is not a UUID is turned into one, always the same), so a repeat is
    /// recognised. `at_ms` is when it happened.
    pub async fn set_state(
        &self,
        flow_run_id: &str,
        state: RunState,
        message: Option<&str>,
        transition_id: &str,
        at_ms: u64,
    ) -> Result<StateOutcome, PrefectError> {
        let mut message = message.map(str::to_string);
        // Prefect's own clock is the wall clock: a late state is told by it.
        let now = now_ms();
        if at_ms > 0 && now.saturating_sub(at_ms) > LATE_NOTE_AFTER_MS {
            let note = format!("(happened at {})", format_ms(at_ms));
            message = Some(match message {
                Some(m) if !m.is_empty() => format!("{m} {note}"),
                _ => note,
            });
        }
        let body = json!({
            "state": {
                "type": state.prefect_type(),
                "name": state.prefect_name(),
                "message": message,
                "state_details": {"transition_id": as_uuid(transition_id)},
            },
            "force": false,
        });
        let path = format!("/flow_runs/{flow_run_id}/set_state");
        let mut waits = 0;
        loop {
            let v = self.call(Method::POST, &path, Some(&body)).await?;
            let status = v["status"].as_str().unwrap_or_default().to_string();
            let reason = v["details"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match status.as_str() {
                "ACCEPT" => return Ok(StateOutcome::Accepted),
                "REJECT" if reason.contains("already made this state transition") => {
                    return Ok(StateOutcome::AlreadyApplied);
                }
                "WAIT" if waits < MAX_WAITS => {
                    waits += 1;
                    let secs = v["details"]["delay_seconds"].as_f64().unwrap_or(1.0);
                    tokio::time::sleep(
                        Duration::from_secs_f64(secs.clamp(0.1, 30.0)).min(MAX_WAIT),
                    )
                    .await;
                }
                "REJECT" | "ABORT" | "WAIT" => {
                    return Ok(StateOutcome::Refused { status, reason });
                }
                _ => {
                    return Err(PrefectError::Unexpected {
                        what: format!("POST {path}"),
                        detail: format!("no ACCEPT/REJECT/ABORT/WAIT status in {}", brief(&v)),
                    });
                }
            }
        }
    }

    /// Posts console lines as the flow run's logs, in order, in bounded batches; a line too
    /// long for one log goes as several. With `check`, first looks which of them are already
    /// there (an earlier delivery that got through without its answer) and posts only the rest;
    /// a batch is always checked before it is posted again after a failure.
    pub async fn post_logs(
        &self,
        flow_run_id: &str,
        records: &[LogRecord<'_>],
        check: bool,
    ) -> Result<LogsPosted, PrefectError> {
        let items = expand(records);
        let mut done = LogsPosted::default();
        let mut rest: &[LogItem] = &items;
        if check && !rest.is_empty() {
            let n = self.delivered_prefix(flow_run_id, rest, true).await?;
            done.skipped += n;
            rest = &rest[n..];
        }
        while !rest.is_empty() {
            let len = batch_len(rest);
            let mut batch = &rest[..len];
            rest = &rest[len..];
            let mut attempt = 0;
            let mut verify = false;
            loop {
                attempt += 1;
                if verify {
                    // The failed post may have landed all the same: look before posting again.
                    match self.delivered_prefix(flow_run_id, batch, false).await {
                        Ok(n) => {
                            done.skipped += n;
                            batch = &batch[n..];
                            if batch.is_empty() {
                                break;
                            }
                        }
                        Err(e) if e.is_retryable() && attempt < self.retry.tries => {
                            tokio::time::sleep(self.retry.delay(attempt)).await;
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                match self.post_batch(flow_run_id, batch).await {
                    Ok(()) => {
                        done.posted += batch.len();
                        break;
                    }
                    Err(e) if e.is_retryable() && attempt < self.retry.tries => {
                        tracing::debug!(error = %e, attempt, "posting logs to Prefect; retrying");
                        verify = true;
                        tokio::time::sleep(self.retry.delay(attempt)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(done)
    }

    /// Attaches the run's artifacts to its flow run: a markdown summary and, when the run has
    /// test cases, a table of them. An artifact whose key the flow run already has is skipped.
    pub async fn post_artifacts(
        &self,
        flow_run_id: &str,
        run: &Run,
    ) -> Result<ArtifactsPosted, PrefectError> {
        self.post_artifacts_checked(flow_run_id, run, true).await
    }

    /// Like [`PrefectClient::post_artifacts`]; `check: false` skips the first look for what the
    /// flow run already has (for a flow run known to have no artifacts). A retry still looks.
    pub async fn post_artifacts_checked(
        &self,
        flow_run_id: &str,
        run: &Run,
        check: bool,
    ) -> Result<ArtifactsPosted, PrefectError> {
        let mut wanted = vec![json!({
            "key": summary_key(&run.id),
            "type": "markdown",
            "description": format!("socv run {}", run.id),
            "flow_run_id": flow_run_id,
            "data": summary_markdown(run),
        })];
        if !run.cases.is_empty() {
            wanted.push(json!({
                "key": cases_key(&run.id),
                "type": "table",
                "description": format!("test cases of socv run {}", run.id),
                "flow_run_id": flow_run_id,
                "data": cases_table(run),
            }));
        }
        let mut done = ArtifactsPosted::default();
        let existing = if check {
            self.artifact_keys(flow_run_id, &wanted, true).await?
        } else {
            Default::default()
        };
        for artifact in wanted {
            let key = artifact["key"].as_str().unwrap_or_default().to_string();
            if existing.contains(&key) {
                done.skipped.push(key);
                continue;
            }
            let mut attempt = 0;
            loop {
                attempt += 1;
                if attempt > 1 {
                    match self
                        .artifact_keys(flow_run_id, std::slice::from_ref(&artifact), false)
                        .await
                    {
                        Ok(keys) if keys.contains(&key) => {
                            done.skipped.push(key);
                            break;
                        }
                        Ok(_) => {}
                        Err(e) if e.is_retryable() && attempt < self.retry.tries => {
                            tokio::time::sleep(self.retry.delay(attempt)).await;
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                match self
                    .send_once(Method::POST, "/artifacts/", Some(&artifact))
                    .await
                {
                    Ok(_) => {
                        done.posted.push(key);
                        break;
                    }
                    Err(e) if e.is_retryable() && attempt < self.retry.tries => {
                        tokio::time::sleep(self.retry.delay(attempt)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(done)
    }

    /// `GET` a path under the API URL (with retries), for diagnostics and tests.
    pub async fn get_json(&self, path: &str) -> Result<Value, PrefectError> {
        self.call(Method::GET, path, None).await
    }

    /// `POST` JSON to a path under the API URL (with retries), for diagnostics and tests.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, PrefectError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `POST` JSON to a path under the API URL (with retries), answering also whether Prefect
    /// made something (201) rather than found it (200), as `create_flow_run` with an
    /// idempotency key tells.
    pub async fn post_json_created(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(Value, bool), PrefectError> {
        let (status, _, v) = self
            .call_with_status(Method::POST, path, Some(body))
            .await?;
        Ok((v, status == StatusCode::CREATED))
    }

    /// `PATCH` JSON to a path under the API URL (with retries); Prefect answers 204.
    pub async fn patch_json(&self, path: &str, body: &Value) -> Result<Value, PrefectError> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// The keys among `artifacts`' that this flow run already has.
    async fn artifact_keys(
        &self,
        flow_run_id: &str,
        artifacts: &[Value],
        retry: bool,
    ) -> Result<HashSet<String>, PrefectError> {
        let keys: Vec<&Value> = artifacts.iter().map(|a| &a["key"]).collect();
        let body = json!({
            "artifacts": {"flow_run_id": {"any_": [flow_run_id]}, "key": {"any_": keys}},
            "limit": FILTER_LIMIT,
        });
        let v = if retry {
            self.call(Method::POST, "/artifacts/filter", Some(&body))
                .await?
        } else {
            self.send_once(Method::POST, "/artifacts/filter", Some(&body))
                .await?
        };
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["key"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// How many of `items`, from the first, are already among the flow run's logs. Posts are
    /// all-or-nothing and in order, so what was delivered is a prefix: its end is the last of
    /// `items` found (by timestamp to the microsecond, logger name and message).
    async fn delivered_prefix(
        &self,
        flow_run_id: &str,
        items: &[LogItem],
        retry: bool,
    ) -> Result<usize, PrefectError> {
        let (Some(min), Some(max)) = (
            items.iter().map(|i| i.ts_us).min(),
            items.iter().map(|i| i.ts_us).max(),
        ) else {
            return Ok(0);
        };
        let body = json!({
            "logs": {
                "flow_run_id": {"any_": [flow_run_id]},
                "timestamp": {"after_": format_us(min), "before_": format_us(max)},
            },
            "sort": "TIMESTAMP_DESC",
            "limit": FILTER_LIMIT,
        });
        let v = if retry {
            self.call(Method::POST, "/logs/filter", Some(&body)).await?
        } else {
            self.send_once(Method::POST, "/logs/filter", Some(&body))
                .await?
        };
        let found: HashSet<(u64, &str, &str)> = v
            .as_array()
            .map(|logs| {
                logs.iter()
                    .filter_map(|l| {
                        Some((
                            parse_ts_us(l["timestamp"].as_str()?)?,
                            l["name"].as_str()?,
                            l["message"].as_str()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(items
            .iter()
            .rposition(|i| found.contains(&(i.ts_us, i.name, i.message.as_str())))
            .map_or(0, |p| p + 1))
    }

    async fn post_batch(&self, flow_run_id: &str, batch: &[LogItem]) -> Result<(), PrefectError> {
        let body = Value::Array(batch.iter().map(|i| i.to_json(flow_run_id)).collect());
        self.send_once(Method::POST, "/logs/", Some(&body))
            .await
            .map(|_| ())
    }

    /// One request with the retry policy.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, PrefectError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_once(method.clone(), path, body).await {
                Err(e) if e.is_retryable() && attempt < self.retry.tries => {
                    tracing::debug!(error = %e, attempt, "{method} {path} to Prefect; retrying");
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Like `call`, also answering the success status and how many tries it took.
    async fn call_with_status(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, u32, Value), PrefectError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_with_status(method.clone(), path, body).await {
                Err(e) if e.is_retryable() && attempt < self.retry.tries => {
                    tracing::debug!(error = %e, attempt, "{method} {path} to Prefect; retrying");
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                }
                other => return other.map(|(status, v)| (status, attempt, v)),
            }
        }
    }

    /// One request, no retry. Answers the JSON body (null when empty).
    async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, PrefectError> {
        Ok(self.send_with_status(method, path, body).await?.1)
    }

    /// One request, no retry. Answers the success status and the JSON body (null when empty).
    async fn send_with_status(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), PrefectError> {
        let what = format!("{method} {path}");
        let mut req = self
            .inner
            .http
            .request(method, format!("{}{path}", self.inner.base));
        if let Some((user, pass)) = &self.inner.auth {
            req = req.basic_auth(user, Some(pass));
        }
        if let Some(key) = &self.inner.api_key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let unreachable = |e: reqwest::Error| transport_error(&self.inner.shown, &e);
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let text = resp.text().await.map_err(unreachable)?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok((status, Value::Null));
            }
            return serde_json::from_str(&text)
                .map(|v| (status, v))
                .map_err(|e| PrefectError::Unexpected {
                    what,
                    detail: format!("not JSON ({e}): {}", clip(&text, 200)),
                });
        }
        let json: Option<Value> = serde_json::from_str(&text).ok();
        let message = json
            .as_ref()
            .map(error_message)
            .unwrap_or_else(|| clip(text.trim(), 300));
        let url = self.inner.shown.clone();
        Err(match status {
            StatusCode::UNAUTHORIZED => PrefectError::Unauthorized {
                url,
                hint: if self.inner.api_key.is_some() {
                    "check prefect_api_key (PREFECT_API_KEY): it may be mistyped, expired or \
                     revoked; a self-hosted server wants PREFECT_API_AUTH_STRING instead"
                } else if self.inner.auth.is_some() {
                    "check prefect_auth (PREFECT_API_AUTH_STRING): it must be the server's \
                     PREFECT_SERVER_API_AUTH_STRING, user:password"
                } else {
                    "the server wants credentials: set prefect_auth (PREFECT_API_AUTH_STRING) \
                     to its PREFECT_SERVER_API_AUTH_STRING, user:password, or \
                     prefect_api_key (PREFECT_API_KEY) for Prefect Cloud"
                },
            },
            StatusCode::FORBIDDEN => PrefectError::Forbidden {
                url,
                hint: "the credentials are valid but may not do this: check the API key's \
                       workspace and role (PREFECT_API_URL names the workspace)",
            },
            // A route that does not exist answers {"detail":"Not Found"}; a missing object
            // says which ("Flow run not found", "Flow run with id … not found").
            StatusCode::NOT_FOUND if message == "Not Found" || json.is_none() => {
                PrefectError::WrongUrl {
                    url,
                    path: path.to_string(),
                }
            }
            StatusCode::NOT_FOUND => PrefectError::Missing {
                url,
                what,
                detail: message,
            },
            StatusCode::UNPROCESSABLE_ENTITY => PrefectError::Invalid { what, message },
            s => PrefectError::Status {
                status: s.as_u16(),
                what,
                message,
            },
        })
    }
}

/// Key of a run's summary artifact.
pub fn summary_key(run_id: &str) -> String {
    format!("socv-summary-{run_id}")
}

/// Key of a run's test-case table artifact.
pub fn cases_key(run_id: &str) -> String {
    format!("socv-cases-{run_id}")
}

/// The body of `POST /flow_runs/` for a run.
fn flow_run_body(flow_id: &str, run: &Run) -> Value {
    let mut tags = Vec::new();
    for (k, v) in [
        ("board", &run.board_id),
        ("family", &run.family),
        ("holder", &run.holder),
        ("location", &run.location),
    ] {
        if !v.is_empty() {
            tags.push(format!("{k}:{v}"));
        }
    }
    let mut labels = serde_json::Map::new();
    labels.insert("socv.run_id".into(), json!(run.id));
    if let Some(l) = &run.lease_id {
        labels.insert("socv.lease_id".into(), json!(l));
    }
    json!({
        "flow_id": flow_id,
        "name": format!("socv-{}-{}", run.board_id, run.id),
        "tags": tags,
        "parameters": {
            "binary": run.binary,
            "args": run.args,
            "family": run.family,
            "priority": u8::from(run.priority),
        },
        "labels": labels,
        "idempotency_key": run.id,
        "state": {"type": "PENDING", "name": "Pending", "message": run.message},
    })
}

/// The markdown of a run's summary artifact.
pub fn summary_markdown(run: &Run) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace(['\r', '\n'], " ");
    let mut md = format!(
        "# socv run `{}`: {}\n\n| | |\n|---|---|\n",
        run.id,
        run.state.prefect_name()
    );
    let mut row = |k: &str, v: String| md.push_str(&format!("| {k} | {} |\n", cell(&v)));
    row("board", format!("`{}`", run.board_id));
    row("family", run.family.clone());
    if !run.location.is_empty() {
        row("location", run.location.clone());
    }
    row("holder", run.holder.clone());
    let mut command = run.binary.clone();
    for a in &run.args {
        command.push(' ');
        command.push_str(a);
    }
    row("command", format!("`{command}`"));
    row("priority", run.priority.to_string());
    row("state", run.state.as_str().to_string());
    if let Some(c) = run.exit_code {
        row("exit code", c.to_string());
    }
    if let Some(c) = run.socv_exit_code {
        row("socv exit code", c.to_string());
    }
    if let Some(end) = run.ended_at_ms {
        row(
            "duration",
            format!("{:.1} s", run.duration_ms(end) as f64 / 1000.0),
        );
    }
    row("console lines", run.log_lines.to_string());
    if let Some(m) = &run.message {
        row("message", m.clone());
    }
    if !run.cases.is_empty() {
        let count = |o: CaseOutcome| run.cases.iter().filter(|c| c.outcome == o).count();
        md.push_str(&format!(
            "\n## Test cases: {} passed, {} failed, {} skipped\n\n| case | outcome | duration | message |\n|---|---|---|---|\n",
            count(CaseOutcome::Pass),
            count(CaseOutcome::Fail),
            count(CaseOutcome::Skip)
        ));
        for c in &run.cases {
            let outcome = match c.outcome {
                CaseOutcome::Pass => "pass",
                CaseOutcome::Fail => "**FAIL**",
                CaseOutcome::Skip => "skip",
            };
            let duration = c
                .duration_ms
                .map(|d| format!("{:.3} s", d as f64 / 1000.0))
                .unwrap_or_default();
            md.push_str(&format!(
                "| {} | {outcome} | {duration} | {} |\n",
                cell(&c.name),
                cell(c.message.as_deref().unwrap_or(""))
            ));
        }
    }
    md
}

/// The data of a run's table artifact: a JSON string of a list of objects.
fn cases_table(run: &Run) -> String {
    let rows: Vec<Value> = run
        .cases
        .iter()
        .map(|c| {
            json!({
                "case": c.name,
                "outcome": match c.outcome {
                    CaseOutcome::Pass => "pass",
                    CaseOutcome::Fail => "fail",
                    CaseOutcome::Skip => "skip",
                },
                "duration_s": c.duration_ms.map(|d| d as f64 / 1000.0),
                "message": c.message.as_deref().unwrap_or(""),
            })
        })
        .collect();
    Value::Array(rows).to_string()
}

/// One log as posted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogItem {
    name: &'static str,
    level: u8,
    message: String,
    ts_us: u64,
    /// What it weighs in the posted JSON (an upper bound).
    bytes: usize,
}

impl LogItem {
    fn to_json(&self, flow_run_id: &str) -> Value {
        json!({
            "name": self.name,
            "level": self.level,
            "message": self.message,
            "timestamp": format_us(self.ts_us),
            "flow_run_id": flow_run_id,
        })
    }
}

/// The logs to post for `records`: one per line, or several pieces for a line too long.
fn expand(records: &[LogRecord<'_>]) -> Vec<LogItem> {
    let mut items = Vec::with_capacity(records.len());
    for r in records {
        let name = match r.line.source.as_deref() {
            Some("console") => "socv.console",
            _ => "socv",
        };
        let ts_us = r.line.ts_ms.saturating_mul(1000) + line_tag(r.seq, r.index);
        for message in split_message(&r.line.message, MAX_PIECE_BYTES) {
            items.push(LogItem {
                name,
                level: r.line.level.python_level(),
                bytes: escaped_len(&message) + LOG_OVERHEAD_BYTES,
                message,
                ts_us,
            });
        }
    }
    items
}

/// The microseconds (0–999) a line's timestamp gets below its millisecond: distinct for the
/// lines of one entry (up to 1000), scattered between entries.
fn line_tag(seq: u64, index: usize) -> u64 {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    (x.wrapping_add(index as u64)) % 1000
}

/// How many of `items`, from the first, go in one post.
fn batch_len(items: &[LogItem]) -> usize {
    let mut bytes = 2;
    for (n, item) in items.iter().enumerate() {
        if n == MAX_LINES_PER_POST || (n > 0 && bytes + item.bytes + 1 > MAX_POST_BYTES) {
            return n;
        }
        bytes += item.bytes + 1;
    }
    items.len()
}

/// A message as pieces of at most `max` bytes once JSON-escaped (split at char boundaries).
fn split_message(message: &str, max: usize) -> Vec<String> {
    if escaped_len(message) <= max {
        return vec![message.to_string()];
    }
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut len = 0;
    for c in message.chars() {
        let l = escaped_char_len(c);
        if len + l > max && !piece.is_empty() {
            pieces.push(std::mem::take(&mut piece));
            len = 0;
        }
        piece.push(c);
        len += l;
    }
    if !piece.is_empty() {
        pieces.push(piece);
    }
    pieces
}

fn escaped_len(s: &str) -> usize {
    s.chars().map(escaped_char_len).sum()
}

fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// A transition id as Prefect wants it: a UUID. Anything else becomes a UUID derived from it
/// (the same every time, so a repeat is still recognised).
fn as_uuid(id: &str) -> String {
    let hex: Vec<u8> = id.bytes().filter(|b| *b != b'-').collect();
    let shaped = id.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| id.as_bytes()[i] == b'-')
        && hex.len() == 32
        && hex.iter().all(u8::is_ascii_hexdigit);
    if shaped {
        return id.to_ascii_lowercase();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50; // version 5 style (name-based)
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    socv_api::uuid_text(&b)
}

/// What Prefect said in an error body: `detail`, `exception_message` and pydantic's details.
fn error_message(v: &Value) -> String {
    let mut parts = Vec::new();
    match &v["detail"] {
        Value::String(s) => parts.push(s.clone()),
        Value::Null => {}
        other => parts.push(other.to_string()),
    }
    if let Some(m) = v["exception_message"].as_str() {
        parts.push(m.to_string());
    }
    if let Some(details) = v["exception_detail"].as_array() {
        for d in details {
            let loc: Vec<String> = d["loc"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let msg = d["msg"].as_str().unwrap_or_default();
            parts.push(format!("{}: {msg}", loc.join(".")));
        }
    }
    if parts.is_empty() {
        brief(v)
    } else {
        parts.join("; ")
    }
}

fn str_field(v: &Value, field: &str, what: &str) -> Result<String, PrefectError> {
    v[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| PrefectError::Unexpected {
            what: what.to_string(),
            detail: format!("no \"{field}\" in {}", brief(v)),
        })
}

fn brief(v: &Value) -> String {
    clip(&v.to_string(), 300)
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What went wrong on the way, in words that name the cause and the fix (never the URL's
/// credentials: `url` is the shown one).
fn transport_error(url: &str, e: &reqwest::Error) -> PrefectError {
    use socv_http::tls::Failure;
    let failure = Failure::of(e);
    if failure.is_tls() {
        return PrefectError::Tls {
            url: url.to_string(),
            problem: failure.to_string(),
            fix: failure
                .fix("ca_cert (LEASED_CA_CERT)")
                .unwrap_or_else(|| "check the server's certificate".into()),
        };
    }
    let detail = match failure {
        Failure::Refused => {
            "cannot connect (connection refused); is the Prefect server running?".to_string()
        }
        Failure::Timeout => "no answer in time; is the Prefect server up and reachable?".into(),
        other if e.is_connect() => format!("cannot connect ({other})"),
        other => other.to_string(),
    };
    PrefectError::Unreachable {
        url: url.to_string(),
        detail,
    }
}

fn url_without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// Unix ms as Prefect writes times (RFC 3339, milliseconds).
pub(crate) fn format_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(system_time(ms)).to_string()
}

fn format_us(us: u64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(us)).to_string()
}

/// Microseconds since the epoch of a Prefect timestamp (`2026-01-01T00:00:00.123000Z`, or with
/// a `+00:00` offset).
fn parse_ts_us(s: &str) -> Option<u64> {
    let s = s
        .strip_suffix("+00:00")
        .map_or_else(|| s.to_string(), |rest| format!("{rest}Z"));
    let t = humantime::parse_rfc3339_weak(&s).ok()?;
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use socv_api::LogLevel;

    #[test]
    fn long_lines_split_into_pieces_and_nothing_is_lost() {
        let msg = "é\"x".repeat(100_000);
        let pieces = split_message(&msg, 1000);
        assert!(pieces.len() > 1);
        assert!(pieces.iter().all(|p| escaped_len(p) <= 1000));
        assert_eq!(pieces.concat(), msg);
        assert_eq!(split_message("short", 1000), vec!["short".to_string()]);
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let lines: Vec<LogLine> = (0..1200)
            .map(|i| LogLine {
                ts_ms: 1000 + i,
                level: LogLevel::Info,
                source: Some("console".into()),
                message: format!("line {i}"),
            })
            .collect();
        let recs: Vec<_> = LogRecord::of_entry(7, &lines).collect();
        let items = expand(&recs);
        assert_eq!(batch_len(&items), MAX_LINES_PER_POST);
        let big = LogLine {
            message: "x".repeat(300 * 1024),
            ..lines[0].clone()
        };
        let bigs = vec![big; 10];
        let recs: Vec<_> = LogRecord::of_entry(8, &bigs).collect();
        let items = expand(&recs);
        assert_eq!(items.len(), 20, "each 300 KiB line goes as two pieces");
        let n = batch_len(&items);
        let bytes: usize = items[..n].iter().map(|i| i.bytes + 1).sum();
        assert!(bytes <= MAX_POST_BYTES && n >= 3, "{n} {bytes}");
    }

    #[test]
    fn line_tags_differ_within_an_entry() {
        let tags: HashSet<u64> = (0..1000).map(|i| line_tag(42, i)).collect();
        assert_eq!(tags.len(), 1000);
        assert!(line_tag(1, 0) < 1000);
    }

    #[test]
    fn transition_ids_become_stable_uuids() {
        let u = "0b6d3c1e-95a5-4f62-9a34-6a3c4ad5c0de";
        assert_eq!(as_uuid(u), u);
        let a = as_uuid("run-1-t-2");
        assert_eq!(a, as_uuid("run-1-t-2"));
        assert_ne!(a, as_uuid("run-1-t-3"));
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn timestamps_round_trip_to_the_microsecond() {
        let us = 1_767_225_600_123_456;
        assert_eq!(parse_ts_us(&format_us(us)), Some(us));
        assert_eq!(
            parse_ts_us("2026-01-01T00:00:00.123000+00:00"),
            Some(1_767_225_600_123_000)
        );
    }

    #[test]
    fn errors_read_prefects_bodies() {
        let v: Value = serde_json::from_str(
            r#"{"exception_message":"Invalid request received.","exception_detail":[{"loc":["body","state"],"msg":"Field required"}]}"#,
        )
        .unwrap();
        assert_eq!(
            error_message(&v),
            "Invalid request received.; body.state: Field required"
        );
        assert_eq!(
            url_without_credentials("http://u:p@h:4200/api/"),
            "http://h:4200/api"
        );
    }
}
