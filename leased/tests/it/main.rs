//! leased's integration tests, one binary (`cargo test -p leased --test it`): one module per
//! area, and `common`, what they share (a leased process, an HTTP client, the store backends of
//! the conformance suites). Real servers (Redis, Prefect, snmpd, TLS) come from the test kit
//! (`socv-testkit`, tests/kit).
//!
//! One area: `cargo test -p leased --test it -- store_conformance::`; one backend of a
//! conformance suite: `-- store_conformance::redis::`.

mod common;

mod api;
mod artifacts;
mod contention;
mod daemon;
mod history;
mod notify;
mod power;
mod power_snmp;
mod prefect;
mod prefect_remote;
mod prefect_setup;
mod prefect_worker;
mod run_store_conformance;
mod store_conformance;
mod tls;
