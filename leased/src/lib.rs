//! leased: the socv lab daemon. It owns leases, the wait queue, board health and power, and
//! serves them over HTTP/JSON. `serve` runs it in-process (used by the binary, `socv demo` and
//! the tests).

pub mod artifacts;
pub mod auth;
pub mod config;
pub mod lab;
pub mod notify;
pub mod power;
pub mod prefect;
pub mod server;
pub mod store;

pub use config::Config;
pub use server::serve;
/// The wire types, from the contract crate (`leased/api`).
pub use socv_api as api;
/// TLS trust and failure words, shared with socv (`leased/http`).
pub use socv_http::{cause, tls};
