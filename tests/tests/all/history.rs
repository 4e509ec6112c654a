//! Per-minute history through the real queue: real guests complete, fail,
//! retry and go to the dead letter; the test clock makes their waits; the
//! tally is flushed to the store and read back, added to by a second flush,
//! and pruned past its keep age. And `GET /v1/history`.

use crate::api::Api;
use serde_json::json;
use wasmjob::history::{HistoryMinute, MINUTE_MS, minute_of};
use wasmjob::job::{JobId, JobState};
use wasmjob::policy::{Backoff, RetrySpec};
use wasmjob::queue::QueueConfig;
use wasmjob_tests::guests;
use wasmjob_tests::host::{Host, NowMs, T0};

fn config() -> QueueConfig {
    QueueConfig {
        concurrency: 2,
        history_keep_ms: 24 * 3_600_000,
        ..QueueConfig::default()
    }
}

/// Submits `n` hello jobs to `queue`; returns their ids.
async fn hellos(host: &Host, hello: &str, queue: &str, n: usize) -> Vec<JobId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let mut job = host.job(hello, json!({"name": "history"}));
        job.queue = Some(queue.to_owned());
        ids.push(host.submit(job).await.id);
    }
    ids
}

/// Every minute of history so far.
async fn everything(host: &Host, queue: Option<&str>) -> Vec<HistoryMinute> {
    host.queue
        .history(T0 - MINUTE_MS, host.clock.now_ms() + MINUTE_MS, queue)
        .await
        .expect("history")
}

