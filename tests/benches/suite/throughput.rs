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
use std::time::{Duration, Instant};
use wasmjob::client::Client;
use wasmjob_tests::{guest_bytes, guests};

const BATCH: usize = 1_000;

pub fn run(settings: &Settings) -> Section {
    let jobs = settings.pick(20_000, 200);
    let mut section = Section::new("2 throughput (real host, batch API)");
    let dir = tempfile::tempdir().expect("temp dir");
    let host = HostProcess::start(dir.path(), &[]);
    let client = host.client();
    let submitter = host::Submitter::new(&host);
    let noop = host::upload(&client, &guest_bytes(guests::NOOP), "noop");

    // Backlog: due at `due`, far enough ahead for the submission to end.
    let lead = Duration::from_millis(2_000 + (jobs as u64) / 5);
    let due = host::now_ms() + lead.as_millis() as u64;
    let start = Instant::now();
    let mut last = None;
    for chunk in host::chunks(jobs, BATCH) {
        let delay = due.saturating_sub(host::now_ms());
        assert!(delay > 0, "the submission outlasted its lead; raise it");
        let job = host::noop_job(&noop, 5, delay).to_string();
        last = submitter.submit(&vec![job.as_str(); chunk]).last().copied();
    }
    let submitted = start.elapsed();
    let done = host::wait_final(&client, last, jobs as u64);
    let processing = done.saturating_duration_since(start + lead);
    let submit_rate = jobs as f64 / submitted.as_secs_f64();
    let process_rate = jobs as f64 / processing.as_secs_f64();
    section.figure("submission, batches of 1,000", submit_rate, "jobs/s");
    section.figure("processing a backlog", process_rate, "jobs/s");

    // The noisiest figure: the median of three runs.
    let mut runs: Vec<f64> = (1..=RUNS)
        .map(|run| end_to_end(&client, &submitter, &noop, jobs, &[5], run * jobs).0)
        .collect();
    runs.sort_by(f64::total_cmp);
    let e2e = runs[RUNS / 2];
    section.target(
        "end to end, one priority (median of 3)",
        e2e,
        "jobs/s",
        Target::AtLeast(20_000.0),
    );
    let (mixed, waits) = end_to_end(
        &client,
        &submitter,
        &noop,
        jobs,
        &[0, 3, 6, 9],
        (RUNS + 1) * jobs,
    );
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
            "end_to_end_runs_jobs_per_s": runs,
            "end_to_end_mixed_jobs_per_s": mixed,
            "mixed_wait_ms_by_priority": waits.iter()
                .map(|(p, s)| json!({"priority": p, "wait": s.json("ms")}))
                .collect::<Vec<_>>(),
        }),
    );
    host.stop();
    section
}

/// Runs of the end-to-end figure.
const RUNS: usize = 3;

/// Submits `jobs` due now with the priorities in turn while the pool runs;
/// jobs/s from the first submit to the last completion, and per priority
/// the host's submit-to-finish times. `before` jobs are already final.
fn end_to_end(
    client: &Client,
    submitter: &host::Submitter,
    module: &str,
    jobs: usize,
    priorities: &[u8],
    before: usize,
) -> (f64, Vec<(u8, Stats)>) {
    let texts: Vec<String> = priorities
        .iter()
        .map(|p| host::noop_job(module, *p, 0).to_string())
        .collect();
    let start = Instant::now();
    let mut n = 0;
    // The job expected to finish last: the last one of the least urgent
    // priority.
    let mut last = None;
    for chunk in host::chunks(jobs, BATCH) {
        let batch: Vec<&str> = (n..n + chunk)
            .map(|i| texts[i % texts.len()].as_str())
            .collect();
        let ids = submitter.submit(&batch);
        let least_urgent = (n..n + chunk).rposition(|i| i % texts.len() == texts.len() - 1);
        last = least_urgent.map(|k| ids[k]).or(last);
        n += chunk;
    }
    let done = host::wait_final(client, last, (before + jobs) as u64);
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
