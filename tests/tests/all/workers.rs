//! The pool looks after itself: a host-side panic or a stuck slot becomes a
//! recorded failure and a replaced slot; the pool grows while jobs wait on
//! I/O and shrinks when idle. Faults are injected with the pool's fault
//! hook; time is the test clock.

use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Semaphore;
use wasmjob::api::{ApiConfig, router};
use wasmjob::job::{Job, JobState};
use wasmjob::policy::JobSpec;
use wasmjob::queue::QueueConfig;
use wasmjob::report::AttemptReport;
use wasmjob::worker::{Fault, FaultHook, Scaling};
use wasmjob_tests::guests;
use wasmjob_tests::host::{Host, eventually};

fn one_slot() -> QueueConfig {
    QueueConfig {
        concurrency: 1,
        check_ms: 5,
        stuck_grace_ms: 1_000,
        ..QueueConfig::default()
    }
}

/// Injects `fault` into the jobs of queue `queue`.
fn fault_in(queue: &'static str, fault: Fault) -> FaultHook {
    Arc::new(move |job: &Job| (job.queue == queue).then(|| fault.clone()))
}

fn in_queue(host: &Host, queue: &str) -> JobSpec {
    JobSpec {
        queue: Some(queue.to_owned()),
        max_attempts: Some(1),
        ..host.job("hello", json!({"name": "x"}))
    }
}

async fn get(host: &Host, uri: &str) -> Value {
    use tower::ServiceExt;
    let app = router(host.queue.clone(), ApiConfig::default());
    let request = axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert!(
        response.status().is_success(),
        "{uri}: {}",
        response.status()
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn metrics(host: &Host) -> String {
    host.queue.render_metrics().await.unwrap()
}

fn host_message(report: &AttemptReport) -> &str {
    match report {
        AttemptReport::HostFailed { message, .. } => message,
        other => panic!("not a host failure: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_host_fails_the_attempt_and_the_slot_runs_the_next_job() {
    let mut host = Host::new(one_slot());
    host.upload_named(guests::HELLO, "hello").await;
    host.start_workers_with_faults(fault_in("panics", Fault::Panic));

    let doomed = host.submit(in_queue(&host, "panics")).await;
    let detail = host.wait_for(doomed.id, JobState::Failed).await;
    let message = host_message(&detail.attempts[0].report);
    assert!(message.contains("panicked"), "{message}");
    assert!(message.contains("injected fault"), "{message}");

    // The only slot runs the next job.
    let next = host.submit(in_queue(&host, "default")).await;
    host.wait_for(next.id, JobState::Completed).await;

    let workers = get(&host, "/v1/workers").await;
    let slots = workers["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 1, "{workers}");
    assert_eq!(slots[0]["state"], "idle");
    assert_eq!(
        (&slots[0]["jobs_done"], &slots[0]["failures"]),
        (&json!(2), &json!(1))
    );
    assert!(
        metrics(&host)
            .await
            .contains("wasmjob_worker_panics_total 1\n")
    );
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_stuck_past_its_deadline_is_abandoned_replaced_and_reported() {
    let mut host = Host::new(one_slot());
    host.upload_named(guests::HELLO, "hello").await;
    host.start_workers_with_faults(fault_in("hangs", Fault::Hang));

    let stuck = host.submit(in_queue(&host, "hangs")).await;
    host.wait_for(stuck.id, JobState::Running).await;
    let ready = get(&host, "/readyz").await;
    assert_eq!(ready["status"], "ready");
    // Its deadline (the test limits' timeout) and the grace go by.
    host.clock
        .advance(wasmjob_tests::test_limits().timeout_ms as i64 + 1_001);
    let detail = host.wait_for(stuck.id, JobState::Failed).await;
    let message = host_message(&detail.attempts[0].report);
    assert!(message.contains("stuck"), "{message}");

    let ready = get(&host, "/readyz").await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert!(ready["problems"][0].as_str().unwrap().contains("stuck"));
    let workers = get(&host, "/v1/workers").await;
    let states: Vec<&str> = workers["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["stuck", "idle"], "{workers}");
    assert_eq!(workers["stuck"], 1);

    // The replacement runs jobs.
    let next = host.submit(in_queue(&host, "default")).await;
    host.wait_for(next.id, JobState::Completed).await;
    let text = metrics(&host).await;
    assert!(text.contains("wasmjob_workers_stuck_total 1\n"), "{text}");
    assert!(
        text.contains("wasmjob_workers{state=\"stuck\"} 1\n"),
        "{text}"
    );
    // Dropped without a graceful stop: the hung task would hold it up.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_grows_while_jobs_wait_on_io_and_shrinks_when_idle() {
    let mut host = Host::new(QueueConfig {
        concurrency: 1,
        check_ms: 5,
        scaling: Some(Scaling {
            min: 1,
            max: 4,
            idle_ms: 1_000,
            // Whatever else runs on this machine, the CPU never holds the
            // pool back in this test.
            cpu_busy: 2.0,
        }),
        ..QueueConfig::default()
    });
    host.upload_named(guests::HELLO, "hello").await;
    let io = Arc::new(Semaphore::new(0));
    host.start_workers_with_faults(fault_in("io", Fault::Block(io.clone())));
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(host.submit(in_queue(&host, "io")).await.id);
    }
    // Every slot blocked, jobs waiting, CPU idle: 1 → 2 → 3 → 4.
    let slots = host.queue.slots().clone();
    eventually("the pool grows to its maximum", || slots.target() == 4).await;
    eventually("four jobs run at once", || slots.counts().busy == 4).await;

    io.add_permits(6);
    for id in ids {
        host.wait_for(id, JobState::Completed).await;
    }
    // Idle for the idle time: half the idle slots go each time, to 1.
    for target in [2, 1] {
        host.clock.advance(1_001);
        eventually("the pool shrinks", || slots.target() == target).await;
    }
    let resizes: Vec<(usize, usize, String)> = slots
        .changes()
        .iter()
        .map(|r| (r.from, r.to, r.reason.to_owned()))
        .collect();
    let expected = [
        (1, 2, "jobs_waiting"),
        (2, 3, "jobs_waiting"),
        (3, 4, "jobs_waiting"),
        (4, 2, "idle"),
        (2, 1, "idle"),
    ]
    .map(|(from, to, why)| (from, to, why.to_owned()));
    assert_eq!(resizes, expected);
    let text = metrics(&host).await;
    assert!(
        text.contains(
            "wasmjob_pool_scaling_decisions_total{direction=\"up\",reason=\"jobs_waiting\"} 3\n"
        ),
        "{text}"
    );
    assert!(text.contains("wasmjob_workers_target 1\n"), "{text}");
    host.stop_workers().await;
}
