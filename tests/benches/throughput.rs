//! End-to-end throughput, in-process (no HTTP yet): N no-op jobs submitted
//! in batches to a real SQLite store on a temp dir, processed by the real
//! worker pool. Prints jobs/s for submission, processing and end to end.
//!
//! `cargo bench -p wasmjob-tests --bench throughput`; `WASMJOB_BENCH_JOBS`
//! (default 20000) and `WASMJOB_BENCH_CONCURRENCY` (default 4) tune it.

use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmjob::clock::{Clock, SystemClock};
use wasmjob::engine::{Engine, EngineConfig};
use wasmjob::job::{JobState, NewJob, RetryPolicy};
use wasmjob::limits::Limits;
use wasmjob::queue::{Queue, QueueConfig};
use wasmjob::store::{SqliteStore, StoreConfig};
use wasmjob::worker::Pool;
use wasmjob_tests::{guest_bytes, guests};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let jobs = env("WASMJOB_BENCH_JOBS", 20_000);
    let concurrency = env("WASMJOB_BENCH_CONCURRENCY", 4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(jobs, concurrency));
}

async fn run(jobs: usize, concurrency: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(StoreConfig::new(dir.path())).expect("store"));
    let engine = Engine::new(EngineConfig {
        concurrency: concurrency as u32,
        ..EngineConfig::default()
    })
    .expect("engine");
    let clock = Arc::new(SystemClock);
    let queue = Queue::new(
        store.clone(),
        engine,
        clock.clone(),
        QueueConfig {
            concurrency,
            ..QueueConfig::default()
        },
    );
    let hash = queue
        .upload(guest_bytes(guests::NOOP), None)
        .await
        .expect("upload")
        .hash;
    let template = NewJob {
        module: hash,
        input: b"null".to_vec(),
        priority: 5,
        max_attempts: 1,
        retry: RetryPolicy::default(),
        limits: Limits::default(),
        run_at: clock.now(),
    };
    let start = Instant::now();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(1_000) {
        let batch = chunk.iter().map(|_| template.clone()).collect();
        queue.submit(batch).await.expect("submit");
    }
    let submitted = start.elapsed();
    let processing = Instant::now();
    let pool = Pool::start(queue.clone()).expect("pool");
    loop {
        let counts = store_counts(&queue).await;
        if counts.0 == jobs as u64 {
            break;
        }
        assert_eq!(counts.1, 0, "no job may fail");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let processed = processing.elapsed();
    let total = start.elapsed();
    pool.shutdown().await;
    let rate = |d: Duration| jobs as f64 / d.as_secs_f64();
    println!("jobs {jobs}, concurrency {concurrency}");
    println!(
        "submission (batches of 1000): {:>9.0} jobs/s",
        rate(submitted)
    );
    println!(
        "processing:                   {:>9.0} jobs/s",
        rate(processed)
    );
    println!("end to end:                   {:>9.0} jobs/s", rate(total));
    println!("store commits:                {:>9}", store.batches());
    println!(
        "{}",
        serde_json::json!({"throughput": {
            "jobs": jobs, "concurrency": concurrency,
            "submit_jobs_per_s": rate(submitted),
            "process_jobs_per_s": rate(processed),
            "end_to_end_jobs_per_s": rate(total),
        }})
    );
}

async fn store_counts(queue: &Queue) -> (u64, u64) {
    let counts = queue.store().counts().await.expect("counts");
    let get = |s: JobState| counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
    (get(JobState::Completed), get(JobState::Failed))
}
