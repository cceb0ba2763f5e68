//! The Redis lease store: every operation is one atomic Lua script (`lease.lua`), so several
//! leased daemons can share one Redis without ever granting a board twice. Run records and their
//! outbox likewise go through one script (`runs.lua`), under the same key prefix.
//!
//! When Redis is unreachable every operation fails within [`OP_TIMEOUT`] with
//! [`StoreError::Unavailable`]; the connection manager reconnects by itself when Redis returns.

use super::runs::{self, OutboxEntry, OutboxEvent, RunStore, new_transition_id};
use super::{
    Acquire, AcquireOutcome, BoardKey, BoardState, ENDED_LEASE_MEMORY_MS, LeaseEnd, LeaseRecord,
    LeaseStore, Millis, ReapReport, StoreCounts, StoreError, StoreResult, Target, TicketPoll,
    TicketRecord,
};
use crate::api::time::Backoff;
use crate::api::{LogLine, Run, RunQuery, RunState, RunUpdate};
use async_trait::async_trait;
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Longest a store operation may take before it is reported unavailable.
pub const OP_TIMEOUT: Duration = Duration::from_millis(800);

const SCRIPT: &str = include_str!("lease.lua");
const RUNS_SCRIPT: &str = include_str!("runs.lua");

/// Lease store on a Redis server shared by any number of daemons.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    script: Arc<redis::Script>,
    runs_script: Arc<redis::Script>,
    prefix: String,
    shown_url: String,
    grants: broadcast::Sender<String>,
    _subscriber: Arc<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The URL with any password replaced, safe for logs and `socv status`.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn bad_reply(op: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("unexpected reply to {op}: {detail}"))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => text(other)?.parse().ok(),
    }
}

fn json<T: DeserializeOwned>(op: &str, v: &Value) -> StoreResult<T> {
    let s = text(v).ok_or_else(|| bad_reply(op, format!("{v:?}")))?;
    serde_json::from_str(&s).map_err(|e| bad_reply(op, format!("{e}: {s}")))
}

fn json_list<T: DeserializeOwned>(op: &str, v: &Value) -> StoreResult<Vec<T>> {
    match v {
        Value::Array(items) => items.iter().map(|i| json(op, i)).collect(),
        other => Err(bad_reply(op, format!("{other:?}"))),
    }
}

fn text_list(op: &str, v: &Value) -> StoreResult<Vec<String>> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| text(i).ok_or_else(|| bad_reply(op, format!("{i:?}"))))
            .collect(),
        other => Err(bad_reply(op, format!("{other:?}"))),
    }
}

/// A script reply split into its status word and its payload.
struct Reply {
    op: &'static str,
    status: String,
    items: Vec<Value>,
}

impl Reply {
    fn item(&self, i: usize) -> StoreResult<&Value> {
        self.items
            .get(i)
            .ok_or_else(|| bad_reply(self.op, format!("missing item {i}")))
    }

    fn arg(&self, i: usize) -> String {
        self.items.get(i).and_then(text).unwrap_or_default()
    }

    /// Maps `{'err', code, ...}` to a typed error; passes anything else through.
    fn check(self) -> StoreResult<Reply> {
        if self.status != "err" {
            return Ok(self);
        }
        let code = self.arg(0);
        let a = self.arg(1);
        Err(match code.as_str() {
            "unknown_family" => StoreError::UnknownFamily(a),
            "unknown_board" => StoreError::UnknownBoard(a),
            "unknown_lease" => StoreError::UnknownLease(a),
            "unknown_ticket" => StoreError::UnknownTicket(a),
            "none_free" => StoreError::NoneFree(a),
            "not_holder" => StoreError::NotHolder {
                id: a,
                holder: self.arg(2),
            },
            "no_healthy_board" => StoreError::NoHealthyBoard { target: a },
            "unknown_run" => StoreError::UnknownRun(a),
            "run_transition" => {
                let state = |i| {
                    self.arg(i)
                        .parse::<RunState>()
                        .map_err(|e| bad_reply(self.op, e))
                };
                StoreError::RunTransition {
                    from: state(2)?,
                    to: state(3)?,
                    id: a,
                }
            }
            "lease_ended" => StoreError::LeaseEnded {
                id: a,
                how: match self.arg(2).as_str() {
                    "expired" => LeaseEnd::Expired,
                    "abandoned" => LeaseEnd::Abandoned,
                    _ => LeaseEnd::Released,
                },
            },
            other => bad_reply(self.op, format!("error {other} {a}")),
        })
    }
}

