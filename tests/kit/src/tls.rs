//! A test CA, the server certificates it issues (valid, expired, for another name), https
//! servers on loopback, and socat as a TLS terminator.

use crate::port::free_port;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A certificate authority of the test's own, as a lab's private CA would be.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A server certificate and its key, PEM.
#[derive(Clone)]
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A new CA named `name` (its common name).
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "socv tests");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a CA key");
        let cert = params
            .self_signed(&key)
            .expect("a self-signed CA certificate");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM (what a client is given with `--ca-cert`).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes the CA certificate to `dir/<file>` and answers its path.
    pub fn write_pem(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, &self.pem).expect("writing the CA certificate");
        path
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid from an hour ago for
    /// a day.
    pub fn issue(&self, names: &[&str]) -> ServerCert {
        self.issue_valid(names, Validity::Now)
    }

    /// A server certificate for `names` that expired a year ago.
    pub fn issue_expired(&self, names: &[&str]) -> ServerCert {
        self.issue_valid(names, Validity::Expired)
    }

    fn issue_valid(&self, names: &[&str], validity: Validity) -> ServerCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("server parameters");
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let now = std::time::SystemTime::now();
        let (from, to) = match validity {
            Validity::Now => (
                now - Duration::from_secs(3600),
                now + Duration::from_secs(24 * 3600),
            ),
            Validity::Expired => (
                now - Duration::from_secs(2 * 365 * 24 * 3600),
                now - Duration::from_secs(365 * 24 * 3600),
            ),
        };
        params.not_before = from.into();
        params.not_after = to.into();
        let key = KeyPair::generate().expect("a server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a server certificate");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

enum Validity {
    Now,
    Expired,
}

impl ServerCert {
    /// Writes `dir/<stem>.crt` and `dir/<stem>.key` (mode 0600) and answers their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("writing the certificate");
        std::fs::write(&key, &self.key_pem).expect("writing the key");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("restricting the key file");
        (cert, key)
    }

    /// A rustls server configuration serving this certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("the certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("the key PEM");
        // ring, as in leased (its deprecation asks for aws-lc-rs, a C build kept out).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("a server configuration");
        Arc::new(config)
    }
}

/// Serves `router` over https with `cert` on a free port of 127.0.0.1, on the current tokio
/// runtime, until the runtime ends. A handshake that fails (a client that does not trust the
/// certificate) just closes that connection.
pub async fn serve_https(router: axum::Router, cert: &ServerCert) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding an https port");
    let addr = listener.local_addr().expect("its address");
    let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config());
    tokio::spawn(async move {
        let listener = TlsListener { listener, acceptor };
        let _ = axum::serve(listener, router).await;
    });
    addr
}

struct TlsListener {
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            // In line: test servers see few clients, and a failed handshake fails fast.
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(tcp)).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// `socat OPENSSL-LISTEN` on a free port of 127.0.0.1 in front of a plain server on
/// 127.0.0.1:`backend` (an OpenSSL server, as a lab's nginx or HAProxy would be). It stops when
/// dropped, and also when the test process dies (it watches our end of its stdin).
pub struct TlsTerminator {
    pub port: u16,
    child: Child,
}

/// Supervises socat: stops it when fd 3 (our stdin, the lifeline) reaches end of file.
const LIFELINE: &str = r#"
exec 3<&0
"$@" </dev/null &
server=$!
echo "$server"
( cat <&3 >/dev/null; kill "$server" 2>/dev/null ) &
wait "$server"
"#;

impl TlsTerminator {
    /// Starts socat with `cert` in front of 127.0.0.1:`backend` and waits until it accepts.
    pub fn start(cert: &ServerCert, dir: &Path, backend: u16) -> TlsTerminator {
        let (cert_file, key_file) = cert.write(dir, &format!("socat-{backend}"));
        let port = free_port();
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={},key={}",
            cert_file.display(),
            key_file.display()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(LIFELINE)
            .arg("socat")
            .arg("socat")
            .arg(listen)
            .arg(format!("TCP:127.0.0.1:{backend}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting socat (Debian: socat)");
        let mut pid = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut pid);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "socat did not listen on {port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsTerminator { port, child }
    }
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        // Closing the lifeline stops socat; then the supervising shell ends.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
