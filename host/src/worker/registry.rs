//! The in-flight registry: the jobs this host holds a lease on, from the
//! claim until their outcome is written. Per host, never shared: another
//! host learns about these jobs only through the store.
//!
//! An entry is keyed by job id and checked against its lease token, so a
//! stale task (whose job was rescued and claimed again, here or elsewhere)
//! can never touch the entry of the job's current lease. An entry is
//! `buffered` (claimed ahead, waiting for a slot), `running`, or
//! `recording` (finished, its outcome not yet written): in every phase its
//! lease is renewed and a cancel reaches it.
//!
//! A cancel can arrive between a claim's commit and the claimed jobs'
//! registration. While a claim is in flight, a cancel of a job the
//! registry does not hold is remembered, and the job is stopped the moment
//! it registers.

use crate::clock::Millis;
use crate::engine::CancelToken;
use crate::job::JobId;
use crate::report::Progress;
use crate::store::{Claimed, Lease};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Why this host stopped a job it held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A client cancelled it.
    Cancelled,
    /// The store no longer gives this host its lease (rescued, or
    /// cancelled on another host).
    LeaseLost,
    /// This host is shutting down: not the job's doing.
    Shutdown,
}

/// Where a held job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Claimed ahead of need, waiting for a free slot.
    Buffered,
    /// Running since this time.
    Running {
        /// When the attempt started.
        since: Millis,
    },
    /// Finished; its outcome is being written.
    Recording,
}

/// A held job as [`Registry::snapshot`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The job.
    pub id: JobId,
    /// Where it is.
    pub phase: Phase,
    /// Its latest progress.
    pub progress: Option<Progress>,
}

/// The latest progress a running job reported; shared with its guest.
pub type ProgressCell = Arc<Mutex<Option<Progress>>>;

struct Entry {
    token: String,
    cancel: CancelToken,
    progress: ProgressCell,
    phase: Phase,
    stop: Option<Stop>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<JobId, Entry>,
    /// Claims sent to the store whose jobs are not registered yet.
    claims_in_flight: usize,
    /// Jobs cancelled while a claim was in flight that the registry did
    /// not hold: a claim may have taken them.
    cancelled_meanwhile: HashSet<JobId>,
}

/// The jobs this host holds. See the module docs.
#[derive(Default)]
pub struct Registry {
    state: Mutex<State>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("held", &self.lock().jobs.len())
            .finish()
    }
}

/// A claim in flight: until it is dropped (after the claimed jobs are
/// registered), cancels of unknown jobs are remembered.
pub struct ClaimInFlight {
    registry: Arc<Registry>,
}

