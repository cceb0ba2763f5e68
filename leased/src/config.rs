//! leased's configuration: flags > environment > TOML file > defaults.

use anyhow::{Context, bail};
use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use socv_prefect::PrefectConfig;

/// Where leases live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// A Redis URL; several daemons may share it.
    Redis(String),
    /// An embedded store file; one daemon only.
    Embedded(PathBuf),
}

impl StoreSpec {
    /// `redis://…` / `rediss://…` / `unix://…` is Redis; anything else is an embedded store path.
    pub fn parse(s: &str) -> StoreSpec {
        if s.starts_with("redis://") || s.starts_with("rediss://") || s.starts_with("redis+unix://")
        {
            StoreSpec::Redis(s.to_string())
        } else {
            StoreSpec::Embedded(PathBuf::from(s))
        }
    }
}

/// The daemon's effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub boards: PathBuf,
    pub store: StoreSpec,
    /// Namespace of every Redis key.
    pub redis_prefix: String,
    pub tokens: Option<PathBuf>,
    pub insecure: bool,
    pub default_ttl: Duration,
    pub max_ttl: Duration,
    /// Consecutive infrastructure failures that mark a board unhealthy.
    pub failure_threshold: u32,
    /// How often unhealthy boards are probed (TCP connect to the console); zero disables it.
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    /// How often expired leases and lapsed tickets are reaped.
    pub reap_interval: Duration,
    /// How long a queue ticket outlives its last long poll.
    pub ticket_grace: Duration,
    /// Where run history goes; `None`: kept in the store only.
    pub prefect: Option<PrefectConfig>,
    /// Slack and Feishu notifications.
    pub notify: NotifyConfig,
    /// Most runs kept in the store (the oldest ended ones are forgotten beyond it).
    pub run_retention: usize,
    /// The Prefect work pool socv workers serve, laid out at start when Prefect is configured
    /// (`work_pool`, `SOCV_WORK_POOL`; default `socv`).
    pub work_pool: String,
    /// Runs delivered to Prefect at once (each in order). 2 suits Prefect on SQLite, which
    /// answers 503 under concurrent writes; on PostgreSQL more helps.
    pub prefect_concurrency: usize,
    /// Extra CA certificates (PEM) trusted besides the system's roots, for Prefect, webhooks
    /// and PDUs behind a lab's private CA (`ca_cert`, `LEASED_CA_CERT`).
    pub ca_cert: Option<PathBuf>,
    /// Serve https with this certificate and key instead of plain http.
    pub tls: Option<TlsFiles>,
    /// The binaries of remote runs (`artifact_dir`, `LEASED_ARTIFACT_DIR`; `artifact_max_bytes`,
    /// `artifact_retention` in the file).
    pub artifacts: crate::artifacts::ArtifactConfig,
}

/// The PEM files leased serves https with; re-read on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own certificate first (`tls_cert`).
    pub cert: PathBuf,
    /// Its private key: PKCS#8, PKCS#1 or SEC1 (`tls_key`).
    pub key: PathBuf,
}

/// Which run endings are notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    /// Failed, timed-out and crashed runs.
    #[default]
    Failures,
    /// Every run that ends.
    All,
    /// No run notifications (long waits are still notified when configured).
    Never,
}

/// Notification channels and when to use them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// A Slack incoming webhook (`SLACK_WEBHOOK_URL`).
    pub slack_webhook_url: Option<String>,
    /// A Feishu custom bot webhook (`FEISHU_WEBHOOK_URL`).
    pub feishu_webhook_url: Option<String>,
    /// The Feishu bot's signing secret, when its signature check is on (`FEISHU_SECRET`, or
    /// the older `FEISHU_WEBHOOK_SECRET`).
    pub feishu_secret: Option<String>,
    pub on: NotifyOn,
    /// Notify when a lease request has waited in the queue longer than this.
    pub long_wait: Option<Duration>,
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A webhook's path is its secret.
        let shown = |u: &Option<String>| u.as_deref().map(crate::tls::origin);
        f.debug_struct("NotifyConfig")
            .field("slack_webhook_url", &shown(&self.slack_webhook_url))
            .field("feishu_webhook_url", &shown(&self.feishu_webhook_url))
            .field("feishu_secret", &self.feishu_secret.as_ref().map(|_| "…"))
            .field("on", &self.on)
            .field("long_wait", &self.long_wait)
            .finish()
    }
}

