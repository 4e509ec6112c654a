//! Scenario 2: end-to-end throughput of no-op jobs through the batch API
//! of a real host (durable SQLite, default settings).
//!
//! - Backlog: every job is submitted to become due at one instant after
//!   the submission ends; submission is timed, then processing from that
//!   instant until the last job is completed (the pool's own rate).
//! - End to end: jobs due at once, submitted while the pool runs, from the
//!   first submit until the last is completed; once with one priority, once
//!   with four mixed (0, 3, 6, 9), where the more urgent should wait less.

use crate::Settings;
use crate::host::{self, HostProcess};
use crate::report::{Section, Stats, Target};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmjob::client::Client;
use wasmjob_tests::{guest_bytes, guests};

const BATCH: usize = 1_000;

pub fn run(settings: &Settings) -> Section {
    let jobs = settings.pick(20_000, 200);
    let mut section = Section::new("2 throughput (real host, batch API)");
    let dir = tempfile::tempdir().expect("temp dir");
    let host = HostProcess::start(dir.path(), &[]);
    let client = host.client();
    let noop = host::upload(&client, &guest_bytes(guests::NOOP), "noop");

    // Backlog: due at `due`, far enough ahead for the submission to end.
    let lead = Duration::from_millis(2_000 + (jobs as u64) / 5);
    let due = now_ms() + lead.as_millis() as u64;
    let start = Instant::now();
    let mut late = 0;
    for chunk in chunks(jobs) {
        let delay = due.saturating_sub(now_ms());
        if delay == 0 {
            late += chunk;
        }
        let batch = (0..chunk)
            .map(|_| host::noop_job(&noop, 5, delay))
            .collect();
        host::submit_batch(&client, batch);
    }
    let submitted = start.elapsed();
    assert_eq!(late, 0, "the submission outlasted its lead; raise it");
    let done = host::wait_final(&client, jobs as u64);
    let due_at = start + lead;
    let processing = done.saturating_duration_since(due_at);
    let submit_rate = jobs as f64 / submitted.as_secs_f64();
    let process_rate = jobs as f64 / processing.as_secs_f64();
    section.figure("submission, batches of 1,000", submit_rate, "jobs/s");
    section.figure("processing a backlog", process_rate, "jobs/s");

    let (e2e, _) = end_to_end(&client, &noop, jobs, &[5], jobs);
    section.target(
        "end to end, one priority",
        e2e,
        "jobs/s",
        Target::AtLeast(20_000.0),
    );
    let (mixed, waits) = end_to_end(&client, &noop, jobs, &[0, 3, 6, 9], 2 * jobs);
    section.figure("end to end, priorities 0/3/6/9 mixed", mixed, "jobs/s");
    for (priority, wait) in &waits {
        section.figure(
            format!("  priority {priority}: submit to finish, p50"),
            wait.p50,
            "ms",
        );
    }
    section.set(
        "jobs",
        json!({
            "count": jobs,
            "submit_jobs_per_s": submit_rate,
            "process_backlog_jobs_per_s": process_rate,
            "end_to_end_jobs_per_s": e2e,
            "end_to_end_mixed_jobs_per_s": mixed,
            "mixed_wait_ms_by_priority": waits.iter()
                .map(|(p, s)| json!({"priority": p, "wait": s.json("ms")}))
                .collect::<Vec<_>>(),
        }),
    );
    host.stop();
    section
}

/// Submits `jobs` due now with the priorities in turn while the pool runs;
/// jobs/s from the first submit to the last completion, and per priority
/// the host's submit-to-finish times. `before` jobs are already final.
fn end_to_end(
    client: &Client,
    module: &str,
    jobs: usize,
    priorities: &[u8],
    before: usize,
) -> (f64, Vec<(u8, Stats)>) {
    let start = Instant::now();
    let mut n = 0;
    for chunk in chunks(jobs) {
        let batch = (0..chunk)
            .map(|_| {
                n += 1;
                host::noop_job(module, priorities[n % priorities.len()], 0)
            })
            .collect();
        host::submit_batch(client, batch);
    }
    let done = host::wait_final(client, (before + jobs) as u64);
    let rate = jobs as f64 / done.duration_since(start).as_secs_f64();
    let listed = host::all_jobs(client);
    let waits = priorities
        .iter()
        .map(|p| {
            let samples: Vec<f64> = listed
                .iter()
                .take(jobs) // newest first: this run's jobs
                .filter(|j| j["priority"].as_u64() == Some(u64::from(*p)))
                .map(|j| {
                    (j["finished_at"].as_i64().unwrap() - j["created_at"].as_i64().unwrap()) as f64
                })
                .collect();
            (*p, Stats::of(samples))
        })
        .collect();
    (rate, waits)
}

fn chunks(jobs: usize) -> impl Iterator<Item = usize> {
    (0..jobs)
        .step_by(BATCH)
        .map(move |start| BATCH.min(jobs - start))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}
