//! Scenario 5: scale. A million pending jobs (delayed by an hour, so the
//! pool leaves them waiting) are enqueued through the batch API of a real
//! host: the time it takes, the database's size and the host's RSS. Then
//! the claim's latency with that backlog against a near-empty store:
//! - through the host: an urgent job's submit-to-completion, one at a
//!   time, before and after the backlog;
//! - in the store itself, on the database the host wrote (opened here once
//!   the host has stopped): claims of 1 and of 256 jobs, at a time when the
//!   whole backlog is due, against the same on a store of 1,000 jobs.

use crate::Settings;
use crate::host::{self, HostProcess};
use crate::latency;
use crate::report::{Section, Stats, Target};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use wasmjob::job::{ModuleRef, NewJob};
use wasmjob::json::Json;
use wasmjob::limits::Limits;
use wasmjob::policy::RetryPolicy;
use wasmjob::report::ModuleKind;
use wasmjob::store::{ClaimRequest, JobStore, SqliteStore, StoreConfig};
use wasmjob_tests::{guest_bytes, guests, runtime};

const BATCH: usize = 1_000;
const CLIENTS: usize = 4;
const HOUR_MS: u64 = 3_600_000;

pub fn run(settings: &Settings) -> Section {
    let jobs = settings.pick(1_000_000, 5_000);
    let probes = settings.pick(50, 5);
    let mut section = Section::new(format!("5 scale ({jobs} pending jobs)"));
    let dir = tempfile::tempdir().expect("temp dir");
    let host = HostProcess::start(dir.path(), &[]);
    let client = host.client();
    let noop = host::upload(&client, &guest_bytes(guests::NOOP), "noop");
    let idle = latency::one_at_a_time(&client, &noop, probes).done;

    let start = Instant::now();
    let batches = jobs.div_ceil(BATCH);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let submitter = host::Submitter::new(&host);
            let job = host::noop_job(&noop, 5, HOUR_MS).to_string();
            std::thread::spawn(move || {
                for b in (t..batches).step_by(CLIENTS) {
                    let size = BATCH.min(jobs - b * BATCH);
                    submitter.submit(&vec![job.as_str(); size]);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a client thread");
    }
    let enqueue = start.elapsed();
    let (rss, peak) = host.rss();
    let backlog = latency::one_at_a_time(&client, &noop, probes).done;
    let pending = host::counts(&client)["pending"].as_u64().unwrap_or(0);
    assert_eq!(pending, jobs as u64, "every enqueued job is pending");
    host.stop();
    let db = database_bytes(dir.path());

    let small = tempfile::tempdir().expect("temp dir");
    let empty = claim_latency(small.path(), Some(1_000));
    let full = claim_latency(dir.path(), None);

    section.target(
        "enqueue time",
        enqueue.as_secs_f64(),
        "s",
        Target::AtMost(60.0),
    );
    section.figure(
        "enqueue rate",
        jobs as f64 / enqueue.as_secs_f64(),
        "jobs/s",
    );
    section.figure("database size", db as f64 / 1e6, "MB");
    section.target(
        "host RSS with the backlog",
        rss as f64 / 1e6,
        "MB",
        Target::AtMost(150.0),
    );
    section.figure("host peak RSS", peak as f64 / 1e6, "MB");
    let ratio = |a: f64, b: f64| a / b.max(1e-9);
    section.figure("urgent job, submit to completion p50: idle", idle.p50, "ms");
    section.target(
        "  with the backlog, × idle",
        ratio(backlog.p50, idle.p50),
        "×",
        Target::AtMost(2.0),
    );
    for (size, small, backlog) in [
        ("1 job", &empty.one, &full.one),
        ("256 jobs", &empty.batch, &full.batch),
    ] {
        section.figure(
            format!("store claim of {size}, p50: 1,000 jobs"),
            small.p50,
            "ms",
        );
        section.target(
            "  with the backlog, × 1,000 jobs",
            ratio(backlog.p50, small.p50),
            "×",
            Target::AtMost(2.0),
        );
    }
    section.set(
        "scale",
        json!({
            "jobs": jobs, "enqueue_s": enqueue.as_secs_f64(),
            "database_bytes": db, "host_rss_bytes": rss, "host_peak_rss_bytes": peak,
            "urgent_job_ms": {"idle": idle.json("ms"), "backlog": backlog.json("ms")},
            "store_claim_1_ms": {"small": empty.one.json("ms"), "backlog": full.one.json("ms")},
            "store_claim_256_ms": {"small": empty.batch.json("ms"), "backlog": full.batch.json("ms")},
        }),
    );
    section
}

/// The database's files: the main file, its WAL and shared memory.
fn database_bytes(dir: &Path) -> u64 {
    ["wasmjob.db", "wasmjob.db-wal", "wasmjob.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

struct Claims {
    one: Stats,
    batch: Stats,
}

/// Claim latency of the store in `dir`, in ms, two hours from now (every
/// delayed job is due). With `fill`, first stores that many jobs.
fn claim_latency(dir: &Path, fill: Option<usize>) -> Claims {
    runtime().block_on(async {
        let store = Arc::new(SqliteStore::open(StoreConfig::new(dir)).expect("store"));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as i64;
        if let Some(n) = fill {
            let bytes = guest_bytes(guests::NOOP);
            let hash = blake3::hash(&bytes).to_hex().to_string();
            store
                .put_module(&hash, ModuleKind::Component, &bytes, Some("noop"), now)
                .await
                .expect("module");
            let job = NewJob {
                queue: "default".to_owned(),
                module: ModuleRef {
                    hash,
                    name: Some("noop".to_owned()),
                },
                input: Json::null(),
                priority: 5,
                max_attempts: 1,
                retry: RetryPolicy::default(),
                limits: Limits::default(),
                run_at: now,
                unique: None,
                depends_on: Vec::new(),
                node: None,
                grants: None,
                trace: None,
            };
            for _ in 0..n.div_ceil(BATCH) {
                store
                    .insert_jobs(vec![job.clone(); BATCH], now)
                    .await
                    .expect("insert");
            }
        }
        let later = now + 2 * HOUR_MS as i64;
        let time = |limit: usize, times: usize| {
            let store = store.clone();
            async move {
                let mut samples = Vec::with_capacity(times);
                for _ in 0..times {
                    let request = ClaimRequest {
                        owner: "bench".to_owned(),
                        limit,
                        lease_ms: 60_000,
                        ..ClaimRequest::default()
                    };
                    let t0 = Instant::now();
                    let claimed = store.claim_due(request, later).await.expect("claim");
                    samples.push(t0.elapsed().as_secs_f64() * 1e3);
                    assert_eq!(claimed.len(), limit, "enough due jobs to claim");
                }
                Stats::of(samples)
            }
        };
        let one = time(1, 200).await;
        let batch = time(256, 3).await;
        store.close().await;
        Claims { one, batch }
    })
}
