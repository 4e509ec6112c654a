//! Retry policies, escalation and the dead letter through the real queue:
//! real guests fail, the worker asks `decide`, the store applies it, and the
//! test clock stands in for the backoff.

use serde_json::json;
use wasmjob::job::{JobDetail, JobId, JobState};
use wasmjob::policy::{Backoff, Ceilings, Defaults, Escalation, Policy, RetrySpec};
use wasmjob::queue::QueueConfig;
use wasmjob::report::{AttemptReport, FailureKind};
use wasmjob_tests::guests;
use wasmjob_tests::host::{Host, small_fuel};

fn one_worker() -> QueueConfig {
    QueueConfig {
        concurrency: 1,
        ..QueueConfig::default()
    }
}

fn retry(backoff: Backoff, base_ms: u64, max_delay_ms: u64, jitter: bool) -> RetrySpec {
    RetrySpec {
        backoff: Some(backoff),
        base_ms: Some(base_ms),
        max_delay_ms: Some(max_delay_ms),
        jitter: Some(jitter),
    }
}

/// Runs a `flaky` job that fails `failures` times under `policy`, moving
/// the clock to each retry's time; returns the delay before each retry
/// (its `run_at` minus the end of the attempt that failed) and the job.
async fn delays(failures: u32, policy: RetrySpec) -> (Vec<i64>, JobDetail) {
    let mut host = Host::new(one_worker());
    let flaky = host.upload(guests::FLAKY).await;
    let mut job = host.job(&flaky, json!({"succeed_on": failures + 1}));
    job.max_attempts = Some(failures + 1);
    job.retry = policy;
    let id = host.submit(job).await.id;
    host.start_workers();
    let mut delays = Vec::new();
    for attempt in 1..=failures {
        let detail = wait_retrying(&host, id, attempt).await;
        let ended = detail.attempts.last().unwrap().finished_at;
        delays.push(detail.job.run_at - ended);
        host.clock.set(detail.job.run_at);
        host.queue.wake();
    }
    let detail = host.wait_for(id, JobState::Completed).await;
    host.stop_workers().await;
    (delays, detail)
}

