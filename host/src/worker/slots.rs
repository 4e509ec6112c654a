//! The pool's slots: how many jobs may run at once, and what each slot is
//! doing.
//!
//! A slot is a place for one running job. The pool runs at most
//! [`Slots::target`] jobs at once: the dispatcher takes a permit of the
//! slots' semaphore before it starts a job, then `Slots::occupy` puts the
//! job in an idle slot. The scaler moves the target between the pool's
//! minimum and maximum ([`Slots::set_target`]); the watchdog declares a
//! slot stuck when its job has not come back long after its deadline
//! ([`Slots::declare_stuck`]) and replaces it, so the pool keeps its size.
//!
//! Permits: the semaphore holds one permit per slot that may take a job.
//! A job's permit goes back when its job ends, unless its slot was
//! retired meanwhile (scaled down while busy: `stopping`; or declared
//! `stuck`, whose capacity was already replaced): then the permit is
//! forgotten and the slot removed.

use super::scale::Change;
use crate::clock::Millis;
use crate::job::{Job, JobId, ModuleRef};
use crate::store::Lease;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a slot is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Waiting for a job.
    Idle,
    /// Running a job.
    Busy,
    /// Running a job, and removed when it ends (the pool scaled down).
    Stopping,
    /// Its job is long past its deadline and has not come back: the slot
    /// was abandoned and replaced, and is removed if the job ever ends.
    Stuck,
}

impl SlotState {
    /// Its name in the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotState::Idle => "idle",
            SlotState::Busy => "busy",
            SlotState::Stopping => "stopping",
            SlotState::Stuck => "stuck",
        }
    }
}

/// The job a slot runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotJob {
    /// The job.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Its module.
    pub module: ModuleRef,
    /// Its attempt.
    pub attempt: u32,
    /// When its attempt must end (start plus its timeout).
    pub deadline: Millis,
}

/// A slot as [`Slots::snapshot`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Its number (never reused by this host).
    pub id: u64,
    /// What it is doing.
    pub state: SlotState,
    /// The job it runs (busy, stopping, stuck).
    pub job: Option<SlotJob>,
    /// Since when it is in this state.
    pub since: Millis,
    /// Jobs it ran to an end.
    pub jobs_done: u64,
    /// Of those, how many failed.
    pub failures: u64,
    /// When it last showed life: took or ended a job, or its running job's
    /// task was polled (a task blocked in host code stops beating).
    pub last_heartbeat: Millis,
}

/// A job the watchdog took from a stuck slot: to be recorded as a failed
/// attempt.
#[derive(Debug)]
pub struct Abandoned {
    /// The job as claimed.
    pub job: Job,
    /// Its lease.
    pub lease: Lease,
    /// When its attempt started.
    pub started_at: Millis,
}

struct Entry {
    slot: Slot,
    /// The running job as claimed, for the watchdog.
    held: Option<(Job, Lease, Millis)>,
}

struct Table {
    slots: Vec<Entry>,
    next_id: u64,
    target: usize,
}

impl Table {
    fn add_idle(&mut self, now: Millis) {
        let id = self.next_id;
        self.next_id += 1;
        self.slots.push(Entry {
            slot: Slot {
                id,
                state: SlotState::Idle,
                job: None,
                since: now,
                jobs_done: 0,
                failures: 0,
                last_heartbeat: now,
            },
            held: None,
        });
    }

    fn position(&self, id: u64) -> Option<usize> {
        self.slots.iter().position(|e| e.slot.id == id)
    }
}

/// The pool's slots. Shared by the dispatcher, the job tasks, the scaler,
/// the watchdog and the API (through the queue).
pub struct Slots {
    permits: Arc<Semaphore>,
    table: Mutex<Table>,
    /// Jobs claimed and waiting for a slot (the dispatcher's buffer).
    buffered: AtomicUsize,
    /// The latest size changes, newest last.
    changes: Mutex<VecDeque<Resize>>,
}

