//! Leases and the services around them, in-process with a driven clock:
//! the renewer, a guest stopped when its lease is lost, the scheduler
//! rescuing a dead host's job, cancelling a retrying job, and what a
//! graceful shutdown does with a job that ends within its grace.

use serde_json::json;
use wasmjob::job::JobState;
use wasmjob::policy::{Backoff, RetrySpec};
use wasmjob::queue::QueueConfig;
use wasmjob::report::{AttemptReport, FailureKind};
use wasmjob::store::{ClaimRequest, JobStore, LeaseFilter};
use wasmjob_tests::guests;
use wasmjob_tests::host::{Host, NowMs, small_fuel, wait_until};

fn fixed(ms: u64) -> RetrySpec {
    RetrySpec {
        backoff: Some(Backoff::Fixed),
        base_ms: Some(ms),
        max_delay_ms: Some(ms),
        jitter: Some(false),
    }
}

/// A job that runs until something stops it.
fn forever(host: &Host, module: &str) -> wasmjob::policy::JobSpec {
    let mut job = host.job(module, json!(null));
    job.limits = small_fuel(1_000_000_000_000);
    job.limits.timeout_ms = Some(3_600_000);
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_leases_are_renewed_and_a_job_whose_lease_is_lost_is_stopped() {
    // Renewed every 100 ms of real time, by 300 ms of the test clock.
    let mut host = Host::new(QueueConfig {
        concurrency: 1,
        lease_ms: 300,
        ..QueueConfig::default()
    });
    let looping = host.upload(guests::INFINITE_LOOP).await;
    let id = host.submit(forever(&host, &looping)).await.id;
    host.start_workers();
    let queue = host.queue.clone();
    wait_until(&queue, || {
        let running = queue.running().contains(&id);
        async move { running.then_some(()) }
    })
    .await
    .expect("the job started");
    // Far past the lease of the claim: only renewals keep it.
    host.clock.advance(60_000);
    let moved = host.clock.now_ms();
    let store = host.store.clone();
    wait_until(&queue, || {
        let store = store.clone();
        async move {
            let leased = store.leased_jobs(LeaseFilter::All, 10).await.unwrap();
            (leased[0].expires_at > moved).then_some(())
        }
    })
    .await
    .expect("the lease was renewed");
    assert_eq!(
        wasmjob::scheduler::rescue_once(&queue).await,
        0,
        "still held"
    );
    // Another host takes the job (here: cancels it in the store, which
    // this host does not hear of): the renewal finds the lease gone.
    store
        .cancel_unless_final(id, host.clock.now_ms())
        .await
        .unwrap();
    let detail = host
        .wait_job(id, |d| !d.attempts.is_empty())
        .await
        .expect("the stopped attempt's report");
    assert_eq!(
        detail.attempts[0].report.failure_kind(),
        Some(FailureKind::Cancelled)
    );
    assert!(queue.running().is_empty(), "the guest was stopped");
    host.stop_workers().await;
}

/// The clock steps forward far past the lease before the renewer runs
/// (an NTP step, a suspended VM): the lease is expired by the clock, but
/// this host holds it, so its own rescuer leaves the job alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_step_past_the_lease_does_not_rescue_a_job_this_host_runs() {
    // Renewed every 200 s of real time: not during this test.
    let mut host = Host::new(QueueConfig {
        concurrency: 1,
        lease_ms: 600_000,
        ..QueueConfig::default()
    });
    let looping = host.upload(guests::INFINITE_LOOP).await;
    let id = host.submit(forever(&host, &looping)).await.id;
    host.start_workers();
    let queue = host.queue.clone();
    wait_until(&queue, || {
        let running = queue.running().contains(&id);
        async move { running.then_some(()) }
    })
    .await
    .expect("the job started");
    // Past the lease (10 minutes), within the job's timeout (an hour).
    host.clock.advance(1_200_000);
    let leased = host
        .store
        .leased_jobs(LeaseFilter::ExpiredBefore(host.clock.now_ms()), 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1, "the lease is expired by the clock");
    assert_eq!(
        wasmjob::scheduler::rescue_once(&queue).await,
        0,
        "but held by this host"
    );
    assert!(queue.running().contains(&id), "the job runs on");
    queue.cancel(id).await.unwrap();
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_rescues_the_job_of_a_host_that_died() {
    let mut host = Host::new(QueueConfig {
        concurrency: 1,
        lease_ms: 600,
        ..QueueConfig::default()
    });
    let hello = host.upload(guests::HELLO).await;
    let mut job = host.job(&hello, json!({"name": "Ada"}));
    job.retry = fixed(1_000);
    let id = host.submit(job).await.id;
    // A host that claims it and dies: its lease is never renewed.
    let request = ClaimRequest {
        owner: "ghost".to_owned(),
        limit: 1,
        lease_ms: 600,
        ..ClaimRequest::default()
    };
    let claimed = host
        .store
        .claim_due(request, host.clock.now_ms())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let services = tokio::spawn(wasmjob::scheduler::run(host.queue.clone()));
    host.clock.advance(10_000);
    let detail = host.wait_for(id, JobState::Retrying).await;
    let AttemptReport::Lost { owner, message } = &detail.attempts[0].report else {
        panic!("{:?}", detail.attempts[0].report);
    };
    assert_eq!(owner.as_deref(), Some("ghost"));
    assert!(message.contains("expired"), "{message}");
    // It runs again here, once its backoff is over.
    host.start_workers();
    host.clock.set(detail.job.run_at);
    host.queue.wake();
    let detail = host.wait_for(id, JobState::Completed).await;
    assert_eq!(detail.attempts.len(), 2);
    services.abort();
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrying_job_is_cancelled_at_once_and_never_runs_again() {
    let mut host = Host::new(QueueConfig {
        concurrency: 1,
        ..QueueConfig::default()
    });
    let flaky = host.upload(guests::FLAKY).await;
    let mut job = host.job(&flaky, json!({"succeed_on": 2}));
    job.retry = fixed(60_000);
    let id = host.submit(job).await.id;
    host.start_workers();
    let detail = host.wait_for(id, JobState::Retrying).await;
    let cancelled = host.queue.cancel(id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.finished_at.is_some());
    // Due now, it is not claimed: a later job runs and the cancelled one
    // keeps its one attempt.
    host.clock.set(detail.job.run_at + 1);
    let later = host
        .submit(host.job(&flaky, json!({"succeed_on": 1})))
        .await
        .id;
    host.wait_for(later, JobState::Completed).await;
    let detail = host.detail(id).await;
    assert_eq!(detail.job.state, JobState::Cancelled);
    assert_eq!(detail.attempts.len(), 1);
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_ends_within_the_shutdown_grace_keeps_its_attempt() {
    let mut host = Host::new(QueueConfig {
        concurrency: 1,
        shutdown_grace_ms: 3_600_000,
        ..QueueConfig::default()
    });
    let looping = host.upload(guests::INFINITE_LOOP).await;
    let mut job = forever(&host, &looping);
    // It cannot end before the shutdown begins, and ends well within it.
    job.limits.timeout_ms = Some(300);
    job.retry = fixed(60_000);
    let id = host.submit(job).await.id;
    host.start_workers();
    let queue = host.queue.clone();
    wait_until(&queue, || {
        let running = queue.running().contains(&id);
        async move { running.then_some(()) }
    })
    .await
    .expect("the job started");
    host.stop_workers().await;
    let detail = host.detail(id).await;
    assert_eq!(
        detail.job.state,
        JobState::Retrying,
        "recorded, not released"
    );
    assert_eq!(detail.job.attempt, 1);
    assert_eq!(
        detail.attempts[0].report.failure_kind(),
        Some(FailureKind::Timeout)
    );
}
