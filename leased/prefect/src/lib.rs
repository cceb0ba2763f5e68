//! Prefect 3's REST API as socv uses it (verified against 3.9.1; see
//! `docs/reference/prefect-rest.md` and `docs/reference/prefect-worker.md`): the run records
//! leased delivers ([`client`]: flow runs, states, logs, artifacts) and the lab's layout for
//! distributed runs ([`setup`]: the work pool, its priority queues, the deployment) and a
//! worker's side of the pool ([`worker`]: heartbeats, claims, hand-backs, cancellations).
//!
//! Its own crate (reqwest and the shared TLS trust, no store or server) so that both leased and
//! `socv worker` speak to Prefect through one client.

pub mod client;
mod config;
pub mod setup;
pub mod worker;

pub use client::{LogsPosted, PrefectClient, PrefectError, StateOutcome};
pub use config::PrefectConfig;

/// The flow every socv run is a flow run of.
pub const FLOW_NAME: &str = "socv-run";