impl RedisStore {
    /// Connects lazily: the daemon starts even while Redis is down and answers
    /// `store_unavailable` until it is back. `prefix` namespaces every key (e.g. `socv:`).
    pub async fn connect(url: &str, prefix: &str) -> StoreResult<RedisStore> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", redact_url(url))))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", redact_url(url))))?;
        let (grants, _) = broadcast::channel(1024);
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let subscriber = tokio::spawn(forward_grants(
            client,
            format!("{prefix}grants"),
            grants.clone(),
            subscribed_tx,
        ));
        // Grants made right after connecting should wake long polls too; but a Redis that is
        // down must not hold up the daemon's start.
        let _ = tokio::time::timeout(OP_TIMEOUT, subscribed).await;
        Ok(RedisStore {
            conn,
            script: Arc::new(redis::Script::new(SCRIPT)),
            runs_script: Arc::new(redis::Script::new(RUNS_SCRIPT)),
            prefix: prefix.to_string(),
            shown_url: redact_url(url),
            grants,
            _subscriber: Arc::new(AbortOnDrop(subscriber)),
        })
    }

    /// Runs an operation of `lease.lua`.
    async fn call(&self, op: &'static str, now: Millis, args: &[String]) -> StoreResult<Reply> {
        let mut inv = self.script.key(&self.prefix);
        inv.arg(op).arg(now).arg(salt()).arg(ENDED_LEASE_MEMORY_MS);
        for a in args {
            inv.arg(a);
        }
        self.invoke(op, inv).await
    }

    /// Runs an operation of `runs.lua`.
    async fn call_runs(
        &self,
        op: &'static str,
        now: Millis,
        args: &[String],
    ) -> StoreResult<Reply> {
        let mut inv = self.runs_script.key(&self.prefix);
        inv.arg(op).arg(now);
        for a in args {
            inv.arg(a);
        }
        self.invoke(op, inv).await
    }

    async fn invoke(
        &self,
        op: &'static str,
        inv: redis::ScriptInvocation<'_>,
    ) -> StoreResult<Reply> {
        let mut conn = self.conn.clone();
        let value: Value = tokio::time::timeout(OP_TIMEOUT, inv.invoke_async(&mut conn))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "{} did not answer within {} ms",
                    self.shown_url,
                    OP_TIMEOUT.as_millis()
                ))
            })?
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.shown_url)))?;
        let Value::Array(mut items) = value else {
            return Err(bad_reply(op, format!("{value:?}")));
        };
        if items.is_empty() {
            return Err(bad_reply(op, "empty reply"));
        }
        let status = text(&items.remove(0)).unwrap_or_default();
        Reply { op, status, items }.check()
    }
}

fn salt() -> String {
    use rand::Rng;
    format!("{:06x}", rand::rng().random::<u32>() & 0xff_ffff)
}

/// Relays grant notifications from Redis pub/sub to local long polls, reconnecting forever.
async fn forward_grants(
    client: redis::Client,
    channel: String,
    tx: broadcast::Sender<String>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    use futures_util::StreamExt;
    // Resubscribing after a lost connection: 100 ms, doubling up to 2 s.
    let mut waits = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).waits();
    let mut subscribed = Some(subscribed);
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await
            && pubsub.subscribe(&channel).await.is_ok()
        {
            waits.reset();
            if let Some(s) = subscribed.take() {
                let _ = s.send(());
            }
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                if let Ok(ticket) = msg.get_payload::<String>() {
                    let _ = tx.send(ticket);
                }
            }
        }
        tokio::time::sleep(waits.next_wait()).await;
    }
}