/// A change of the pool's size, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resize {
    /// When.
    pub at: Millis,
    /// The target before.
    pub from: usize,
    /// The target after.
    pub to: usize,
    /// Why.
    pub reason: &'static str,
}

/// Size changes kept for the API.
const CHANGES_KEPT: usize = 20;

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slots")
            .field("target", &self.target())
            .finish_non_exhaustive()
    }
}

/// Counts of slots by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotCounts {
    /// Running a job (including stopping ones).
    pub busy: usize,
    /// Waiting for one.
    pub idle: usize,
    /// Declared stuck.
    pub stuck: usize,
    /// How many slots the pool aims for.
    pub target: usize,
}

impl Slots {
    /// `target` idle slots.
    pub fn new(target: usize, now: Millis) -> Slots {
        let mut table = Table {
            slots: Vec::with_capacity(target),
            next_id: 1,
            target,
        };
        for _ in 0..target {
            table.add_idle(now);
        }
        Slots {
            permits: Arc::new(Semaphore::new(target)),
            table: Mutex::new(table),
            buffered: AtomicUsize::new(0),
            changes: Mutex::new(VecDeque::new()),
        }
    }

    /// The dispatcher holds `n` claimed jobs waiting for a slot.
    pub(super) fn set_buffered(&self, n: usize) {
        self.buffered.store(n, Ordering::Relaxed);
    }

    /// Claimed jobs waiting for a slot.
    pub fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Remembers a size change (the latest few are kept).
    pub(super) fn note_change(&self, at: Millis, from: usize, change: Change) {
        let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        if changes.len() == CHANGES_KEPT {
            changes.pop_front();
        }
        changes.push_back(Resize {
            at,
            from,
            to: change.to,
            reason: change.reason,
        });
    }

