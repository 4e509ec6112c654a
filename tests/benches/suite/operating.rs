//! Scenario 9: operating a host.
//!
//! - The cost of metrics: end-to-end throughput of no-op jobs (the batch
//!   API, due at once, from the first submit until the last is completed)
//!   with and without a Prometheus scrape of `/metrics` every second,
//!   alternating runs on fresh hosts, medians compared.
//! - Auto-scaling: a mixed load (jobs that call a service answering after
//!   50 ms, and CPU-bound `fib` jobs) on the default fixed pool (8 slots)
//!   and on a pool that may grow to 128, from the first submit until the
//!   last job is completed.

use crate::Settings;
use crate::host::{self, HostProcess, Submitter};
use crate::report::Section;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmjob_tests::{guest_bytes, guests};

const BATCH: usize = 1_000;

pub fn run(settings: &Settings) -> Section {
    let mut section = Section::new("9 operating: metrics cost, auto-scaling");
    metrics_cost(settings, &mut section);
    autoscaling(settings, &mut section);
    section
}

fn metrics_cost(settings: &Settings, section: &mut Section) {
    let jobs = settings.pick(40_000, 200);
    let rounds = settings.pick(3, 1);
    let mut quiet = Vec::new();
    let mut scraped = Vec::new();
    let mut scrapes = 0;
    for _ in 0..rounds {
        for scrape in [false, true] {
            let (rate, n) = noop_run(jobs, scrape);
            if scrape {
                scraped.push(rate);
                scrapes += n;
            } else {
                quiet.push(rate);
            }
        }
    }
    let quiet = median(&mut quiet);
    let scraped = median(&mut scraped);
    section.figure(
        format!("{jobs} no-op jobs end to end, no scrape (median of {rounds})"),
        quiet,
        "jobs/s",
    );
    section.figure("  with a /metrics scrape every second", scraped, "jobs/s");
    let cost = (1.0 - scraped / quiet) * 100.0;
    section.figure("  cost of the scrapes", cost, "%");
    section.set(
        "metrics_cost",
        json!({"jobs": jobs, "rounds": rounds, "no_scrape_jobs_per_s": quiet,
               "scraped_jobs_per_s": scraped, "cost_percent": cost, "scrapes": scrapes}),
    );
}

/// One fresh host running `jobs` no-op jobs; returns the rate and how
/// many scrapes were made meanwhile.
fn noop_run(jobs: usize, scrape: bool) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = HostProcess::start(dir.path(), &[]);
    let client = host.client();
    let noop = host::upload(&client, &guest_bytes(guests::NOOP), "noop");
    let submitter = Submitter::new(&host);
    let job = host::noop_job(&noop, 5, 0).to_string();
    // Warm: the module loaded, the pool started.
    host::wait_final(&client, submitter.submit(&[&job]).last().copied(), 1);
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicU64::new(0));
    let scraper = scrape.then(|| {
        let (stop, scrapes, url) = (stop.clone(), scrapes.clone(), host.url.clone());
        std::thread::spawn(move || scrape_every_second(&url, &stop, &scrapes))
    });
    let start = Instant::now();
    let mut last = None;
    for chunk in (0..jobs).step_by(BATCH) {
        let n = BATCH.min(jobs - chunk);
        last = submitter.submit(&vec![job.as_str(); n]).last().copied();
    }
    host::wait_final(&client, last, jobs as u64 + 1);
    let rate = jobs as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(scraper) = scraper {
        scraper.join().expect("the scraper");
    }
    host.stop();
    (rate, scrapes.load(Ordering::Relaxed))
}

/// What Prometheus does: `GET /metrics` every second, the body read whole.
fn scrape_every_second(url: &str, stop: &AtomicBool, scrapes: &AtomicU64) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next {
            let text = agent
                .get(format!("{url}/metrics"))
                .call()
                .expect("scrape")
                .body_mut()
                .read_to_string()
                .expect("the exposition");
            assert!(text.contains("wasmjob_jobs_submitted_total"), "{text}");
            scrapes.fetch_add(1, Ordering::Relaxed);
            next += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn autoscaling(settings: &Settings, section: &mut Section) {
    let io_jobs = settings.pick(2_000, 40);
    let cpu_jobs = settings.pick(200, 10);
    let (port, _server) = slow_server(Duration::from_millis(50));
    let url = format!("http://127.0.0.1:{port}/slow");
    let mut runs = Vec::new();
    for (name, queue) in [
        ("fixed pool of 8 (the default)", ""),
        ("auto-scaling, 8 to 128", "[queue]\nmax_workers = 128\n"),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("wasmjob.toml");
        std::fs::write(
            &config,
            format!("{queue}[grants.bench]\nhttp = [\"http://127.0.0.1:{port}\"]\n"),
        )
        .expect("config");
        let host = HostProcess::start(
            &dir.path().join("data"),
            &["--config", config.to_str().unwrap()],
        );
        let client = host.client();
        client
            .post_bytes(
                "/v1/modules?name=webhook&grants=bench",
                &guest_bytes(guests::WEBHOOK),
            )
            .unwrap_or_else(|e| panic!("upload: {e}"));
        host::upload(&client, &guest_bytes(guests::FIB), "fib");
        let io = json!({"module": "webhook", "max_attempts": 1,
                        "input": {"url": url, "payload": {"order": 42}}})
        .to_string();
        let cpu = json!({"module": "fib", "max_attempts": 1, "input": {"n": 27}}).to_string();
        let submitter = Submitter::new(&host);
        host::wait_final(&client, submitter.submit(&[&io, &cpu]).last().copied(), 2);
        // One CPU job after every ten calls, all due at once.
        let mix: Vec<&str> = (0..io_jobs + cpu_jobs)
            .map(|i| {
                if i % (io_jobs / cpu_jobs + 1) == 0 {
                    cpu.as_str()
                } else {
                    io.as_str()
                }
            })
            .collect();
        let start = Instant::now();
        let mut last = None;
        for chunk in mix.chunks(BATCH) {
            last = submitter.submit(chunk).last().copied();
        }
        host::wait_final(&client, last, mix.len() as u64 + 2);
        let rate = mix.len() as f64 / start.elapsed().as_secs_f64();
        let workers = client.get("/v1/workers").expect("workers");
        let peak = workers["resizes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["to"].as_u64())
            .max()
            .unwrap_or(8);
        section.figure(
            format!("mixed load ({io_jobs} service calls of 50 ms, {cpu_jobs} fib(27)): {name}"),
            rate,
            "jobs/s",
        );
        runs.push(
            json!({"pool": name, "jobs_per_s": rate, "largest_pool": peak,
                         "resizes": workers["resizes"]}),
        );
        host.stop();
    }
    let gain = runs[1]["jobs_per_s"].as_f64().unwrap() / runs[0]["jobs_per_s"].as_f64().unwrap();
    section.figure("  auto-scaling ÷ fixed", gain, "×");
    section.set(
        "autoscaling",
        json!({"io_jobs": io_jobs, "cpu_jobs": cpu_jobs, "service_ms": 50, "runs": runs}),
    );
}

/// A service that answers `POST /slow` after `delay`. Runs until the
/// process ends.
fn slow_server(delay: Duration) -> (u16, std::thread::JoinHandle<()>) {
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
                "/slow",
                axum::routing::post(move |_body: String| async move {
                    tokio::time::sleep(delay).await;
                    axum::http::StatusCode::OK
                }),
            );
            axum::serve(listener, app).await.expect("serve");
        });
    });
    (rx.recv().expect("the server's port"), thread)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
