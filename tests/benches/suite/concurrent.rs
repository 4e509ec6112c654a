//! Scenario 4: submission under concurrency. Many HTTP clients, each with
//! its own connection, submit single jobs back to back for a fixed time
//! while the pool runs them: acknowledged (durable) jobs/s and the
//! acknowledgement's latency. Every acknowledged job must then complete.

use crate::Settings;
use crate::host::{self, HostProcess};
use crate::report::{Section, Stats, Target};
use serde_json::json;
use std::time::{Duration, Instant};
use wasmjob_tests::{guest_bytes, guests};

pub fn run(settings: &Settings) -> Section {
    let clients = settings.pick(64, 8);
    let duration = Duration::from_secs(settings.pick(20, 1) as u64);
    let mut section = Section::new(format!(
        "4 submission under concurrency ({clients} HTTP clients, {} s)",
        duration.as_secs()
    ));
    let dir = tempfile::tempdir().expect("temp dir");
    let host = HostProcess::start(dir.path(), &[]);
    let noop = host::upload(&host.client(), &guest_bytes(guests::NOOP), "noop");
    let start = Instant::now();
    let deadline = start + duration;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let submitter = host::Submitter::new(&host);
            let job = host::noop_job(&noop, 5, 0).to_string();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut last = 0;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    last = submitter.submit_one(&job);
                    latencies.push(t0.elapsed().as_secs_f64() * 1e3);
                }
                (latencies, last)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut last = 0;
    for thread in threads {
        let (mut samples, id) = thread.join().expect("a client thread");
        latencies.append(&mut samples);
        last = last.max(id);
    }
    let elapsed = start.elapsed();
    let accepted = latencies.len();
    let rate = accepted as f64 / elapsed.as_secs_f64();
    let ack = Stats::of(latencies);
    let drained = host::wait_final(&host.client(), Some(last), accepted as u64);
    let (rss, peak) = host.rss();
    host.stop();
    section.target(
        "acknowledged submissions",
        rate,
        "jobs/s",
        Target::AtLeast(15_000.0),
    );
    section.target("acknowledgement: p99", ack.p99, "ms", Target::AtMost(20.0));
    section.figure("acknowledgement: p50", ack.p50, "ms");
    section.figure(
        "all accepted jobs completed, after the last submit",
        drained
            .saturating_duration_since(start + elapsed)
            .as_secs_f64()
            * 1e3,
        "ms",
    );
    section.figure("host RSS at the end", rss as f64 / 1e6, "MB");
    section.set(
        "submission",
        json!({
            "clients": clients, "seconds": elapsed.as_secs_f64(), "accepted": accepted,
            "jobs_per_s": rate, "acknowledgement": ack.json("ms"),
            "host_rss_bytes": rss, "host_peak_rss_bytes": peak,
        }),
    );
    section
}
