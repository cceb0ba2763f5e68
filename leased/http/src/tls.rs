//! TLS for the HTTP that socv and leased speak outwards (leased, Prefect, Slack, Feishu, PDUs):
//! clients that trust the system's roots plus a lab's own CA bundle, and what went wrong on the
//! way in words that name the cause and the fix.
//!
//! The system's roots come from rustls-native-certs: `/etc/ssl/certs` on Debian, or what
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` name instead, as OpenSSL's tools do. The crypto is rustls
//! with ring: no OpenSSL in the build.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};

/// A lab's own CA certificates (PEM), trusted besides the system's roots.
#[derive(Clone)]
pub struct CaBundle {
    path: PathBuf,
    certs: Vec<reqwest::Certificate>,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle")
            .field("path", &self.path)
            .field("certificates", &self.certs.len())
            .finish()
    }
}

/// A CA bundle that cannot be used; names the setting and the file.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{setting}: cannot read {}: {source}", path.display())]
    Read {
        setting: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{setting}: {} holds no PEM certificate (expected blocks of \
         -----BEGIN CERTIFICATE-----)", path.display()
    )]
    Empty {
        setting: &'static str,
        path: PathBuf,
    },
    #[error("{setting}: {} is not a PEM certificate bundle: {detail}", path.display())]
    Invalid {
        setting: &'static str,
        path: PathBuf,
        detail: String,
    },
}

impl CaBundle {
    /// Reads the PEM certificates of `path`; `setting` names where the path came from
    /// (`--ca-cert (SOCV_CA_CERT)`), for the error.
    pub fn load(path: &Path, setting: &'static str) -> Result<CaBundle, CaError> {
        let pem = std::fs::read(path).map_err(|source| CaError::Read {
            setting,
            path: path.to_owned(),
            source,
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| CaError::Invalid {
            setting,
            path: path.to_owned(),
            detail: crate::cause::innermost(&e).to_string(),
        })?;
        if certs.is_empty() {
            return Err(CaError::Empty {
                setting,
                path: path.to_owned(),
            });
        }
        Ok(CaBundle {
            path: path.to_owned(),
            certs,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// The crypto of leased's own https: ring, as reqwest uses it. rustls 0.23.48 marks ring's
/// provider deprecated for want of post-quantum key exchange, which only aws-lc-rs has; that
/// brings a C library build (and optionally cmake) the project keeps out on purpose.
#[allow(deprecated)]
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A client builder that speaks https with rustls, trusting the system's roots and `ca`.
pub fn client_builder(ca: Option<&CaBundle>) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_native_certs(true);
    for cert in ca.iter().flat_map(|ca| ca.certs.iter()) {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder
}

/// Why a request got no answer, as far as the words for it go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server's certificate chain leads to no root this side trusts (a private CA, or a
    /// self-signed certificate).
    Untrusted,
    /// The certificate is for other names than the host asked for.
    NameMismatch {
        expected: String,
        presented: Vec<String>,
    },
    /// The certificate has expired (`not_after` as Unix seconds, when known).
    Expired { not_after: Option<u64> },
    /// The certificate is not valid yet (a clock off, or a certificate issued for later).
    NotYetValid,
    /// Another certificate problem, in rustls's words.
    Certificate(String),
    /// The TLS handshake failed otherwise (no common protocol; a plain-http server on an
    /// https URL; the server refused our handshake).
    Handshake(String),
    /// Nothing listens on that port.
    Refused,
    /// No connection or no answer in time.
    Timeout,
    /// The host name does not resolve.
    UnknownHost(String),
    /// The connection was reset or closed before an answer.
    Dropped(String),
    /// Anything else, in the innermost error's words.
    Other(String),
}

impl Failure {
    /// Classifies a failed request by walking its chain of causes.
    pub fn of(err: &reqwest::Error) -> Failure {
        if let Some(tls) = find_rustls(err) {
            return Failure::of_rustls(tls);
        }
        if err.is_timeout() {
            return Failure::Timeout;
        }
        let text = crate::cause::innermost(err).to_string();
        if let Some(words) = crate::cause::io_words(err) {
            return match words {
                "connection refused" => Failure::Refused,
                "timed out" => Failure::Timeout,
                other => Failure::Dropped(other.to_owned()),
            };
        }
        if text.contains("failed to lookup address")
            || text.contains("Name or service not known")
            || text.contains("nodename nor servname")
        {
            return Failure::UnknownHost(text);
        }
        // Found by name when the error carries no rustls type (another rustls in the build).
        if text.contains("UnknownIssuer") {
            return Failure::Untrusted;
        }
        if text.contains("NotValidForName") {
            return Failure::NameMismatch {
                expected: String::new(),
                presented: Vec::new(),
            };
        }
        if text.contains("Expired") && text.contains("certificate") {
            return Failure::Expired { not_after: None };
        }
        Failure::Other(if text.is_empty() {
            err.to_string()
        } else {
            text
        })
    }

    fn of_rustls(err: &rustls::Error) -> Failure {
        use rustls::CertificateError as C;
        match err {
            rustls::Error::InvalidCertificate(cert) => match cert {
                C::UnknownIssuer | C::BadSignature => Failure::Untrusted,
                C::NotValidForName => Failure::NameMismatch {
                    expected: String::new(),
                    presented: Vec::new(),
                },
                C::NotValidForNameContext {
                    expected,
                    presented,
                } => Failure::NameMismatch {
                    expected: server_name(expected),
                    presented: presented.iter().map(|p| presented_name(p)).collect(),
                },
                C::Expired => Failure::Expired { not_after: None },
                C::ExpiredContext { not_after, .. } => Failure::Expired {
                    not_after: Some(not_after.as_secs()),
                },
                C::NotValidYet | C::NotValidYetContext { .. } => Failure::NotYetValid,
                other => Failure::Certificate(format!("{other:?}")),
            },
            // Also a plain-http server answering our ClientHello ("corrupt message").
            other => Failure::Handshake(other.to_string()),
        }
    }

    /// A problem with the server's certificate, which no retry fixes.
    pub fn is_certificate(&self) -> bool {
        matches!(
            self,
            Failure::Untrusted
                | Failure::NameMismatch { .. }
                | Failure::Expired { .. }
                | Failure::NotYetValid
                | Failure::Certificate(_)
        )
    }

    /// A failure of TLS itself (certificate or handshake): a configuration matter.
    pub fn is_tls(&self) -> bool {
        self.is_certificate() || matches!(self, Failure::Handshake(_))
    }

    /// What to do about it; `ca_setting` names where this program takes an extra CA
    /// (`--ca-cert FILE or SOCV_CA_CERT`).
    pub fn fix(&self, ca_setting: &str) -> Option<String> {
        Some(match self {
            Failure::Untrusted => format!(
                "if the server's certificate comes from a private CA, give that CA's certificate \
                 (PEM) with {ca_setting}"
            ),
            Failure::NameMismatch { presented, .. } if !presented.is_empty() => format!(
                "use a host name the certificate names ({}), or have it reissued for this one",
                presented.join(", ")
            ),
            Failure::NameMismatch { .. } => {
                "use a host name the certificate names, or have it reissued for this one".into()
            }
            Failure::Expired { .. } => "the server's certificate must be renewed".into(),
            Failure::NotYetValid => {
                "check this machine's clock, and the certificate's validity dates".into()
            }
            Failure::Handshake(_) => {
                "check that the server speaks https on that port (not plain http)".into()
            }
            Failure::Refused => "is it running, and on that port?".into(),
            Failure::Timeout => "is the host reachable from here, and the server up?".into(),
            Failure::UnknownHost(_) => "check the host name".into(),
            _ => return None,
        })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Untrusted => f.write_str(
                "its TLS certificate is not trusted (issued by an authority this machine does \
                 not trust)",
            ),
            Failure::NameMismatch {
                expected,
                presented,
            } => {
                f.write_str("its TLS certificate is not valid for this host name")?;
                if !expected.is_empty() {
                    write!(f, " {expected}")?;
                }
                if !presented.is_empty() {
                    write!(f, " (it names {})", presented.join(", "))?;
                }
                Ok(())
            }
            Failure::Expired { not_after } => {
                f.write_str("its TLS certificate has expired")?;
                if let Some(secs) = not_after {
                    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*secs);
                    write!(f, " (on {})", humantime::format_rfc3339_seconds(when))?;
                }
                Ok(())
            }
            Failure::NotYetValid => f.write_str("its TLS certificate is not valid yet"),
            Failure::Certificate(what) => write!(f, "its TLS certificate is refused ({what})"),
            Failure::Handshake(what) => write!(f, "the TLS handshake failed ({what})"),
            Failure::Refused => f.write_str("connection refused"),
            Failure::Timeout => f.write_str("no answer in time"),
            Failure::UnknownHost(what) => write!(f, "unknown host ({what})"),
            Failure::Dropped(what) => f.write_str(what),
            Failure::Other(what) => f.write_str(what),
        }
    }
}

/// The rustls error somewhere in the chain of `err`. An `io::Error`'s `source()` skips the
/// error it wraps, so each one is opened with `get_ref`.
fn find_rustls<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            // hyper-util wraps tokio-rustls's io::Error in another one.
            let inner: &(dyn StdError + 'static) = inner;
            if let Some(tls) = find_rustls(inner) {
                return Some(tls);
            }
        }
        current = e.source();
    }
    None
}

fn server_name(name: &rustls::pki_types::ServerName<'_>) -> String {
    match name {
        rustls::pki_types::ServerName::DnsName(d) => d.as_ref().to_owned(),
        rustls::pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// `DnsName("lab-gw")` as rustls words a certificate's name: `lab-gw`.
fn presented_name(name: &str) -> String {
    name.strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .unwrap_or(name)
        .to_owned()
}

/// `scheme://host[:port]` of a URL: what may be shown of a URL whose path or query is a secret
/// (a Slack or Feishu webhook) or that carries credentials.
pub fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match u.host_str() {
            Some(host) => match u.port() {
                Some(port) => format!("{}://{host}:{port}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            },
            None => format!("{}:", u.scheme()),
        },
        Err(_) => "(a malformed URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_drops_secret_paths_queries_and_credentials() {
        assert_eq!(
            origin("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            origin("https://user:pw@prefect.lab:4200/api?key=1"),
            "https://prefect.lab:4200"
        );
        assert_eq!(origin("not a url"), "(a malformed URL)");
    }

    #[test]
    fn each_failure_has_words_and_the_ca_fix_names_the_setting() {
        let untrusted = Failure::Untrusted;
        assert!(untrusted.to_string().contains("not trusted"));
        assert!(
            untrusted
                .fix("--ca-cert FILE or SOCV_CA_CERT")
                .unwrap()
                .contains("--ca-cert FILE or SOCV_CA_CERT")
        );
        let mismatch = Failure::NameMismatch {
            expected: "lab-gw".into(),
            presented: vec!["other.example".into()],
        };
        assert_eq!(
            mismatch.to_string(),
            "its TLS certificate is not valid for this host name lab-gw (it names other.example)"
        );
        assert!(
            Failure::Expired { not_after: Some(0) }
                .to_string()
                .contains("1970-01-01")
        );
        assert!(Failure::Refused.fix("x").is_some());
        assert!(!Failure::Refused.is_tls() && untrusted.is_certificate());
    }

    #[test]
    fn a_bad_ca_bundle_names_setting_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = CaBundle::load(&missing, "ca_cert (LEASED_CA_CERT)").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ca_cert (LEASED_CA_CERT): cannot read"),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "just text\n").unwrap();
        let err = CaBundle::load(&empty, "ca_cert (LEASED_CA_CERT)").unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        assert!(err.to_string().contains("empty.pem"), "{err}");
    }
}
