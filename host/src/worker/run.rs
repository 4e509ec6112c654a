//! One attempt of one claimed job, and its outcome.

use super::dispatch::Buffered;
use super::registry::{ProgressCell, Stop};
use super::slots::Occupied;
use super::{Fault, Finished, Reservation};
use crate::clock::Millis;
use crate::engine::{self, CancelToken, DependencyState, Invocation, JobInfo, ProgressSink};
use crate::job::{Job, JobState, Resolved};
use crate::json::Json;
use crate::metrics::Stage;
use crate::policy::{Decision, Ending};
use crate::queue::{self, Queue};
use crate::report::{AttemptReport, Failure, FailureKind, Report, Status};
use crate::store::{self, AttemptRecord, Claimed, Lease, Outcome};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

/// How often a running job's task beats its slot's heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Runs a started job in its slot, as the job's task: beats the slot's
/// heartbeat while the attempt runs, turns a host-side panic into a failed
/// attempt with a host-made report (the policy decides: retried, or dead
/// on the last attempt), frees the slot and hands the result to the
/// recorder. Whatever happens in here, the job gets an outcome.
pub(super) async fn supervised(
    queue: Queue,
    job: Buffered,
    slot: Occupied,
    reserved: Reservation,
    progress: ProgressCell,
    fault: Option<Fault>,
    results: mpsc::UnboundedSender<Finished>,
) {
    let Buffered {
        claimed,
        cancel,
        claimed_at,
    } = job;
    queue.metrics().stage(Stage::Start, claimed_at.elapsed());
    let held = claimed.job.clone();
    let lease = Lease {
        id: held.id,
        token: claimed.token.clone(),
    };
    let started_at = queue.now();
    let span = crate::telemetry::job_span(&held, slot.id());
    let attempt = async {
        tracing::debug!("attempt started");
        match fault {
            Some(Fault::Panic) => panic!("injected fault: a host-side panic"),
            Some(Fault::Hang) => std::future::pending::<()>().await,
            Some(Fault::Block(gate)) => {
                let _permit = gate.acquire().await;
            }
            None => {}
        }
        let finished = run(&queue, claimed, cancel, progress).await;
        let failure = match &finished.outcome.attempt {
            Some(AttemptRecord {
                report: AttemptReport::Ran(report),
                ..
            }) => report.failure_kind().map(FailureKind::as_str),
            Some(_) => Some("host_failed"),
            None => None,
        };
        tracing::info!(
            decision = finished.outcome.decision.as_str(),
            failure,
            "attempt ended"
        );
        finished
    };
    let attempt = AssertUnwindSafe(attempt.instrument(span.clone())).catch_unwind();
    tokio::pin!(attempt);
    let ended = loop {
        tokio::select! {
            biased;
            ended = &mut attempt => break ended,
            () = tokio::time::sleep(HEARTBEAT) => slot.beat(queue.now()),
        }
    };
    let mut finished = match ended {
        Ok(finished) => finished,
        Err(panic) => {
            let _entered = span.enter();
            let message = panic_message(panic.as_ref());
            tracing::error!(job_id = held.id, slot = slot.id(), %message,
                "a worker panicked running a job; its slot is replaced");
            queue.metrics().worker_panicked();
            queue.registry().finished(&lease);
            let why = format!(
                "the host failed while running this attempt (worker slot {} panicked: {message}); \
                 the slot was replaced",
                slot.id()
            );
            host_failure(&queue, held, lease, started_at, why)
        }
    };
    let failed = matches!(
        finished.outcome.decision,
        Decision::Retry { .. } | Decision::DeadLetter
    );
    slot.finish(failed, queue.now());
    finished.span = span;
    // The report stays counted in the budget until the recorder wrote it.
    finished.reserved = Some(reserved);
    // The recorder outlives every job task.
    let _ = results.send(finished);
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// An attempt the host failed (its worker panicked, or its slot got
/// stuck): a failed attempt with a host-made report saying so, which
/// another attempt may not repeat (retryable).
pub(super) fn host_failure(
    queue: &Queue,
    job: Job,
    lease: Lease,
    started_at: Millis,
    message: String,
) -> Finished {
    let now = queue.now();
    let decision = queue
        .policy()
        .decide(&job, Ending::HostFailed { retryable: true }, now);
    let outcome = Outcome {
        lease,
        decision,
        attempt: Some(AttemptRecord {
            started_at,
            report: AttemptReport::HostFailed {
                message,
                retryable: true,
            },
        }),
        output: None,
        follow_ups: Vec::new(),
        at: now,
    };
    Finished {
        job,
        outcome,
        span: tracing::Span::none(),
        reserved: None,
        ended: std::time::Instant::now(),
    }
}

/// Runs one claimed job and returns what to record. The job must already
/// be marked running in the registry (`progress` is its cell there).
async fn run(
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
                // They join the trace of this attempt's span.
                let trace = crate::telemetry::carried(&tracing::Span::current(), job.trace);
                match queue.admit_follow_ups(requested, trace, now).await {
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
    Finished {
        job,
        outcome,
        span: tracing::Span::none(),
        reserved: None,
        ended: std::time::Instant::now(),
    }
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
