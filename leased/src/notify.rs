//! Notifications: run endings and long lease waits, to a Slack incoming webhook and a Feishu
//! custom bot.
//!
//! The callers ([`Notifier::run_ended`], [`Notifier::long_wait`]) never wait: a notification is
//! rendered and put on a bounded queue per channel. A background task per channel (started by
//! [`Notifier::start`]) takes notifications off its queue and delivers each one in a task of its
//! own, with retries and exponential backoff, at most [`RetryPolicy::max_in_flight`] at a time, so
//! a Slack outage never delays Feishu and a notification being retried never holds up the ones
//! behind it. Failures are logged (with the channel's name, never its URL: a webhook URL is a
//! secret) and counted in [`Notifier::status`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::time::{Backoff, now_ms};
use crate::api::{CaseOutcome, ChannelStatus, Run, RunState};
use crate::config::{NotifyConfig, NotifyOn};

/// How notifications are queued and delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per notification and channel, the first one included (at least 1).
    pub attempts: u32,
    /// The wait after a failed try: `first` after the first, doubling up to `max`.
    pub backoff: Backoff,
    /// How long one try may take.
    pub request_timeout: Duration,
    /// Notifications being delivered (or waiting to be retried) at once, per channel.
    pub max_in_flight: usize,
    /// Notifications waiting per channel; past that, new ones are dropped and counted as failed.
    pub queue_capacity: usize,
}

impl Default for RetryPolicy {
    /// 5 tries, 1 s, 2 s, 4 s, 8 s apart (capped at 30 s), 10 s per try, 8 in flight, 1024 queued.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            request_timeout: Duration::from_secs(10),
            max_in_flight: 8,
            queue_capacity: 1024,
        }
    }
}

/// The Feishu custom bot signature: base64(HMAC-SHA256(key = "<timestamp>\n<secret>", empty)).
pub fn feishu_sign(timestamp: u64, secret: &str) -> String {
    let key = format!("{timestamp}\n{secret}");
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC takes a key of any length");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Slack,
    Feishu,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Slack => "slack",
            Kind::Feishu => "feishu",
        }
    }

    /// The setting that names this channel's webhook.
    fn setting(self) -> &'static str {
        match self {
            Kind::Slack => "slack_webhook_url (SLACK_WEBHOOK_URL)",
            Kind::Feishu => "feishu_webhook_url (FEISHU_WEBHOOK_URL)",
        }
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    pending: AtomicU64,
    last_error: Mutex<Option<(String, u64)>>,
}

struct Channel {
    kind: Kind,
    url: String,
    secret: Option<String>,
    tx: mpsc::Sender<Value>,
    rx: Mutex<Option<mpsc::Receiver<Value>>>,
    counters: Counters,
}

impl Channel {
    fn fail(&self, what: &str, error: String) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(channel = self.kind.name(), %error, "notification {what}");
        *self.counters.last_error.lock().unwrap() = Some((error, now_ms()));
    }
}

struct Inner {
    on: NotifyOn,
    long_wait: Option<Duration>,
    http: reqwest::Client,
    policy: RetryPolicy,
    channels: Vec<Arc<Channel>>,
}

/// Sends notifications to the configured channels, in the background. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No URLs or secrets here.
        f.debug_struct("Notifier")
            .field("on", &self.inner.on)
            .field("channels", &self.channel_names())
            .finish()
    }
}

/// What one try ended with.
enum Tried {
    Sent,
    /// Worth another try (network trouble, 5xx, 429, a Feishu error code); with a wait the
    /// server asked for, if it did.
    Retry(String, Option<Duration>),
    /// Another try would fail the same way (a 4xx from Slack).
    GiveUp(String),
}

impl Notifier {
    /// A notifier for `config`'s channels with the default [`RetryPolicy`]. Nothing is sent before
    /// [`Notifier::start`].
    pub fn new(config: &NotifyConfig, http: reqwest::Client) -> Notifier {
        Notifier::with_policy(config, http, RetryPolicy::default())
    }

