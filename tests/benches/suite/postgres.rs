//! Scenario 11: the PostgreSQL store, with one, two and three hosts on
//! one database (durable: the server's `synchronous_commit` and `fsync`
//! at their defaults).
//!
//! - Backlog: 20,000 no-op jobs submitted round-robin through every host,
//!   due at one instant after the submission ends; processing is timed
//!   from that instant until the last job is completed.
//! - End to end: jobs due at once, submitted round-robin while the hosts
//!   run, from the first submit until the last is completed.
//! - Cross-host wake-up (two hosts): host A's only slot is kept busy, so
//!   each job submitted to A is run by B, woken by A's `NOTIFY`; the
//!   figure is the job's start minus its creation (both on the database's
//!   clock).
//! - Idle latency (one host): jobs submitted one at a time, each awaited
//!   with a long poll, as scenario 3 does on SQLite; with
//!   `WASMJOB_BENCH_BASELINE_EXE` the baseline build runs the same jobs
//!   on a host of its own, in alternating rounds.
//!
//! The server is named by `WASMJOB_BENCH_POSTGRES_URL`, or
//! `WASMJOB_TEST_POSTGRES_URL` (`.ci/postgres` starts one); without either
//! the scenario says it is skipped (in CI it fails). Each run works in a
//! schema of its own, dropped afterwards. All hosts and the server share
//! this machine's cores.

use crate::Settings;
use crate::host::{self, HostProcess};
use crate::report::{Section, Stats, Target};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use wasmjob_tests::{guest_bytes, guests};

const BATCH: usize = 1_000;

pub fn run(settings: &Settings) -> Section {
    let mut section = Section::new("11 PostgreSQL store: 1, 2 and 3 hosts");
    let Some(url) = ["WASMJOB_BENCH_POSTGRES_URL", "WASMJOB_TEST_POSTGRES_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "scenario 11 needs WASMJOB_TEST_POSTGRES_URL in CI"
        );
        eprintln!("scenario 11 skipped: no PostgreSQL (.ci/postgres starts one)");
        section.set("skipped", json!("no PostgreSQL server"));
        return section;
    };
    let jobs = settings.pick(20_000, 300);
    let mut by_hosts = Vec::new();
    for hosts in 1..=3 {
        let (backlog, e2e) = throughput(&url, hosts, jobs);
        let target = (hosts == 1).then_some(Target::AtLeast(10_000.0));
        let name = format!("{hosts} host(s): processing a backlog");
        match target {
            Some(t) => section.target(name, backlog, "jobs/s", t),
            None => section.figure(name, backlog, "jobs/s"),
        }
        section.figure(format!("{hosts} host(s): end to end"), e2e, "jobs/s");
        by_hosts.push(json!({"hosts": hosts, "backlog_jobs_per_s": backlog,
                             "end_to_end_jobs_per_s": e2e}));
    }
    let wake = cross_host_wake(&url, settings.pick(50, 3));
    section.figure(
        "cross-host wake: submit on A to start on B, p50",
        wake.p50,
        "ms",
    );
    section.figure("cross-host wake: p99", wake.p99, "ms");
    let baseline = std::env::var_os(crate::sequential::BASELINE_EXE).map(std::path::PathBuf::from);
    let mut idle = Vec::new();
    for (name, stats) in idle_latency(&url, settings.pick(300, 10), baseline.as_deref()) {
        let what = format!("1 host, idle: submit to completion ({name})");
        section.figure(format!("{what} p50"), stats.p50, "ms");
        section.figure(format!("{what} p99"), stats.p99, "ms");
        idle.push(json!({"host": name, "submit_to_completion": stats.json("ms")}));
    }
    section.set(
        "postgres",
        json!({
            "jobs": jobs,
            "by_hosts": by_hosts,
            "cross_host_wake": wake.json("ms"),
            "idle": idle,
        }),
    );
    section
}

/// Rounds of the idle-latency runs.
const IDLE_ROUNDS: usize = 5;

/// Submit to completion of `jobs` jobs run one at a time on one idle
/// host, for this build and, if given, the `baseline` build (each with a
/// database schema of its own), in alternating rounds.
fn idle_latency(url: &str, jobs: usize, baseline: Option<&Path>) -> Vec<(&'static str, Stats)> {
    let mut builds = vec![("this build", None)];
    builds.extend(baseline.map(|exe| ("baseline build", Some(exe))));
    let mut runs: Vec<_> = builds
        .into_iter()
        .map(|(name, exe)| {
            let db = Database::new(url);
            let host = match exe {
                None => db.host(0, &[]),
                Some(exe) => db.host_exe(exe, 0, &[]),
            };
            let client = host.client();
            let noop = host::upload(&client, &guest_bytes(guests::NOOP), "noop");
            (name, db, host, client, noop, Vec::new())
        })
        .collect();
    for _ in 0..IDLE_ROUNDS {
        for (_, _, _, client, noop, done) in &mut runs {
            let raw = crate::latency::run_jobs(client, noop, jobs.div_ceil(IDLE_ROUNDS));
            done.extend(raw.done);
        }
    }
    runs.into_iter()
        .map(|(name, _db, host, _, _, done)| {
            host.stop();
            (name, Stats::of(done))
        })
        .collect()
}

/// A schema of its own and the hosts' configuration file.
struct Database {
    url: String,
    schema: String,
    dir: tempfile::TempDir,
}

