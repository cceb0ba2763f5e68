//! Where socv finds leased and who it is: flags > environment > config file > defaults.
//!
//! The file is `$XDG_CONFIG_HOME/socv/config.toml` (`~/.config/socv/config.toml` when unset):
//!
//! ```toml
//! daemon = "https://lab-gw:8000"  # like --daemon / SOCV_DAEMON / DEVICE_MANAGER_URL
//! token = "…"                     # like SOCV_TOKEN
//! ca_cert = "/etc/socv/lab-ca.pem" # like --ca-cert / SOCV_CA_CERT
//! ```

use crate::error::{Error, Result};
use reqwest::Url;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The daemon URL when neither flag, environment nor config file names one.
pub const DEFAULT_DAEMON: &str = "http://127.0.0.1:8000";
/// Environment variables naming the daemon, in order of precedence (the second is the name of
/// the original plan, kept working).
pub const DAEMON_ENV: [&str; 2] = ["SOCV_DAEMON", "DEVICE_MANAGER_URL"];
/// Environment variable holding the API token.
pub const TOKEN_ENV: &str = "SOCV_TOKEN";
/// Environment variable naming an extra CA bundle (PEM) to trust.
pub const CA_CERT_ENV: &str = "SOCV_CA_CERT";
/// Where an extra CA is given, for messages that suggest it.
pub const CA_CERT_SETTING: &str = "--ca-cert FILE (or SOCV_CA_CERT)";

/// The resolved settings of one socv invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Base URL of leased.
    pub daemon: Url,
    /// Sent as `Authorization: Bearer …` when present.
    pub token: Option<String>,
    /// `user@host`, sent as `x-socv-holder` on every request.
    pub holder: String,
    /// Extra CA certificates (PEM) trusted besides the system's roots, for a daemon whose
    /// certificate comes from the lab's own CA.
    pub ca_cert: Option<PathBuf>,
}

/// The keys of the config file that this part of socv reads; other keys belong to other parts.
#[derive(Debug, Default, Deserialize)]
pub struct FileConfig {
    pub daemon: Option<String>,
    pub token: Option<String>,
    pub ca_cert: Option<PathBuf>,
}

impl Config {
    /// Resolves the settings from the flags, the process environment and the user's config
    /// file.
    pub fn load(flag_daemon: Option<&Url>, flag_ca_cert: Option<&Path>) -> Result<Config> {
        let env = |name: &str| std::env::var(name).ok();
        let file = match config_path(&env) {
            Some(path) => read_file_config(&path)?.map(|f| (path, f)),
            None => None,
        };
        let mut config = Config::resolve(
            flag_daemon,
            &env,
            file.as_ref().map(|(p, f)| (p.as_path(), f)),
        )?;
        config.holder = holder(&env, &|path| std::fs::read_to_string(path).ok());
        if let Some(ca) = flag_ca_cert {
            config.ca_cert = Some(ca.to_owned());
        }
        Ok(config)
    }

    /// The precedence rules, apart from the process: flags > `env` > `file` > defaults.
    pub fn resolve(
        flag_daemon: Option<&Url>,
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<(&Path, &FileConfig)>,
    ) -> Result<Config> {
        let daemon = if let Some(url) = flag_daemon {
            url.clone()
        } else if let Some((name, value)) = DAEMON_ENV
            .iter()
            .find_map(|name| non_empty(env(name)).map(|v| (*name, v)))
        {
            parse_daemon_url(&value).map_err(|e| Error::Usage(format!("{name}: {e}")))?
        } else if let Some((path, value)) =
            file.and_then(|(path, f)| f.daemon.clone().map(|d| (path, d)))
        {
            parse_daemon_url(&value).map_err(|e| Error::ConfigFile {
                path: path.to_owned(),
                message: format!("key 'daemon': {e}"),
            })?
        } else {
            parse_daemon_url(DEFAULT_DAEMON).map_err(Error::Usage)?
        };
        let token = non_empty(env(TOKEN_ENV))
            .or_else(|| file.and_then(|(_, f)| non_empty(f.token.clone())));
        if let Some(token) = &token
            && !token.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Error::Usage(format!(
                "the API token (from {TOKEN_ENV} or the config file) contains spaces or \
                 non-ASCII characters; it cannot be sent in an HTTP header"
            )));
        }
        // A relative path in the file is taken from the file's folder, as people expect.
        let ca_cert = non_empty(env(CA_CERT_ENV)).map(PathBuf::from).or_else(|| {
            file.and_then(|(path, f)| {
                f.ca_cert.as_ref().map(|ca| match path.parent() {
                    Some(dir) if ca.is_relative() => dir.join(ca),
                    _ => ca.clone(),
                })
            })
        });
        Ok(Config {
            daemon,
            token,
            holder: String::new(),
            ca_cert,
        })
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// `$XDG_CONFIG_HOME/socv/config.toml`, else `~/.config/socv/config.toml`.
pub fn config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = non_empty(env("XDG_CONFIG_HOME"))
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| dirs::home_dir().map(|home| home.join(".config")))?;
    Some(base.join("socv").join("config.toml"))
}

