//! One attempt of one claimed job, and its outcome.

use super::Finished;
use super::registry::{ProgressCell, Stop};
use crate::engine::{self, CancelToken, DependencyState, Invocation, JobInfo, ProgressSink};
use crate::job::{Job, JobState, Resolved};
use crate::json::Json;
use crate::policy::{Decision, Ending};
use crate::queue::{self, Queue};
use crate::report::{AttemptReport, Failure, FailureKind, Report, Status};
use crate::store::{self, AttemptRecord, Claimed, Lease, Outcome};
use std::sync::Arc;

/// Runs one claimed job and returns what to record. The job must already
/// be marked running in the registry (`progress` is its cell there).
pub(super) async fn run(
    queue: &Queue,
    claimed: Claimed,
    cancel: CancelToken,
    progress: ProgressCell,
) -> Finished {
    let Claimed {
        job,
        input,
        token,
        dependencies,
    } = claimed;
    let lease = Lease { id: job.id, token };
    let started_at = queue.now();
    let ended = attempt(queue, &job, input, dependencies, cancel, progress).await;
    let stop = queue.registry().finished(&lease);
    // One timestamp for the outcome: the backoff counts from when it ended.
    let now = queue.now();
    let mut follow_ups = Vec::new();
    let (decision, report, output) = match ended {
        Ok(mut report) => {
            let interrupted = stop == Some(Stop::Shutdown)
                && report.failure_kind() == Some(FailureKind::Cancelled);
            // The follow-ups are created as jobs with the result, or not
            // at all: one the host refuses fails the attempt.
            let requested = std::mem::take(&mut report.follow_ups);
            if !requested.is_empty() && report.is_success() {
                match queue.admit_follow_ups(requested, now).await {
                    Ok(jobs) => follow_ups = jobs,
                    Err(refused) => refuse_follow_ups(&mut report, refused),
                }
            }
            let ending = if interrupted {
                Ending::Interrupted
            } else {
                Ending::Ran(&report)
            };
            let decision = queue.policy().decide(&job, ending, now);
            // The output is kept once, with the job, not in the report.
            let output = report.output.take();
            (decision, Some(AttemptReport::Ran(Box::new(report))), output)
        }
        Err(Failed::Capacity(message)) => {
            tracing::warn!(job_id = job.id, %message, "no sandbox free; releasing the job");
            let decision = queue.policy().decide(&job, Ending::Interrupted, now);
            (decision, None, None)
        }
        Err(Failed::Host { message, retryable }) => {
            tracing::warn!(job_id = job.id, %message, retryable, "the host could not run the job");
            let ending = Ending::HostFailed { retryable };
            let decision = queue.policy().decide(&job, ending, now);
            let report = AttemptReport::HostFailed { message, retryable };
            (decision, Some(report), None)
        }
    };
    let attempt = report
        .filter(|_| decision != Decision::Release)
        .map(|report| AttemptRecord { started_at, report });
    let output = (decision == Decision::Complete).then(|| output.unwrap_or_else(Json::null));
    if decision != Decision::Complete {
        follow_ups.clear();
    }
    let outcome = Outcome {
        lease,
        decision,
        attempt,
        output,
        follow_ups,
        at: now,
    };
    Finished { job, outcome }
}

/// A successful attempt whose follow-ups the host refused becomes a
/// failure saying which and why: a guest error, retryable or fatal as the
/// refusal is. Its output goes with it.
fn refuse_follow_ups(report: &mut Report, refused: queue::FollowUpRefused) {
    let kind = if refused.retryable {
        FailureKind::GuestError
    } else {
        FailureKind::FatalError
    };
    report.status = Status::Failure;
    report.output = None;
    report.failure = Some(Failure::new(kind, refused.message));
}

/// A resolved prerequisite as the engine hands it to the job. One that is
/// not final any more (failed, then requeued) counts as failed: that is
/// how it had ended when it released this job.
fn dependency(resolved: Resolved) -> engine::Dependency {
    let state = match resolved.state {
        JobState::Completed => DependencyState::Completed,
        JobState::Cancelled => DependencyState::Cancelled,
        _ => DependencyState::Failed,
    };
    engine::Dependency {
        name: resolved.name,
        job: resolved.job,
        state,
        output: resolved.output.map(|output| output.as_bytes().to_vec()),
        error: resolved.error,
    }
}

/// Why the engine produced no report.
enum Failed {
    /// Every sandbox slot is in use: not the job's doing.
    Capacity(String),
    /// The host could not run the job: its module did not load, or the
    /// engine failed.
    Host { message: String, retryable: bool },
}

async fn attempt(
    queue: &Queue,
    job: &Job,
    input: Json,
    dependencies: Vec<Resolved>,
    cancel: CancelToken,
    progress: ProgressCell,
) -> Result<Report, Failed> {
    let module = queue.loaded(&job.module.hash).await.map_err(|error| {
        let retryable = match &error {
            queue::Error::InvalidModule(e) => e.is_transient(),
            queue::Error::Store(store::Error::NotFound(_)) => false,
            queue::Error::Store(e) => e.is_transient(),
            _ => true,
        };
        Failed::Host {
            message: format!("module {} could not be loaded: {error}", job.module),
            retryable,
        }
    })?;
    let capabilities = queue
        .capabilities(&job.module.hash, job.grants.as_deref())
        .await
        .map_err(|error| Failed::Host {
            message: format!(
                "the grants of module {} could not be read: {error}",
                job.module
            ),
            retryable: true,
        })?;
    let sink: ProgressSink = Arc::new(move |p: &crate::report::Progress| {
        if let Ok(mut cell) = progress.lock() {
            *cell = Some(p.clone());
        }
    });
    let invocation = Invocation {
        info: JobInfo {
            id: job.id.to_string(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            priority: job.priority,
        },
        input: input.as_bytes().to_vec(),
        limits: job.limits,
        cancel,
        progress: Some(sink),
        dependencies: dependencies.into_iter().map(dependency).collect(),
        capabilities,
    };
    queue
        .engine()
        .execute(&module, invocation)
        .await
        .map_err(|e| match e {
            engine::Error::Capacity(m) => Failed::Capacity(m),
            engine::Error::Host(m) | engine::Error::Config(m) => Failed::Host {
                message: format!("the engine failed: {m}"),
                retryable: true,
            },
        })
}
