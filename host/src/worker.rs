//! The worker pool: claim → execute → record.
//!
//! Three tasks move jobs, each batching its side of the store:
//! - the dispatcher (`dispatch`) claims due jobs ahead of need into a
//!   small local buffer, sized from how fast jobs have been finishing, and
//!   starts one whenever a slot is free. Guest code runs on a tokio runtime
//!   of its own, so it never runs on the API's threads. An idle dispatcher
//!   sleeps until a submit wakes it or the next delayed job is due;
//! - each job (`run`) executes in a fresh sandbox and hands its result to
//! - the recorder (`record`), which writes every outcome that arrived
//!   while the previous write was committing in one store call.
//!
//! The pool owns this host's [`Registry`] of the jobs it holds leases on
//! (the queue keeps a handle, to reach them for cancels and progress). A
//! renewer extends those leases and stops the jobs the store no longer
//! gives us (cancelled elsewhere, or rescued).

mod dispatch;
mod record;
mod registry;
mod run;

pub use registry::{Held, Phase, Registry, Stop};

use crate::job::Job;
use crate::policy::{Decision, Ending};
use crate::queue::Queue;
use crate::store::{Lease, Outcome};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

/// A finished attempt on its way to the recorder: the outcome to write,
/// and the job as claimed (to decide again if the outcome cannot be
/// stored).
pub(crate) struct Finished {
    job: Job,
    outcome: Outcome,
}

/// A running worker pool; [`Pool::shutdown`] stops it gracefully.
pub struct Pool {
    queue: Queue,
    stop: watch::Sender<bool>,
    dispatcher: Option<JoinHandle<dispatch::Stopped>>,
    recorder: Option<JoinHandle<()>>,
    results: Option<mpsc::UnboundedSender<Finished>>,
    renewer: JoinHandle<()>,
    guest_runtime: Option<tokio::runtime::Runtime>,
}

impl Pool {
    /// Starts the pool. Must be called inside a tokio runtime.
    pub fn start(queue: Queue) -> std::io::Result<Pool> {
        let concurrency = queue.config().concurrency.max(1);
        let guest_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(concurrency.min(available_cores()))
            .thread_name("wasmjob-guest")
            .enable_all()
            .build()?;
        let (stop, stopped) = watch::channel(false);
        let (results, received) = mpsc::unbounded_channel();
        let dispatcher = tokio::spawn(dispatch::run(
            dispatch::Dispatcher {
                queue: queue.clone(),
                slots: Arc::new(Semaphore::new(concurrency)),
                guests: guest_runtime.handle().clone(),
                results: results.clone(),
                pace: dispatch::Pace::new(tokio::time::Instant::now()),
            },
            stopped,
        ));
        let recorder = tokio::spawn(record::run(queue.clone(), received));
        let renewer = tokio::spawn(renew(queue.clone()));
        Ok(Pool {
            queue,
            stop,
            dispatcher: Some(dispatcher),
            recorder: Some(recorder),
            results: Some(results),
            renewer,
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
            while jobs.join_next().await.is_some() {}
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
        });
    }
}

/// Renews the leases of held jobs every third of the lease; stops jobs
/// whose lease the store did not renew.
async fn renew(queue: Queue) {
    let period = Duration::from_millis((queue.config().lease_ms / 3).max(10) as u64);
    let mut ticker = tokio::time::interval(period);
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
        let queue = Queue::new(store.clone(), engine, clock.clone(), QueueConfig::default());
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
                slots: Arc::new(Semaphore::new(0)),
                guests: tokio::runtime::Handle::current(),
                results: results.clone(),
                pace: dispatch::Pace::with_ahead(tokio::time::Instant::now(), 8),
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
        let queue = Queue::new(store, engine, clock, QueueConfig::default());
        let bytes = std::fs::read(wasmjob_tests::guests::NOOP).unwrap();
        let noop = queue.upload(bytes, None).await.unwrap().hash;
        let job = JobSpec::new(noop, Json::null());
        queue.submit(vec![job; 8]).await.unwrap();

        let (stop, stopped) = watch::channel(false);
        let (results, mut received) = mpsc::unbounded_channel();
        let dispatcher = tokio::spawn(dispatch::run(
            dispatch::Dispatcher {
                queue: queue.clone(),
                slots: Arc::new(Semaphore::new(1)),
                guests: tokio::runtime::Handle::current(),
                results,
                pace: dispatch::Pace::with_ahead(tokio::time::Instant::now(), 8),
            },
            stopped,
        ));
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
