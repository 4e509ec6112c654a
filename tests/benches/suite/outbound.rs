//! Scenario 8: jobs that call a service. The `webhook` example job POSTs
//! a small JSON body to a local HTTP server (axum, in this process, on its
//! own runtime thread), granted to the module through the host's config:
//! 1,000 jobs through the batch API at concurrency 8 and 64, each making
//! one request on a fresh connection; then jobs one at a time, the time
//! the request took inside each (the report's record) and its whole
//! attempt against the same request made natively by the benchmark (a
//! fresh connection each time, one at a time), in one run.

use crate::Settings;
use crate::host::{self, HostProcess, Submitter};
use crate::report::{Section, Stats};
use serde_json::json;
use std::time::{Duration, Instant};
use wasmjob_tests::{guest_bytes, guests};

pub fn run(settings: &Settings) -> Section {
    let jobs = settings.pick(1_000, 30);
    let mut section = Section::new("8 jobs that call a service (HTTP to a local server)");
    let (port, _server) = server();
    let url = format!("http://127.0.0.1:{port}/hook");
    let mut figures = Vec::new();
    let mut inside = Vec::new();
    let mut attempts = Vec::new();
    for concurrency in [8, 64] {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("wasmjob.toml");
        std::fs::write(
            &config,
            format!("[grants.bench]\nhttp = [\"http://127.0.0.1:{port}\"]\n"),
        )
        .expect("config");
        let c = concurrency.to_string();
        let host = HostProcess::start(
            &dir.path().join("data"),
            &["--config", config.to_str().unwrap(), "--concurrency", &c],
        );
        let client = host.client();
        let bytes = guest_bytes(guests::WEBHOOK);
        client
            .post_bytes("/v1/modules?name=webhook&grants=bench", &bytes)
            .unwrap_or_else(|e| panic!("upload: {e}"));
        let job = json!({"module": "webhook", "max_attempts": 1,
                         "input": {"url": url, "payload": {"order": 42}}})
        .to_string();
        // Warm: the module loaded, the pool started.
        host::wait_final(
            &client,
            Submitter::new(&host).submit(&[&job]).last().copied(),
            1,
        );
        let start = Instant::now();
        let ids = Submitter::new(&host).submit(&vec![job.as_str(); jobs]);
        host::wait_final(&client, ids.last().copied(), jobs as u64 + 1);
        let rate = jobs as f64 / start.elapsed().as_secs_f64();
        section.figure(
            format!("{jobs} jobs, concurrency {concurrency}"),
            rate,
            "jobs/s",
        );
        figures.push(json!({"concurrency": concurrency, "jobs_per_s": rate}));
        if concurrency == 8 {
            // Per request, against the native one: jobs one at a time, so
            // neither waits for the CPU behind the other.
            let value: serde_json::Value = serde_json::from_str(&job).expect("JSON");
            for _ in 0..settings.pick(200, 10) {
                let id = client.post_json("/v1/jobs", &value).expect("submit")["id"]
                    .as_i64()
                    .expect("an id");
                let detail = client
                    .get(&format!("/v1/jobs/{id}?wait_ms=10000"))
                    .expect("job");
                let report = &detail["attempts"][0]["report"];
                assert_eq!(report["requests"][0]["status"], 200, "{report}");
                let us = |v: &serde_json::Value| v.as_f64().expect("a duration") / 1e3;
                inside.push(us(&report["requests"][0]["duration_us"]));
                attempts.push(us(&report["duration_us"]));
            }
        }
        host.stop();
    }
    let native = native(&url, settings.pick(200, 10));
    let inside = Stats::of(inside);
    let attempts = Stats::of(attempts);
    section.figure("native request, fresh connection: p50", native.p50, "ms");
    section.figure("the request inside a job (report): p50", inside.p50, "ms");
    section.figure("  ÷ native", inside.p50 / native.p50, "×");
    section.figure(
        "the whole attempt (instantiate to end): p50",
        attempts.p50,
        "ms",
    );
    section.set(
        "outbound",
        json!({
            "jobs": jobs,
            "runs": figures,
            "native_request": native.json("ms"),
            "request_in_job": inside.json("ms"),
            "attempt": attempts.json("ms"),
        }),
    );
    section
}

/// The service: `POST /hook` answers 200. Runs until the process ends.
fn server() -> (u16, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("address").port())
                .expect("port");
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(|_body: String| async { axum::http::StatusCode::OK }),
            );
            axum::serve(listener, app).await.expect("serve");
        });
    });
    (rx.recv().expect("the server's port"), thread)
}

/// The same request from the benchmark: a new connection each time.
fn native(url: &str, requests: usize) -> Stats {
    let body = json!({"order": 42}).to_string();
    let samples = (0..requests + 5)
        .map(|_| {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into();
            let start = Instant::now();
            let response = agent
                .post(url)
                .header("content-type", "application/json")
                .send(&body)
                .expect("native request");
            assert_eq!(response.status(), 200);
            start.elapsed().as_secs_f64() * 1e3
        })
        .skip(5)
        .collect();
    Stats::of(samples)
}
