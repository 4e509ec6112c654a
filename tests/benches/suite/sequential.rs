//! Scenario 10: the sequential producer. One client on one keep-alive
//! connection submits no-op jobs with `POST /v1/jobs`, each awaited before
//! the next (what a web application does on its request path), and the
//! figure is end to end: from the first submit until every job is
//! completed, in jobs/s. Run under both `store.durability` modes,
//! alternating fresh hosts (fsync, interval, fsync, ...), median of the
//! rounds for each.
//!
//! With `WASMJOB_BENCH_BASELINE_EXE` naming another build of this
//! benchmark (an earlier commit's), its host joins the rotation in both
//! modes: an A/B in one run.
//!
//! The client is a blocking socket speaking minimal HTTP/1.1, so the load
//! generator takes as little of the shared CPUs as it can.

use crate::Settings;
use crate::host::{self, HostProcess};
use crate::report::{Section, Stats, Target};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Instant;
use wasmjob_tests::{guest_bytes, guests};

/// The two modes, as the `--durability` flag names them, with their targets.
const MODES: [(&str, f64); 2] = [("fsync", 4_000.0), ("interval", 7_000.0)];

/// The environment variable naming a baseline build (see the module docs).
pub const BASELINE_EXE: &str = "WASMJOB_BENCH_BASELINE_EXE";

/// One host configuration in the rotation.
struct Variant {
    name: String,
    /// The executable, when not this one.
    exe: Option<PathBuf>,
    args: Vec<&'static str>,
    target: Option<f64>,
}

fn variants() -> Vec<Variant> {
    let mut variants: Vec<Variant> = MODES
        .iter()
        .map(|&(mode, target)| Variant {
            name: format!("durability {mode}"),
            exe: None,
            args: vec!["--durability", mode],
            target: Some(target),
        })
        .collect();
    if let Some(exe) = std::env::var_os(BASELINE_EXE) {
        variants.extend(MODES.iter().map(|&(mode, _)| Variant {
            name: format!("baseline build, {mode}"),
            exe: Some(PathBuf::from(&exe)),
            args: vec!["--durability", mode],
            target: None,
        }));
    }
    variants
}

pub fn run(settings: &Settings) -> Section {
    let jobs = settings.pick(10_000, 50);
    let rounds = settings.pick(3, 1);
    let mut section = Section::new(format!(
        "10 sequential producer (1 HTTP client, {jobs} awaited submits, end to end)"
    ));
    let variants = variants();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut acks: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (i, variant) in variants.iter().enumerate() {
            let (rate, mut ack) = one_run(variant, jobs);
            rates[i].push(rate);
            acks[i].append(&mut ack);
        }
    }
    let mut rows = Vec::new();
    for (i, variant) in variants.iter().enumerate() {
        let rate = median(&mut rates[i].clone());
        let ack = Stats::of(std::mem::take(&mut acks[i]));
        let name = format!("{}: end to end (median of {rounds})", variant.name);
        match variant.target {
            Some(target) => section.target(name, rate, "jobs/s", Target::AtLeast(target)),
            None => section.figure(name, rate, "jobs/s"),
        }
        section.figure("  acknowledgement: p50", ack.p50, "ms");
        section.figure("  acknowledgement: p99", ack.p99, "ms");
        rows.push(json!({
            "host": variant.name, "jobs_per_s": rate, "runs_jobs_per_s": rates[i],
            "acknowledgement": ack.json("ms"),
        }));
    }
    section.set(
        "sequential_producer",
        json!({"jobs": jobs, "rounds": rounds, "hosts": rows}),
    );
    section
}

/// One fresh host of `variant`: submits `jobs` one at a time and waits
/// for all of them; returns jobs/s end to end and each acknowledgement in
/// ms.
fn one_run(variant: &Variant, jobs: usize) -> (f64, Vec<f64>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = match &variant.exe {
        Some(exe) => HostProcess::start_exe(exe, dir.path(), &variant.args),
        None => HostProcess::start(dir.path(), &variant.args),
    };
    let client = host.client();
    let noop = host::upload(&client, &guest_bytes(guests::NOOP), "noop");
    let address = host.url.strip_prefix("http://").expect("an http URL");
    let body = host::noop_job(&noop, 5, 0).to_string();
    let request = format!(
        "POST /v1/jobs HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(address).expect("connecting");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let mut buffer = Vec::with_capacity(4096);
    // Warm: the module loaded, the pool started, the connection open.
    let warm = 10;
    let mut last = 0;
    for _ in 0..warm {
        last = submit(&mut stream, &request, &mut buffer);
    }
    host::wait_final(&client, Some(last), warm as u64);
    let mut ack = Vec::with_capacity(jobs);
    let start = Instant::now();
    for _ in 0..jobs {
        let t0 = Instant::now();
        last = submit(&mut stream, &request, &mut buffer);
        ack.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    host::wait_final(&client, Some(last), (warm + jobs) as u64);
    let rate = jobs as f64 / start.elapsed().as_secs_f64();
    host.stop();
    (rate, ack)
}

/// Sends one submission and reads its answer; returns the job's id.
fn submit(stream: &mut TcpStream, request: &str, buffer: &mut Vec<u8>) -> i64 {
    stream.write_all(request.as_bytes()).expect("sending");
    buffer.clear();
    let (head, length) = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).expect("receiving");
        assert!(n > 0, "the host closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).expect("an HTTP head");
            assert!(head.starts_with("HTTP/1.1 201"), "not accepted: {head}");
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("a content-length");
            break (end + 4, length);
        }
    };
    while buffer.len() < head + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).expect("receiving");
        assert!(n > 0, "the host closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
    }
    #[derive(serde::Deserialize)]
    struct Id {
        id: i64,
    }
    serde_json::from_slice::<Id>(&buffer[head..head + length])
        .expect("a job")
        .id
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