impl NotifyConfig {
    pub fn any_channel(&self) -> bool {
        self.slack_webhook_url.is_some() || self.feishu_webhook_url.is_some()
    }
}

impl Config {
    /// A configuration with the defaults, for a lab file and a store (used by tests and demos).
    pub fn new(boards: impl Into<PathBuf>, store: StoreSpec) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            boards: boards.into(),
            store,
            redis_prefix: "socv:".into(),
            tokens: None,
            insecure: false,
            default_ttl: Duration::from_secs(30 * 60),
            max_ttl: Duration::from_secs(24 * 3600),
            failure_threshold: 3,
            probe_interval: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(2),
            reap_interval: Duration::from_millis(250),
            ticket_grace: Duration::from_secs(5),
            prefect: None,
            notify: NotifyConfig::default(),
            run_retention: 10_000,
            prefect_concurrency: 2,
            work_pool: crate::prefect::setup::DEFAULT_POOL.into(),
            ca_cert: None,
            tls: None,
            artifacts: crate::artifacts::ArtifactConfig::under(&data_dir()),
        }
    }

    /// Whether listening here sends API tokens across a network in clear text.
    pub fn tokens_in_clear(&self) -> bool {
        !self.listen.ip().is_loopback() && self.tokens.is_some() && self.tls.is_none()
    }

    /// Refuses to listen beyond loopback without tokens, unless explicitly insecure.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.artifacts.max_bytes == 0 {
            bail!("artifact_max_bytes must be more than 0");
        }
        if !self.listen.ip().is_loopback() && self.tokens.is_none() && !self.insecure {
            bail!(
                "refusing to listen on {} without API tokens: give --tokens FILE, or --insecure \
                 to let anyone on the network take and release boards",
                self.listen
            );
        }
        if let Some(p) = &self.prefect {
            check_url("prefect_url (PREFECT_API_URL)", &p.api_url)?;
            if let Some(u) = &p.ui_url {
                check_url("prefect_ui_url", u)?;
            }
            if p.auth.as_deref().is_some_and(|a| !a.contains(':')) {
                bail!("prefect_auth (PREFECT_API_AUTH_STRING) must be 'user:password'");
            }
            if p.auth.is_some() && p.api_key.is_some() {
                bail!(
                    "both prefect_api_key (PREFECT_API_KEY) and prefect_auth \
                     (PREFECT_API_AUTH_STRING) are set: a Prefect server takes one of them (an \
                     API key for Prefect Cloud, the auth string for a server started with \
                     PREFECT_SERVER_API_AUTH_STRING); unset the other"
                );
            }
            if p.api_key
                .as_deref()
                .is_some_and(|k| !k.bytes().all(|b| b.is_ascii_graphic()))
            {
                bail!(
                    "prefect_api_key (PREFECT_API_KEY) holds spaces or non-ASCII characters; it \
                     cannot be sent in an HTTP header"
                );
            }
        }
        if let Some(u) = &self.notify.slack_webhook_url {
            check_url("slack_webhook_url (SLACK_WEBHOOK_URL)", u)?;
        }
        if let Some(u) = &self.notify.feishu_webhook_url {
            check_url("feishu_webhook_url (FEISHU_WEBHOOK_URL)", u)?;
        }
        if self.run_retention == 0 {
            bail!("run_retention must be at least 1");
        }
        crate::prefect::setup::check_pool_name(&self.work_pool)
            .map_err(|e| anyhow::anyhow!("work_pool (SOCV_WORK_POOL): {e}"))?;
        if !(1..=64).contains(&self.prefect_concurrency) {
            bail!(
                "prefect_concurrency must be 1 to 64, not {}",
                self.prefect_concurrency
            );
        }
        if self.default_ttl > self.max_ttl {
            bail!(
                "default_ttl ({}) is longer than max_ttl ({})",
                humantime::format_duration(self.default_ttl),
                humantime::format_duration(self.max_ttl)
            );
        }
        Ok(())
    }
}

/// Refuses what is not an http(s) URL, naming the setting (the URL may hold a secret, so it is
/// not repeated).
fn check_url(name: &str, url: &str) -> anyhow::Result<()> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(u) => bail!(
            "{name}: expected an http:// or https:// URL, not a {}: URL",
            u.scheme()
        ),
        Err(e) => bail!("{name}: not a URL ({e})"),
    }
}

