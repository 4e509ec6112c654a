//! The worker pool: claim → execute → record.
//!
//! Three tasks move jobs, each batching its side of the store:
//! - the dispatcher (`dispatch`) claims due jobs ahead of need into a
//!   small local buffer, sized from how fast jobs have been finishing, and
//!   starts one whenever a slot is free. Guest code runs on a tokio runtime
//!   of its own, so it never runs on the API's threads. An idle dispatcher
//!   sleeps until a submit wakes it or the next delayed job is due, and
//!   meanwhile offers its idle slots to the next submission, whose commit
//!   claims its jobs for them (`handoff`);
//! - each job (`run`) executes in a fresh sandbox and hands its result to
//! - the recorder (`record`), which writes every outcome that arrived
//!   while the previous write was committing in one store call.
//!
//! The pool owns this host's [`Registry`] of the jobs it holds leases on
//! (the queue keeps a handle, to reach them for cancels and progress). A
//! renewer extends those leases and stops the jobs the store no longer
//! gives us (cancelled elsewhere, or rescued).

mod budget;
mod dispatch;
mod handoff;
mod record;
mod registry;
mod run;
pub mod scale;
pub mod slots;

pub use budget::{DEFAULT_REPORT_MEMORY_BYTES, ReportBudget, Reservation};
pub(crate) use handoff::{Offers, Ticket};
pub use registry::{Held, Phase, Registry, Stop};
pub use scale::Scaling;
pub use slots::{Slot, SlotCounts, SlotState, Slots};

use crate::job::Job;
use crate::policy::{Decision, Ending};
use crate::queue::Queue;
use crate::store::{Lease, Outcome};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// A finished attempt on its way to the recorder: the outcome to write,
/// and the job as claimed (to decide again if the outcome cannot be
/// stored).
pub(crate) struct Finished {
    job: Job,
    outcome: Outcome,
    /// The attempt's span, kept open until its outcome is recorded.
    span: tracing::Span,
    /// The report's share of the host's budget, released once the outcome
    /// is written (none for an outcome without a report of the engine's).
    reserved: Option<Reservation>,
    /// When the attempt ended (the record stage starts).
    ended: std::time::Instant,
}

/// How long interrupted jobs get to end at shutdown before their tasks
/// are abandoned.
const INTERRUPT_WAIT: Duration = Duration::from_secs(5);

/// A fault to inject into a job's task, for tests of the pool's health
/// checks: what the host does when its own code fails while a job runs.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The task panics before the attempt starts.
    Panic,
    /// The task never comes back.
    Hang,
    /// The task waits for a permit of this semaphore before the attempt
    /// starts, holding its slot meanwhile: a job blocked on I/O, without
    /// using the CPU (synthetic load for the scaler).
    Block(Arc<tokio::sync::Semaphore>),
}

/// Picks the fault (if any) to inject into a job's task.
pub type FaultHook = Arc<dyn Fn(&Job) -> Option<Fault> + Send + Sync>;

/// A running worker pool; [`Pool::shutdown`] stops it gracefully.
pub struct Pool {
    queue: Queue,
    stop: watch::Sender<bool>,
    dispatcher: Option<JoinHandle<dispatch::Stopped>>,
    recorder: Option<JoinHandle<()>>,
    results: Option<mpsc::UnboundedSender<Finished>>,
    renewer: JoinHandle<()>,
    supervisor: JoinHandle<()>,
    guest_runtime: Option<tokio::runtime::Runtime>,
}

impl Pool {
    /// Starts the pool. Must be called inside a tokio runtime.
    pub fn start(queue: Queue) -> std::io::Result<Pool> {
        Pool::start_with_faults(queue, None)
    }

    /// Starts the pool with `faults` injected into jobs' tasks (tests).
    pub fn start_with_faults(queue: Queue, faults: Option<FaultHook>) -> std::io::Result<Pool> {
        let most = queue.config().scaling().max.max(1);
        let guest_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(most.min(available_cores()))
            .thread_name("wasmjob-guest")
            .enable_all()
            .build()?;
        let (stop, stopped) = watch::channel(false);
        let (results, received) = mpsc::unbounded_channel();
        let dispatcher = tokio::spawn(dispatch::run(
            dispatch::Dispatcher {
                queue: queue.clone(),
                guests: guest_runtime.handle().clone(),
                results: results.clone(),
                pace: dispatch::Pace::new(tokio::time::Instant::now()),
                hold: dispatch::BUFFER_HOLD,
                faults,
            },
            stopped,
        ));
        let recorder = tokio::spawn(record::run(queue.clone(), received));
        let renewer = tokio::spawn(renew(queue.clone()));
        let supervisor = tokio::spawn(supervise(queue.clone(), results.clone()));
        Ok(Pool {
            queue,
            stop,
            dispatcher: Some(dispatcher),
            recorder: Some(recorder),
            results: Some(results),
            renewer,
            supervisor,
            guest_runtime: Some(guest_runtime),
        })
    }

