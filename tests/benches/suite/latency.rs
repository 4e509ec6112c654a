//! Scenario 3: latency on an idle host. Jobs submitted one at a time over
//! HTTP, each awaited with a long poll (`GET /v1/jobs/{id}?wait_ms=`)
//! before the next: submit-to-completion as the client sees it, the
//! durable acknowledgement, and submit-to-start by the host's clock
//! (millisecond timestamps). Then the same with one request per job
//! (`POST /v1/jobs?wait_ms=`, answered with the finished job).
//!
//! Where the time goes: the host's own stage histograms
//! (`wasmjob_job_stage_seconds{stage}` in `/metrics`, each stage timed
//! where it happens with the monotonic clock), scraped before and after
//! the measured jobs: for each stage, how often it happened per job and
//! its mean (the histogram's sum over its count, so exact, not a bucket
//! estimate). One job at a time on an idle host, the stages do not
//! overlap across jobs; what no stage covers (HTTP parsing and answers,
//! the client's own time, hand-offs between tasks) is the remainder.
//!
//! With `WASMJOB_BENCH_BASELINE_EXE` naming another build of this
//! benchmark, the two builds then run the same jobs on fresh hosts in
//! alternating rounds: an A/B in one run.

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
    let waited = Stats::of(submit_and_wait(&client, &noop, jobs));
    host.stop();
    let (done, ack, start) = (samples.done, samples.ack, samples.start);
    for (name, value, at_most) in [
        ("submit to completion: p50", done.p50, 2.0),
        ("submit to completion: p99", done.p99, 10.0),
        ("one request (POST /v1/jobs?wait_ms=): p50", waited.p50, 0.6),
        ("one request (POST /v1/jobs?wait_ms=): p99", waited.p99, 1.5),
    ] {
        section.target(name, value, "ms", Target::AtMost(at_most));
    }
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
    let mut figures = json!({
        "jobs": jobs,
        "submit_to_completion": done.json("ms"),
        "submit_and_wait": waited.json("ms"),
        "acknowledgement": ack.json("ms"),
        "submit_to_start_host_clock": start.json("ms"),
        "stages": breakdown,
    });
    if let Some(exe) = std::env::var_os(crate::sequential::BASELINE_EXE) {
        figures["a_b"] = a_b(&mut section, std::path::Path::new(&exe), jobs);
    }
    section.set("latency", figures);
    section
}

/// Rounds of the A/B against a baseline build.
const AB_ROUNDS: usize = 5;

/// This build against the baseline `exe`, each on a fresh host, in
/// alternating rounds of one job at a time: the two p50s and p99s of
/// submit to completion, with a long poll and in one request, measured
/// under the same load (a baseline must know `POST /v1/jobs?wait_ms=`).
fn a_b(section: &mut Section, exe: &std::path::Path, jobs: usize) -> serde_json::Value {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    );
    let hosts = [
        ("this build", HostProcess::start(dir_a.path(), &[])),
        (
            "baseline build",
            HostProcess::start_exe(exe, dir_b.path(), &[]),
        ),
    ];
    let clients: Vec<(Client, String)> = hosts
        .iter()
        .map(|(_, host)| {
            let client = host.client();
            let noop = host::upload(&client, &guest_bytes(guests::NOOP), "noop");
            (client, noop)
        })
        .collect();
    let mut done: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut waited: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let per_round = jobs.div_ceil(AB_ROUNDS);
    for _ in 0..AB_ROUNDS {
        for (i, (client, noop)) in clients.iter().enumerate() {
            done[i].append(&mut run_jobs(client, noop, per_round).done);
            waited[i].append(&mut submit_and_wait(client, noop, per_round));
        }
    }
    let mut rows = Vec::new();
    for (((name, host), done), waited) in hosts.into_iter().zip(done).zip(waited) {
        host.stop();
        let (done, waited) = (Stats::of(done), Stats::of(waited));
        for (what, stats) in [("submit to completion", &done), ("one request", &waited)] {
            section.figure(format!("A/B {name}: {what} p50"), stats.p50, "ms");
            section.figure(format!("A/B {name}: {what} p99"), stats.p99, "ms");
        }
        rows.push(
            json!({"host": name, "submit_to_completion": done.json("ms"),
                         "submit_and_wait": waited.json("ms")}),
        );
    }
    json!({"rounds": AB_ROUNDS, "hosts": rows})
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

/// Submit to completion, in ms, of `jobs` no-op jobs each submitted
/// with `wait_ms` (the answer is the finished job), after a short
/// warm-up.
fn submit_and_wait(client: &Client, module: &str, jobs: usize) -> Vec<f64> {
    let mut done = Vec::with_capacity(jobs);
    for i in 0..jobs + WARM {
        let t0 = Instant::now();
        let job = client
            .post_json("/v1/jobs?wait_ms=10000", &host::noop_job(module, 5, 0))
            .unwrap_or_else(|e| panic!("submit and wait: {e}"));
        let finished = t0.elapsed();
        assert_eq!(job["state"], "completed", "{job}");
        if i >= WARM {
            done.push(finished.as_secs_f64() * 1e3);
        }
    }
    done
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
    let Raw { done, ack, start } = run_jobs(client, module, jobs);
    Samples {
        done: Stats::of(done),
        ack: Stats::of(ack),
        start: Stats::of(start),
    }
}

/// [`Samples`] before their statistics.
pub struct Raw {
    /// Submit to completion, in ms.
    pub done: Vec<f64>,
    /// The durable acknowledgement, in ms.
    pub ack: Vec<f64>,
    /// Submit to start by the host's clock, in ms.
    pub start: Vec<f64>,
}

/// What [`one_at_a_time`] does, each sample kept.
pub fn run_jobs(client: &Client, module: &str, jobs: usize) -> Raw {
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
    Raw { done, ack, start }
}
