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

/// The system's clock corrected by an offset: hosts sharing a database
/// read the database's clock through it, so that every host judges leases
/// on one clock (a host whose own clock is minutes off neither rescues a
/// live job early nor keeps a dead one late).
///
/// The offset is measured by [`FollowedClock::follow`] from one round
/// trip (the database's time against the midpoint of the local times
/// around the query), so it is right to within half a round trip, and
/// measured again from time to time to follow drift and steps of either
/// clock. Until the first measurement the offset is 0.
#[derive(Debug)]
pub struct FollowedClock {
    /// Added to the system clock, ms.
    offset: AtomicI64,
    /// Pretended error of the system clock, ms (a test's way to run a
    /// host with a wrong clock); 0 normally.
    skew: Millis,
}

impl FollowedClock {
    /// A clock reading the system's until [`follow`](Self::follow) is
    /// told the source's time; `skew` is added to the system's reading
    /// (0 except in tests of a host with a wrong clock).
    pub fn new(skew: Millis) -> Self {
        FollowedClock {
            offset: AtomicI64::new(0),
            skew,
        }
    }

    /// This host's own (possibly wrong) reading, before the offset.
    pub fn local(&self) -> Millis {
        SystemClock.now().saturating_add(self.skew)
    }

    /// Takes the source's reading `source`, made between the local
    /// readings `before` and `after`: from now on the clock reads the
    /// source's time. Returns the offset now applied.
    pub fn follow(&self, before: Millis, source: Millis, after: Millis) -> Millis {
        let midpoint = before + (after - before) / 2;
        let offset = source - midpoint;
        self.offset.store(offset, Ordering::SeqCst);
        offset
    }

    /// The offset applied now, ms (source minus local).
    pub fn offset(&self) -> Millis {
        self.offset.load(Ordering::SeqCst)
    }
}

impl Clock for FollowedClock {
    fn now(&self) -> Millis {
        self.local().saturating_add(self.offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_followed_clock_reads_the_source_whatever_its_own_error() {
        let clock = FollowedClock::new(600_000);
        assert_eq!(clock.offset(), 0, "its own reading until it follows");
        // Asked between local 1,000 and 1,010, the source said 5,000: at
        // the midpoint (1,005) the source was 3,995 ahead.
        assert_eq!(clock.follow(1_000, 5_000, 1_010), 3_995);
        assert_eq!(clock.offset(), 3_995);
        let (local, now) = (clock.local(), clock.now());
        assert!(now - local >= 3_995, "{now} vs {local}");
        // The skew is the pretended error of the system clock.
        assert!(clock.local() >= SystemClock.now() + 600_000);
    }
}