#[async_trait]
impl LeaseStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn location(&self) -> String {
        self.shown_url.clone()
    }

    async fn sync_boards(&self, boards: &[BoardKey], now: Millis) -> StoreResult<()> {
        let mut args = vec![boards.len().to_string()];
        for b in boards {
            args.extend([b.id.clone(), b.family.clone(), b.location.clone()]);
        }
        self.call("sync_boards", now, &args).await.map(|_| ())
    }

    async fn acquire(&self, req: &Acquire, now: Millis) -> StoreResult<AcquireOutcome> {
        let (kind, name) = match &req.target {
            Target::Family(f) => ("family", f),
            Target::Board(b) => ("board", b),
        };
        let args = [
            kind.to_string(),
            name.clone(),
            req.location.clone().unwrap_or_default(),
            (req.priority as u8).to_string(),
            req.holder.clone(),
            req.ttl_ms.to_string(),
            if req.queue.is_some() { "1" } else { "0" }.to_string(),
            req.queue.map(|q| q.lapse_ms).unwrap_or(0).to_string(),
            req.queue
                .and_then(|q| q.give_up_at)
                .map(|g| g.to_string())
                .unwrap_or_default(),
        ];
        let r = self.call("acquire", now, &args).await?;
        match r.status.as_str() {
            "granted" => Ok(AcquireOutcome::Granted(json(r.op, r.item(0)?)?)),
            "queued" => Ok(AcquireOutcome::Queued {
                ticket: json(r.op, r.item(0)?)?,
                position: int(r.item(1)?).unwrap_or(1) as u32,
            }),
            other => Err(bad_reply(r.op, other)),
        }
    }

    async fn poll_ticket(&self, ticket: &str, now: Millis) -> StoreResult<TicketPoll> {
        let r = self.call("poll_ticket", now, &[ticket.to_string()]).await?;
        match r.status.as_str() {
            "granted" => Ok(TicketPoll::Granted(json(r.op, r.item(0)?)?)),
            "waiting" => Ok(TicketPoll::Waiting {
                ticket: json(r.op, r.item(0)?)?,
                position: int(r.item(1)?).unwrap_or(1) as u32,
            }),
            other => Err(bad_reply(r.op, other)),
        }
    }

    async fn ticket(&self, ticket: &str, now: Millis) -> StoreResult<Option<TicketRecord>> {
        let r = self.call("ticket", now, &[ticket.to_string()]).await?;
        match r.status.as_str() {
            "ok" => Ok(Some(json(r.op, r.item(0)?)?)),
            _ => Ok(None),
        }
    }

    async fn cancel_ticket(&self, ticket: &str, now: Millis) -> StoreResult<()> {
        self.call("cancel_ticket", now, &[ticket.to_string()])
            .await
            .map(|_| ())
    }

    async fn lease(&self, id: &str, now: Millis) -> StoreResult<Option<LeaseRecord>> {
        let r = self.call("lease", now, &[id.to_string()]).await?;
        match r.status.as_str() {
            "ok" => Ok(Some(json(r.op, r.item(0)?)?)),
            _ => Ok(None),
        }
    }

    async fn renew(&self, id: &str, ttl_ms: Millis, now: Millis) -> StoreResult<LeaseRecord> {
        let r = self
            .call("renew", now, &[id.to_string(), ttl_ms.to_string()])
            .await?;
        json(r.op, r.item(0)?)
    }

    async fn release_held(
        &self,
        id: &str,
        holder: Option<&str>,
        now: Millis,
    ) -> StoreResult<LeaseRecord> {
        let args = [id.to_string(), holder.unwrap_or_default().to_string()];
        let r = self.call("release", now, &args).await?;
        json(r.op, r.item(0)?)
    }

    async fn leases(&self, now: Millis) -> StoreResult<Vec<LeaseRecord>> {
        let r = self.call("leases", now, &[]).await?;
        let mut leases: Vec<LeaseRecord> = json_list(r.op, r.item(0)?)?;
        leases.sort_by(|a, b| a.board_id.cmp(&b.board_id));
        Ok(leases)
    }

    async fn boards(&self, now: Millis) -> StoreResult<Vec<BoardState>> {
        let r = self.call("boards", now, &[]).await?;
        let mut boards: Vec<BoardState> = json_list(r.op, r.item(0)?)?;
        boards.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(boards)
    }

    async fn set_drain(
        &self,
        board: &str,
        reason: Option<String>,
        drained: bool,
        now: Millis,
    ) -> StoreResult<BoardState> {
        let args = [
            board.to_string(),
            if drained { "1" } else { "0" }.to_string(),
            reason.unwrap_or_default(),
        ];
        let r = self.call("set_drain", now, &args).await?;
        json(r.op, r.item(0)?)
    }

    async fn report_health(
        &self,
        board: &str,
        ok: bool,
        failure_threshold: u32,
        now: Millis,
    ) -> StoreResult<BoardState> {
        let args = [
            board.to_string(),
            if ok { "1" } else { "0" }.to_string(),
            failure_threshold.to_string(),
        ];
        let r = self.call("report_health", now, &args).await?;
        json(r.op, r.item(0)?)
    }

    async fn reap(&self, now: Millis) -> StoreResult<ReapReport> {
        let r = self.call("reap", now, &[]).await?;
        Ok(ReapReport {
            expired: text_list(r.op, r.item(0)?)?,
            lapsed: text_list(r.op, r.item(1)?)?,
        })
    }

    async fn counts(&self, now: Millis) -> StoreResult<StoreCounts> {
        let r = self.call("counts", now, &[]).await?;
        let n = |i| -> StoreResult<u32> { Ok(int(r.item(i)?).unwrap_or(0) as u32) };
        Ok(StoreCounts {
            boards: n(0)?,
            leases: n(1)?,
            waiting: n(2)?,
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let pong: String =
            tokio::time::timeout(OP_TIMEOUT, redis::cmd("PING").query_async(&mut conn))
                .await
                .map_err(|_| unavailable(format!("{} did not answer PING", self.shown_url)))?
                .map_err(|e| unavailable(format!("{}: {e}", self.shown_url)))?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(unavailable(format!(
                "{} answered PING with {pong}",
                self.shown_url
            )))
        }
    }

    fn subscribe_grants(&self) -> broadcast::Receiver<String> {
        self.grants.subscribe()
    }
}

