//! One file per group of endpoints (docs/architecture.md §3).

pub mod artifacts;
pub mod boards;
pub mod health;
pub mod lease;
pub mod power;
pub mod queue;
pub mod remote;
pub mod runs;
pub mod workers;