/// leased's command line. Every flag also reads an environment variable.
#[derive(Debug, Parser)]
#[command(
    name = "leased",
    version,
    about = "The socv lab daemon: leases boards fairly, tracks their health, serves socv.",
    after_help = "Examples:\n  \
        leased --boards boards.yaml                      # embedded store under the data dir\n  \
        leased --boards boards.yaml --store redis://127.0.0.1:6379/\n  \
        REDIS_URL=redis://redis:6379/ leased --boards /etc/socv/boards.yaml --listen 0.0.0.0:8000 --tokens /etc/socv/tokens.toml \\\n      \
        --tls-cert /etc/socv/tls/leased.crt --tls-key /etc/socv/tls/leased.key   # https; SIGHUP re-reads both\n  \
        PREFECT_API_URL=https://prefect.lab/api PREFECT_API_KEY=pnu_… LEASED_CA_CERT=/etc/socv/lab-ca.pem leased --boards boards.yaml\n\n\
        Configuration: flags > environment > TOML file (--config, default $XDG_CONFIG_HOME/socv/leased.toml) > defaults."
)]
pub struct Args {
    /// Address to listen on [default: 127.0.0.1:8000]
    #[arg(long, env = "LEASED_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The lab description [default: boards.yaml]
    #[arg(long, env = "LEASED_BOARDS")]
    pub boards: Option<PathBuf>,
    /// A redis:// URL, or the path of the embedded store file [default: REDIS_URL, else
    /// $XDG_DATA_HOME/socv/leased.redb]
    #[arg(long, env = "LEASED_STORE")]
    pub store: Option<String>,
    /// API tokens file (TOML, `[[tokens]] name, token, role = "user"|"admin"`)
    #[arg(long, env = "LEASED_TOKENS")]
    pub tokens: Option<PathBuf>,
    /// Allow listening beyond loopback without tokens
    #[arg(long, env = "LEASED_INSECURE")]
    pub insecure: bool,
    /// TOML configuration file
    #[arg(long, env = "LEASED_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve https with this certificate chain (PEM); needs --tls-key. Re-read on SIGHUP
    #[arg(long, env = "LEASED_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[arg(long, env = "LEASED_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust besides the system's, for Prefect, Slack, Feishu
    /// and PDUs behind a private CA (SSL_CERT_FILE replaces the system's roots instead)
    #[arg(long, env = "LEASED_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Where the binaries of remote runs are kept, by sha256 [default: DATA_DIR/artifacts]
    #[arg(long, env = "LEASED_ARTIFACT_DIR")]
    pub artifact_dir: Option<PathBuf>,
    /// Largest binary a remote run may upload, in bytes (413 beyond it) [default: 268435456]
    #[arg(long, env = "LEASED_ARTIFACT_MAX_BYTES")]
    pub artifact_max_bytes: Option<u64>,
    /// Prefect REST API that receives run history, e.g. http://127.0.0.1:4200/api
    #[arg(long, env = "PREFECT_API_URL")]
    pub prefect_url: Option<String>,
    /// Prefect basic auth as user:password (a server with PREFECT_SERVER_API_AUTH_STRING)
    #[arg(long, env = "PREFECT_API_AUTH_STRING", hide_env_values = true)]
    pub prefect_auth: Option<String>,
    /// Prefect API key, sent as a bearer token (Prefect Cloud)
    #[arg(long, env = "PREFECT_API_KEY", hide_env_values = true)]
    pub prefect_api_key: Option<String>,
    /// The Prefect work pool of socv workers, with its queues p1, p2, p3 and the socv-run
    /// deployment, made at start when missing [default: socv]
    #[arg(long, env = "SOCV_WORK_POOL")]
    pub work_pool: Option<String>,
    /// Slack incoming webhook for notifications
    #[arg(long, env = "SLACK_WEBHOOK_URL", hide_env_values = true)]
    pub slack_webhook_url: Option<String>,
    /// Feishu custom bot webhook for notifications
    #[arg(long, env = "FEISHU_WEBHOOK_URL", hide_env_values = true)]
    pub feishu_webhook_url: Option<String>,
    /// The Feishu bot's signing secret (also read from FEISHU_WEBHOOK_SECRET)
    #[arg(long, env = "FEISHU_SECRET", hide_env_values = true)]
    pub feishu_secret: Option<String>,
    /// Which run endings to notify [default: failures]
    #[arg(long, env = "LEASED_NOTIFY_ON", value_enum)]
    pub notify_on: Option<NotifyOn>,
    /// Notify when a lease request has waited this long, e.g. 15m
    #[arg(long, env = "LEASED_NOTIFY_LONG_WAIT", value_parser = humantime::parse_duration)]
    pub notify_long_wait: Option<Duration>,
}