/// Within 21% (the buckets' resolution) of `want`.
fn near(got: Option<u64>, want: f64) -> bool {
    got.is_some_and(|got| (got as f64 / want - 1.0).abs() < 0.21)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_counts_what_ended_with_waits_by_queue_and_minute() {
    let mut host = Host::new(config());
    let hello = host.upload(guests::HELLO).await;
    let flaky = host.upload(guests::FLAKY).await;
    let done = hellos(&host, &hello, "emails", 3).await;
    // Fails its only attempt: the dead letter.
    let mut doomed = host.job(&flaky, json!({"succeed_on": 5}));
    doomed.queue = Some("reports".to_owned());
    doomed.max_attempts = Some(1);
    let doomed = host.submit(doomed).await.id;
    // Fails once, then waits for a retry an hour away.
    let mut retried = host.job(&flaky, json!({"succeed_on": 2}));
    retried.queue = Some("reports".to_owned());
    retried.max_attempts = Some(2);
    retried.retry = RetrySpec {
        backoff: Some(Backoff::Fixed),
        base_ms: Some(3_600_000),
        max_delay_ms: Some(3_600_000),
        jitter: Some(false),
    };
    let retried = host.submit(retried).await.id;
    // Every job waits 5 s for a worker.
    host.clock.advance(5_000);
    host.start_workers();
    for id in done {
        host.wait_for(id, JobState::Completed).await;
    }
    host.wait_for(doomed, JobState::Failed).await;
    host.wait_for(retried, JobState::Retrying).await;
    assert!(
        everything(&host, None).await.is_empty(),
        "nothing flushed yet"
    );
    assert_eq!(
        host.queue.flush_history().await.unwrap(),
        2,
        "two queues, one minute"
    );

    let minutes = everything(&host, None).await;
    assert_eq!(minutes.len(), 2, "{minutes:?}");
    let (emails, reports) = (&minutes[0], &minutes[1]);
    assert_eq!(emails.queue, "emails");
    assert_eq!(emails.at, minute_of(T0 + 5_000));
    assert_eq!(
        (
            emails.completed,
            emails.failed,
            emails.retried,
            emails.dead_lettered
        ),
        (3, 0, 0, 0)
    );
    assert_eq!(emails.wait.count, 3);
    assert!(near(emails.wait.p50_ms, 5_000.0), "{:?}", emails.wait);
    assert!(near(emails.wait.p99_ms, 5_000.0), "{:?}", emails.wait);
    assert_eq!(emails.run.count, 3);
    assert!(emails.run.p50_ms.is_some());
    assert_eq!(reports.queue, "reports");
    assert_eq!(
        (
            reports.completed,
            reports.failed,
            reports.retried,
            reports.dead_lettered
        ),
        (0, 2, 1, 1)
    );
    assert_eq!(reports.failures.get("guest_error"), Some(&2), "{reports:?}");
    assert_eq!(
        everything(&host, Some("reports")).await,
        vec![reports.clone()]
    );
    assert!(everything(&host, Some("nothing")).await.is_empty());

    // A second flush of the same minute adds to its row.
    let more = hellos(&host, &hello, "emails", 2).await;
    host.queue.wake();
    for id in more {
        host.wait_for(id, JobState::Completed).await;
    }
    host.queue.flush_history().await.unwrap();
    let emails = &everything(&host, Some("emails")).await[0];
    assert_eq!(emails.completed, 5, "{emails:?}");
    assert_eq!(emails.wait.count, 5);
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_pruned_past_its_keep_age() {
    let mut host = Host::new(config());
    let hello = host.upload(guests::HELLO).await;
    host.start_workers();
    let old = hellos(&host, &hello, "default", 1).await[0];
    host.wait_for(old, JobState::Completed).await;
    host.queue.flush_history().await.unwrap();
    // A day and a minute later, another job.
    host.clock.advance(24 * 3_600_000 + MINUTE_MS);
    let new = hellos(&host, &hello, "default", 1).await[0];
    host.queue.wake();
    host.wait_for(new, JobState::Completed).await;
    host.queue.flush_history().await.unwrap();
    assert_eq!(everything(&host, None).await.len(), 2);

    assert_eq!(
        host.queue.prune_history().await.unwrap(),
        1,
        "the old minute"
    );
    let left = everything(&host, None).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].at, minute_of(host.clock.now_ms()));
    assert_eq!(
        host.queue.prune_history().await.unwrap(),
        0,
        "the new one stays"
    );
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_history_and_names_a_bad_parameter() {
    let mut api = Api::new();
    let hello = api.host.upload(guests::HELLO).await;
    api.host.start_workers();
    let id = hellos(&api.host, &hello, "default", 1).await[0];
    api.host.wait_for(id, JobState::Completed).await;
    api.host.queue.flush_history().await.unwrap();

    let (status, body) = api.get("/v1/history").await;
    assert_eq!(status, 200, "{body}");
    let minute = &body["minutes"][0];
    assert_eq!(minute["queue"], "default");
    assert_eq!(minute["completed"], 1);
    assert_eq!(minute["wait"]["count"], 1);
    assert!(minute["run"]["p95_ms"].is_u64(), "{body}");
    assert_eq!(minute["at"], minute_of(api.host.clock.now_ms()));

    let later = api.host.clock.now_ms() + MINUTE_MS;
    let until = later + MINUTE_MS;
    let (status, body) = api
        .get(&format!("/v1/history?since={later}&until={until}"))
        .await;
    assert_eq!((status.as_u16(), &body["minutes"]), (200, &json!([])));

    // The extremes of the range are answered, not a dropped connection
    // (schemathesis found `since` = i64::MIN overflowing the minute).
    let (status, body) = api
        .get("/v1/history?since=-9223372036854775808&until=9223372036854775807")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["minutes"].as_array().map(Vec::len), Some(1), "{body}");

    let (status, body) = api.get("/v1/history?since=yesterday").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_query");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("since"),
        "{body}"
    );
    // `until` before `since`: an empty range, not an error.
    let (status, body) = api.get("/v1/history?since=2000&until=1000").await;
    assert_eq!((status.as_u16(), &body["minutes"]), (200, &json!([])));
    let (status, body) = api.get("/v1/history?queue=no%20spaces").await;
    assert_eq!(status, 400, "{body}");
    api.host.stop_workers().await;
}
