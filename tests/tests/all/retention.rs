//! Retention through the real queue: real jobs finish, the test clock ages
//! them, and `Queue::prune_finished` deletes them batch by batch, also
//! under a stream of submissions (with `WASMJOB_PRUNE_BACKLOG=100000` that
//! test is the measurement of the writer's longest pause).

use serde_json::json;
use std::time::{Duration, Instant};
use wasmjob::job::{JobState, ModuleRef, NewJob};
use wasmjob::json::Json;
use wasmjob::policy::Decision;
use wasmjob::queue::QueueConfig;
use wasmjob::store::{AttemptRecord, ClaimRequest, JobStore, Lease, Outcome, Retention};
use wasmjob_tests::guests;
use wasmjob_tests::host::{Host, NowMs};

const DAY: i64 = 86_400_000;

fn retention(batch: usize) -> Retention {
    Retention {
        completed_ms: Some(7 * DAY),
        cancelled_ms: Some(7 * DAY),
        dead_letter_ms: Some(30 * DAY),
        unique_window_ms: 0,
        batch,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_past_their_age_are_deleted_batch_by_batch() {
    let mut host = Host::new(QueueConfig {
        concurrency: 2,
        ..QueueConfig::default()
    });
    let hello = host.upload(guests::HELLO).await;
    host.start_workers();
    let mut old = Vec::new();
    for _ in 0..5 {
        old.push(
            host.submit(host.job(&hello, json!({"name": "old"})))
                .await
                .id,
        );
    }
    for &id in &old {
        host.wait_for(id, JobState::Completed).await;
    }
    host.clock.advance(3 * DAY);
    let recent = host
        .submit(host.job(&hello, json!({"name": "new"})))
        .await
        .id;
    host.queue.wake();
    host.wait_for(recent, JobState::Completed).await;
    host.clock.advance(5 * DAY);

    let run = host.queue.prune_finished(retention(2)).await.unwrap();
    assert_eq!(run.pruned.jobs, 5, "{run:?}");
    assert_eq!(run.batches, 3, "2 + 2 + 1: the short batch ends the pass");
    for id in old {
        assert!(host.queue.job(id).await.is_err(), "job {id} is gone");
    }
    assert_eq!(host.detail(recent).await.job.state, JobState::Completed);
    let again = host.queue.prune_finished(retention(2)).await.unwrap();
    assert_eq!((again.pruned.jobs, again.batches), (0, 1));
    host.stop_workers().await;
}

/// Stores `n` jobs completed at the clock's time, straight through the
/// store in batches of 1,000 (insert, claim, record).
async fn completed_backlog(host: &Host, module: &str, n: usize) {
    let store: &dyn JobStore = host.store.as_ref();
    let template = NewJob {
        queue: "default".to_owned(),
        module: ModuleRef {
            hash: module.to_owned(),
            name: None,
        },
        input: Json::parse_str(r#"{"name":"backlog"}"#).unwrap(),
        priority: 5,
        max_attempts: 3,
        retry: wasmjob::policy::RetryPolicy::default(),
        limits: wasmjob::limits::Limits::default(),
        run_at: 0,
        unique: None,
        depends_on: Vec::new(),
        node: None,
        grants: None,
        trace: None,
    };
    let mut left = n;
    while left > 0 {
        let now = host.clock.now_ms();
        let size = left.min(1_000);
        let jobs = vec![
            NewJob {
                run_at: now,
                ..template.clone()
            };
            size
        ];
        store.insert_jobs(jobs, now).await.unwrap();
        let request = ClaimRequest {
            owner: "backlog".to_owned(),
            limit: size,
            lease_ms: 60_000,
            caps: Default::default(),
        };
        let claimed = store.claim_due(request, now).await.unwrap();
        let outcomes = claimed
            .into_iter()
            .map(|c| Outcome {
                lease: Lease {
                    id: c.job.id,
                    token: c.token,
                },
                decision: Decision::Complete,
                attempt: Some(AttemptRecord {
                    started_at: now,
                    report: wasmjob::report::AttemptReport::HostFailed {
                        message: "a stand-in report of a realistic size ".repeat(8),
                        retryable: true,
                    },
                }),
                output: Some(Json::parse_str(r#"{"greeting":"Hello, backlog!"}"#).unwrap()),
                follow_ups: Vec::new(),
                at: now,
            })
            .collect();
        store.record_if_leased(outcomes).await.unwrap();
        left -= size;
    }
}

/// A backlog of completed jobs (2,000; set `WASMJOB_PRUNE_BACKLOG` for
/// another size, e.g. 100000 to measure) is pruned while a client submits
/// jobs one at a time: every old job goes, every new submission succeeds
/// and stays. Prints the longest prune batch and the submissions' latency
/// (no assertion on time; `--nocapture` to see them, a release build for
/// the figures that matter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_under_a_stream_of_submissions_deletes_only_the_old_jobs() {
    let n: usize = std::env::var("WASMJOB_PRUNE_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let host = Host::new(QueueConfig::default());
    let hello = host.upload(guests::HELLO).await;
    let filled = Instant::now();
    completed_backlog(&host, &hello, n).await;
    eprintln!(
        "backlog of {n} completed jobs stored in {:?}",
        filled.elapsed()
    );
    host.clock.advance(8 * DAY);

    let submitting = tokio::sync::watch::channel(true);
    let (stop, running) = submitting;
    let queue = host.queue.clone();
    let job = host.job(&hello, json!({"name": "during"}));
    let submitter = tokio::spawn(async move {
        let mut latencies = Vec::new();
        while *running.borrow() {
            let started = Instant::now();
            queue.submit(vec![job.clone()]).await.unwrap();
            latencies.push(started.elapsed());
        }
        latencies
    });
    // The stream is flowing before the prune starts.
    let mut changes = host.queue.changes();
    changes.changed().await.unwrap();
    let pruning = Instant::now();
    let run = host.queue.prune_finished(retention(500)).await.unwrap();
    let pruned_in = pruning.elapsed();
    stop.send(false).unwrap();
    let mut latencies = submitter.await.unwrap();
    latencies.sort();
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    assert_eq!(run.pruned.jobs, n as u64);
    // Every submission made meanwhile is still there, waiting (no workers).
    let counts = host.queue.counts().await.unwrap();
    let pending = counts
        .iter()
        .find(|(state, _)| *state == JobState::Pending)
        .map_or(0, |(_, n)| *n);
    assert_eq!(pending, latencies.len() as u64, "{counts:?}");
    assert!(!latencies.is_empty());
    eprintln!(
        "pruned {} jobs in {pruned_in:?}: {} batches of 500, longest {:?}, mean {:?}",
        run.pruned.jobs,
        run.batches,
        run.longest_batch,
        pruned_in / run.batches.max(1) as u32
    );
    eprintln!(
        "{} submissions meanwhile: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        quantile(0.5),
        quantile(0.99),
        latencies.last().copied().unwrap_or(Duration::ZERO)
    );
}
