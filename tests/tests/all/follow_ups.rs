//! Jobs that submit jobs, end to end in-process with the `split` example
//! job: its follow-ups exist only if its attempt completes (created with
//! its result, linked to it, in its workflow), never after a failed,
//! retried, timed-out or cancelled attempt, and within the host's bounds.

use serde_json::{Value, json};
use wasmjob::job::{Job, JobId, JobState, TraceParent, WorkflowState};
use wasmjob::policy::{Backoff, JobSpec, RetrySpec};
use wasmjob::queue::QueueConfig;
use wasmjob::report::{AttemptReport, FailureKind};
use wasmjob::store::JobFilter;
use wasmjob_tests::guests;
use wasmjob_tests::host::Host;

async fn host() -> Host {
    let host = Host::new(QueueConfig {
        concurrency: 2,
        ..QueueConfig::default()
    });
    for (path, name) in [(guests::SPLIT, "split"), (guests::SUM, "sum")] {
        host.upload_named(path, name).await;
    }
    host
}

/// Every job `parent`'s attempts created.
async fn children(host: &Host, parent: JobId) -> Vec<Job> {
    let mut jobs = host
        .queue
        .list(JobFilter {
            limit: 1000,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    jobs.retain(|job| job.parent == Some(parent));
    jobs.reverse();
    jobs
}

fn output(detail: &wasmjob::job::JobDetail) -> Value {
    serde_json::from_str(detail.output.as_ref().expect("an output").as_str()).unwrap()
}

fn last_failure(detail: &wasmjob::job::JobDetail) -> (FailureKind, String) {
    match &detail.attempts.last().expect("an attempt").report {
        AttemptReport::Ran(report) => {
            let failure = report.failure.as_ref().expect("a failure");
            (failure.kind, failure.message.clone())
        }
        other => panic!("unexpected report {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_attempt_creates_its_follow_ups_in_its_workflow() {
    let mut host = host().await;
    // Submitted in a caller's trace: the follow-ups join it (spans are not
    // exported here, so they carry the parent's context as it is).
    let trace = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let parent = host
        .submit(JobSpec {
            trace,
            ..host.job("split", json!({"numbers": [1, 2, 3, 4, 5], "chunk": 2}))
        })
        .await
        .id;
    host.start_workers();
    let done = host.wait_for(parent, JobState::Completed).await;
    assert_eq!(output(&done), json!({"chunks": 3}));
    assert_eq!(done.job.trace, trace);

    let jobs = children(&host, parent).await;
    let nodes: Vec<_> = jobs.iter().map(|j| j.node.clone().unwrap()).collect();
    assert_eq!(nodes, ["chunk-0", "chunk-1", "chunk-2", "total"]);
    assert!(
        jobs.iter().all(|job| job.trace == trace),
        "follow-ups join their parent's trace: {jobs:?}"
    );
    let total = host.wait_for(jobs[3].id, JobState::Completed).await;
    assert_eq!(
        output(&total),
        json!({"total": 15, "inputs": {"chunk-0": 3, "chunk-1": 7, "chunk-2": 5}})
    );
    // The parent joined a workflow with them; the total waited for each
    // chunk, by name.
    let workflow = done.job.workflow.expect("the parent joined a workflow");
    assert!(jobs.iter().all(|job| job.workflow == Some(workflow)));
    let detail = host.queue.workflow(workflow).await.unwrap();
    assert_eq!(detail.jobs.len(), 5);
    let mut edges: Vec<_> = detail
        .edges
        .iter()
        .filter(|e| e.job == jobs[3].id)
        .map(|e| (e.prereq, e.name.clone()))
        .collect();
    edges.sort();
    assert_eq!(
        edges,
        [
            (jobs[0].id, "chunk-0".to_owned()),
            (jobs[1].id, "chunk-1".to_owned()),
            (jobs[2].id, "chunk-2".to_owned()),
        ]
    );
    let finished = host.queue.workflow(workflow).await.unwrap();
    assert_eq!(finished.workflow.state(), WorkflowState::Completed);
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_retried_attempt_leaves_no_follow_up_behind() {
    let mut host = host().await;
    // Fails after submitting, every attempt: none is created.
    let mut failing = host.job("split", json!({"numbers": [1, 2], "then": "fail"}));
    failing.max_attempts = Some(1);
    let failing = host.submit(failing).await.id;
    // Fails after submitting on its first attempt only: the second
    // attempt's follow-ups are created, once.
    let mut retried = host.job(
        "split",
        json!({"numbers": [1, 2, 3], "chunk": 1, "then": "fail_first"}),
    );
    retried.max_attempts = Some(3);
    retried.retry = RetrySpec {
        backoff: Some(Backoff::Fixed),
        base_ms: Some(60_000),
        max_delay_ms: Some(60_000),
        jitter: Some(false),
    };
    let retried = host.submit(retried).await.id;
    host.start_workers();

    let failed = host.wait_for(failing, JobState::Failed).await;
    assert_eq!(last_failure(&failed).0, FailureKind::GuestError);
    let waiting = host
        .wait_job(retried, |d| d.job.state == JobState::Retrying)
        .await
        .unwrap();
    assert!(children(&host, failing).await.is_empty());
    assert!(children(&host, retried).await.is_empty());
    host.clock.set(waiting.job.run_at);
    host.queue.wake();
    let done = host.wait_for(retried, JobState::Completed).await;
    assert_eq!(done.job.attempt, 2);
    let jobs = children(&host, retried).await;
    let nodes: Vec<_> = jobs.iter().map(|j| j.node.clone().unwrap()).collect();
    assert_eq!(nodes, ["chunk-0", "chunk-1", "chunk-2", "total"]);
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_out_of_fuel_or_cancelled_leaves_no_follow_up_behind() {
    let mut host = host().await;
    let mut spinning = host.job("split", json!({"numbers": [1], "then": "spin"}));
    spinning.max_attempts = Some(1);
    spinning.limits.fuel = Some(5_000_000);
    let spinning = host.submit(spinning).await.id;
    let mut cancelled = host.job("split", json!({"numbers": [1], "then": "spin"}));
    cancelled.limits.fuel = Some(1_000_000_000_000);
    let cancelled = host.submit(cancelled).await.id;
    host.start_workers();

    let out_of_fuel = host.wait_for(spinning, JobState::Failed).await;
    assert_eq!(last_failure(&out_of_fuel).0, FailureKind::OutOfFuel);
    host.wait_for(cancelled, JobState::Running).await;
    host.queue.cancel(cancelled).await.unwrap();
    let stopped = host
        .wait_job(cancelled, |d| !d.attempts.is_empty())
        .await
        .expect("the interrupted attempt is filed");
    assert_eq!(stopped.job.state, JobState::Cancelled);
    assert!(children(&host, spinning).await.is_empty());
    assert!(children(&host, cancelled).await.is_empty());
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_the_host_refuses_fails_the_attempt_and_creates_none() {
    let mut host = host().await;
    // A module that does not exist: found out when the attempt completes,
    // a retryable failure (it may be uploaded).
    let mut unknown = host.job("split", json!({"numbers": [1, 2], "module": "nope"}));
    unknown.max_attempts = Some(1);
    let unknown = host.submit(unknown).await.id;
    // Past the bound on follow-ups per attempt (100): refused inside the
    // sandbox, and the job's `?` makes it fatal.
    let numbers: Vec<u32> = (1..=150).collect();
    let many = host
        .submit(host.job("split", json!({"numbers": numbers, "chunk": 1})))
        .await
        .id;
    host.start_workers();

    let failed = host.wait_for(unknown, JobState::Failed).await;
    assert_eq!(
        last_failure(&failed),
        (
            FailureKind::GuestError,
            "follow-up 0 (`chunk-0`): no module `nope`".to_owned()
        )
    );
    assert_eq!(failed.output, None);
    let failed = host.wait_for(many, JobState::Failed).await;
    assert_eq!(failed.attempts.len(), 1, "fatal: not retried");
    let (kind, message) = last_failure(&failed);
    assert_eq!(kind, FailureKind::FatalError);
    assert!(
        message.contains("an attempt may submit at most 100 follow-up jobs"),
        "{message}"
    );
    assert!(children(&host, unknown).await.is_empty());
    assert!(children(&host, many).await.is_empty());
    host.stop_workers().await;
}
