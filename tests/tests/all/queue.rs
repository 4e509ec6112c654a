//! The queue end to end, in-process: real SQLite files, real compiled
//! guests, the real worker pool, time driven by a test clock.

use serde_json::json;
use wasmjob::job::{JobDetail, JobState};
use wasmjob::policy::{Backoff, RetrySpec};
use wasmjob::queue::QueueConfig;
use wasmjob::report::{AttemptReport, FailureKind, ModuleKind};
use wasmjob::store::StoreConfig;
use wasmjob_tests::host::{Host, NowMs, small_fuel, wait_until};
use wasmjob_tests::{guest_bytes, guests};

fn one_worker() -> QueueConfig {
    QueueConfig {
        concurrency: 1,
        ..QueueConfig::default()
    }
}

fn kinds(detail: &JobDetail) -> Vec<Option<FailureKind>> {
    detail
        .attempts
        .iter()
        .map(|a| match &a.report {
            AttemptReport::Ran(report) => report.failure_kind(),
            other => panic!("unexpected attempt report {other:?}"),
        })
        .collect()
}

fn fixed(ms: u64) -> RetrySpec {
    RetrySpec {
        backoff: Some(Backoff::Fixed),
        base_ms: Some(ms),
        max_delay_ms: Some(ms),
        jitter: Some(false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_takes_the_most_urgent_job_first_then_the_oldest() {
    let mut host = Host::new(one_worker());
    let hello = host.upload(guests::HELLO).await;
    let mut ids = Vec::new();
    for priority in [9, 5, 0, 5, 3] {
        let mut job = host.job(&hello, json!({"name": "p"}));
        job.priority = Some(priority);
        ids.push((priority, host.submit(job).await.id));
    }
    host.start_workers();
    let mut started = Vec::new();
    for (priority, id) in &ids {
        let detail = host.wait_for(*id, JobState::Completed).await;
        started.push((detail.attempts[0].started_at, *priority, *id));
    }
    started.sort();
    let order: Vec<_> = started.iter().map(|(_, p, id)| (*p, *id)).collect();
    assert_eq!(
        order,
        vec![ids[2], ids[4], ids[1], ids[3], ids[0]],
        "priority 0, then 3, then the two 5s oldest first, then 9"
    );
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_completes_on_its_third_attempt_after_the_backoff() {
    let mut host = Host::new(one_worker());
    let flaky = host.upload(guests::FLAKY).await;
    let mut job = host.job(&flaky, json!({"succeed_on": 3}));
    job.max_attempts = Some(5);
    job.retry = fixed(60_000);
    let id = host.submit(job).await.id;
    host.start_workers();
    for attempt in 1..=2 {
        let detail = host
            .wait_job(id, |d| {
                d.job.state == JobState::Retrying && d.job.attempt == attempt
            })
            .await
            .expect("the attempt failed and waits for its backoff");
        let finished = detail.attempts.last().unwrap().finished_at;
        assert_eq!(
            detail.job.run_at,
            finished + 60_000,
            "a fixed backoff of 60 s from the end of the attempt"
        );
        // Not due yet: the worker leaves it alone until the clock moves.
        assert!(host.queue.running().is_empty());
        host.clock.set(detail.job.run_at);
        host.queue.wake();
    }
    let detail = host.wait_for(id, JobState::Completed).await;
    assert_eq!(detail.job.attempt, 3);
    assert_eq!(
        kinds(&detail),
        vec![
            Some(FailureKind::GuestError),
            Some(FailureKind::GuestError),
            None
        ]
    );
    assert_eq!(
        detail.output.as_ref().unwrap().value(),
        json!({"attempt": 3})
    );
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_ends_in_the_dead_letter_with_escalating_fuel() {
    let mut host = Host::new(one_worker());
    let looping = host.upload(guests::INFINITE_LOOP).await;
    let mut job = host.job(&looping, json!({}));
    job.limits = small_fuel(1_000_000);
    job.retry = fixed(1);
    let id = host.submit(job).await.id;
    host.start_workers();
    let detail = host.wait_for(id, JobState::Failed).await;
    assert_eq!(detail.job.attempt, 3);
    assert_eq!(kinds(&detail), vec![Some(FailureKind::OutOfFuel); 3]);
    let fuel: Vec<_> = detail
        .attempts
        .iter()
        .map(|a| match &a.report {
            AttemptReport::Ran(r) => (r.limits.fuel, r.fuel.consumed),
            other => unreachable!("{other:?}"),
        })
        .collect();
    assert_eq!(
        fuel,
        vec![
            (1_000_000, Some(1_000_000)),
            (2_000_000, Some(2_000_000)),
            (4_000_000, Some(4_000_000))
        ],
        "each retry ran with twice the fuel and used all of it"
    );
    let dead = host
        .queue
        .list(wasmjob::store::JobFilter {
            state: Some(JobState::Failed),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);

    // Re-queued, it gets a fresh attempt budget and keeps its history; it
    // starts from the limits it had reached.
    let requeued = host.queue.requeue(id).await.unwrap();
    assert_eq!(
        (requeued.state, requeued.attempt, requeued.limits.fuel),
        (JobState::Pending, 0, 4_000_000)
    );
    let detail = host
        .wait_job(id, |d| {
            d.job.state == JobState::Failed && d.attempts.len() == 6
        })
        .await
        .expect("ran its fresh attempts");
    assert_eq!(detail.job.attempt, 3, "a budget of three again");
    let history: Vec<_> = detail
        .attempts
        .iter()
        .map(|a| match &a.report {
            AttemptReport::Ran(r) => (a.number, r.failure_kind(), r.limits.fuel),
            other => unreachable!("{other:?}"),
        })
        .collect();
    let fuel = Some(FailureKind::OutOfFuel);
    assert_eq!(
        history,
        [
            (1, fuel, 1_000_000),
            (2, fuel, 2_000_000),
            (3, fuel, 4_000_000),
            (4, fuel, 4_000_000),
            (5, fuel, 8_000_000),
            (6, fuel, 16_000_000),
        ]
    );
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_reports_memory_limit() {
    let mut host = Host::new(one_worker());
    let hog = host.upload(guests::MEMORY_HOG).await;
    let mut job = host.job(&hog, json!({"mode": "abort"}));
    job.max_attempts = Some(1);
    let id = host.submit(job).await.id;
    host.start_workers();
    let detail = host.wait_for(id, JobState::Failed).await;
    assert_eq!(kinds(&detail), vec![Some(FailureKind::MemoryLimit)]);
    assert!(detail.job.last_error.unwrap().contains("memory limit"));
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_and_running_jobs_can_be_cancelled() {
    let mut host = Host::new(one_worker());
    let looping = host.upload(guests::INFINITE_LOOP).await;
    let mut later = host.job(&looping, json!({}));
    later.delay_ms = Some(3_600_000);
    let later = host.submit(later).await.id;
    let cancelled = host.queue.cancel(later).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);

    let mut job = host.job(&looping, json!({}));
    job.limits = small_fuel(1_000_000_000_000);
    job.limits.timeout_ms = Some(3_600_000);
    let id = host.submit(job).await.id;
    host.start_workers();
    let queue = host.queue.clone();
    wait_until(&queue, || {
        let running = queue.running().contains(&id);
        async move { running.then_some(()) }
    })
    .await
    .expect("the job started");
    host.queue.cancel(id).await.unwrap();
    wait_until(&queue, || {
        let stopped = !queue.running().contains(&id);
        async move { stopped.then_some(()) }
    })
    .await
    .expect("the running guest was stopped");
    // The interrupted attempt's report is filed, saying `cancelled`.
    let detail = host
        .wait_job(id, |d| !d.attempts.is_empty())
        .await
        .expect("the cancelled attempt's report");
    assert_eq!(detail.job.state, JobState::Cancelled);
    assert_eq!(kinds(&detail), vec![Some(FailureKind::Cancelled)]);
    // A second cancel is a conflict: the job is final.
    match host.queue.cancel(id).await {
        Err(wasmjob::queue::Error::Store(wasmjob::store::Error::Conflict(message))) => {
            assert!(message.contains("is cancelled"), "{message}")
        }
        other => panic!("a conflict: {other:?}"),
    }
    host.stop_workers().await;
}

/// Stores a module's bytes without loading them into the engine, as a
/// host that has just started sees a module uploaded before.
async fn stored_only(host: &Host, bytes: &[u8]) -> String {
    let hash = blake3::hash(bytes).to_hex().to_string();
    host.queue
        .store()
        .put_module(
            &hash,
            ModuleKind::Component,
            bytes,
            None,
            host.clock.now_ms(),
        )
        .await
        .unwrap();
    hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_file_damaged_on_disk_fails_the_attempt_retryably_until_repaired() {
    let mut host = Host::new(one_worker());
    let bytes = guest_bytes(guests::HELLO);
    let hash = stored_only(&host, &bytes).await;
    let file = host.dir.path().join("modules").join(format!("{hash}.wasm"));
    std::fs::write(&file, b"damaged").unwrap();
    let mut job = host.job(&hash, json!({"name": "Ada"}));
    job.retry = fixed(60_000);
    let id = host.submit(job).await.id;
    host.start_workers();
    let detail = host.wait_for(id, JobState::Retrying).await;
    let AttemptReport::HostFailed { message, retryable } = &detail.attempts[0].report else {
        panic!("a host-made report: {:?}", detail.attempts[0].report);
    };
    assert!(*retryable, "a re-upload can repair it");
    assert!(
        message.contains(&hash[..12]) && message.contains("corrupt"),
        "{message}"
    );
    assert_eq!(detail.job.last_error.as_ref(), Some(message));
    assert_eq!(detail.job.attempt, 1, "the attempt counts");
    // Uploading the module again repairs the file; the retry completes.
    host.queue.upload(bytes, None).await.unwrap();
    host.clock.set(detail.job.run_at);
    host.queue.wake();
    let detail = host.wait_for(id, JobState::Completed).await;
    assert_eq!(detail.attempts.len(), 2);
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_the_engine_refuses_dead_letters_the_job_with_a_report() {
    let mut host = Host::new(one_worker());
    let hash = stored_only(&host, b"not webassembly").await;
    let mut job = host.job(&hash, json!(null));
    job.max_attempts = Some(5);
    let id = host.submit(job).await.id;
    host.start_workers();
    let detail = host.wait_for(id, JobState::Failed).await;
    assert_eq!(detail.attempts.len(), 1, "no retry can help");
    let AttemptReport::HostFailed { message, retryable } = &detail.attempts[0].report else {
        panic!("a host-made report: {:?}", detail.attempts[0].report);
    };
    assert!(!retryable);
    assert!(message.contains("not a WebAssembly module"), "{message}");
    assert_eq!(detail.job.last_error.as_ref(), Some(message));
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_too_large_to_store_fails_its_job_and_spares_the_others() {
    let config = QueueConfig {
        concurrency: 4,
        ..QueueConfig::default()
    };
    let mut host = Host::with_store(config, |dir| StoreConfig {
        max_value_bytes: Some(64 * 1024),
        ..StoreConfig::new(dir)
    });
    let chatty = host.upload(guests::CHATTY).await;
    let noop = host.upload(guests::NOOP).await;
    let input = json!({"lines": 0, "progress_steps": 0, "output_bytes": 100_000});
    let big = host.submit(host.job(&chatty, input)).await.id;
    let mut small = Vec::new();
    for _ in 0..6 {
        small.push(host.submit(host.job(&noop, json!(null))).await.id);
    }
    host.start_workers();
    let detail = host.wait_for(big, JobState::Failed).await;
    assert_eq!(
        detail.attempts.len(),
        1,
        "the same output again would not fit"
    );
    let AttemptReport::HostFailed { message, retryable } = &detail.attempts[0].report else {
        panic!("a host-made report: {:?}", detail.attempts[0].report);
    };
    assert!(message.contains("could not be stored"), "{message}");
    assert!(!retryable);
    for id in small {
        host.wait_for(id, JobState::Completed).await;
    }
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_queue_runs_its_cap_and_a_paused_one_nothing_while_others_run() {
    let mut host = Host::new(QueueConfig {
        concurrency: 4,
        caps: [("slow".to_owned(), 1)].into_iter().collect(),
        ..QueueConfig::default()
    });
    let looping = host.upload(guests::INFINITE_LOOP).await;
    let hello = host.upload(guests::HELLO).await;
    let endless = || {
        let mut job = host.job(&looping, json!(null));
        job.queue = Some("slow".to_owned());
        job.limits = small_fuel(1_000_000_000_000);
        job.limits.timeout_ms = Some(3_600_000);
        job
    };
    let slow = [
        host.submit(endless()).await.id,
        host.submit(endless()).await.id,
    ];
    host.queue.set_paused("held", true).await.unwrap_err(); // neither used nor declared
    let mut held = host.job(&hello, json!({"name": "later"}));
    held.queue = Some("held".to_owned());
    let held = host.submit(held).await.id;
    host.queue.set_paused("held", true).await.unwrap();
    host.start_workers();
    let quick = host
        .submit(host.job(&hello, json!({"name": "Ada"})))
        .await
        .id;
    host.wait_for(quick, JobState::Completed).await;
    host.wait_for(slow[0], JobState::Running).await;
    // The cap holds the second slow job back, not the other queues.
    assert_eq!(host.detail(slow[1]).await.job.state, JobState::Pending);
    assert_eq!(
        host.detail(held).await.job.state,
        JobState::Pending,
        "paused"
    );
    let queues = host.queue.queues().await.unwrap();
    let slow_queue = queues.iter().find(|q| q.name == "slow").unwrap();
    assert_eq!((slow_queue.running, slow_queue.pending), (1, 1));
    assert!(queues.iter().find(|q| q.name == "held").unwrap().paused);
    // Resumed, the paused queue's job runs at once.
    host.queue.set_paused("held", false).await.unwrap();
    host.wait_for(held, JobState::Completed).await;
    // The running slow job ends: the next one starts.
    host.queue.cancel(slow[0]).await.unwrap();
    host.wait_for(slow[1], JobState::Running).await;
    host.queue.cancel(slow[1]).await.unwrap();
    host.stop_workers().await;
}