    /// The latest size changes, oldest first.
    pub fn changes(&self) -> Vec<Resize> {
        let changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        changes.iter().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The semaphore a job's permit comes from.
    pub(super) fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    /// How many jobs may run at once now.
    pub fn target(&self) -> usize {
        self.lock().target
    }

    /// Puts `job` in an idle slot; the returned guard frees it.
    pub(super) fn occupy(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        job: &Job,
        lease: &Lease,
        now: Millis,
    ) -> Occupied {
        let mut table = self.lock();
        let index = match table
            .slots
            .iter()
            .position(|e| e.slot.state == SlotState::Idle)
        {
            Some(index) => index,
            None => {
                // A permit always has an idle slot; should the two ever
                // disagree, the job still gets a slot.
                table.add_idle(now);
                table.slots.len() - 1
            }
        };
        let entry = &mut table.slots[index];
        entry.slot.state = SlotState::Busy;
        entry.slot.since = now;
        entry.slot.last_heartbeat = now;
        entry.slot.job = Some(SlotJob {
            id: job.id,
            queue: job.queue.clone(),
            module: job.module.clone(),
            attempt: job.attempt,
            deadline: now.saturating_add(i64::try_from(job.limits.timeout_ms).unwrap_or(i64::MAX)),
        });
        entry.held = Some((job.clone(), lease.clone(), now));
        Occupied {
            slots: Arc::clone(self),
            id: entry.slot.id,
            permit: Some(permit),
        }
    }

    /// Every slot, by number.
    pub fn snapshot(&self) -> Vec<Slot> {
        self.lock().slots.iter().map(|e| e.slot.clone()).collect()
    }

    /// Slots by state.
    pub fn counts(&self) -> SlotCounts {
        let table = self.lock();
        let mut counts = SlotCounts {
            target: table.target,
            ..SlotCounts::default()
        };
        for entry in &table.slots {
            match entry.slot.state {
                SlotState::Idle => counts.idle += 1,
                SlotState::Busy | SlotState::Stopping => counts.busy += 1,
                SlotState::Stuck => counts.stuck += 1,
            }
        }
        counts
    }

    /// Moves the target to `target`: new slots are idle at once; removed
    /// ones are idle ones if there are, otherwise busy ones that stop
    /// when their job ends.
    pub fn set_target(&self, target: usize, now: Millis) {
        let mut table = self.lock();
        let old = table.target;
        table.target = target;
        if target > old {
            for _ in old..target {
                table.add_idle(now);
            }
            self.permits.add_permits(target - old);
            return;
        }
        for _ in target..old {
            let idle = table
                .slots
                .iter()
                .position(|e| e.slot.state == SlotState::Idle);
            match idle {
                Some(index) if self.permits.forget_permits(1) == 1 => {
                    table.slots.remove(index);
                }
                _ => {
                    if let Some(entry) = table
                        .slots
                        .iter_mut()
                        .find(|e| e.slot.state == SlotState::Busy)
                    {
                        entry.slot.state = SlotState::Stopping;
                        entry.slot.since = now;
                    }
                }
            }
        }
    }

    /// Declares stuck every running slot whose job is still out `grace_ms`
    /// after its deadline: the slot is abandoned and a new idle one takes
    /// its place. Returns their jobs, to be recorded as failed attempts.
    pub fn declare_stuck(&self, now: Millis, grace_ms: i64) -> Vec<Abandoned> {
        let mut table = self.lock();
        let mut abandoned = Vec::new();
        let mut replace = 0;
        for entry in &mut table.slots {
            let running = matches!(entry.slot.state, SlotState::Busy | SlotState::Stopping);
            let overdue = entry
                .slot
                .job
                .as_ref()
                .is_some_and(|job| now > job.deadline.saturating_add(grace_ms));
            if !(running && overdue) {
                continue;
            }
            if entry.slot.state == SlotState::Busy {
                replace += 1;
            }
            entry.slot.state = SlotState::Stuck;
            entry.slot.since = now;
            if let Some((job, lease, started_at)) = entry.held.take() {
                abandoned.push(Abandoned {
                    job,
                    lease,
                    started_at,
                });
            }
        }
        for _ in 0..replace {
            table.add_idle(now);
        }
        self.permits.add_permits(replace);
        abandoned
    }

    fn heartbeat(&self, id: u64, now: Millis) {
        let mut table = self.lock();
        if let Some(index) = table.position(id) {
            table.slots[index].slot.last_heartbeat = now;
        }
    }

    fn vacate(&self, id: u64, failed: bool, now: Millis, permit: OwnedSemaphorePermit) {
        let mut table = self.lock();
        let Some(index) = table.position(id) else {
            return;
        };
        let entry = &mut table.slots[index];
        match entry.slot.state {
            SlotState::Busy => {
                entry.slot.state = SlotState::Idle;
                entry.slot.job = None;
                entry.held = None;
                entry.slot.since = now;
                entry.slot.last_heartbeat = now;
                entry.slot.jobs_done += 1;
                entry.slot.failures += u64::from(failed);
                drop(table);
                drop(permit);
            }
            SlotState::Stopping | SlotState::Stuck | SlotState::Idle => {
                // Retired: its capacity is gone (scaled down) or was
                // replaced (stuck).
                table.slots.remove(index);
                permit.forget();
            }
        }
    }
}

/// A slot taken by a running job. [`Occupied::finish`] frees it; dropped
/// without that (the task panicked or was aborted), the slot is freed as
/// failed.
pub struct Occupied {
    slots: Arc<Slots>,
    id: u64,
    permit: Option<OwnedSemaphorePermit>,
}

impl Occupied {
    /// The slot's number.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The slot shows life.
    pub fn beat(&self, now: Millis) {
        self.slots.heartbeat(self.id, now);
    }

