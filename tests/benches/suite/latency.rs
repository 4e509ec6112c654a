//! Scenario 3: latency on an idle host. Jobs submitted one at a time over
//! HTTP, each awaited with a long poll (`GET /v1/jobs/{id}?wait_ms=`)
//! before the next: submit-to-completion as the client sees it, the
//! durable acknowledgement, and submit-to-start by the host's clock
//! (millisecond timestamps).
//!
//! Where the time goes: the host's own stage histograms
//! (`wasmjob_job_stage_seconds{stage}` in `/metrics`, each stage timed
//! where it happens with the monotonic clock), scraped before and after
//! the measured jobs: for each stage, how often it happened per job and
//! its mean (the histogram's sum over its count, so exact, not a bucket
//! estimate). One job at a time on an idle host, the stages do not
//! overlap across jobs; what no stage covers (HTTP parsing and answers,
//! the client's own time, hand-offs between tasks) is the remainder.

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
    // The module's first load and the first connections happen here,
    // before the first scrape.
    one_at_a_time(&client, &noop, 1);
    let before = stages(&host.url);
    let samples = one_at_a_time(&client, &noop, jobs);
    let after = stages(&host.url);
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
    // The second call's own warm-up jobs ran between the scrapes too.
    let measured = (jobs + WARM) as f64;
    let mut breakdown = Vec::new();
    for (stage, (count, sum)) in &after {
        let (count0, sum0) = before.get(stage).copied().unwrap_or((0.0, 0.0));
        let (count, sum) = (count - count0, sum - sum0);
        if count == 0.0 {
            continue;
        }
        let mean_ms = sum / count * 1e3;
        let per_job = count / measured;
        section.figure(
            format!("stage {stage}: mean ({per_job:.2} per job)"),
            mean_ms,
            "ms",
        );
        breakdown.push(
            json!({"stage": stage, "per_job": per_job, "mean_ms": mean_ms,
                              "ms_per_job": mean_ms * per_job}),
        );
    }
    section.set(
        "latency",
        json!({
            "jobs": jobs,
            "submit_to_completion": done.json("ms"),
            "acknowledgement": ack.json("ms"),
            "submit_to_start_host_clock": start.json("ms"),
            "stages": breakdown,
        }),
    );
    section
}

/// Jobs run before the measured ones by [`one_at_a_time`].
const WARM: usize = 10;

/// The host's stage histograms: stage → (count, sum in seconds).
fn stages(url: &str) -> std::collections::BTreeMap<String, (f64, f64)> {
    let text = ureq::get(format!("{url}/metrics"))
        .call()
        .expect("scrape")
        .body_mut()
        .read_to_string()
        .expect("the exposition");
    let mut stages = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("wasmjob_job_stage_seconds_") else {
            continue;
        };
        let (kind, rest) = rest.split_once('{').unwrap_or(("", rest));
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let Some(stage) = labels
            .strip_prefix("stage=\"")
            .and_then(|l| l.strip_suffix('"'))
        else {
            continue;
        };
        let value: f64 = value.trim().parse().expect("a number");
        let entry = stages.entry(stage.to_owned()).or_insert((0.0, 0.0));
        match kind {
            "count" => entry.0 = value,
            "sum" => entry.1 = value,
            _ => {}
        }
    }
    // Empty from a host built before the histograms (an A/B baseline).
    stages
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
    for i in 0..jobs + WARM {
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
        if i < WARM {
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
