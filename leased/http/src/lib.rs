//! HTTP plumbing that socv and leased share: clients that trust the system's roots plus a lab's
//! CA ([`tls`]) and the plain words for what went wrong on the way ([`cause`]).

pub mod cause;
pub mod tls;
