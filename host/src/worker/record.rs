//! The recorder: writes attempt outcomes in batches.
//!
//! Job tasks send their outcome and move on; the recorder writes many in
//! one store call, one commit. A commit has a fixed cost (an fsync,
//! rewriting the same index pages), so under load the recorder lingers up
//! to [`LINGER`] for more outcomes to share it. When no other job is
//! claimed or running it writes at once: an idle host adds no latency.
//!
//! Every outcome applied is counted in the queue's history tally (flushed
//! to the store every few seconds, not one write per job).
//!
//! Each outcome is written or retried on its own merits. One too large to
//! store becomes a recorded failure of its job (a host-made report saying
//! why, and the decision for that). One that hit a passing failure (a busy
//! or full database) is retried after a pause, its lease renewed
//! meanwhile, so the job's result is not lost to a rescue.

use super::Finished;
use crate::metrics::Stage;
use crate::policy::{Decision, Ending};
use crate::queue::Queue;
use crate::report::AttemptReport;
use crate::store::{self, AttemptRecord, Outcome, Recorded};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Most outcomes written in one store call.
const MAX_BATCH: usize = 1_024;
/// Longest an outcome waits for others to share its commit.
const LINGER: Duration = Duration::from_millis(2);
/// First pause before writing again outcomes that hit a passing failure;
/// it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// Longest pause between attempts to write an outcome.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// After the pool stopped, how long the recorder keeps trying to write the
/// outcomes it still holds before it gives up (their jobs are then rescued
/// as lost attempts).
const GIVE_UP_AFTER_STOP: Duration = Duration::from_secs(10);

