//! `GET /metrics`: the Prometheus exposition through the real router, with
//! real jobs run by a real pool.

use crate::api::Api;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use tower::ServiceExt;
use wasmjob::api::{ApiConfig, router};
use wasmjob::job::JobState;
use wasmjob::policy::JobSpec;
use wasmjob::queue::QueueConfig;
use wasmjob_tests::guests;
use wasmjob_tests::host::{Host, small_fuel, wait_until};

/// The value of the sample `name{labels}` (labels exactly as exposed), or
/// `None` when there is no such sample.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect("a number"))
        })
}

async fn scrape(host: &Host, config: &ApiConfig, token: Option<&str>) -> (StatusCode, String) {
    let app = router(host.queue.clone(), config.clone());
    let mut request = Request::get("/metrics");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Scrapes until `check` holds (the recorder counts an outcome just after
/// its commit, before it signals the change).
async fn scrape_until(host: &Host, check: impl Fn(&str) -> bool) -> String {
    let config = ApiConfig::default();
    wait_until(&host.queue, || async {
        let (_, text) = scrape(host, &config, None).await;
        check(&text).then_some(text)
    })
    .await
    .expect("the metrics never showed it")
}

#[tokio::test]
async fn outcomes_depths_and_waits_are_counted_by_queue_module_and_kind() {
    let mut host = Host::new(QueueConfig::default());
    host.upload_named(guests::HELLO, "hello").await;
    host.upload_named(guests::FATAL, "fatal").await;
    host.upload_named(guests::INFINITE_LOOP, "spin").await;
    host.start_workers();

    let hello = host.submit(host.job("hello", json!({"name": "a"}))).await;
    let fatal = host.submit(host.job("fatal", json!({}))).await;
    let spin = host
        .submit(JobSpec {
            max_attempts: Some(2),
            limits: small_fuel(50_000),
            ..host.job("spin", json!({}))
        })
        .await;
    host.wait_for(hello.id, JobState::Completed).await;
    host.wait_for(fatal.id, JobState::Failed).await;
    let retrying = host.wait_for(spin.id, JobState::Retrying).await;
    host.clock.set(retrying.job.run_at);
    host.queue.wake();
    host.wait_for(spin.id, JobState::Failed).await;

    // Three jobs wait in a paused queue; the oldest for 5 s.
    host.stop_workers().await;
    for _ in 0..3 {
        host.submit(JobSpec {
            queue: Some("held".to_owned()),
            ..host.job("hello", json!({}))
        })
        .await;
    }
    host.queue.set_paused("held", true).await.unwrap();
    host.clock.advance(5_000);

    let text = scrape_until(&host, |text| {
        sample(
            text,
            r#"wasmjob_jobs_dead_lettered_total{queue="default",module="spin"}"#,
        ) == Some(1.0)
    })
    .await;
    let at = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series}"));
    assert_eq!(
        at(r#"wasmjob_jobs_submitted_total{queue="default",module="hello"}"#),
        1.0
    );
    assert_eq!(
        at(r#"wasmjob_jobs_submitted_total{queue="held",module="hello"}"#),
        3.0
    );
    assert_eq!(
        at(r#"wasmjob_jobs_completed_total{queue="default",module="hello"}"#),
        1.0
    );
    assert_eq!(
        at(r#"wasmjob_attempt_failures_total{queue="default",module="fatal",kind="fatal_error"}"#),
        1.0
    );
    assert_eq!(
        at(r#"wasmjob_jobs_dead_lettered_total{queue="default",module="fatal"}"#),
        1.0
    );
    // The runaway job ran out of fuel twice: retried once, then dead.
    assert_eq!(
        at(r#"wasmjob_attempt_failures_total{queue="default",module="spin",kind="out_of_fuel"}"#),
        2.0
    );
    assert_eq!(
        at(r#"wasmjob_jobs_retried_total{queue="default",module="spin"}"#),
        1.0
    );
    // Four attempts ran in the sandbox: each measured once.
    assert_eq!(
        at(r#"wasmjob_job_duration_seconds_count{queue="default"}"#),
        4.0
    );
    assert_eq!(
        at(r#"wasmjob_queue_wait_seconds_count{queue="default"}"#),
        4.0
    );
    assert_eq!(
        at(r#"wasmjob_job_peak_memory_bytes_count{queue="default"}"#),
        4.0
    );
    assert!(at(r#"wasmjob_job_fuel_consumed_sum{queue="default"}"#) >= 100_000.0);
    // Depths and the oldest wait come from the store at the scrape.
    assert_eq!(at(r#"wasmjob_jobs{queue="held",state="pending"}"#), 3.0);
    assert_eq!(at(r#"wasmjob_jobs{queue="default",state="pending"}"#), 0.0);
    assert_eq!(at(r#"wasmjob_queue_paused{queue="held"}"#), 1.0);
    let waited = at(r#"wasmjob_queue_oldest_wait_seconds{queue="held"}"#);
    assert!((5.0..6.0).contains(&waited), "oldest wait {waited}");
    // The pool and the store's commits.
    assert_eq!(at(r#"wasmjob_workers_target"#), 8.0);
    assert_eq!(at(r#"wasmjob_workers{state="busy"}"#), 0.0);
    assert!(at("wasmjob_store_commit_seconds_count") >= 4.0);
    assert!(at("wasmjob_store_commit_batch_size_sum") >= 4.0);
    // The stages of a job's way: four attempts ran and were recorded,
    // after submissions committed with an fsync and claims.
    let stage = |name: &str| {
        at(&format!(
            "wasmjob_job_stage_seconds_count{{stage=\"{name}\"}}"
        ))
    };
    assert_eq!(stage("run"), 4.0);
    assert_eq!(stage("start"), 4.0);
    assert_eq!(stage("record"), 4.0);
    assert!(stage("submit") >= 3.0);
    assert!(stage("commit") >= 1.0);
    assert!(stage("fsync") >= 1.0);
    assert!(stage("claim") >= 1.0);
}

#[tokio::test]
async fn the_token_guards_metrics_unless_the_operator_makes_them_public() {
    let host = Host::new(QueueConfig::default());
    let guarded = ApiConfig {
        token: Some("s3cret".to_owned()),
        ..ApiConfig::default()
    };
    let (status, body) = scrape(&host, &guarded, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("unauthorized"), "{body}");
    let (status, _) = scrape(&host, &guarded, Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, text) = scrape(&host, &guarded, Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("# TYPE wasmjob_leases_lost_total counter"),
        "{text}"
    );

    let public = ApiConfig {
        metrics_public: true,
        ..guarded
    };
    let (status, _) = scrape(&host, &public, None).await;
    assert_eq!(status, StatusCode::OK);
    // Public metrics leave /v1 guarded.
    let api = Api::with(public);
    let (status, _) = api.get("/v1/jobs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// How often the host timed `stage` (`wasmjob_job_stage_seconds_count`).
async fn stage_count(host: &Host, stage: &str) -> f64 {
    let (_, text) = scrape(host, &ApiConfig::default(), None).await;
    let series = format!("wasmjob_job_stage_seconds_count{{stage=\"{stage}\"}}");
    sample(&text, &series).unwrap_or(0.0)
}

/// A host with the `hello` module and its pool started, once the pool's
/// first claim (which finds nothing) is done: idle.
async fn idle_pool() -> Host {
    let mut host = Host::new(QueueConfig::default());
    host.upload_named(guests::HELLO, "hello").await;
    host.start_workers();
    wait_until(&host.queue, || async {
        (stage_count(&host, "claim").await >= 1.0).then_some(())
    })
    .await
    .expect("the pool's first claim");
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_submission_costs_no_claim_and_its_job_runs_once_due() {
    let mut host = idle_pool().await;
    let claims = || stage_count(&host, "claim");
    let before = claims().await;
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let job = JobSpec {
            delay_ms: Some(60_000),
            ..host.job("hello", json!({"name": "later"}))
        };
        ids.push(host.submit(job).await.id);
    }
    let claimed = claims().await - before;
    // The idle pool still looks once a second; a wake-up per submission
    // would have been a claim each, finding nothing.
    let polls = started.elapsed().as_secs_f64().ceil() + 1.0;
    assert!(
        claimed <= polls,
        "{claimed} claims for 20 delayed submissions in {:?}",
        started.elapsed()
    );
    host.clock.advance(60_000);
    host.queue.wake();
    for id in ids {
        host.wait_for(id, JobState::Completed).await;
    }
    host.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_to_an_idle_pool_hand_their_jobs_over_without_a_claim() {
    let mut host = idle_pool().await;
    let stage = |name: &'static str| stage_count(&host, name);
    let before = stage("claim").await;
    let started = std::time::Instant::now();
    for i in 0..20 {
        let id = host
            .submit(host.job("hello", json!({"name": format!("n{i}")})))
            .await
            .id;
        host.wait_for(id, JobState::Completed).await;
    }
    let claimed = stage("claim").await - before;
    let handed = stage("handoff").await;
    // Each job came with its submission's commit. The idle pool still
    // looks once a second, and a submission that meets that look wakes
    // it instead (a wake-up during a claim is one more claim): a wake-up
    // per submission would be a claim each.
    let polls = 2.0 * (started.elapsed().as_secs_f64().ceil() + 1.0);
    assert!(
        claimed <= polls && handed >= 20.0 - polls,
        "{claimed} claims and {handed} hand-offs for 20 submissions in {:?}",
        started.elapsed()
    );
    host.stop_workers().await;
}