impl Drop for ClaimInFlight {
    fn drop(&mut self) {
        let mut state = self.registry.lock();
        state.claims_in_flight -= 1;
        if state.claims_in_flight == 0 {
            state.cancelled_meanwhile.clear();
        }
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks a claim as in flight until the returned guard is dropped,
    /// which must happen after its jobs are [registered](Self::register).
    pub fn claiming(self: &Arc<Self>) -> ClaimInFlight {
        self.lock().claims_in_flight += 1;
        ClaimInFlight {
            registry: Arc::clone(self),
        }
    }

    /// Holds freshly claimed jobs (buffered) and returns their cancel
    /// tokens, in order. A job cancelled since its claim committed comes
    /// back already cancelled.
    pub fn register(&self, claimed: &[Claimed]) -> Vec<CancelToken> {
        let mut state = self.lock();
        claimed
            .iter()
            .map(|claimed| {
                let cancel = CancelToken::new();
                let id = claimed.job.id;
                let stop = state.cancelled_meanwhile.remove(&id).then(|| {
                    cancel.cancel();
                    Stop::Cancelled
                });
                state.jobs.insert(
                    id,
                    Entry {
                        token: claimed.token.clone(),
                        cancel: cancel.clone(),
                        progress: ProgressCell::default(),
                        phase: Phase::Buffered,
                        stop,
                    },
                );
                cancel
            })
            .collect()
    }

    /// Marks a buffered job running since `now` and returns where it
    /// reports progress; `None` (and the job forgotten) when it was stopped
    /// while it waited: the store has already moved it on.
    pub fn start(&self, lease: &Lease, now: Millis) -> Option<ProgressCell> {
        let mut state = self.lock();
        let entry = state.jobs.get_mut(&lease.id)?;
        if entry.token != lease.token {
            return None;
        }
        if entry.stop.is_some() || entry.cancel.is_cancelled() {
            state.jobs.remove(&lease.id);
            return None;
        }
        entry.phase = Phase::Running { since: now };
        Some(entry.progress.clone())
    }

    /// Marks a job's attempt finished: its outcome is being written (its
    /// lease is still renewed until then). Returns why this host stopped
    /// it, if it did.
    pub fn finished(&self, lease: &Lease) -> Option<Stop> {
        let mut state = self.lock();
        match state.jobs.get_mut(&lease.id) {
            Some(entry) if entry.token == lease.token => {
                entry.phase = Phase::Recording;
                entry.stop
            }
            _ => None,
        }
    }

    /// Forgets a job whose outcome was written (or given up), if it is
    /// still held under `lease`: the entry of a newer lease is left alone.
    pub fn forget(&self, lease: &Lease) {
        let mut state = self.lock();
        if state
            .jobs
            .get(&lease.id)
            .is_some_and(|entry| entry.token == lease.token)
        {
            state.jobs.remove(&lease.id);
        }
    }

    /// Stops job `id` because a client cancelled it (already committed in
    /// the store). Returns whether this host held it.
    pub fn cancel(&self, id: JobId) -> bool {
        let mut state = self.lock();
        match state.jobs.get_mut(&id) {
            Some(entry) => {
                entry.stop.get_or_insert(Stop::Cancelled);
                entry.cancel.cancel();
                true
            }
            None => {
                if state.claims_in_flight > 0 {
                    state.cancelled_meanwhile.insert(id);
                }
                false
            }
        }
    }

    /// Stops jobs whose lease the store no longer gives this host.
    pub fn lost(&self, leases: &[Lease]) {
        let mut state = self.lock();
        for lease in leases {
            if let Some(entry) = state.jobs.get_mut(&lease.id)
                && entry.token == lease.token
            {
                entry.stop.get_or_insert(Stop::LeaseLost);
                entry.cancel.cancel();
            }
        }
    }

    /// Interrupts every held job because the host is shutting down;
    /// returns how many.
    pub fn interrupt_all(&self) -> usize {
        let mut state = self.lock();
        for entry in state.jobs.values_mut() {
            entry.stop.get_or_insert(Stop::Shutdown);
            entry.cancel.cancel();
        }
        state.jobs.len()
    }

    /// Every held lease, for renewal.
    pub fn leases(&self) -> Vec<Lease> {
        self.lock()
            .jobs
            .iter()
            .map(|(id, entry)| Lease {
                id: *id,
                token: entry.token.clone(),
            })
            .collect()
    }

    /// Whether more outcomes are on their way: some job is buffered or
    /// running.
    pub fn more_coming(&self) -> bool {
        self.lock()
            .jobs
            .values()
            .any(|entry| entry.phase != Phase::Recording)
    }

    /// How many held jobs are running now.
    pub fn running(&self) -> usize {
        self.lock()
            .jobs
            .values()
            .filter(|entry| matches!(entry.phase, Phase::Running { .. }))
            .count()
    }

    /// How many jobs are held, in every phase.
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Whether no job is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The latest progress of job `id`, when it runs here.
    pub fn progress(&self, id: JobId) -> Option<Progress> {
        let state = self.lock();
        let entry = state.jobs.get(&id)?;
        entry.progress.lock().ok()?.clone()
    }

    /// When job `id`'s current attempt started, when it runs here.
    pub fn running_since(&self, id: JobId) -> Option<Millis> {
        match self.lock().jobs.get(&id)?.phase {
            Phase::Running { since } => Some(since),
            _ => None,
        }
    }

    /// Whether job `id` is held here (buffered, running or recording).
    pub fn holds(&self, id: JobId) -> bool {
        self.lock().jobs.contains_key(&id)
    }

    /// Every held job, by id.
    pub fn snapshot(&self) -> Vec<Held> {
        let state = self.lock();
        let mut held: Vec<Held> = state
            .jobs
            .iter()
            .map(|(id, entry)| Held {
                id: *id,
                phase: entry.phase,
                progress: entry.progress.lock().ok().and_then(|p| p.clone()),
            })
            .collect();
        held.sort_by_key(|h| h.id);
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Job, JobState, ModuleRef};
    use crate::json::Json;
    use crate::limits::Limits;
    use crate::policy::RetryPolicy;

    fn claimed(id: JobId, token: &str) -> Claimed {
        Claimed {
            job: Job {
                id,
                queue: "default".to_owned(),
                module: ModuleRef {
                    hash: "h".to_owned(),
                    name: None,
                },
                state: JobState::Running,
                priority: 5,
                attempt: 1,
                max_attempts: 3,
                retry: RetryPolicy::default(),
                limits: Limits::default(),
                run_at: 0,
                created_at: 0,
                started_at: None,
                finished_at: None,
                last_error: None,
                unique_key: None,
                workflow: None,
                node: None,
                parent: None,
                schedule: None,
                grants: None,
                trace: None,
            },
            input: Json::null(),
            token: token.to_owned(),
            dependencies: Vec::new(),
        }
    }

    fn lease(id: JobId, token: &str) -> Lease {
        Lease {
            id,
            token: token.to_owned(),
        }
    }

    #[test]
    fn a_stale_lease_cannot_touch_the_entry_of_a_newer_one() {
        let registry = Registry::new();
        registry.register(&[claimed(1, "old")]);
        // The job was rescued and claimed again (by this host) under a new
        // token before the old task finished.
        registry.register(&[claimed(1, "new")]);
        assert!(registry.start(&lease(1, "old"), 10).is_none());
        assert_eq!(registry.finished(&lease(1, "old")), None);
        registry.forget(&lease(1, "old"));
        assert_eq!(registry.leases(), vec![lease(1, "new")], "still renewed");
        assert!(registry.start(&lease(1, "new"), 20).is_some());
        assert_eq!(registry.running_since(1), Some(20));
        registry.forget(&lease(1, "new"));
        assert!(registry.is_empty());
    }

    #[test]
    fn a_cancel_between_a_claims_commit_and_its_registration_stops_the_job() {
        let registry = Arc::new(Registry::new());
        let claim = registry.claiming();
        // The claim has committed; the cancel commits and arrives before
        // the claimed jobs are registered.
        assert!(!registry.cancel(7));
        let tokens = registry.register(&[claimed(7, "t"), claimed(8, "u")]);
        drop(claim);
        assert!(tokens[0].is_cancelled(), "stopped as soon as it registered");
        assert!(!tokens[1].is_cancelled());
        assert!(registry.start(&lease(7, "t"), 1).is_none(), "never starts");
        // With no claim in flight, nothing is remembered.
        assert!(!registry.cancel(9));
        registry.register(&[claimed(9, "v")]);
        assert!(registry.start(&lease(9, "v"), 1).is_some());
    }

    #[test]
    fn a_stop_records_its_first_reason() {
        let registry = Registry::new();
        registry.register(&[claimed(1, "a"), claimed(2, "b"), claimed(3, "c")]);
        for id in 1..=3 {
            registry.start(&lease(id, ["a", "b", "c"][id as usize - 1]), 5);
        }
        registry.cancel(1);
        registry.lost(&[lease(2, "b"), lease(3, "stale")]);
        assert_eq!(registry.interrupt_all(), 3);
        assert_eq!(registry.finished(&lease(1, "a")), Some(Stop::Cancelled));
        assert_eq!(registry.finished(&lease(2, "b")), Some(Stop::LeaseLost));
        assert_eq!(registry.finished(&lease(3, "c")), Some(Stop::Shutdown));
        assert!(!registry.more_coming(), "all are recording");
    }
}