    /// A notifier with its own delivery policy (tests use millisecond backoffs).
    pub fn with_policy(
        config: &NotifyConfig,
        http: reqwest::Client,
        policy: RetryPolicy,
    ) -> Notifier {
        let policy = RetryPolicy {
            attempts: policy.attempts.max(1),
            max_in_flight: policy.max_in_flight.max(1),
            queue_capacity: policy.queue_capacity.max(1),
            ..policy
        };
        let mut channels = Vec::new();
        let mut add = |kind: Kind, url: &Option<String>, secret: Option<String>| {
            if let Some(url) = url.as_deref().filter(|u| !u.trim().is_empty()) {
                let (tx, rx) = mpsc::channel(policy.queue_capacity);
                channels.push(Arc::new(Channel {
                    kind,
                    url: url.trim().to_string(),
                    secret,
                    tx,
                    rx: Mutex::new(Some(rx)),
                    counters: Counters::default(),
                }));
            }
        };
        add(Kind::Slack, &config.slack_webhook_url, None);
        let secret = config.feishu_secret.clone().filter(|s| !s.is_empty());
        add(Kind::Feishu, &config.feishu_webhook_url, secret);
        Notifier {
            inner: Arc::new(Inner {
                on: config.on,
                long_wait: config.long_wait,
                http,
                policy,
                channels,
            }),
        }
    }

    /// Whether any channel is configured.
    pub fn is_enabled(&self) -> bool {
        !self.inner.channels.is_empty()
    }

    /// After how long a waiting lease request is worth a [`Notifier::long_wait`], if ever.
    pub fn long_wait_after(&self) -> Option<Duration> {
        self.inner.long_wait.filter(|_| self.is_enabled())
    }

    /// Whether a run that ended in `state` is notified.
    pub fn wants(&self, state: RunState) -> bool {
        state.is_terminal()
            && match self.inner.on {
                NotifyOn::Failures => state.is_failure(),
                NotifyOn::All => true,
                NotifyOn::Never => false,
            }
    }

    fn channel_names(&self) -> Vec<&'static str> {
        self.inner.channels.iter().map(|c| c.kind.name()).collect()
    }

    /// Starts delivering, until `cancel`: one task per channel. The handle ends once they and
    /// the deliveries in flight have stopped (a cancelled delivery is not retried further).
    /// Calling it again does nothing more.
    pub fn start(&self, cancel: CancellationToken) -> JoinHandle<()> {
        let tracker = TaskTracker::new();
        for channel in &self.inner.channels {
            let Some(rx) = channel.rx.lock().unwrap().take() else {
                continue;
            };
            tracker.spawn(channel_loop(
                self.inner.clone(),
                channel.clone(),
                rx,
                cancel.clone(),
                tracker.clone(),
            ));
        }
        tracker.close();
        tokio::spawn(async move { tracker.wait().await })
    }

    /// A run ended: notify it if the configuration asks for it. `ui_url` is the run's page in
    /// Prefect's UI (else the run's own recorded link is used). Never waits.
    pub fn run_ended(&self, run: &Run, ui_url: Option<String>) {
        if !self.is_enabled() || !self.wants(run.state) {
            return;
        }
        let link = ui_url.or_else(|| run.prefect.as_ref().and_then(|p| p.url.clone()));
        let msg = RunMessage::new(run, link, now_ms());
        self.enqueue(|kind| match kind {
            Kind::Slack => msg.slack(),
            Kind::Feishu => msg.feishu(),
        });
    }

    /// A lease request (`ticket`, for `target`: a family or a board) of `holder` has waited
    /// `waited` and is at `position` in the queue. The caller decides when. Never waits.
    pub fn long_wait(
        &self,
        ticket: &str,
        target: &str,
        holder: &str,
        waited: Duration,
        position: u32,
    ) {
        if !self.is_enabled() {
            return;
        }
        let waited = format_duration(waited.as_millis() as u64);
        let text = format!(
            "Lease request {ticket} by {holder} for {target} has waited {waited} \
             (position {position} in the queue)"
        );
        self.enqueue(|kind| match kind {
            Kind::Slack => {
                let md = format!(
                    ":hourglass: Lease request `{}` by *{}* for *{}* has waited *{waited}* \
                     (position {position} in the queue)",
                    slack_escape(ticket),
                    slack_escape(holder),
                    slack_escape(target),
                );
                json!({
                    "text": slack_escape(&text),
                    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": md}}],
                })
            }
            Kind::Feishu => json!({"msg_type": "text", "content": {"text": format!("⏳ {text}")}}),
        });
    }

    fn enqueue(&self, render: impl Fn(Kind) -> Value) {
        for channel in &self.inner.channels {
            // Counted before it can be taken off the queue, so the count never goes below 0.
            channel.counters.pending.fetch_add(1, Ordering::Relaxed);
            let error = match channel.tx.try_send(render(channel.kind)) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(_)) => "queue full",
                Err(mpsc::error::TrySendError::Closed(_)) => "notifier stopped",
            };
            channel.counters.pending.fetch_sub(1, Ordering::Relaxed);
            channel.fail("dropped", error.to_string());
        }
    }

    /// One entry per configured channel (Slack first).
    pub fn status(&self) -> Vec<ChannelStatus> {
        self.inner
            .channels
            .iter()
            .map(|c| {
                let last = c.counters.last_error.lock().unwrap().clone();
                ChannelStatus {
                    name: c.kind.name().to_string(),
                    sent: c.counters.sent.load(Ordering::Relaxed),
                    failed: c.counters.failed.load(Ordering::Relaxed),
                    pending: c.counters.pending.load(Ordering::Relaxed),
                    last_error_ms: last.as_ref().map(|(_, ms)| *ms),
                    last_error: last.map(|(e, _)| e),
                }
            })
            .collect()
    }
}

