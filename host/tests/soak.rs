//! Load and soak against the real `wasmjob` binary: 200 concurrent
//! keep-alive clients, each submitting a job and long-polling it until it
//! completes, over and over, for a time-boxed run. Every request must
//! succeed and every job complete. The request latencies (p50, p99, max)
//! and the host's resident memory over the run are printed, not asserted
//! against a threshold: the only memory check is against gross growth
//! (a leak of the order of the work done), so it is robust to noise.
//!
//! `WASMJOB_SOAK_SECS` sets the run's length (10 s by default) and
//! `WASMJOB_SOAK_CLIENTS` the clients (200). The long run:
//! `WASMJOB_SOAK_SECS=60 cargo test -p wasmjob --test soak -- --nocapture`.

use serde_json::{Value, json};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmjob_tests::guests;

mod common;
use common::Served;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
        .unwrap_or(default)
}

/// The resident set of process `pid`, in bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What one client did.
#[derive(Default)]
struct ClientLog {
    /// Latency of every submission, in microseconds.
    submit_us: Vec<u64>,
    /// From each submission to its job seen completed (by the long poll),
    /// in microseconds.
    turnaround_us: Vec<u64>,
    jobs: u64,
    errors: Vec<String>,
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros().try_into().unwrap_or(u64::MAX)
}

/// Runs one request; its body when it succeeded, or the error noted.
fn checked(
    log: &mut ClientLog,
    request: impl FnOnce() -> Result<(u16, Value), ureq::Error>,
) -> Option<Value> {
    match request() {
        Ok((status, body)) if status < 300 => Some(body),
        Ok((status, body)) => {
            log.errors.push(format!("{status}: {body}"));
            None
        }
        Err(error) => {
            log.errors.push(error.to_string());
            None
        }
    }
}

/// Submits and long-polls jobs until `until`, on one kept-alive
/// connection.
fn client(base: &str, hello: &str, id: usize, until: Instant) -> ClientLog {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut log = ClientLog::default();
    let mut n = 0;
    while Instant::now() < until && log.errors.is_empty() {
        n += 1;
        let job = json!({"module": hello, "input": {"name": format!("c{id}-{n}")}});
        let submit = || {
            let mut response = agent.post(&format!("{base}/v1/jobs")).send_json(&job)?;
            Ok((response.status().as_u16(), response.body_mut().read_json()?))
        };
        let started = Instant::now();
        let Some(submitted) = checked(&mut log, submit) else {
            break;
        };
        log.submit_us.push(micros(started));
        let id = submitted["id"].as_i64().unwrap();
        loop {
            let poll = || {
                let url = format!("{base}/v1/jobs/{id}?wait_ms=10000");
                let mut response = agent.get(&url).call()?;
                Ok((response.status().as_u16(), response.body_mut().read_json()?))
            };
            let Some(job) = checked(&mut log, poll) else {
                break;
            };
            match job["state"].as_str() {
                Some("completed") => {
                    log.turnaround_us.push(micros(started));
                    log.jobs += 1;
                    break;
                }
                Some("failed" | "cancelled") => {
                    log.errors.push(format!("job {id} did not complete: {job}"));
                    break;
                }
                _ => {}
            }
        }
    }
    log
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index]
}

#[test]
fn two_hundred_keep_alive_clients_submit_and_poll_without_an_error() {
    let secs = env_number("WASMJOB_SOAK_SECS", 10);
    let clients = env_number("WASMJOB_SOAK_CLIENTS", 200) as usize;
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmjob"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--lease", "1h"])
        .arg("--data-dir")
        .arg(dir.path());
    let server = Served::spawn(command);
    let hello = server.upload(guests::HELLO);
    let pid = server.child.id();

    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let samples: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let sampler = {
        let samples = Arc::clone(&samples);
        std::thread::spawn(move || {
            while Instant::now() < until {
                if let Some(bytes) = rss(pid) {
                    let at = started.elapsed().as_secs_f64();
                    samples.lock().unwrap().push((at, bytes));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let workers: Vec<_> = (0..clients)
        .map(|i| {
            let (base, hello) = (server.base.clone(), hello.clone());
            std::thread::spawn(move || client(&base, &hello, i, until))
        })
        .collect();
    let logs: Vec<ClientLog> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    sampler.join().unwrap();
    let elapsed = started.elapsed();

    let errors: Vec<&String> = logs.iter().flat_map(|l| &l.errors).collect();
    let jobs: u64 = logs.iter().map(|l| l.jobs).sum();
    let sorted = |pick: fn(&ClientLog) -> &Vec<u64>| {
        let mut all: Vec<u64> = logs.iter().flat_map(|l| pick(l).iter().copied()).collect();
        all.sort_unstable();
        all
    };
    let submits = sorted(|l| &l.submit_us);
    let turnarounds = sorted(|l| &l.turnaround_us);
    let samples = samples.lock().unwrap().clone();
    let half = secs as f64 / 2.0;
    let first: Vec<u64> = samples.iter().filter(|s| s.0 < half).map(|s| s.1).collect();
    let second: Vec<u64> = samples
        .iter()
        .filter(|s| s.0 >= half)
        .map(|s| s.1)
        .collect();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    let ms = |us: u64| us as f64 / 1000.0;
    eprintln!(
        "soak: {clients} clients, {:.1} s, {jobs} jobs completed ({:.0}/s); \
         submit p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         submit to completed p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64(),
        ms(quantile(&submits, 0.5)),
        ms(quantile(&submits, 0.99)),
        ms(*submits.last().unwrap()),
        ms(quantile(&turnarounds, 0.5)),
        ms(quantile(&turnarounds, 0.99)),
        ms(*turnarounds.last().unwrap()),
    );
    eprintln!(
        "soak: host RSS first half max {:.1} MiB; second half min {:.1}, max {:.1}, last {:.1} MiB \
         ({} samples)",
        mib(first.iter().copied().max().unwrap_or(0)),
        mib(second.iter().copied().min().unwrap_or(0)),
        mib(second.iter().copied().max().unwrap_or(0)),
        mib(second.last().copied().unwrap_or(0)),
        samples.len(),
    );
    assert!(jobs >= clients as u64, "every client completed a job");
    // Gross growth only: the second half may not end above twice the
    // first half's peak plus 256 MiB (a leak of a few KiB per job would
    // pass over 10 s; a leak per request of the order of a job's input or
    // report would not over 60 s). Not a threshold on normal variation.
    if let (Some(peak), Some(last)) = (first.iter().max(), second.last()) {
        assert!(
            *last <= peak * 2 + (256 << 20),
            "RSS grew from {:.1} MiB to {:.1} MiB",
            mib(*peak),
            mib(*last)
        );
    }
}
