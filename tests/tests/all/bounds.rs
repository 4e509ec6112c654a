//! Guests that flood every channel of their report (logs, stdout and
//! stderr, the output, the error message): the host keeps each within its
//! bound, records the job's outcome, and holds the reports of jobs in
//! flight within the host-wide budget.

use crate::wat;
use serde_json::json;
use std::sync::Arc;
use wasmjob::job::{Job, JobDetail, JobState};
use wasmjob::limits::{ERROR_MESSAGE_BYTES, Limits};
use wasmjob::policy::{JobSpec, LimitsSpec};
use wasmjob::queue::QueueConfig;
use wasmjob::report::{AttemptReport, FailureKind, Report};
use wasmjob::worker::Fault;
use wasmjob_tests::guests;
use wasmjob_tests::host::{Host, eventually};

fn report(detail: &JobDetail) -> &Report {
    match &detail.attempts.last().expect("an attempt").report {
        AttemptReport::Ran(report) => report,
        other => panic!("not the engine's report: {other:?}"),
    }
}

fn with_limits(host: &Host, module: &str, input: serde_json::Value, limits: LimitsSpec) -> JobSpec {
    let job = host.job(module, input);
    JobSpec {
        max_attempts: Some(1),
        limits: LimitsSpec {
            output_bytes: limits.output_bytes,
            log_records: limits.log_records,
            log_bytes: limits.log_bytes,
            stdio_tail_bytes: limits.stdio_tail_bytes,
            ..job.limits
        },
        ..job
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_flooding_every_channel_is_kept_within_its_bounds_and_recorded() {
    let mut host = Host::new(QueueConfig::default());
    host.upload_named(guests::CHATTY, "chatty").await;
    host.upload_named(guests::FATAL, "fatal").await;
    let flooding = host.queue.upload(wat::flood(256), None).await.unwrap().hash;
    host.start_workers();
    let small = LimitsSpec {
        output_bytes: Some(1_000),
        log_records: Some(100),
        log_bytes: Some(4_096),
        stdio_tail_bytes: Some(1_024),
        ..LimitsSpec::default()
    };

    // Logs and stderr: 5,000 lines of 100 bytes each to both.
    let lines: u64 = 5_000;
    let chatty = host
        .submit(with_limits(
            &host,
            "chatty",
            json!({"lines": lines, "bytes_per_line": 100, "progress_steps": 10}),
            small,
        ))
        .await;
    let detail = host.wait_for(chatty.id, JobState::Completed).await;
    let ran = report(&detail);
    assert!(ran.logs.len() <= 100, "{}", ran.logs.len());
    let log_bytes: usize = ran.logs.iter().map(|r| r.message.len()).sum();
    assert!(log_bytes <= 4_096, "{log_bytes}");
    assert_eq!(ran.logs.len() as u64 + ran.logs_dropped, lines);
    assert!(ran.stderr.tail.len() <= 1_024);
    assert_eq!(ran.stderr.total_bytes, lines * 101, "every line counted");

    // The output: 4 MiB returned against a limit of 1,000 bytes.
    let big = host
        .submit(with_limits(
            &host,
            "chatty",
            json!({"lines": 0, "output_bytes": 4 << 20}),
            small,
        ))
        .await;
    let detail = host.wait_for(big.id, JobState::Failed).await;
    assert_eq!(
        report(&detail).failure_kind(),
        Some(FailureKind::OutputLimit)
    );
    assert!(detail.output.is_none());

    // A command module's stdout: 16 MiB written against the same limit.
    let flood = host
        .submit(with_limits(&host, &flooding, json!(null), small))
        .await;
    let detail = host.wait_for(flood.id, JobState::Failed).await;
    let ran = report(&detail);
    assert_eq!(ran.failure_kind(), Some(FailureKind::OutputLimit));
    assert!(ran.stdout.tail.len() <= 1_024, "{}", ran.stdout.tail.len());

    // The error message: 1 MiB, kept to its first 4 KiB with its length.
    let wordy = host
        .submit(with_limits(
            &host,
            "fatal",
            json!({"pad_to": 1 << 20}),
            small,
        ))
        .await;
    let detail = host.wait_for(wordy.id, JobState::Failed).await;
    let failure = report(&detail).failure.clone().expect("a failure");
    assert_eq!(failure.kind, FailureKind::FatalError);
    assert!(failure.message.len() <= ERROR_MESSAGE_BYTES);
    assert!(failure.message.starts_with("deliberate fatal error"));
    assert_eq!(failure.message_bytes, Some(1 << 20));
    let last_error = detail.job.last_error.expect("the job's last error");
    assert!(
        last_error.len() <= ERROR_MESSAGE_BYTES,
        "{}",
        last_error.len()
    );
    // Listings carry the short message, never a report.
    let listed: Vec<Job> = host
        .queue
        .list(Default::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|job| job.id == wordy.id)
        .collect();
    assert!(listed[0].last_error.as_ref().unwrap().len() <= ERROR_MESSAGE_BYTES);
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_in_flight_stay_within_the_hosts_budget() {
    // The jobs' limits: `Host::job` asks for the test limits.
    let limits: Limits = wasmjob_tests::test_limits();
    // Room for one job's report at these limits, not two.
    let mut host = Host::new(QueueConfig {
        concurrency: 2,
        report_memory_bytes: limits.report_bytes() * 3 / 2,
        ..QueueConfig::default()
    });
    host.upload_named(guests::HELLO, "hello").await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let blocked = gate.clone();
    host.start_workers_with_faults(Arc::new(move |_: &Job| Some(Fault::Block(blocked.clone()))));
    let first = host.submit(host.job("hello", json!({"name": "a"}))).await;
    let second = host.submit(host.job("hello", json!({"name": "b"}))).await;
    let queue = host.queue.clone();
    // The first holds its slot (blocked) and the budget; the second is
    // claimed but waits for the budget, though a slot is free.
    eventually("the second job waits for the budget", || {
        queue.report_budget().waits() > 0
    })
    .await;
    assert_eq!(queue.running().len(), 1, "one report fits at a time");
    assert!(queue.report_budget().reserved_bytes() <= queue.report_budget().total_bytes());
    gate.add_permits(2);
    host.wait_for(first.id, JobState::Completed).await;
    host.wait_for(second.id, JobState::Completed).await;
    host.stop_workers().await;
    assert_eq!(queue.report_budget().reserved_bytes(), 0, "all returned");
}
