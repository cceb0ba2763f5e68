//! leased: the socv lab daemon. It owns leases, the wait queue, board health and power, and
//! serves them over HTTP/JSON. `serve` runs it in-process (used by the binary, `socv demo` and
//! the tests).

pub mod api;
pub mod auth;
pub mod cause;
pub mod config;
pub mod lab;
pub mod notify;
pub mod power;
pub mod prefect;
pub mod server;
pub mod store;
pub mod tls;

pub use config::Config;
pub use server::serve;
#[doc(hidden)]
pub mod testing;
