//! Time as the queue sees it: milliseconds since the Unix epoch, read
//! through a [`Clock`] so that tests drive time instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis)
    }
}

/// A clock that only moves when told to (or by a fixed step each time it
/// is read). Clones share the time.
#[derive(Clone, Debug)]
pub struct TestClock {
    now: Arc<AtomicI64>,
    step: Millis,
}

impl TestClock {
    /// A clock stopped at `start`.
    pub fn new(start: Millis) -> Self {
        Self::stepping(start, 0)
    }

    /// A clock that moves forward by `step` ms each time it is read, so
    /// that successive events get distinct, ordered times.
    pub fn stepping(start: Millis, step: Millis) -> Self {
        TestClock {
            now: Arc::new(AtomicI64::new(start)),
            step,
        }
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance(&self, ms: Millis) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: Millis) {
        self.now.store(at, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Millis {
        self.now.fetch_add(self.step, Ordering::SeqCst)
    }
}