fn to_json<T: serde::Serialize>(what: &str, v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("encoding {what}: {e}")))
}

/// Runs newest first, as `RunBook` orders them: by `created_at_ms`, then by id.
fn newest_first(runs: &mut [Run]) {
    runs.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
}

#[async_trait]
impl RunStore for RedisStore {
    async fn run_start(&self, run: Run, keep: usize, now: Millis) -> StoreResult<(Run, bool)> {
        let run = runs::started(run, now);
        let args = [
            run.id.clone(),
            keep.to_string(),
            to_json("run", &run)?,
            to_json("event", &OutboxEvent::Create { run: run.clone() })?,
        ];
        let r = self.call_runs("run_start", now, &args).await?;
        Ok((json(r.op, r.item(0)?)?, int(r.item(1)?) == Some(1)))
    }

    async fn run_update(&self, id: &str, update: RunUpdate, now: Millis) -> StoreResult<Run> {
        // Used only when the run moves on; fixed here because the script has no good randomness.
        let event = OutboxEvent::State {
            state: update.state,
            message: update.message.clone(),
            at_ms: now,
            transition_id: new_transition_id(),
        };
        let args = [
            id.to_string(),
            to_json("update", &update)?,
            to_json("event", &event)?,
        ];
        let r = self.call_runs("run_update", now, &args).await?;
        json(r.op, r.item(0)?)
    }

    async fn run_logs(&self, id: &str, lines: Vec<LogLine>, now: Millis) -> StoreResult<Run> {
        let count = lines.len();
        let event = if lines.is_empty() {
            String::new()
        } else {
            to_json("event", &OutboxEvent::Logs { lines })?
        };
        let args = [id.to_string(), count.to_string(), event];
        let r = self.call_runs("run_logs", now, &args).await?;
        json(r.op, r.item(0)?)
    }

    async fn run(&self, id: &str) -> StoreResult<Option<Run>> {
        let r = self.call_runs("run", 0, &[id.to_string()]).await?;
        match r.status.as_str() {
            "ok" => Ok(Some(json(r.op, r.item(0)?)?)),
            _ => Ok(None),
        }
    }

    async fn runs(&self, query: &RunQuery) -> StoreResult<Vec<Run>> {
        let limit = runs::query_limit(query);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let args = [
            query.board.clone().unwrap_or_default(),
            query.family.clone().unwrap_or_default(),
            query.holder.clone().unwrap_or_default(),
            query
                .state
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            query.since_ms.unwrap_or(0).to_string(),
            limit.to_string(),
        ];
        let r = self.call_runs("runs", 0, &args).await?;
        json_list(r.op, r.item(0)?)
    }

    async fn unfinished_runs(&self) -> StoreResult<Vec<Run>> {
        let r = self.call_runs("unfinished_runs", 0, &[]).await?;
        let mut runs: Vec<Run> = json_list(r.op, r.item(0)?)?;
        newest_first(&mut runs);
        Ok(runs)
    }

    async fn set_flow_run_id(&self, id: &str, flow_run_id: &str) -> StoreResult<()> {
        let args = [id.to_string(), flow_run_id.to_string()];
        self.call_runs("set_flow_run_id", 0, &args)
            .await
            .map(|_| ())
    }

    async fn outbox_peek(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
        let r = self
            .call_runs("outbox_peek", 0, &[limit.to_string()])
            .await?;
        json_list(r.op, r.item(0)?)
    }

    async fn outbox_ack(&self, seqs: &[u64]) -> StoreResult<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let args: Vec<String> = seqs.iter().map(u64::to_string).collect();
        self.call_runs("outbox_ack", 0, &args).await.map(|_| ())
    }

    async fn outbox_len(&self) -> StoreResult<u64> {
        let r = self.call_runs("outbox_len", 0, &[]).await?;
        int(r.item(0)?).ok_or_else(|| bad_reply(r.op, "no count"))
    }

    async fn outbox_claim(&self, owner: &str, ttl_ms: Millis, now: Millis) -> StoreResult<bool> {
        let args = [owner.to_string(), ttl_ms.to_string()];
        let r = self.call_runs("outbox_claim", now, &args).await?;
        Ok(int(r.item(0)?) == Some(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://:secret@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(redact_url("redis://127.0.0.1/"), "redis://127.0.0.1/");
    }
}
