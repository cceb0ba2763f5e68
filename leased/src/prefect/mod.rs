//! Run history in Prefect (docs/architecture.md §6): the deliverer that carries the store's
//! outbox to Prefect, in order, whenever Prefect answers; the REST client itself (and the lab's
//! layout in Prefect) is the `socv-prefect` crate (`leased/prefect`), re-exported here.

pub mod deliver;

pub use deliver::{DeliverOptions, Deliverer, DelivererHandle};
pub use socv_prefect::{
    FLOW_NAME, LogsPosted, PrefectClient, PrefectError, StateOutcome, client, setup,
};
