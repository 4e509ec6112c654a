//! One attempt of one claimed job, and what it means for the job next.

use crate::clock::Millis;
use crate::engine::{self, CancelToken, Invocation, JobInfo, ProgressSink};
use crate::job::Job;
use crate::queue::Queue;
use crate::report::{FailureKind, Report};
use crate::store::{AttemptResult, Claimed, Lease, Next};
use std::sync::Arc;

/// Runs one claimed job (already marked started in the running map) and
/// returns the result to record. Removes the job from the running map.
pub(super) async fn run(queue: &Queue, claimed: Claimed, cancel: CancelToken) -> AttemptResult {
    let Claimed { job, input, token } = claimed;
    let outcome = attempt(queue, &job, input, cancel).await;
    queue
        .inner
        .running
        .lock()
        .expect("running map")
        .remove(&job.id);
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
    AttemptResult {
        lease: Lease { id: job.id, token },
        report,
        next,
        finished_at: now,
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
    cancel: CancelToken,
) -> Result<Report, AttemptError> {
    let module = queue
        .module(&job.module)
        .await
        .map_err(|e| AttemptError::Module(e.to_string()))?;
    let progress = queue
        .inner
        .running
        .lock()
        .expect("running map")
        .get(&job.id)
        .map(|r| r.progress.clone());
    let sink: Option<ProgressSink> = progress.map(|progress| {
        Arc::new(move |p: &crate::report::Progress| {
            *progress.lock().expect("progress") = Some(p.clone());
        }) as ProgressSink
    });
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
        progress: sink,
    };
    queue
        .engine()
        .execute(&module, invocation)
        .await
        .map_err(|e| match e {
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