async fn wait_retrying(host: &Host, id: JobId, attempt: u32) -> JobDetail {
    host.wait_job(id, |d| {
        d.job.state == JobState::Retrying && d.job.attempt == attempt
    })
    .await
    .unwrap_or_else(|| panic!("attempt {attempt} of job {id} never failed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exponential_backoff_doubles_from_the_base() {
    let (delays, detail) = delays(3, retry(Backoff::Exponential, 1_000, 60_000, false)).await;
    assert_eq!(delays, [1_000, 2_000, 4_000]);
    assert_eq!(detail.attempts.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linear_backoff_grows_by_the_base_up_to_the_largest_delay() {
    let (delays, _) = delays(4, retry(Backoff::Linear, 1_000, 2_500, false)).await;
    assert_eq!(delays, [1_000, 2_000, 2_500, 2_500]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_spreads_delays_below_the_cap() {
    let (delays, _) = delays(5, retry(Backoff::Exponential, 4_000, 6_000, true)).await;
    // Without jitter: 4,000 then 6,000 (capped); with it, in [d/2, d].
    let ranges = [
        (2_000, 4_000),
        (3_000, 6_000),
        (3_000, 6_000),
        (3_000, 6_000),
        (3_000, 6_000),
    ];
    for (delay, (low, high)) in delays.iter().zip(ranges) {
        assert!(
            (low..=high).contains(delay),
            "{delay} outside [{low}, {high}]: {delays:?}"
        );
    }
    // Drawn from a random source: five draws all at the top are not jitter.
    assert!(
        delays
            .iter()
            .zip(ranges)
            .any(|(delay, (_, high))| *delay < high),
        "{delays:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_without_retries_dead_letters_the_first_failure() {
    let mut host = Host::new(one_worker());
    let flaky = host.upload(guests::FLAKY).await;
    let mut job = host.job(&flaky, json!({"succeed_on": 2}));
    job.max_attempts = Some(5);
    job.retry = RetrySpec {
        backoff: Some(Backoff::None),
        ..RetrySpec::default()
    };
    let id = host.submit(job).await.id;
    host.start_workers();
    let detail = host.wait_for(id, JobState::Failed).await;
    assert_eq!(detail.attempts.len(), 1);
    assert_eq!(detail.job.attempt, 1);
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_error_goes_straight_to_the_dead_letter() {
    let mut host = Host::new(one_worker());
    let fatal = host.upload(guests::FATAL).await;
    let mut job = host.job(&fatal, json!(null));
    job.max_attempts = Some(5);
    job.retry = retry(Backoff::Fixed, 1, 1, false);
    let id = host.submit(job).await.id;
    host.start_workers();
    let detail = host.wait_for(id, JobState::Failed).await;
    assert_eq!(detail.attempts.len(), 1, "one attempt of five: {detail:?}");
    let AttemptReport::Ran(report) = &detail.attempts[0].report else {
        panic!("{:?}", detail.attempts[0].report);
    };
    let failure = report.failure.as_ref().unwrap();
    assert_eq!(
        (failure.kind, failure.retryable),
        (FailureKind::FatalError, false)
    );
    assert_eq!(detail.job.last_error.as_ref(), Some(&failure.message));
    host.stop_workers().await;
}

/// A host whose escalation grows limits up to small ceilings.
fn escalating() -> QueueConfig {
    let escalation = Escalation {
        factor: 2.0,
        max_fuel: 50_000_000_000,
        max_memory_bytes: 16 << 20,
        max_timeout_ms: 150,
    };
    let policy = Policy::new(Defaults::default(), Ceilings::default(), escalation).unwrap();
    QueueConfig {
        policy,
        ..one_worker()
    }
}

/// Each attempt's failure kind and the limits it ran with.
fn attempts(detail: &JobDetail) -> Vec<(FailureKind, u64, u64)> {
    detail
        .attempts
        .iter()
        .map(|attempt| match &attempt.report {
            AttemptReport::Ran(r) => (
                r.failure_kind().expect("failed"),
                r.limits.memory_bytes,
                r.limits.timeout_ms,
            ),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_escalates_after_a_memory_limit_up_to_its_ceiling() {
    let mut host = Host::new(escalating());
    let hog = host.upload(guests::MEMORY_HOG).await;
    let mut job = host.job(&hog, json!({"mode": "abort"}));
    job.limits.memory_bytes = Some(4 << 20);
    job.max_attempts = Some(4);
    job.retry = retry(Backoff::Fixed, 1, 1, false);
    let id = host.submit(job).await.id;
    host.start_workers();
    let detail = host.wait_for(id, JobState::Failed).await;
    let t = wasmjob_tests::test_limits().timeout_ms;
    assert_eq!(
        attempts(&detail),
        [
            (FailureKind::MemoryLimit, 4 << 20, t),
            (FailureKind::MemoryLimit, 8 << 20, t),
            (FailureKind::MemoryLimit, 16 << 20, t),
            (FailureKind::MemoryLimit, 16 << 20, t),
        ]
    );
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_escalates_after_a_timeout_up_to_its_ceiling() {
    let mut host = Host::new(escalating());
    let looping = host.upload(guests::INFINITE_LOOP).await;
    let mut job = host.job(&looping, json!(null));
    job.limits = small_fuel(1_000_000_000_000);
    job.limits.timeout_ms = Some(50);
    job.max_attempts = Some(3);
    job.retry = retry(Backoff::Fixed, 1, 1, false);
    let id = host.submit(job).await.id;
    host.start_workers();
    let detail = host.wait_for(id, JobState::Failed).await;
    let memory = wasmjob_tests::test_limits().memory_bytes;
    assert_eq!(
        attempts(&detail),
        [
            (FailureKind::Timeout, memory, 50),
            (FailureKind::Timeout, memory, 100),
            (FailureKind::Timeout, memory, 150),
        ]
    );
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeues_cannot_give_a_job_unbounded_attempts() {
    // At most 2 attempts per submission, so 20 in a job's life.
    let ceilings = Ceilings {
        max_attempts: 2,
        ..Ceilings::default()
    };
    let defaults = Defaults {
        max_attempts: 1,
        ..Defaults::default()
    };
    let policy = Policy::new(defaults, ceilings, Escalation::default()).unwrap();
    assert_eq!(ceilings.attempts_per_job(), 20);
    let mut host = Host::new(QueueConfig {
        policy,
        ..one_worker()
    });
    let fatal = host.upload(guests::FATAL).await;
    let id = host.submit(host.job(&fatal, json!(null))).await.id;
    host.start_workers();
    for round in 1..=20 {
        host.wait_job(id, |d| {
            d.job.state == JobState::Failed && d.attempts.len() == round
        })
        .await
        .unwrap_or_else(|| panic!("attempt {round} never failed"));
        if round < 20 {
            host.queue
                .requeue(id)
                .await
                .expect("a requeue within the bound");
        }
    }
    let refused = host.queue.requeue(id).await.unwrap_err().to_string();
    assert!(refused.contains("has had 20 attempts"), "{refused}");
    assert_eq!(host.detail(id).await.job.state, JobState::Failed);
    host.stop_workers().await;
}
