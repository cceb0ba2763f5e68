//! leased's configuration: flags > environment > TOML file > defaults.

use anyhow::{Context, bail};
use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
        }
    }

    /// Refuses to listen beyond loopback without tokens, unless explicitly insecure.
    pub fn check(&self) -> anyhow::Result<()> {
        if !self.listen.ip().is_loopback() && self.tokens.is_none() && !self.insecure {
            bail!(
                "refusing to listen on {} without API tokens: give --tokens FILE, or --insecure \
                 to let anyone on the network take and release boards",
                self.listen
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

/// leased's command line. Every flag also reads an environment variable.
#[derive(Debug, Parser)]
#[command(
    name = "leased",
    version,
    about = "The socv lab daemon: leases boards fairly, tracks their health, serves socv.",
    after_help = "Examples:\n  \
        leased --boards boards.yaml                      # embedded store under the data dir\n  \
        leased --boards boards.yaml --store redis://127.0.0.1:6379/\n  \
        REDIS_URL=redis://redis:6379/ leased --boards /etc/socv/boards.yaml --listen 0.0.0.0:8000 --tokens /etc/socv/tokens.toml\n\n\
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
    if let Some(d) = std::env::var_os("SOCV_DATA_DIR") {
        return PathBuf::from(d);
    }
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("socv")
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