impl Database {
    fn new(url: &str) -> Database {
        let schema = format!("wasmjob_bench_{}_{}", std::process::id(), fastrand::u32(..));
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("wasmjob.toml"),
            format!("[store]\nurl = {url:?}\nschema = {schema:?}\n"),
        )
        .expect("writing the config");
        Database {
            url: url.to_owned(),
            schema,
            dir,
        }
    }

    /// Starts host `n` on the database.
    fn host(&self, n: usize, args: &[&str]) -> HostProcess {
        self.host_run_by(None, n, args)
    }

    /// Starts host `n` on the database, run by another build's `exe`.
    fn host_exe(&self, exe: &Path, n: usize, args: &[&str]) -> HostProcess {
        self.host_run_by(Some(exe), n, args)
    }

    fn host_run_by(&self, exe: Option<&Path>, n: usize, args: &[&str]) -> HostProcess {
        let config = self.dir.path().join("wasmjob.toml");
        let config = config.to_str().expect("a UTF-8 path");
        let data = self.dir.path().join(format!("host-{n}"));
        let mut all = vec!["--config", config];
        all.extend_from_slice(args);
        match exe {
            Some(exe) => HostProcess::start_exe(exe, Path::new(&data), &all),
            None => HostProcess::start(Path::new(&data), &all),
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            if let Ok((client, connection)) =
                tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                        self.schema
                    ))
                    .await;
            }
        });
    }
}

/// Backlog and end-to-end jobs/s with `hosts` hosts.
fn throughput(url: &str, hosts: usize, jobs: usize) -> (f64, f64) {
    let db = Database::new(url);
    let processes: Vec<HostProcess> = (0..hosts).map(|n| db.host(n, &[])).collect();
    let client = processes[0].client();
    let noop = host::upload(&client, &guest_bytes(guests::NOOP), "noop");
    let submitters: Vec<host::Submitter> = processes.iter().map(host::Submitter::new).collect();

    // Submissions through PostgreSQL are slower than the drain: a
    // millisecond per job, with room to spare.
    let lead = Duration::from_millis(3_000 + jobs as u64);
    let due = host::now_ms() + lead.as_millis() as u64;
    let start = Instant::now();
    let mut last = None;
    for (chunk, submitter) in host::chunks(jobs, BATCH).zip(submitters.iter().cycle()) {
        let delay = due.saturating_sub(host::now_ms());
        assert!(delay > 0, "the submission outlasted its lead; raise it");
        let job = host::noop_job(&noop, 5, delay).to_string();
        last = submitter.submit(&vec![job.as_str(); chunk]).last().copied();
    }
    let done = host::wait_final(&client, last, jobs as u64);
    let backlog = jobs as f64 / done.saturating_duration_since(start + lead).as_secs_f64();

    let job = host::noop_job(&noop, 5, 0).to_string();
    let start = Instant::now();
    let mut last = None;
    for (chunk, submitter) in host::chunks(jobs, BATCH).zip(submitters.iter().cycle()) {
        last = submitter.submit(&vec![job.as_str(); chunk]).last().copied();
    }
    let done = host::wait_final(&client, last, 2 * jobs as u64);
    let e2e = jobs as f64 / done.duration_since(start).as_secs_f64();
    for process in processes {
        process.stop();
    }
    (backlog, e2e)
}

/// Submit-on-A to start-on-B times, ms.
fn cross_host_wake(url: &str, samples: usize) -> Stats {
    let db = Database::new(url);
    let hosts = [
        db.host(0, &["--concurrency", "1", "--lease", "1h"]),
        db.host(1, &["--concurrency", "1", "--lease", "1h"]),
    ];
    let client = hosts[0].client();
    let looping = host::upload(&client, &guest_bytes(guests::INFINITE_LOOP), "looping");
    let noop = host::upload(&client, &guest_bytes(guests::NOOP), "noop");
    // A's slot: busy until the end.
    let busy = client
        .post_json(
            "/v1/jobs",
            &json!({"module": looping, "max_attempts": 1,
                    "limits": {"fuel": 1_000_000_000_000u64, "timeout_ms": 3_600_000}}),
        )
        .expect("submitting the busy job")["id"]
        .as_i64()
        .expect("an id");
    // A is the host that runs it; the jobs submitted to A run on B.
    let a = running_on(&hosts, busy);
    let client = hosts[a].client();
    let mut times = Vec::new();
    for _ in 0..samples {
        // Apart by more than a host's notification interval (100 ms), so
        // each submission notifies.
        std::thread::sleep(Duration::from_millis(150));
        let id = client
            .post_json("/v1/jobs", &host::noop_job(&noop, 5, 0))
            .expect("submit")["id"]
            .as_i64()
            .expect("an id");
        let job = client
            .get(&format!("/v1/jobs/{id}?wait_ms=60000"))
            .expect("long poll");
        assert_eq!(job["state"], "completed", "{job}");
        let started = job["started_at"].as_i64().expect("started");
        let created = job["created_at"].as_i64().expect("created");
        times.push((started - created) as f64);
    }
    let _ = client.post_json(&format!("/v1/jobs/{busy}/cancel"), &json!({}));
    for host in hosts {
        host.stop();
    }
    Stats::of(times)
}

/// Which host runs job `id`, once one does.
fn running_on(hosts: &[HostProcess], id: i64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for (n, host) in hosts.iter().enumerate() {
            let workers: Value = host.client().get("/v1/workers").expect("workers");
            let running = workers["running"].as_array().expect("running");
            if running.iter().any(|job| job["job_id"] == id) {
                return n;
            }
        }
        assert!(Instant::now() < deadline, "job {id} never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
}
