//! The worker pool: claim → execute → record.
//!
//! One dispatcher claims due jobs in batches as slots free up, and runs
//! each on the guest runtime (a tokio runtime of its own, so guest code
//! never runs on the API's threads). An idle dispatcher sleeps until a
//! submit wakes it or the next delayed job is due. A renewer extends the
//! leases of running jobs and stops those the store no longer gives us
//! (cancelled elsewhere, or rescued).

use crate::clock::Millis;
use crate::engine::{self, CancelToken, Invocation, JobInfo, ProgressSink};
use crate::job::Job;
use crate::queue::{Queue, Running};
use crate::report::{FailureKind, Report};
use crate::store::{AttemptResult, ClaimRequest, Claimed, Lease, Next};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Longest an idle dispatcher sleeps before looking again, whatever it
/// expects: a backstop against a missed wake-up or a clock change.
const IDLE_POLL: Duration = Duration::from_millis(1_000);
/// Pause after a store error before claiming again.
const ERROR_BACKOFF: Duration = Duration::from_millis(200);

/// A running worker pool; [`Pool::shutdown`] stops it gracefully.
pub struct Pool {
    queue: Queue,
    dispatcher: tokio::task::JoinHandle<()>,
    renewer: tokio::task::JoinHandle<()>,
    guest_runtime: Option<tokio::runtime::Runtime>,
    jobs: Arc<tokio::sync::Mutex<JoinSet<()>>>,
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
        let jobs = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        let slots = Arc::new(Semaphore::new(concurrency));
        let dispatcher = tokio::spawn(dispatch(
            queue.clone(),
            slots,
            guest_runtime.handle().clone(),
            jobs.clone(),
        ));
        let renewer = tokio::spawn(renew(queue.clone()));
        Ok(Pool {
            queue,
            dispatcher,
            renewer,
            guest_runtime: Some(guest_runtime),
            jobs,
        })
    }

    /// Stops claiming, lets running jobs finish for the grace period, then
    /// interrupts the rest; interrupted jobs go back to waiting without
    /// spending an attempt.
    pub async fn shutdown(mut self) {
        let jobs = self.jobs.clone();
        let queue = self.queue.clone();
        queue.inner.shutting_down.store(true, Ordering::SeqCst);
        queue.wake();
        self.dispatcher.abort();
        let _ = (&mut self.dispatcher).await;
        let grace = Duration::from_millis(queue.config().shutdown_grace_ms);
        let mut jobs = jobs.lock().await;
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
        drop(jobs);
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
        self.dispatcher.abort();
        self.renewer.abort();
        if let Some(runtime) = self.guest_runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

async fn dispatch(
    queue: Queue,
    slots: Arc<Semaphore>,
    guests: tokio::runtime::Handle,
    jobs: Arc<tokio::sync::Mutex<JoinSet<()>>>,
) {
    loop {
        // Wait for at least one free slot, then take every free one.
        let first = match slots.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => return,
        };
        let mut permits = vec![first];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let notified = queue.inner.wake.notified();
        let request = ClaimRequest {
            owner: queue.config().owner.clone(),
            limit: permits.len(),
            lease_ms: queue.config().lease_ms,
        };
        let claimed = match queue.store().claim(request, queue.now()).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::error!(%error, "claiming jobs failed");
                drop(permits);
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        };
        if claimed.is_empty() {
            drop(permits);
            idle(&queue, notified).await;
            continue;
        }
        let mut set = jobs.lock().await;
        // Reap finished tasks so the set does not grow without bound.
        while set.try_join_next().is_some() {}
        for job in claimed {
            let permit = permits.pop().expect("one permit per claimed job");
            let queue = queue.clone();
            set.spawn_on(
                async move {
                    run_job(&queue, job).await;
                    drop(permit);
                },
                &guests,
            );
        }
    }
}