    /// Stops claiming and puts buffered jobs back, lets running jobs finish
    /// for the grace period, then interrupts the rest; interrupted and
    /// buffered jobs go back to waiting without spending an attempt. Every
    /// result is recorded before this returns.
    pub async fn shutdown(mut self) {
        let queue = self.queue.clone();
        let _ = self.stop.send(true);
        // No slot is declared stuck nor resized while the pool stops (and
        // the supervisor's sender must go for the recorder to end).
        self.supervisor.abort();
        let results = self.results.take().expect("results sender");
        let mut jobs = match self.dispatcher.take() {
            Some(dispatcher) => match dispatcher.await {
                Ok(stopped) => {
                    release(&queue, &results, stopped.buffered);
                    stopped.jobs
                }
                Err(error) => {
                    tracing::error!(%error, "the dispatcher failed");
                    tokio::task::JoinSet::new()
                }
            },
            None => tokio::task::JoinSet::new(),
        };
        let grace = Duration::from_millis(queue.config().shutdown_grace_ms);
        let drained =
            tokio::time::timeout(grace, async { while jobs.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            let jobs_left = queue.registry().interrupt_all();
            tracing::info!(
                jobs = jobs_left,
                "grace period over: interrupting running jobs"
            );
            // An interrupted job ends within milliseconds; a task that does
            // not (a stuck slot) is abandoned: its job, if not already
            // recorded, is rescued as lost by the next host to start.
            let interrupted = tokio::time::timeout(INTERRUPT_WAIT, async {
                while jobs.join_next().await.is_some() {}
            })
            .await;
            if interrupted.is_err() {
                tracing::error!(
                    tasks = jobs.len(),
                    "job tasks did not end when interrupted: abandoning them"
                );
                jobs.abort_all();
            }
        }
        // Every job task has sent its result: the recorder ends once it has
        // written them.
        drop(results);
        if let Some(recorder) = self.recorder.take()
            && let Err(error) = recorder.await
        {
            tracing::error!(%error, "the recorder failed");
        }
        self.renewer.abort();
        self.supervisor.abort();
        if let Some(runtime) = self.guest_runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Without a graceful shutdown: stop everything now. Dropping a
        // runtime normally blocks, which is not allowed in async code.
        if let Some(dispatcher) = &self.dispatcher {
            dispatcher.abort();
        }
        if let Some(recorder) = &self.recorder {
            recorder.abort();
        }
        self.renewer.abort();
        if let Some(runtime) = self.guest_runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Gives claimed jobs that never started back to the store, attempt
/// unspent.
fn release(
    queue: &Queue,
    results: &mpsc::UnboundedSender<Finished>,
    buffered: Vec<dispatch::Buffered>,
) {
    if buffered.is_empty() {
        return;
    }
    tracing::info!(
        jobs = buffered.len(),
        "releasing claimed jobs that did not start"
    );
    let now = queue.now();
    for job in buffered {
        let claimed = job.claimed;
        let decision = queue
            .policy()
            .decide(&claimed.job, Ending::Interrupted, now);
        debug_assert_eq!(decision, Decision::Release);
        let outcome = Outcome {
            lease: Lease {
                id: claimed.job.id,
                token: claimed.token,
            },
            decision,
            attempt: None,
            output: None,
            follow_ups: Vec::new(),
            at: now,
        };
        // The recorder outlives every sender: this cannot fail.
        let _ = results.send(Finished {
            job: claimed.job,
            outcome,
            span: tracing::Span::none(),
            reserved: None,
            ended: std::time::Instant::now(),
        });
    }
}

/// Looks after the slots every `check_ms`: declares stuck the slots whose
/// job is long past its deadline (their jobs are recorded as failed
/// attempts, the slots replaced), and resizes the pool as the scaler
/// decides.
async fn supervise(queue: Queue, results: mpsc::UnboundedSender<Finished>) {
    let config = queue.config();
    let mut ticker = tokio::time::interval(Duration::from_millis(config.check_ms.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scaler = scale::Scaler::new(config.scaling());
    let mut cpu = scale::CpuMeter::new(available_cores());
    loop {
        ticker.tick().await;
        let now = queue.now();
        for stuck in queue.slots().declare_stuck(now, config.stuck_grace_ms) {
            let job_id = stuck.job.id;
            tracing::error!(
                job_id,
                grace_ms = config.stuck_grace_ms,
                "a worker slot is stuck past its job's deadline: abandoned and replaced"
            );
            queue.metrics().worker_stuck();
            queue.registry().lost(std::slice::from_ref(&stuck.lease));
            let why = format!(
                "the host abandoned this attempt: its worker slot did not come back {} ms after \
                 the job's deadline (stuck), and was replaced",
                config.stuck_grace_ms
            );
            let finished = run::host_failure(&queue, stuck.job, stuck.lease, stuck.started_at, why);
            let _ = results.send(finished);
        }
        let share = cpu.sample();
        if config.scaling().is_fixed() {
            continue;
        }
        let counts = queue.slots().counts();
        let waiting = queue.slots().buffered() > 0
            || matches!(queue.store().next_due().await, Ok(Some(due)) if due <= now);
        let sample = scale::Sample {
            now,
            target: counts.target,
            busy: counts.busy,
            waiting,
            cpu: share,
        };
        if let Some(change) = scaler.decide(sample) {
            let up = change.is_up(counts.target);
            tracing::info!(from = counts.target, to = change.to, reason = change.reason,
                busy = counts.busy, waiting, cpu = ?share, "resizing the worker pool");
            queue.metrics().scaled(up, change.reason);
            queue.slots().set_target(change.to, now);
            queue.slots().note_change(now, counts.target, change);
            if up {
                queue.wake();
            }
        }
    }
}

/// Renews the leases of held jobs every third of the lease; stops jobs
/// whose lease the store did not renew.
async fn renew(queue: Queue) {
    let period = Duration::from_millis((queue.config().lease_ms / 3).max(10) as u64);
    // The first renewal one period in: a lease claimed now runs a full
    // lease. (A tick at once raced the start: it could renew a job just
    // claimed, by a clock read later than the claim's.)
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let leases = queue.registry().leases();
        if leases.is_empty() {
            continue;
        }
        let until = queue.now() + queue.config().lease_ms;
        match queue.store().renew_held_leases(leases.clone(), until).await {
            Ok(held) => {
                queue.changed(held.iter().copied());
                let lost: Vec<Lease> = leases
                    .into_iter()
                    .filter(|lease| !held.contains(&lease.id))
                    .collect();
                if !lost.is_empty() {
                    tracing::info!(jobs = ?lost.iter().map(|l| l.id).collect::<Vec<_>>(),
                        "leases lost: stopping the jobs");
                    queue.metrics().leases_lost(lost.len());
                    queue.registry().lost(&lost);
                }
            }
            Err(error) => tracing::error!(%error, "renewing leases failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TestClock;
    use crate::engine::{Engine, EngineConfig};
    use crate::job::JobState;
    use crate::json::Json;
    use crate::policy::JobSpec;
    use crate::queue::QueueConfig;
    use crate::report::ModuleKind;
    use crate::store::{JobStore, Recorded, SqliteStore, StoreConfig};

    const T0: i64 = 1_700_000_000_000;

    /// A dispatcher with every slot busy and a lookahead of 8 claims 8 jobs
    /// into its buffer without starting any; a cancel reaches a buffered
    /// job; stopping hands the rest back, and released they wait again with
    /// their attempt unspent.
    #[tokio::test]
    async fn buffered_jobs_are_claimed_ahead_and_released_unspent_at_stop() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(StoreConfig::new(dir.path())).unwrap());
        let bytes = b"not run in this test".to_vec();
        let hash = blake3::hash(&bytes).to_hex().to_string();
        store
            .put_module(&hash, ModuleKind::Component, &bytes, None, T0)
            .await
            .unwrap();
        let clock = Arc::new(TestClock::new(T0));
        let engine = Engine::new(EngineConfig {
            concurrency: 1,
            pooling: false,
            ..EngineConfig::default()
        })
        .unwrap();
        let one = QueueConfig {
            concurrency: 1,
            ..QueueConfig::default()
        };
        let queue = Queue::new(store.clone(), engine, clock.clone(), one);
        // Every slot busy.
        let _busy = queue.slots().permits().clone().try_acquire_owned().unwrap();
        let job = JobSpec::new(hash, Json::null());
        let ids: Vec<_> = queue
            .submit(vec![job; 20])
            .await
            .unwrap()
            .iter()
            .map(|s| s.job.id)
            .collect();

        let (stop, stopped) = watch::channel(false);
        let (results, mut received) = mpsc::unbounded_channel();
        let dispatcher = tokio::spawn(dispatch::run(
            dispatch::Dispatcher {
                queue: queue.clone(),
                guests: tokio::runtime::Handle::current(),
                results: results.clone(),
                pace: dispatch::Pace::with_ahead(tokio::time::Instant::now(), 8),
                // Held until the test stops the dispatcher.
                hold: Duration::from_secs(3_600),
                faults: None,
            },
            stopped,
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while queue.registry().len() < 8 {
            // Registration signals nothing: step the runtime until it is
            // there, within a bound.
            assert!(
                tokio::time::Instant::now() < deadline,
                "the claim never came"
            );
            tokio::task::yield_now().await;
        }
        assert!(
            queue
                .registry()
                .snapshot()
                .iter()
                .all(|held| held.phase == Phase::Buffered),
            "buffered jobs are not running"
        );
        let counts = store.counts().await.unwrap();
        assert!(counts.contains(&(JobState::Running, 8)), "{counts:?}");

        queue.cancel(ids[0]).await.unwrap();
        stop.send(true).unwrap();
        let stopped = dispatcher.await.unwrap();
        assert_eq!(
            stopped.buffered.len(),
            8,
            "the claim was exactly the lookahead"
        );
        assert!(stopped.buffered[0].cancel.is_cancelled());

        release(&queue, &results, stopped.buffered);
        drop(results);
        let mut released = Vec::new();
        while let Some(finished) = received.recv().await {
            assert_eq!(finished.outcome.decision, Decision::Release);
            assert_eq!(finished.outcome.attempt, None);
            released.push(finished.outcome);
        }
        let recorded = store.record_if_leased(released).await.unwrap();
        assert!(
            recorded.iter().all(|r| matches!(r, Ok(Recorded::Applied))),
            "{recorded:?}"
        );
        for (n, id) in ids.iter().enumerate() {
            let job = store.job(*id).await.unwrap().unwrap().job;
            if n == 0 {
                assert_eq!(job.state, JobState::Cancelled);
                continue;
            }
            assert_eq!(job.state, JobState::Pending, "job {id}");
            assert_eq!(job.attempt, 0, "job {id}: the attempt is not spent");
        }
    }

    /// A queue with one slot over a fresh SQLite store holding a module
    /// that is never run: the directory (keep it), the store, the
    /// module's hash and the queue.
    pub(super) async fn one_slot_queue() -> (tempfile::TempDir, Arc<SqliteStore>, String, Queue) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(StoreConfig::new(dir.path())).unwrap());
        let bytes = b"not run in this test".to_vec();
        let hash = blake3::hash(&bytes).to_hex().to_string();
        store
            .put_module(&hash, ModuleKind::Component, &bytes, None, T0)
            .await
            .unwrap();
        let engine = Engine::new(EngineConfig {
            concurrency: 1,
            pooling: false,
            ..EngineConfig::default()
        })
        .unwrap();
        let one = QueueConfig {
            concurrency: 1,
            ..QueueConfig::default()
        };
        let queue = Queue::new(store.clone(), engine, Arc::new(TestClock::new(T0)), one);
        (dir, store, hash, queue)
    }

    /// Runs a dispatcher for `queue` (claiming up to 8 ahead, holding a
    /// buffered job `hold` before it goes back): its stop, the results it
    /// sends and its task.
    fn spawn_dispatcher(
        queue: &Queue,
        hold: Duration,
    ) -> (
        watch::Sender<bool>,
        mpsc::UnboundedReceiver<Finished>,
        JoinHandle<dispatch::Stopped>,
    ) {
        let (stop, stopped) = watch::channel(false);
        let (results, received) = mpsc::unbounded_channel();
        let dispatcher = tokio::spawn(dispatch::run(
            dispatch::Dispatcher {
                queue: queue.clone(),
                guests: tokio::runtime::Handle::current(),
                results,
                pace: dispatch::Pace::with_ahead(tokio::time::Instant::now(), 8),
                hold,
                faults: None,
            },
            stopped,
        ));
        (stop, received, dispatcher)
    }

    /// Jobs claimed ahead while every slot stays busy go back to the
    /// store after the hold, attempt unspent (another host may have a slot
    /// for them), and the dispatcher claims nothing more ahead.
    #[tokio::test]
    async fn buffered_jobs_go_back_when_no_slot_frees_for_them() {
        let (_dir, store, hash, queue) = one_slot_queue().await;
        let _busy = queue.slots().permits().clone().try_acquire_owned().unwrap();
        let job = JobSpec::new(hash, Json::null());
        queue.submit(vec![job; 20]).await.unwrap();
        let (stop, mut received, dispatcher) = spawn_dispatcher(&queue, Duration::from_millis(1));
        // The dispatcher hands all 8 back, then holds its results sender
        // idle: read exactly what it sent.
        let mut released = Vec::new();
        while released.len() < 8 {
            let finished = tokio::time::timeout(Duration::from_secs(60), received.recv())
                .await
                .expect("the buffered jobs were handed back")
                .expect("the dispatcher runs");
            assert_eq!(finished.outcome.decision, Decision::Release);
            assert_eq!(finished.outcome.attempt, None);
            released.push(finished.outcome);
        }
        let recorded = store.record_if_leased(released).await.unwrap();
        assert!(recorded.iter().all(|r| matches!(r, Ok(Recorded::Applied))));
        stop.send(true).unwrap();
        let stopped = dispatcher.await.unwrap();
        assert!(stopped.buffered.is_empty(), "nothing claimed ahead again");
        let counts = store.counts().await.unwrap();
        assert!(counts.contains(&(JobState::Pending, 20)), "{counts:?}");
    }

    /// A dispatcher told to stop while a submission holds its offer waits
    /// for that submission's hand-off and hands its jobs back with the
    /// ones it buffered, for the pool to release: none is left claimed by
    /// a pool that is gone until its lease runs out.
    #[tokio::test]
    async fn a_stopping_dispatcher_takes_the_hand_off_in_flight_and_hands_its_jobs_back() {
        let (_dir, store, hash, queue) = one_slot_queue().await;
        let (stop, _received, dispatcher) = spawn_dispatcher(&queue, Duration::from_secs(3_600));
        // Idle (its first claim found nothing), it offers its slot.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let (limit, ticket) = loop {
            if let Some(taken) = queue.offers().take(queue.slots(), queue.registry()) {
                break taken;
            }
            assert!(std::time::Instant::now() < deadline, "no offer was posted");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        assert_eq!(limit, 1, "its one idle slot");
        // Told to stop while the submission that took the offer has not
        // committed yet (this runtime has one thread: the dispatcher runs
        // to its wait for the hand-off before the test goes on).
        stop.send(true).unwrap();
        tokio::task::yield_now().await;
        assert!(!dispatcher.is_finished(), "it waits for the hand-off");
        let job = JobSpec::new(hash, Json::null());
        let id = queue.submit(vec![job]).await.unwrap()[0].job.id;
        let claimed = store
            .claim_due(queue.claim_request(limit), queue.now())
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        ticket.deliver(claimed);
        let stopped = dispatcher.await.unwrap();
        assert!(stopped.jobs.is_empty(), "nothing started after the stop");
        let handed_back: Vec<_> = stopped.buffered.iter().map(|b| b.claimed.job.id).collect();
        assert_eq!(handed_back, [id]);
        assert!(
            queue.registry().snapshot().iter().any(|held| held.id == id),
            "registered: a cancel meanwhile reaches it"
        );
    }

    /// Jobs claimed together and held in the buffer each record when they
    /// started running, one after the other on the one slot, not the time
    /// of their shared claim.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buffered_jobs_record_when_each_started_not_when_they_were_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(StoreConfig::new(dir.path())).unwrap());
        let engine = Engine::new(EngineConfig {
            concurrency: 1,
            pooling: false,
            ..EngineConfig::default()
        })
        .unwrap();
        // Every reading of the clock moves it 1 ms on.
        let clock = Arc::new(TestClock::stepping(T0, 1));
        let one = QueueConfig {
            concurrency: 1,
            ..QueueConfig::default()
        };
        let queue = Queue::new(store, engine, clock, one);
        let bytes = std::fs::read(wasmjob_tests::guests::NOOP).unwrap();
        let noop = queue.upload(bytes, None).await.unwrap().hash;
        let job = JobSpec::new(noop, Json::null());
        queue.submit(vec![job; 8]).await.unwrap();

        let (stop, mut received, dispatcher) = spawn_dispatcher(&queue, Duration::from_secs(3_600));
        let mut outcomes = Vec::new();
        while outcomes.len() < 8 {
            let finished = tokio::time::timeout(Duration::from_secs(60), received.recv())
                .await
                .expect("every job ran")
                .expect("the dispatcher is running");
            outcomes.push(finished.outcome);
        }
        stop.send(true).unwrap();
        dispatcher.await.unwrap();
        outcomes.sort_by_key(|o| o.attempt.as_ref().unwrap().started_at);
        for pair in outcomes.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            let started = after.attempt.as_ref().unwrap().started_at;
            assert!(
                started >= before.at,
                "one slot: {} started at {started}, before {} ended at {}",
                after.lease.id,
                before.lease.id,
                before.at
            );
        }
    }
}