/// The TOML configuration file; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    boards: Option<PathBuf>,
    store: Option<String>,
    redis_prefix: Option<String>,
    tokens: Option<PathBuf>,
    insecure: Option<bool>,
    #[serde(default, with = "opt_duration")]
    default_ttl: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    max_ttl: Option<Duration>,
    failure_threshold: Option<u32>,
    #[serde(default, with = "opt_duration")]
    probe_interval: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    ticket_grace: Option<Duration>,
    prefect_url: Option<String>,
    prefect_auth: Option<String>,
    prefect_api_key: Option<String>,
    prefect_ui_url: Option<String>,
    slack_webhook_url: Option<String>,
    feishu_webhook_url: Option<String>,
    feishu_secret: Option<String>,
    notify_on: Option<NotifyOn>,
    /// Notify when a lease request waits longer than this (e.g. "15m").
    #[serde(default, with = "opt_duration")]
    notify_long_wait: Option<Duration>,
    run_retention: Option<usize>,
    prefect_concurrency: Option<usize>,
    work_pool: Option<String>,
    artifact_dir: Option<PathBuf>,
    artifact_max_bytes: Option<u64>,
    #[serde(default, with = "opt_duration")]
    artifact_retention: Option<Duration>,
    ca_cert: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

mod opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Default location of the embedded store.
pub fn default_store_path() -> PathBuf {
    data_dir().join("leased.redb")
}

/// `SOCV_DATA_DIR`, else `$XDG_DATA_HOME/socv`.
pub fn data_dir() -> PathBuf {
    socv_api::data_dir()
}

fn default_config_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("socv").join("leased.toml"))
}

fn read_file_config(path: &Path, explicit: bool) -> anyhow::Result<FileConfig> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{}", path.display())),
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
            Ok(FileConfig::default())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