/// Records outcomes until every sender is gone and nothing is left to
/// write (or, after that, [`GIVE_UP_AFTER_STOP`] has passed).
pub(super) async fn run(queue: Queue, mut received: mpsc::UnboundedReceiver<Finished>) {
    let mut batch: Vec<Finished> = Vec::with_capacity(MAX_BATCH);
    let mut retry: Vec<Finished> = Vec::new();
    let mut retry_at: Option<Instant> = None;
    let mut pause = RETRY_FIRST;
    let mut closed_at: Option<Instant> = None;
    loop {
        // Wait for new outcomes, or for the time to write failed ones again.
        let due = retry_at.unwrap_or_else(Instant::now);
        if closed_at.is_none() {
            tokio::select! {
                got = received.recv_many(&mut batch, MAX_BATCH) => {
                    if got == 0 {
                        closed_at = Some(Instant::now());
                    } else {
                        linger(&queue, &mut received, &mut batch).await;
                    }
                }
                () = tokio::time::sleep_until(due), if retry_at.is_some() => {}
            }
        } else {
            tokio::time::sleep_until(due).await;
        }
        if retry_at.is_some_and(|at| at <= Instant::now()) || closed_at.is_some() {
            batch.append(&mut retry);
            retry_at = None;
        }
        if batch.is_empty() {
            if closed_at.is_some() {
                return;
            }
            continue;
        }
        let failed = write(&queue, std::mem::take(&mut batch)).await;
        if failed.is_empty() {
            pause = RETRY_FIRST;
            continue;
        }
        if closed_at.is_some_and(|at| at.elapsed() >= GIVE_UP_AFTER_STOP) {
            tracing::error!(
                outcomes = failed.len(),
                "giving up on outcomes that could not be written; their jobs will be rescued"
            );
            for finished in &failed {
                queue.registry().forget(&finished.outcome.lease);
            }
            return;
        }
        retry.extend(failed);
        retry_at = Some(Instant::now() + pause);
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// Waits up to [`LINGER`] for more outcomes while other jobs are in
/// flight, so they share one commit.
async fn linger(
    queue: &Queue,
    received: &mut mpsc::UnboundedReceiver<Finished>,
    batch: &mut Vec<Finished>,
) {
    if batch.len() >= MAX_BATCH || !queue.registry().more_coming() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    while batch.len() < MAX_BATCH {
        let limit = MAX_BATCH - batch.len();
        match tokio::time::timeout_at(deadline, received.recv_many(batch, limit)).await {
            Ok(0) | Err(_) => return, // closed, or lingered long enough
            Ok(_) if !queue.registry().more_coming() => return,
            Ok(_) => {}
        }
    }
}

/// Writes a batch; returns the outcomes to try again later. Outcomes the
/// store refuses as too large are replaced by a failure of their job and
/// written at once.
async fn write(queue: &Queue, mut batch: Vec<Finished>) -> Vec<Finished> {
    let mut again = Vec::new();
    // The second round writes the replacements of outcomes the store refused.
    for round in 0..2 {
        let outcomes: Vec<Outcome> = batch.iter().map(|f| f.outcome.clone()).collect();
        let results = match queue.store().record_if_leased(outcomes).await {
            Ok(results) => results,
            Err(error) => {
                tracing::error!(%error, outcomes = batch.len(), "writing outcomes failed; will retry");
                again.append(&mut batch);
                break;
            }
        };
        // A dead letter's alert leaves the host: it goes once the outcome
        // is durable (the store may answer outcomes at commit).
        let alerting = queue.alerts().is_some()
            && batch
                .iter()
                .any(|f| f.outcome.decision == crate::policy::Decision::DeadLetter);
        if alerting && let Err(error) = queue.store().durable().await {
            tracing::error!(%error, "the dead letters' outcomes may not be durable");
        }
        let mut replaced = Vec::new();
        let mut changed = Vec::new();
        // Whether jobs may have become due: follow-ups created, dependents
        // released by a job's end, a job given back.
        let mut due = false;
        for (finished, result) in batch.drain(..).zip(results) {
            match result {
                Ok(recorded) => {
                    if recorded.is_applied() {
                        let metrics = queue.metrics();
                        metrics.stage(Stage::Record, finished.ended.elapsed());
                        queue.note_outcome(&finished.job, &finished.outcome);
                        let _span = finished.span.enter();
                        tracing::info!(
                            job_id = finished.job.id,
                            queue = %finished.job.queue,
                            module = %finished.job.module,
                            attempt = finished.job.attempt,
                            decision = finished.outcome.decision.as_str(),
                            "recorded"
                        );
                        for follow_up in &finished.outcome.follow_ups {
                            metrics.submitted(&follow_up.queue, &follow_up.module);
                        }
                        changed.push(finished.outcome.lease.id);
                        due |= may_free_work(queue, &finished, recorded);
                    }
                    queue.registry().forget(&finished.outcome.lease);
                }
                Err(store::Error::TooLarge(why)) if round == 0 => {
                    let message = format!("the attempt's result could not be stored: {why}");
                    replaced.push(refused(queue, finished, message, false));
                }
                // A follow-up's module deleted since it was admitted: the
                // attempt fails and may run again once it is back.
                Err(store::Error::NotFound(why))
                    if round == 0 && !finished.outcome.follow_ups.is_empty() =>
                {
                    let message =
                        format!("the attempt's follow-up jobs could not be stored: {why}");
                    replaced.push(refused(queue, finished, message, true));
                }
                Err(error) => {
                    tracing::warn!(%error, job_id = finished.job.id, "writing an outcome failed; will retry");
                    again.push(finished);
                }
            }
        }
        queue.changed(changed);
        if due {
            // Idle workers start them now, not at their next poll.
            queue.wake();
        }
        if replaced.is_empty() {
            break;
        }
        batch = replaced;
    }
    again
}

/// Whether an applied outcome may have left jobs due that a claim made
/// before it did not see: jobs waiting for this one released, follow-ups
/// created, the job given back, or a place freed under a queue's cap. A
/// plain completion frees nothing: waking the workers for it would only
/// cost a claim that finds nothing.
fn may_free_work(queue: &Queue, finished: &Finished, recorded: Recorded) -> bool {
    let outcome = &finished.outcome;
    recorded == Recorded::Released
        || !outcome.follow_ups.is_empty()
        || outcome.decision == Decision::Release
        || queue.config().caps.contains_key(&finished.job.queue)
}

/// An outcome the store refused becomes a failure of its job: the host's
/// report says why, and the policy decides what follows (a result too
/// large to store would be the same again, so that is not retryable).
fn refused(queue: &Queue, finished: Finished, message: String, retryable: bool) -> Finished {
    let Finished {
        job,
        outcome,
        span,
        reserved,
        ended,
    } = finished;
    tracing::warn!(job_id = job.id, %message);
    let ending = Ending::HostFailed { retryable };
    let decision = queue.policy().decide(&job, ending, outcome.at);
    let started_at = outcome
        .attempt
        .as_ref()
        .map_or(outcome.at, |attempt| attempt.started_at);
    let outcome = Outcome {
        decision,
        attempt: Some(AttemptRecord {
            started_at,
            report: AttemptReport::HostFailed { message, retryable },
        }),
        output: None,
        follow_ups: Vec::new(),
        ..outcome
    };
    debug_assert_ne!(outcome.decision, Decision::Release);
    Finished {
        job,
        outcome,
        span,
        reserved,
        ended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Dependency, JobState, OnFailure, Prereq};
    use crate::json::Json;
    use crate::policy::JobSpec;
    use crate::store::{ClaimRequest, Claimed, JobStore, Lease};

    const T0: i64 = 1_700_000_000_000;

    /// A completion of `claimed`, as a job's task hands it over.
    fn completed(claimed: Claimed) -> Finished {
        Finished {
            outcome: Outcome {
                lease: Lease {
                    id: claimed.job.id,
                    token: claimed.token,
                },
                decision: Decision::Complete,
                attempt: None,
                output: None,
                follow_ups: Vec::new(),
                at: T0,
            },
            job: claimed.job,
            span: tracing::Span::none(),
            reserved: None,
            ended: std::time::Instant::now(),
        }
    }

    /// The recorder wakes the idle workers when an outcome may have left
    /// work (here a dependent released) and not for a plain completion,
    /// after which a claim could only find nothing.
    #[tokio::test]
    async fn only_an_outcome_that_may_leave_work_wakes_the_workers() {
        let (_dir, store, hash, queue) = crate::worker::tests::one_slot_queue().await;
        let plain = JobSpec::new(hash, Json::null());
        let prereq = queue.submit(vec![plain.clone()]).await.unwrap()[0].job.id;
        let waiting = JobSpec {
            depends_on: vec![Dependency {
                on: Prereq::Job(prereq),
                name: "first".to_owned(),
                on_failure: OnFailure::Cancel,
            }],
            ..plain.clone()
        };
        let dependent = queue.submit(vec![waiting]).await.unwrap()[0].job.id;
        let lonely = queue.submit(vec![plain]).await.unwrap()[0].job.id;
        let request = ClaimRequest {
            owner: "host".to_owned(),
            limit: 10,
            lease_ms: 30_000,
            caps: Default::default(),
        };
        let mut claimed = store.claim_due(request, T0).await.unwrap();
        assert_eq!(claimed.len(), 2, "the dependent waits");
        let first = claimed.remove(claimed.iter().position(|c| c.job.id == prereq).unwrap());
        assert_eq!(claimed[0].job.id, lonely);
        let _ = queue.take_wake();

        assert!(
            write(&queue, vec![completed(claimed.remove(0))])
                .await
                .is_empty()
        );
        assert_eq!(queue.take_wake(), None, "a plain completion wakes nobody");

        assert!(write(&queue, vec![completed(first)]).await.is_empty());
        assert!(
            queue.take_wake().is_some(),
            "a released dependent wakes the workers"
        );
        let released = store.job(dependent).await.unwrap().unwrap().job;
        assert_eq!(released.state, JobState::Pending);
    }
}