async fn channel_loop(
    inner: Arc<Inner>,
    channel: Arc<Channel>,
    mut rx: mpsc::Receiver<Value>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(inner.policy.max_in_flight));
    loop {
        let body = tokio::select! {
            _ = cancel.cancelled() => break,
            body = rx.recv() => match body {
                Some(body) => body,
                None => break,
            },
        };
        let permit = tokio::select! {
            _ = cancel.cancelled() => {
                channel.counters.pending.fetch_sub(1, Ordering::Relaxed);
                break;
            }
            permit = slots.clone().acquire_owned() => permit.expect("never closed"),
        };
        let (inner, channel, cancel) = (inner.clone(), channel.clone(), cancel.clone());
        tracker.spawn(async move {
            deliver(&inner, &channel, body, &cancel).await;
            channel.counters.pending.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    // Stopped: what is still queued will not be sent (and later ones are refused).
    rx.close();
    while rx.try_recv().is_ok() {
        channel.counters.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn deliver(inner: &Inner, channel: &Channel, body: Value, cancel: &CancellationToken) {
    let policy = &inner.policy;
    let mut failures = 0;
    loop {
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            outcome = attempt(inner, channel, &body) => outcome,
        };
        let (error, asked) = match outcome {
            Tried::Sent => {
                channel.counters.sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Tried::GiveUp(error) => {
                channel.fail("failed", error);
                return;
            }
            Tried::Retry(error, asked) => (error, asked),
        };
        failures += 1;
        if failures >= policy.attempts {
            channel.fail(
                "failed",
                format!("{error} (gave up after {failures} tries)"),
            );
            return;
        }
        let wait = asked
            .map_or(Duration::ZERO, |a| a.min(policy.backoff.max))
            .max(policy.backoff.after(failures));
        tracing::debug!(channel = channel.kind.name(), %error, ?wait, "notification retry");
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn attempt(inner: &Inner, channel: &Channel, body: &Value) -> Tried {
    let mut body = body.clone();
    if let (Kind::Feishu, Some(secret)) = (channel.kind, &channel.secret) {
        // Signed afresh on every try: Feishu wants a current timestamp.
        let ts = now_ms() / 1000;
        body["timestamp"] = Value::String(ts.to_string());
        body["sign"] = Value::String(feishu_sign(ts, secret));
    }
    let response = inner
        .http
        .post(&channel.url)
        .timeout(inner.policy.request_timeout)
        .json(&body)
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return transport_failure(&channel.url, &e),
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) => return transport_failure(&channel.url, &e),
    };
    if !status.is_success() {
        let mut error = format!(
            "{} answered HTTP {}: {}",
            crate::tls::origin(&channel.url),
            status.as_u16(),
            snippet(&text)
        );
        if matches!(status.as_u16(), 401 | 403 | 404) {
            error.push_str(&format!(
                "; check {}: the webhook may have been revoked or mistyped",
                channel.kind.setting()
            ));
        }
        let retryable = status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT;
        return if retryable {
            Tried::Retry(error, retry_after)
        } else {
            Tried::GiveUp(error)
        };
    }
    if channel.kind == Kind::Feishu {
        // HTTP 200 either way; the answer's code says how it went (`StatusCode` in old bots).
        if let Ok(answer) = serde_json::from_str::<Value>(&text) {
            let code = answer
                .get("code")
                .or_else(|| answer.get("StatusCode"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if code != 0 {
                let msg = answer
                    .get("msg")
                    .or_else(|| answer.get("StatusMessage"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                return Tried::Retry(format!("feishu code {code}: {}", snippet(msg)), None);
            }
        }
    }
    Tried::Sent
}

/// A request that got no answer: the webhook's origin (its path is a secret), the cause and
/// the fix. A certificate problem is given up on at once: another try fails the same way.
fn transport_failure(url: &str, e: &reqwest::Error) -> Tried {
    let failure = crate::tls::Failure::of(e);
    let mut text = format!("{}: {failure}", crate::tls::origin(url));
    if let Some(fix) = failure.fix("ca_cert (LEASED_CA_CERT)") {
        text.push_str("; ");
        text.push_str(&fix);
    }
    if failure.is_tls() {
        Tried::GiveUp(text)
    } else {
        Tried::Retry(text, None)
    }
}

fn snippet(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

fn format_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        humantime::format_duration(Duration::from_secs(ms / 1000)).to_string()
    }
}

/// Slack's mrkdwn control characters.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A run's ending, ready to be rendered for each channel.
struct RunMessage {
    title: String,
    /// (label, value) lines, plain text.
    fields: Vec<(&'static str, String)>,
    link: Option<String>,
    icon: (&'static str, &'static str),
    run_id: String,
    board: String,
    state: &'static str,
}

impl RunMessage {
    fn new(run: &Run, link: Option<String>, now_ms: u64) -> RunMessage {
        let state = run.state.as_str();
        let icon = match run.state {
            RunState::Completed => (":white_check_mark:", "✅"),
            RunState::Failed => (":x:", "❌"),
            RunState::TimedOut => (":alarm_clock:", "⏰"),
            RunState::Crashed => (":boom:", "💥"),
            RunState::Cancelled => (":no_entry_sign:", "🚫"),
            RunState::Pending | RunState::Running => (":hourglass:", "⏳"),
        };
        let title = format!("socv run {} {} on {}", run.id, state, run.board_id);
        let mut board = format!("{} ({})", run.board_id, run.family);
        if !run.location.is_empty() {
            board.push_str(&format!(", {}", run.location));
        }
        let mut binary = run.binary.clone();
        for arg in &run.args {
            binary.push(' ');
            binary.push_str(arg);
        }
        let mut result = state.to_string();
        if let Some(code) = run.exit_code {
            result.push_str(&format!(", exit code {code}"));
        }
        if let Some(code) = run.socv_exit_code.filter(|c| Some(*c) != run.exit_code) {
            result.push_str(&format!(", socv exit code {code}"));
        }
        let count = |o: CaseOutcome| run.cases.iter().filter(|c| c.outcome == o).count();
        let cases = format!(
            "{} passed, {} failed, {} skipped",
            count(CaseOutcome::Pass),
            count(CaseOutcome::Fail),
            count(CaseOutcome::Skip)
        );
        let mut fields = vec![
            ("Run", run.id.clone()),
            ("Board", board),
            ("Holder", run.holder.clone()),
            ("Binary", binary),
            ("Result", result),
            ("Duration", format_duration(run.duration_ms(now_ms))),
            ("Cases", cases),
        ];
        if let Some(message) = run.message.as_deref().filter(|m| !m.is_empty()) {
            fields.push(("Message", snippet(message)));
        }
        RunMessage {
            title,
            fields,
            link,
            icon,
            run_id: run.id.clone(),
            board: run.board_id.clone(),
            state,
        }
    }

    fn slack(&self) -> Value {
        let mut text = format!("{} {}", self.icon.0, slack_escape(&self.title));
        for (label, value) in &self.fields {
            text.push_str(&format!(" | {label}: {}", slack_escape(value)));
        }
        if let Some(link) = &self.link {
            text.push_str(&format!(" | Prefect: {link}"));
        }
        let header = format!(
            "{} socv run `{}` *{}* on *{}*",
            self.icon.0,
            slack_escape(&self.run_id),
            self.state,
            slack_escape(&self.board)
        );
        let fields: Vec<Value> = self
            .fields
            .iter()
            .filter(|(label, _)| *label != "Run" && *label != "Message")
            .map(|(label, value)| {
                json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", slack_escape(value))})
            })
            .collect();
        let mut blocks = vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": header}}),
            json!({"type": "section", "fields": fields}),
        ];
        if let Some((_, message)) = self.fields.iter().find(|(l, _)| *l == "Message") {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
                "text": format!("*Message*\n{}", slack_escape(message))}}));
        }
        if let Some(link) = &self.link {
            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
                "text": format!("<{}|View in Prefect>", slack_escape(link))}]}));
        }
        json!({"text": text, "blocks": blocks})
    }

    fn feishu(&self) -> Value {
        let mut content: Vec<Value> = self
            .fields
            .iter()
            .map(|(label, value)| json!([{"tag": "text", "text": format!("{label}: {value}")}]))
            .collect();
        if let Some(link) = &self.link {
            content.push(json!([
                {"tag": "text", "text": "Prefect: "},
                {"tag": "a", "text": link, "href": link},
            ]));
        }
        json!({
            "msg_type": "post",
            "content": {"post": {"zh_cn": {
                "title": format!("{} {}", self.icon.1, self.title),
                "content": content,
            }}},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feishu_signature_regression_vector() {
        assert_eq!(
            feishu_sign(1599360473, "demo-secret"),
            "3/MaVZ8JLIy4TUG+7KSFJqvUkTKd+HWY8g+56DZWq8s="
        );
    }

    #[test]
    fn the_default_backoff_doubles_from_one_second_and_is_capped_at_thirty() {
        let p = RetryPolicy::default();
        let waits: Vec<u64> = (1..=7).map(|n| p.backoff.after(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(p.backoff.after(200), Duration::from_secs(30));
    }

    #[test]
    fn notify_on_filters_states() {
        let mk = |on| {
            let config = NotifyConfig {
                slack_webhook_url: Some("http://127.0.0.1:9/x".into()),
                on,
                ..NotifyConfig::default()
            };
            Notifier::new(&config, reqwest::Client::new())
        };
        let failures = mk(NotifyOn::Failures);
        let all = mk(NotifyOn::All);
        let never = mk(NotifyOn::Never);
        for state in RunState::ALL {
            assert_eq!(failures.wants(state), state.is_failure(), "{state:?}");
            assert_eq!(all.wants(state), state.is_terminal(), "{state:?}");
            assert!(!never.wants(state));
        }
    }

    #[test]
    fn escapes_slack_control_characters() {
        assert_eq!(slack_escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }

    #[test]
    fn no_channels_no_status() {
        let n = Notifier::new(&NotifyConfig::default(), reqwest::Client::new());
        assert!(!n.is_enabled());
        assert!(n.status().is_empty());
        n.run_ended(
            &Run {
                state: RunState::Failed,
                ..Run::default()
            },
            None,
        );
    }
}
