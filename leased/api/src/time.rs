//! Time as socv and leased agree on it: Unix milliseconds read from one [`Clock`], and one
//! [`Backoff`] for everything that tries again (notifications, Prefect deliveries, PDU actions).
//!
//! Every lease, ticket and run carries Unix ms, so daemons sharing one Redis and the socv that
//! talks to them read the same instant the same way. The store takes `now` as a parameter; the
//! daemon reads it from its [`Clock`], which a test makes [`Clock::manual`] and moves by hand
//! (with `tokio::time::pause` / `advance` for the sleeps beside it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// The system's wall clock as Unix ms (0 for a clock set before 1970).
pub fn now_ms() -> Millis {
    unix_ms(SystemTime::now())
}

/// `at` as Unix ms (0 before 1970).
pub fn unix_ms(at: SystemTime) -> Millis {
    at.duration_since(UNIX_EPOCH)
        .map(|d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
        .unwrap_or(0)
}

/// Unix ms as a point in time.
pub fn system_time(ms: Millis) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Where "now" comes from: the system's wall clock, or a hand-moved one in tests. Cheap to
/// clone; clones of a manual clock move together.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that reads `at` until [`Clock::advance`] or [`Clock::set`] moves it.
    pub fn manual(at: Millis) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicU64::new(at))),
        }
    }

    /// Now, as Unix ms.
    pub fn now_ms(&self) -> Millis {
        match &self.manual {
            Some(at) => at.load(Ordering::SeqCst),
            None => now_ms(),
        }
    }

    /// Moves a manual clock on by `by`; the system clock cannot be moved (a no-op, reported as
    /// `false`).
    pub fn advance(&self, by: Duration) -> bool {
        let by = Millis::try_from(by.as_millis()).unwrap_or(Millis::MAX);
        match &self.manual {
            Some(at) => {
                let _ = at.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                    Some(t.saturating_add(by))
                });
                true
            }
            None => false,
        }
    }

    /// Sets a manual clock to `at` (a no-op for the system clock, reported as `false`).
    pub fn set(&self, at: Millis) -> bool {
        match &self.manual {
            Some(now) => {
                now.store(at, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

/// Exponential backoff: `first`, then twice as long after each further failure, never longer
/// than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max }
    }

    /// The wait after the `failures`-th failure in a row (1-based; 0 counts as 1).
    pub fn after(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// A sequence of waits that starts at `first` again after [`Waits::reset`].
    pub fn waits(self) -> Waits {
        Waits {
            backoff: self,
            failures: 0,
        }
    }
}

/// The waits of one [`Backoff`] in a row of failures.
#[derive(Debug, Clone)]
pub struct Waits {
    backoff: Backoff,
    failures: u32,
}

impl Waits {
    /// The wait after one more failure.
    pub fn next_wait(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.backoff.after(self.failures)
    }

    /// A success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_first_and_stops_at_max() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let waits: Vec<u64> = (0..=7).map(|n| b.after(n).as_secs()).collect();
        assert_eq!(waits, [1, 1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.after(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn waits_start_over_after_a_success() {
        let mut w = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).waits();
        let first: Vec<u128> = (0..5).map(|_| w.next_wait().as_millis()).collect();
        assert_eq!(first, [100, 200, 400, 800, 1000]);
        assert_eq!(w.failures(), 5);
        w.reset();
        assert_eq!(w.next_wait(), Duration::from_millis(100));
    }

    #[test]
    fn a_manual_clock_moves_only_by_hand_and_its_clones_move_with_it() {
        let clock = Clock::manual(1_000);
        let clone = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        assert!(clock.advance(Duration::from_secs(30)));
        assert_eq!(clone.now_ms(), 31_000);
        assert!(clone.set(5));
        assert_eq!(clock.now_ms(), 5);
    }

    #[test]
    fn the_system_clock_reads_the_wall_clock_and_cannot_be_moved() {
        let clock = Clock::system();
        let before = now_ms();
        let read = clock.now_ms();
        assert!(read >= before && read <= now_ms());
        assert!(!clock.advance(Duration::from_secs(1)));
        assert!(!clock.set(0));
        assert_eq!(unix_ms(system_time(read)), read);
    }
}