/// Reads the config file; `None` when it does not exist.
pub fn read_file_config(path: &Path) -> Result<Option<FileConfig>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::ConfigFile {
                path: path.to_owned(),
                message: e.to_string(),
            });
        }
    };
    parse_file_config(&text)
        .map(Some)
        .map_err(|message| Error::ConfigFile {
            path: path.to_owned(),
            message,
        })
}

/// Parses the config file's text; the error carries line and column (from `toml`).
pub fn parse_file_config(text: &str) -> std::result::Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
}

/// Parses a daemon URL such as `https://lab-gw:8000` (a bare `host:port` means `http://`).
pub fn parse_daemon_url(value: &str) -> std::result::Result<Url, String> {
    let value = value.trim();
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| format!("'{value}' is not a daemon URL like http://127.0.0.1:8000: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "'{value}': leased speaks http or https, so the URL must start with http:// or \
             https://"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) || url.cannot_be_a_base() {
        return Err(format!("'{value}' names no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "'{value}': a daemon URL takes no query or fragment"
        ));
    }
    Ok(url)
}

/// `user@host` of this process: user from `$USER`/`$LOGNAME`, host from `/etc/hostname`,
/// `$HOSTNAME` or the kernel; only characters allowed in an HTTP header are kept.
/// The name of `uid` in an /etc/passwd text (`name:x:uid:…`).
fn user_of_uid(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

pub fn holder(
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> Option<String>,
) -> String {
    let user = non_empty(env("USER"))
        .or_else(|| non_empty(env("LOGNAME")))
        // Cron jobs, containers and CI often set neither: the passwd entry of our uid names us.
        .or_else(|| {
            let uid = rustix::process::getuid().as_raw();
            read_file(Path::new("/etc/passwd")).and_then(|p| user_of_uid(&p, uid))
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let host = non_empty(read_file(Path::new("/etc/hostname")))
        .or_else(|| non_empty(env("HOSTNAME")))
        .or_else(|| non_empty(read_file(Path::new("/proc/sys/kernel/hostname"))))
        .unwrap_or_else(|| "localhost".to_owned());
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '@' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{}@{}", clean(&user), clean(&host))
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_passwd_entry_names_a_user_without_user_or_logname() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\n";
        assert_eq!(user_of_uid(passwd, 1000).as_deref(), Some("ann"));
        assert_eq!(user_of_uid(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_of_uid(passwd, 7), None);
        assert_eq!(user_of_uid("garbage\n::", 0), None);
    }

    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn file(daemon: Option<&str>, token: Option<&str>) -> FileConfig {
        FileConfig {
            daemon: daemon.map(str::to_owned),
            token: token.map(str::to_owned),
            ca_cert: None,
        }
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let path = Path::new("/home/u/.config/socv/config.toml");
        let f = file(Some("http://from-file:1"), None);
        let flag = parse_daemon_url("http://from-flag:1").unwrap();
        let env = env_of(&[
            ("SOCV_DAEMON", "http://socv-env:1"),
            ("DEVICE_MANAGER_URL", "http://dm-env:1"),
        ]);
        let c = Config::resolve(Some(&flag), &env, Some((path, &f))).unwrap();
        assert_eq!(c.daemon.as_str(), "http://from-flag:1/");
        let c = Config::resolve(None, &env, Some((path, &f))).unwrap();
        assert_eq!(c.daemon.as_str(), "http://socv-env:1/");
        let env = env_of(&[("DEVICE_MANAGER_URL", "http://dm-env:1")]);
        let c = Config::resolve(None, &env, Some((path, &f))).unwrap();
        assert_eq!(c.daemon.as_str(), "http://dm-env:1/");
        let c = Config::resolve(None, &env_of(&[("SOCV_DAEMON", " ")]), Some((path, &f))).unwrap();
        assert_eq!(c.daemon.as_str(), "http://from-file:1/");
        let c = Config::resolve(None, &env_of(&[]), None).unwrap();
        assert_eq!(c.daemon.as_str(), "http://127.0.0.1:8000/");
    }

    #[test]
    fn token_from_env_beats_file() {
        let path = Path::new("/c.toml");
        let f = file(None, Some("file-token"));
        let c = Config::resolve(
            None,
            &env_of(&[("SOCV_TOKEN", "env-token")]),
            Some((path, &f)),
        )
        .unwrap();
        assert_eq!(c.token.as_deref(), Some("env-token"));
        let c = Config::resolve(None, &env_of(&[]), Some((path, &f))).unwrap();
        assert_eq!(c.token.as_deref(), Some("file-token"));
        let c = Config::resolve(None, &env_of(&[]), None).unwrap();
        assert_eq!(c.token, None);
    }

    #[test]
    fn bad_values_name_where_they_came_from() {
        let err = Config::resolve(None, &env_of(&[("SOCV_DAEMON", "ftp://x")]), None).unwrap_err();
        assert!(
            err.to_string().starts_with("SOCV_DAEMON: 'ftp://x'"),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::exit_codes::USAGE);
        let f = file(Some("http://"), None);
        let err =
            Config::resolve(None, &env_of(&[]), Some((Path::new("/c.toml"), &f))).unwrap_err();
        assert!(err.to_string().contains("/c.toml"), "{err}");
        assert!(err.to_string().contains("key 'daemon'"), "{err}");
        let err = Config::resolve(None, &env_of(&[("SOCV_TOKEN", "a b")]), None).unwrap_err();
        assert!(err.to_string().contains("SOCV_TOKEN"), "{err}");
    }

    #[test]
    fn daemon_urls() {
        assert_eq!(
            parse_daemon_url("lab-gw:8000").unwrap().as_str(),
            "http://lab-gw:8000/"
        );
        assert_eq!(
            parse_daemon_url("http://10.0.0.1:8000/socv/")
                .unwrap()
                .as_str(),
            "http://10.0.0.1:8000/socv/"
        );
        assert_eq!(
            parse_daemon_url("https://lab-gw:8443").unwrap().as_str(),
            "https://lab-gw:8443/"
        );
        assert!(
            parse_daemon_url("ftp://x")
                .unwrap_err()
                .contains("http:// or https://")
        );
        assert!(parse_daemon_url("http://x/?a=1").is_err());
        assert!(parse_daemon_url("").is_err());
    }

    #[test]
    fn config_file_errors_carry_the_line() {
        let err = parse_file_config("daemon = \n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        let ok = parse_file_config("daemon = \"http://x:1\"\n[run]\nretries = 2\n").unwrap();
        assert_eq!(ok.daemon.as_deref(), Some("http://x:1"));
    }

    #[test]
    fn config_path_prefers_xdg() {
        let p = config_path(&env_of(&[("XDG_CONFIG_HOME", "/cfg")])).unwrap();
        assert_eq!(p, PathBuf::from("/cfg/socv/config.toml"));
    }

    #[test]
    fn holder_is_user_at_host() {
        let files = |p: &Path| (p == Path::new("/etc/hostname")).then(|| "buildhost\n".to_owned());
        assert_eq!(holder(&env_of(&[("USER", "ann")]), &files), "ann@buildhost");
        let none = |_: &Path| None;
        assert_eq!(
            holder(&env_of(&[("LOGNAME", "bo b"), ("HOSTNAME", "h1")]), &none),
            "bo_b@h1"
        );
        assert_eq!(holder(&env_of(&[]), &none), "unknown@localhost");
    }
}
