//! Taking a board and keeping it: the request ([`LeaseWish`]), waiting fairly in the queue
//! with its progress shown, undoing a half-made lease on a signal ([`take`]); renewing it for as
//! long as it is needed ([`keep`]); and the board behind a "LEASE | BOARD" argument ([`held`]).
//!
//! Used alike by `socv lease`, `socv run`, `socv batch` and the commands on a held board; no
//! type here knows the command line.

pub mod held;
pub mod keep;
pub mod take;

pub use held::{HeldBoard, find, resolve, session_config};
pub use keep::{keep_renewed, renew_interval};
pub use take::{LeaseWish, POLL_WAIT_S, Target, WAIT_FOREVER_S, WaitLimit, acquire};
