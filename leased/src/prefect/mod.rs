//! Run history in Prefect (docs/architecture.md §6): a REST client for the few calls leased needs, and the
//! deliverer that carries the store's outbox to it, in order, whenever Prefect answers.

pub mod client;
pub mod deliver;
pub mod setup;

pub use client::{LogsPosted, PrefectClient, PrefectError, StateOutcome};
pub use deliver::{DeliverOptions, Deliverer, DelivererHandle};

/// The flow every socv run is a flow run of.
pub const FLOW_NAME: &str = "socv-run";
