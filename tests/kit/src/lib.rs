//! Real servers and lab files for socv's tests, shared by the socv and leased suites (it depends
//! on neither, so that each suite links one copy of its own crate):
//!
//! - [`port`]: the one way to find a free loopback port;
//! - [`tls`]: a test certificate authority made afresh in every test (no private key is ever
//!   committed), https endpoints on 127.0.0.1, and a TLS terminator (socat, an OpenSSL peer) in
//!   front of a plain server;
//! - [`redis`] and [`prefect`]: a throwaway `redis-server` and a real Prefect server;
//! - [`telnetd`] and [`ser2net`]: busybox telnetd and ser2net in front of a pty, consoles that
//!   log in like boards (what they share is in [`console`]); [`disk`]: a small file system;
//! - [`snmpd`]: net-snmp's agent playing an APC PDU;
//! - [`lab_file`]: boards.yaml built in code.
//!
//! Every server listens on 127.0.0.1 only, is stopped on drop, and makes its test fail (never
//! skip) when its program is missing; `tests/run.sh` installs them all.

pub mod console;
pub mod disk;
pub mod lab_file;
pub mod port;
pub mod prefect;
pub mod redis;
pub mod ser2net;
pub mod snmpd;
mod supervise;
pub mod telnetd;
pub mod tls;

pub use console::{BoardShell, PASSWORD, USER};
pub use disk::SmallDisk;
pub use lab_file::{Board, LabFile, Pdu};
pub use port::{free_port, free_udp_port};
pub use prefect::{PrefectServer, prefect_executable};
pub use redis::RedisServer;
pub use ser2net::Ser2net;
pub use snmpd::ApcSnmpAgent;
pub use telnetd::BusyboxTelnetd;
pub use tls::{ServerCert, TestCa, TlsTerminator, serve_https};
