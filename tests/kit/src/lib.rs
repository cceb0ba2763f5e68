//! Real servers and credentials for socv's tests, shared by the socv and leased suites: a test
//! certificate authority made afresh in every test (no private key is ever committed), https
//! endpoints on 127.0.0.1, and a TLS terminator (socat, an OpenSSL peer) in front of a plain
//! server.

pub mod tls;

pub use tls::{ServerCert, TestCa, TlsTerminator, serve_https};
