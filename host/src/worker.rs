//! The worker pool: claim → execute → record.
//!
//! Three tasks move jobs, each batching its side of the store:
//! - the dispatcher (`dispatch`) claims due jobs ahead of need into a
//!   small local buffer, sized from how fast jobs have been finishing, and
//!   starts one whenever a slot is free. Guest code runs on a tokio runtime
//!   of its own, so it never runs on the API's threads. An idle dispatcher
//!   sleeps until a submit wakes it or the next delayed job is due;
//! - each job (`run`) executes in a fresh sandbox and hands its result to
//! - the recorder (`record`), which writes every result that arrived while
//!   the previous write was committing in one store call.
//!
//! A renewer extends the leases of claimed jobs (buffered or running) and
//! stops those the store no longer gives us (cancelled, or rescued).

mod dispatch;
mod record;
mod run;

use crate::engine::CancelToken;
use crate::queue::Queue;
use crate::store::{AttemptResult, Lease, Next};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

/// A running worker pool; [`Pool::shutdown`] stops it gracefully.
pub struct Pool {
    queue: Queue,
    stop: watch::Sender<bool>,
    dispatcher: Option<JoinHandle<dispatch::Stopped>>,
    recorder: Option<JoinHandle<()>>,
    results: Option<mpsc::UnboundedSender<AttemptResult>>,
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
        queue.inner.shutting_down.store(true, Ordering::SeqCst);
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
            let tokens: Vec<CancelToken> = {
                let running = queue.inner.running.lock().expect("running map");
                running.values().map(|r| r.cancel.clone()).collect()
            };
            tracing::info!(
                jobs = tokens.len(),
                "grace period over: interrupting running jobs"
            );
            for token in tokens {
                token.cancel();
            }
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
    results: &mpsc::UnboundedSender<AttemptResult>,
    buffered: Vec<dispatch::Buffered>,
) {
    if buffered.is_empty() {
        return;
    }
    tracing::info!(
        jobs = buffered.len(),
        "releasing claimed jobs that did not start"
    );
    let mut running = queue.inner.running.lock().expect("running map");
    for job in buffered {
        running.remove(&job.claimed.job.id);
        let result = AttemptResult {
            lease: Lease {
                id: job.claimed.job.id,
                token: job.claimed.token,
            },
            report: None,
            next: Next::Release,
            finished_at: queue.now(),
        };
        // The recorder outlives every sender: this cannot fail.
        let _ = results.send(result);
    }
}

/// Renews the leases of claimed jobs every third of the lease; stops jobs
/// whose lease the store did not renew.
async fn renew(queue: Queue) {
    let period = Duration::from_millis((queue.config().lease_ms / 3).max(10) as u64);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let leases: Vec<Lease> = {
            let running = queue.inner.running.lock().expect("running map");
            running
                .iter()
                .map(|(id, r)| Lease {
                    id: *id,
                    token: r.token.clone(),
                })
                .collect()
        };
        if leases.is_empty() {
            continue;
        }
        let until = queue.now() + queue.config().lease_ms;
        match queue.store().renew(leases.clone(), until).await {
            Ok(held) => {
                let running = queue.inner.running.lock().expect("running map");
                for lease in leases.iter().filter(|l| !held.contains(&l.id)) {
                    if let Some(r) = running.get(&lease.id) {
                        tracing::info!(job_id = lease.id, "lease lost: stopping the job");
                        r.cancel.cancel();
                    }
                }
            }
            Err(error) => tracing::error!(%error, "renewing leases failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, TestClock};
    use crate::engine::{Engine, EngineConfig};
    use crate::job::{JobState, NewJob, RetryPolicy};
    use crate::limits::Limits;
    use crate::queue::QueueConfig;
    use crate::report::ModuleKind;
    use crate::store::{JobStore, SqliteStore, StoreConfig};

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
        let job = NewJob {
            module: hash,
            input: b"null".to_vec(),
            priority: 5,
            max_attempts: 3,
            retry: RetryPolicy::default(),
            limits: Limits::default(),
            run_at: clock.now(),
        };
        let ids: Vec<_> = queue
            .submit(vec![job; 20])
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
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
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while queue.inner.running.lock().unwrap().len() < 8 {
            assert!(std::time::Instant::now() < deadline, "the claim never came");
            tokio::task::yield_now().await;
        }
        assert!(queue.running().is_empty(), "buffered jobs are not running");
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
        while let Some(result) = received.recv().await {
            assert_eq!(result.next, Next::Release);
            released.push(result);
        }
        let recorded = store.record(released).await.unwrap();
        assert!(
            recorded
                .iter()
                .all(|r| *r == crate::store::Recorded::Applied),
            "{recorded:?}"
        );
        assert!(queue.inner.running.lock().unwrap().is_empty());
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
}
