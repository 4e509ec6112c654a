//! Scenario 3: latency on an idle host. Jobs submitted one at a time over
//! HTTP, each awaited with a long poll (`GET /v1/jobs/{id}?wait_ms=`)
//! before the next: submit-to-completion as the client sees it, the
//! durable acknowledgement, and submit-to-start by the host's clock
//! (millisecond timestamps).

use crate::Settings;
use crate::host::{self, HostProcess};
use crate::report::{Section, Stats, Target};
use serde_json::json;
use std::time::Instant;
use wasmjob::client::Client;
use wasmjob_tests::{guest_bytes, guests};

pub fn run(settings: &Settings) -> Section {
    let jobs = settings.pick(500, 20);
    let mut section = Section::new("3 latency on an idle host (HTTP, one job at a time)");
    let dir = tempfile::tempdir().expect("temp dir");
    let host = HostProcess::start(dir.path(), &[]);
    let client = host.client();
    let noop = host::upload(&client, &guest_bytes(guests::NOOP), "noop");
    let samples = one_at_a_time(&client, &noop, jobs);
    host.stop();
    let (done, ack, start) = (samples.done, samples.ack, samples.start);
    section.target(
        "submit to completion: p50",
        done.p50,
        "ms",
        Target::AtMost(2.0),
    );
    section.target(
        "submit to completion: p99",
        done.p99,
        "ms",
        Target::AtMost(10.0),
    );
    section.figure("durable acknowledgement: p50", ack.p50, "ms");
    section.figure("durable acknowledgement: p99", ack.p99, "ms");
    section.figure(
        "submit to start (host clock, 1 ms steps): p50",
        start.p50,
        "ms",
    );
    section.figure(
        "submit to start (host clock, 1 ms steps): p99",
        start.p99,
        "ms",
    );
    section.set(
        "latency",
        json!({
            "jobs": jobs,
            "submit_to_completion": done.json("ms"),
            "acknowledgement": ack.json("ms"),
            "submit_to_start_host_clock": start.json("ms"),
        }),
    );
    section
}

/// Latencies of jobs run one at a time, in ms.
pub struct Samples {
    pub done: Stats,
    pub ack: Stats,
    pub start: Stats,
}

/// Submits `jobs` no-op jobs one at a time, each awaited, after a short
/// warm-up (the module's first load, the connection).
pub fn one_at_a_time(client: &Client, module: &str, jobs: usize) -> Samples {
    let (mut done, mut ack, mut start) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..jobs + 10 {
        let t0 = Instant::now();
        let job = client
            .post_json("/v1/jobs", &host::noop_job(module, 5, 0))
            .unwrap_or_else(|e| panic!("submit: {e}"));
        let acked = t0.elapsed();
        let id = job["id"].as_i64().expect("an id");
        let detail = client
            .get(&format!("/v1/jobs/{id}?wait_ms=10000"))
            .unwrap_or_else(|e| panic!("wait: {e}"));
        let finished = t0.elapsed();
        assert_eq!(detail["state"], "completed", "{detail}");
        if i < 10 {
            continue;
        }
        done.push(finished.as_secs_f64() * 1e3);
        ack.push(acked.as_secs_f64() * 1e3);
        let host_ms = |field: &str| detail[field].as_i64().expect("a timestamp");
        start.push((host_ms("started_at") - host_ms("created_at")) as f64);
    }
    Samples {
        done: Stats::of(done),
        ack: Stats::of(ack),
        start: Stats::of(start),
    }
}