/// Sleeps until woken, until the next delayed job is due, or [`IDLE_POLL`].
async fn idle(queue: &Queue, notified: tokio::sync::futures::Notified<'_>) {
    let mut wait = IDLE_POLL;
    if let Ok(Some(due)) = queue.store().next_due().await {
        let until = (due - queue.now()).max(0) as u64;
        wait = wait.min(Duration::from_millis(until.max(1)));
    }
    tokio::select! {
        () = notified => {}
        () = tokio::time::sleep(wait) => {}
    }
}

/// Runs one claimed job and records its result.
async fn run_job(queue: &Queue, claimed: Claimed) {
    let Claimed { job, input, token } = claimed;
    let lease = Lease {
        id: job.id,
        token: token.clone(),
    };
    let outcome = attempt(queue, &job, input, token).await;
    // One timestamp for the result: the backoff counts from when it ended.
    let now = queue.now();
    let (report, next) = match outcome {
        Ok(report) => {
            let next = decide(queue, &job, &report, now);
            (Some(report), next)
        }
        Err(AttemptError::Host(message)) => {
            tracing::warn!(job_id = job.id, %message, "host could not run the job; releasing it");
            (None, Next::Release)
        }
        Err(AttemptError::Module(message)) => {
            tracing::warn!(job_id = job.id, %message, "job's module cannot be loaded");
            (None, Next::Fail)
        }
    };
    let result = AttemptResult {
        lease,
        report,
        next,
    };
    if let Err(error) = queue.store().record(vec![result], now).await {
        // The lease will expire and the rescuer will retry the job.
        tracing::error!(job_id = job.id, %error, "recording a result failed");
    }
}

enum AttemptError {
    /// The host could not run it now (no sandbox slot, engine failure).
    Host(String),
    /// The job's module is gone or refused: it can never run.
    Module(String),
}

async fn attempt(
    queue: &Queue,
    job: &Job,
    input: Vec<u8>,
    token: String,
) -> Result<Report, AttemptError> {
    let module = queue
        .module(&job.module)
        .await
        .map_err(|e| AttemptError::Module(e.to_string()))?;
    let cancel = CancelToken::new();
    let progress = Arc::new(Mutex::new(None));
    let sink_progress = progress.clone();
    let sink: ProgressSink = Arc::new(move |p| {
        *sink_progress.lock().expect("progress") = Some(p.clone());
    });
    queue.inner.running.lock().expect("running map").insert(
        job.id,
        Running {
            cancel: cancel.clone(),
            token,
            progress,
        },
    );
    let invocation = Invocation {
        info: JobInfo {
            id: job.id.to_string(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            priority: job.priority,
        },
        input,
        limits: job.limits,
        cancel,
        progress: Some(sink),
    };
    let result = queue.engine().execute(&module, invocation).await;
    queue
        .inner
        .running
        .lock()
        .expect("running map")
        .remove(&job.id);
    result.map_err(|e| match e {
        engine::Error::Capacity(m) | engine::Error::Host(m) | engine::Error::Config(m) => {
            AttemptError::Host(m)
        }
    })
}

/// What happens to a job after an attempt with this report.
fn decide(queue: &Queue, job: &Job, report: &Report, now: Millis) -> Next {
    let Some(failure) = &report.failure else {
        let output = report
            .output
            .as_ref()
            .map(|o| o.0.clone())
            .unwrap_or_default();
        return Next::Complete { output };
    };
    if failure.kind == FailureKind::Cancelled {
        // Interrupted by our own shutdown: not the job's fault.
        return if queue.is_shutting_down() {
            Next::Release
        } else {
            Next::Cancelled
        };
    }
    if !failure.retryable || job.attempt >= job.max_attempts {
        return Next::Fail;
    }
    match job.retry.delay_ms(job.attempt, fastrand::f64()) {
        None => Next::Fail,
        Some(delay) => Next::Retry {
            run_at: now.saturating_add(delay as i64),
            limits: queue.config().escalation.next(job.limits, failure.kind),
        },
    }
}

/// Renews the leases of running jobs every third of the lease; stops jobs
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
