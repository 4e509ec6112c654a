//! Compilation as a bounded resource: at most `limit` modules compile at
//! once, and the same bytes compile once however many loads ask for them
//! at the same time.
//!
//! A compile holds a [`Slot`] until Cranelift actually finishes, even after
//! its caller gave up on a timeout (a compiler thread cannot be stopped):
//! runaway compiles still count against the bound, so hostile uploads can
//! occupy at most `limit` threads. A load holds a [`Flight`] for its
//! module's hash until it has put the module in the engine's map; another
//! load of the same hash waits for it and then finds the module there.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How a load waits for a compile slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Refuse at once when every slot is busy (an upload: the client is
    /// told to come back).
    Refuse,
    /// Wait up to this long for a slot (a job's module: the attempt fails,
    /// retryably, after that).
    Wait(Duration),
}

/// Every compile slot was busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// The bound and the hashes being loaded.
#[derive(Debug)]
pub(super) struct Compiles {
    limit: usize,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    loading: HashSet<blake3::Hash>,
    waiting: usize,
    compiled: u64,
}

impl Compiles {
    /// At most `limit` (at least 1) compiles at once.
    pub(super) fn new(limit: usize) -> Arc<Compiles> {
        Arc::new(Compiles {
            limit: limit.max(1),
            state: Mutex::default(),
            changed: Condvar::new(),
        })
    }

    /// Starts loading `hash`: waits (up to `patience`) while another load
    /// of the same hash is under way. `None` when the wait ran out; the
    /// caller should look for the module again either way, since the other
    /// load may have put it in the map.
    pub(super) fn flight(
        self: &Arc<Self>,
        hash: blake3::Hash,
        patience: Duration,
    ) -> Option<Flight> {
        let deadline = Instant::now() + patience;
        let mut state = self.state.lock().expect("compile state");
        while state.loading.contains(&hash) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state.waiting += 1;
            state = self
                .changed
                .wait_timeout(state, left)
                .expect("compile state")
                .0;
            state.waiting -= 1;
        }
        state.loading.insert(hash);
        Some(Flight {
            compiles: Arc::clone(self),
            hash,
        })
    }

    /// Takes a compile slot, as `admission` says.
    pub(super) fn slot(self: &Arc<Self>, admission: Admission) -> Result<Slot, Busy> {
        let patience = match admission {
            Admission::Refuse => Duration::ZERO,
            Admission::Wait(patience) => patience,
        };
        let deadline = Instant::now() + patience;
        let mut state = self.state.lock().expect("compile state");
        while state.running >= self.limit {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Busy);
            }
            state.waiting += 1;
            state = self
                .changed
                .wait_timeout(state, left)
                .expect("compile state")
                .0;
            state.waiting -= 1;
        }
        state.running += 1;
        Ok(Slot {
            compiles: Arc::clone(self),
        })
    }

    /// Compiles running now (including ones whose caller gave up).
    pub(super) fn running(&self) -> usize {
        self.state.lock().expect("compile state").running
    }

    /// Loads waiting for a slot or for a load of the same hash.
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.state.lock().expect("compile state").waiting
    }

    /// Compiles finished since the engine started.
    pub(super) fn compiled(&self) -> u64 {
        self.state.lock().expect("compile state").compiled
    }
}

/// A load of one hash under way; dropping it lets other loads of the hash
/// go on.
#[derive(Debug)]
pub(super) struct Flight {
    compiles: Arc<Compiles>,
    hash: blake3::Hash,
}

impl Drop for Flight {
    fn drop(&mut self) {
        let mut state = self.compiles.state.lock().expect("compile state");
        state.loading.remove(&self.hash);
        drop(state);
        self.compiles.changed.notify_all();
    }
}

/// A compile slot, held until the compile ends.
#[derive(Debug)]
pub struct Slot {
    compiles: Arc<Compiles>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.compiles.state.lock().expect("compile state");
        state.running -= 1;
        state.compiled += 1;
        drop(state);
        self.compiles.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    /// Waits (without a time limit: the test harness has one) until
    /// `waiters` loads are waiting.
    fn until_waiting(compiles: &Compiles, waiters: usize) {
        while compiles.waiting() < waiters {
            std::thread::yield_now();
        }
    }

    #[test]
    fn past_the_bound_an_upload_is_refused_and_a_job_waits_for_a_slot() {
        let compiles = Compiles::new(2);
        let a = compiles.slot(Admission::Refuse).unwrap();
        let _b = compiles.slot(Admission::Refuse).unwrap();
        assert_eq!(compiles.slot(Admission::Refuse).unwrap_err(), Busy);
        assert_eq!(
            compiles
                .slot(Admission::Wait(Duration::from_millis(1)))
                .unwrap_err(),
            Busy
        );
        let waiter = {
            let compiles = Arc::clone(&compiles);
            std::thread::spawn(move || compiles.slot(Admission::Wait(LONG)).ok())
        };
        until_waiting(&compiles, 1);
        drop(a);
        let taken = waiter.join().unwrap();
        assert!(taken.is_some(), "the waiting load got the freed slot");
        assert_eq!(compiles.running(), 2);
        drop(taken);
        assert_eq!(compiles.running(), 1);
    }

    #[test]
    fn a_second_load_of_the_same_hash_waits_for_the_first() {
        let compiles = Compiles::new(4);
        let hash = blake3::hash(b"module");
        let first = compiles.flight(hash, LONG).unwrap();
        // Another hash is not held up.
        drop(compiles.flight(blake3::hash(b"other"), LONG).unwrap());
        let second = {
            let compiles = Arc::clone(&compiles);
            std::thread::spawn(move || compiles.flight(hash, LONG).is_some())
        };
        until_waiting(&compiles, 1);
        drop(first);
        assert!(second.join().unwrap());
        // A wait that runs out says so.
        let _held = compiles.flight(hash, LONG).unwrap();
        assert!(compiles.flight(hash, Duration::from_millis(1)).is_none());
    }
}