    /// The job ended; the slot takes another (or goes, if retired).
    pub fn finish(mut self, failed: bool, now: Millis) {
        if let Some(permit) = self.permit.take() {
            self.slots.vacate(self.id, failed, now, permit);
        }
    }
}

impl Drop for Occupied {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            let now = self
                .slots
                .lock()
                .slots
                .iter()
                .find(|e| e.slot.id == self.id)
                .map_or(0, |e| e.slot.last_heartbeat);
            self.slots.vacate(self.id, true, now, permit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobState;
    use crate::limits::Limits;
    use crate::policy::RetryPolicy;

    fn job(id: JobId) -> (Job, Lease) {
        let job = Job {
            id,
            queue: "default".to_owned(),
            module: ModuleRef {
                hash: "ab".repeat(32),
                name: Some("hello".to_owned()),
            },
            state: JobState::Running,
            priority: 5,
            attempt: 1,
            max_attempts: 3,
            retry: RetryPolicy::default(),
            limits: Limits {
                timeout_ms: 1_000,
                ..Limits::default()
            },
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
        };
        let lease = Lease {
            id,
            token: format!("t{id}"),
        };
        (job, lease)
    }

    fn take(slots: &Arc<Slots>, id: JobId, now: Millis) -> Occupied {
        let permit = slots
            .permits()
            .clone()
            .try_acquire_owned()
            .expect("a free permit");
        let (job, lease) = job(id);
        slots.occupy(permit, &job, &lease, now)
    }

    fn states(slots: &Slots) -> Vec<&'static str> {
        slots.snapshot().iter().map(|s| s.state.as_str()).collect()
    }

    #[test]
    fn a_finished_job_frees_its_slot_and_counts_in_it() {
        let slots = Arc::new(Slots::new(2, 0));
        let a = take(&slots, 1, 10);
        assert_eq!(states(&slots), ["busy", "idle"]);
        assert_eq!(slots.permits().available_permits(), 1);
        a.finish(true, 20);
        let slot = &slots.snapshot()[0];
        assert_eq!(
            (slot.state, slot.jobs_done, slot.failures),
            (SlotState::Idle, 1, 1)
        );
        assert_eq!(slot.since, 20);
        assert_eq!(slots.permits().available_permits(), 2);
    }

    #[test]
    fn scaling_down_removes_idle_slots_first_then_stops_busy_ones() {
        let slots = Arc::new(Slots::new(3, 0));
        let a = take(&slots, 1, 0);
        let b = take(&slots, 2, 0);
        slots.set_target(1, 5);
        // One idle slot removed at once; one busy slot stops when done.
        assert_eq!(states(&slots), ["stopping", "busy"]);
        assert_eq!(slots.permits().available_permits(), 0);
        a.finish(false, 6);
        assert_eq!(states(&slots), ["busy"]);
        assert_eq!(slots.permits().available_permits(), 0);
        b.finish(false, 7);
        assert_eq!(states(&slots), ["idle"]);
        assert_eq!(slots.permits().available_permits(), 1);
        slots.set_target(3, 8);
        assert_eq!(states(&slots), ["idle", "idle", "idle"]);
        assert_eq!(slots.permits().available_permits(), 3);
    }

    #[test]
    fn a_stuck_slot_is_replaced_and_removed_if_its_job_ever_returns() {
        let slots = Arc::new(Slots::new(1, 0));
        let a = take(&slots, 7, 100);
        // Deadline 1_100; grace 500: not stuck at 1_600, stuck after.
        assert!(slots.declare_stuck(1_600, 500).is_empty());
        let abandoned = slots.declare_stuck(1_601, 500);
        assert_eq!(abandoned.len(), 1);
        assert_eq!((abandoned[0].job.id, abandoned[0].started_at), (7, 100));
        assert_eq!(states(&slots), ["stuck", "idle"]);
        assert_eq!(slots.permits().available_permits(), 1);
        assert_eq!(slots.counts().stuck, 1);
        // Declared once only.
        assert!(slots.declare_stuck(9_999, 500).is_empty());
        a.finish(false, 10_000);
        assert_eq!(states(&slots), ["idle"]);
        assert_eq!(slots.permits().available_permits(), 1);
    }

    #[test]
    fn a_slot_dropped_without_finishing_is_freed_as_failed() {
        let slots = Arc::new(Slots::new(1, 0));
        drop(take(&slots, 1, 0));
        let slot = &slots.snapshot()[0];
        assert_eq!((slot.state, slot.failures), (SlotState::Idle, 1));
        assert_eq!(slots.permits().available_permits(), 1);
    }
}
