//! leased: the socv lab daemon. It owns leases, the wait queue, board health and power, and
//! serves them over HTTP/JSON. `serve` runs it in-process (used by the binary, `socv demo` and
//! the tests).

pub mod api;
pub mod lab;
pub mod store;