impl Args {
    /// Resolves flags (clap already merged the environment), the file and the defaults.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let file = match (&self.config, default_config_file()) {
            (Some(p), _) => read_file_config(p, true)?,
            (None, Some(p)) => read_file_config(&p, false)?,
            (None, None) => FileConfig::default(),
        };
        let redis_env = std::env::var("REDIS_URL").ok().filter(|s| !s.is_empty());
        let store = self
            .store
            .or(redis_env)
            .or(file.store)
            .map(|s| StoreSpec::parse(&s))
            .unwrap_or_else(|| StoreSpec::Embedded(default_store_path()));
        let mut c = Config::new(
            self.boards
                .or(file.boards)
                .unwrap_or_else(|| PathBuf::from("boards.yaml")),
            store,
        );
        if let Some(l) = self.listen.or(file.listen) {
            c.listen = l;
        }
        c.tokens = self.tokens.or(file.tokens);
        c.insecure = self.insecure || file.insecure.unwrap_or(false);
        if let Some(p) = file.redis_prefix {
            c.redis_prefix = p;
        }
        if let Some(d) = file.default_ttl {
            c.default_ttl = d;
        }
        if let Some(d) = file.max_ttl {
            c.max_ttl = d;
        }
        if let Some(n) = file.failure_threshold {
            c.failure_threshold = n;
        }
        if let Some(d) = file.probe_interval {
            c.probe_interval = d;
        }
        if let Some(d) = file.ticket_grace {
            c.ticket_grace = d;
        }
        let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        if let Some(api_url) = nonempty(self.prefect_url).or(nonempty(file.prefect_url)) {
            c.prefect = Some(PrefectConfig {
                api_url,
                auth: nonempty(self.prefect_auth).or(nonempty(file.prefect_auth)),
                api_key: nonempty(self.prefect_api_key).or(nonempty(file.prefect_api_key)),
                ui_url: nonempty(file.prefect_ui_url),
            });
        }
        c.ca_cert = self.ca_cert.or(file.ca_cert);
        if let Some(dir) = self.artifact_dir.or(file.artifact_dir) {
            c.artifacts.dir = dir;
        }
        if let Some(n) = self.artifact_max_bytes.or(file.artifact_max_bytes) {
            c.artifacts.max_bytes = n;
        }
        if let Some(d) = file.artifact_retention {
            c.artifacts.retention = d;
        }
        c.tls = match (
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => bail!("tls_cert (--tls-cert) is set but tls_key (--tls-key) is not"),
            (None, Some(_)) => bail!("tls_key (--tls-key) is set but tls_cert (--tls-cert) is not"),
        };
        c.notify = NotifyConfig {
            slack_webhook_url: nonempty(self.slack_webhook_url)
                .or(nonempty(file.slack_webhook_url)),
            feishu_webhook_url: nonempty(self.feishu_webhook_url)
                .or(nonempty(file.feishu_webhook_url)),
            feishu_secret: nonempty(self.feishu_secret)
                .or_else(|| nonempty(std::env::var("FEISHU_WEBHOOK_SECRET").ok()))
                .or(nonempty(file.feishu_secret)),
            on: self.notify_on.or(file.notify_on).unwrap_or_default(),
            long_wait: self.notify_long_wait.or(file.notify_long_wait),
        };
        if let Some(n) = file.run_retention {
            c.run_retention = n;
        }
        if let Some(n) = file.prefect_concurrency {
            c.prefect_concurrency = n;
        }
        if let Some(pool) = nonempty(self.work_pool).or(nonempty(file.work_pool)) {
            c.work_pool = pool;
        }
        c.check()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_spec_tells_redis_from_a_path() {
        assert_eq!(
            StoreSpec::parse("redis://127.0.0.1:6379/"),
            StoreSpec::Redis("redis://127.0.0.1:6379/".into())
        );
        assert_eq!(
            StoreSpec::parse("/var/lib/socv/leased.redb"),
            StoreSpec::Embedded("/var/lib/socv/leased.redb".into())
        );
    }

    #[test]
    fn a_work_pool_prefect_would_refuse_is_named_at_start() {
        let mut c = Config::new("b.yaml", StoreSpec::Embedded("x".into()));
        assert_eq!(c.work_pool, "socv");
        c.work_pool = "prefect-sh".into();
        let err = c.check().unwrap_err().to_string();
        assert!(
            err.starts_with("work_pool (SOCV_WORK_POOL): work pool \"prefect-sh\""),
            "{err}"
        );
        c.work_pool = String::new();
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn bad_prefect_and_webhook_settings_are_named() {
        let mut c = Config::new("b.yaml", StoreSpec::Embedded("x".into()));
        c.prefect = Some(PrefectConfig {
            api_url: "prefect.lab:4200/api".into(),
            auth: None,
            api_key: None,
            ui_url: None,
        });
        let err = c.check().unwrap_err().to_string();
        assert!(err.starts_with("prefect_url (PREFECT_API_URL)"), "{err}");
        c.prefect = Some(PrefectConfig {
            api_url: "http://prefect.lab:4200/api".into(),
            auth: Some("no-colon".into()),
            api_key: None,
            ui_url: None,
        });
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("user:password"), "{err}");
        c.prefect = None;
        c.notify.slack_webhook_url = Some("ftp://hooks.slack.com/x".into());
        let err = c.check().unwrap_err().to_string();
        assert!(
            err.starts_with("slack_webhook_url (SLACK_WEBHOOK_URL)"),
            "{err}"
        );
        assert!(
            !err.contains("hooks.slack.com"),
            "the URL may be secret: {err}"
        );
        c.notify.slack_webhook_url = None;
        c.prefect_concurrency = 0;
        assert!(
            c.check()
                .unwrap_err()
                .to_string()
                .contains("prefect_concurrency")
        );
    }

    #[test]
    fn prefect_links_carry_no_credentials() {
        let mut p = PrefectConfig {
            api_url: "http://socv:s3cret@prefect.lab:4200/api/".into(),
            auth: None,
            api_key: None,
            ui_url: None,
        };
        assert_eq!(
            p.flow_run_url("f1"),
            "http://prefect.lab:4200/runs/flow-run/f1"
        );
        p.ui_url = Some("https://prefect.example.com/".into());
        assert_eq!(
            p.flow_run_url("f1"),
            "https://prefect.example.com/runs/flow-run/f1"
        );
    }

    #[test]
    fn non_loopback_needs_tokens_or_insecure() {
        let mut c = Config::new("b.yaml", StoreSpec::Embedded("x".into()));
        c.listen = "0.0.0.0:8000".parse().unwrap();
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("--tokens"), "{err}");
        c.insecure = true;
        assert!(c.check().is_ok());
        c.insecure = false;
        c.tokens = Some("t.toml".into());
        assert!(c.check().is_ok());
    }

    #[test]
    fn file_config_rejects_unknown_keys_and_bad_durations() {
        let err = toml::from_str::<FileConfig>("listn = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
        let err = toml::from_str::<FileConfig>("max_ttl = \"forever\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_ttl"), "{err}");
    }
}
