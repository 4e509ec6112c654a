//! `wasmjob serve` on PostgreSQL: real host processes pointed at one
//! database share one queue. Three hosts drain a backlog, each job running
//! once; a dead host's jobs are rescued by the others, a restarted one
//! takes back only its own; a cancel, a long poll and a module's new name
//! reach across hosts; a schedule fires once per tick; one host leads, and
//! another takes over when it dies; a host whose clock is wrong rescues
//! nothing early.
//!
//! Needs a server named by `WASMJOB_TEST_POSTGRES_URL` (`.ci/postgres`
//! starts one); without it each test says it is skipped and passes,
//! except in CI, where it fails. Each test works in a schema of its own.

use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use wasmjob_tests::guests;

mod common;
use common::Served as Host;

/// Upper bound for things that must happen; reaching it is a failure.
const HANG: Duration = Duration::from_secs(90);
const URL_VAR: &str = "WASMJOB_TEST_POSTGRES_URL";

fn database_url() -> Option<String> {
    let url = std::env::var(URL_VAR).ok().filter(|url| !url.is_empty());
    if url.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{URL_VAR} is not set: in CI the PostgreSQL tests must run"
        );
        let _ = writeln!(
            std::io::stderr(),
            "PostgreSQL serve test skipped: {URL_VAR} is not set (.ci/postgres starts a server)"
        );
    }
    url
}

/// A schema of its own for one test, dropped afterwards, and the hosts'
/// configuration file and data directories.
struct Cluster {
    url: String,
    schema: String,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Cluster {
    /// A fresh schema; hosts started with `lease` and `concurrency`.
    fn new(url: String) -> Cluster {
        let schema = format!("wasmjob_serve_{}_{}", std::process::id(), fastrand::u32(..));
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("wasmjob.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\nurl = {}\nschema = {}\n",
                toml_string(&url),
                toml_string(&schema)
            ),
        )
        .unwrap();
        Cluster {
            url,
            schema,
            dir,
            config,
        }
    }

    /// Starts host `name` (its data directory is `name`, so starting a
    /// name again is the same host restarted, with the same identity).
    fn start(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Host {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmjob"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.dir.path().join(name))
            .args(args)
            .envs(env.iter().copied());
        Host::spawn(command)
    }

    /// Runs `sql` in the schema; the first column of each row, as i64.
    fn query(&self, sql: &str) -> Vec<i64> {
        self.rows(sql, |row| row.get::<_, i64>(0))
    }

    /// Runs `sql` in the schema; each row as `read` reads it.
    fn rows<T>(&self, sql: &str, read: impl Fn(&tokio_postgres::Row) -> T) -> Vec<T> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(&format!("SET search_path = \"{}\"", self.schema))
                .await
                .unwrap();
            client
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(read)
                .collect()
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
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

impl Host {
    /// Polls job `id` until it is final.
    fn wait_final(&self, id: i64) -> Value {
        self.wait_job(id, "final", |job| {
            matches!(
                job["state"].as_str(),
                Some("completed" | "failed" | "cancelled")
            )
        })
    }

    /// Polls job `id` until `done` says so.
    fn wait_job(&self, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + HANG;
        loop {
            let job = self.job(id);
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} never {what}: {job}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET path` as JSON.
    fn get(&self, path: &str) -> Value {
        ureq::get(&self.url(path))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    }

    /// `POST path` with `body`, as JSON.
    fn post(&self, path: &str, body: Value) -> Value {
        ureq::post(&self.url(path))
            .send_json(&body)
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    }

    /// The ids of the jobs this host runs now.
    fn running(&self) -> Vec<i64> {
        self.get("/v1/workers")["running"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["job_id"].as_i64().unwrap())
            .collect()
    }

    /// This host's identity.
    fn owner(&self) -> String {
        self.get("/v1/workers")["owner"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Whether this host says it leads.
    fn leads(&self) -> bool {
        self.get("/v1/workers")["leader"] == true
    }

    /// The sum of a counter's samples in this host's `/metrics`.
    fn counter(&self, name: &str) -> f64 {
        let text = ureq::get(&self.url("/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        text.lines()
            .filter(|line| line.starts_with(name) && !line.starts_with('#'))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Waits until `done` holds (a bound for what must happen, not a timing).
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A job that loops until its timeout (`timeout_ms`), `attempts` times.
fn looping(module: &str, timeout_ms: u64, attempts: u32) -> Value {
    json!({
        "module": module, "max_attempts": attempts,
        "retry": {"backoff": "fixed", "base_ms": 10, "max_delay_ms": 10},
        "limits": {"fuel": 1_000_000_000_000u64, "timeout_ms": timeout_ms}
    })
}

/// Three hosts, 20,000 jobs submitted round-robin in batches: every job
/// completes, each ran exactly once (one attempt row each), and every
/// host ran some. A module uploaded on one host runs on all of them.
#[test]
fn three_hosts_drain_one_backlog_running_each_job_once() {
    let Some(url) = database_url() else {
        return;
    };
    let cluster = Cluster::new(url);
    let hosts: Vec<Host> = ["a", "b", "c"]
        .iter()
        .map(|name| cluster.start(name, &["--lease", "1h"], &[]))
        .collect();
    let noop = hosts[0].upload(guests::NOOP);
    const JOBS: usize = 20_000;
    const BATCH: usize = 1_000;
    for (i, host) in (0..JOBS / BATCH).zip(hosts.iter().cycle()) {
        let jobs: Vec<Value> = (0..BATCH)
            .map(|j| json!({"module": noop, "input": {"n": i * BATCH + j}}))
            .collect();
        let answer = host.post("/v1/jobs/batch", json!({"jobs": jobs}));
        assert_eq!(answer["jobs"].as_array().unwrap().len(), BATCH, "{answer}");
    }
    eventually("every job completed", || {
        hosts[1].get("/v1/stats")["jobs"]["completed"] == JOBS
    });
    let attempts = cluster.query("SELECT count(*) FROM attempts");
    assert_eq!(
        attempts,
        vec![JOBS as i64],
        "one attempt per job, none twice"
    );
    let twice = cluster.query("SELECT job_id FROM attempts WHERE attempt > 1");
    assert!(twice.is_empty(), "jobs that ran twice: {twice:?}");
    let ran: Vec<f64> = hosts
        .iter()
        .map(|host| host.counter("wasmjob_jobs_completed_total"))
        .collect();
    assert_eq!(ran.iter().sum::<f64>(), JOBS as f64, "{ran:?}");
    assert!(
        ran.iter().all(|&n| n > 0.0),
        "every host ran some jobs: {ran:?}"
    );
    eprintln!("jobs run per host: {ran:?}");
}

/// Three hosts draining a backlog; one is killed mid-run. Every job
/// still completes; the only lost attempts are the dead host's (its
/// running and claimed-ahead jobs, rescued once their leases expired).
#[test]
fn killing_a_host_mid_drain_loses_no_job() {
    let Some(url) = database_url() else {
        return;
    };
    let cluster = Cluster::new(url);
    let args = ["--lease", "4s"];
    let a = cluster.start("a", &args, &[]);
    let b = cluster.start("b", &args, &[]);
    let mut c = cluster.start("c", &args, &[]);
    let noop = a.upload(guests::NOOP);
    const JOBS: usize = 6_000;
    for (i, host) in (0..JOBS / 500).zip([&a, &b, &c].iter().cycle()) {
        let jobs: Vec<Value> = (0..500)
            .map(|j| json!({"module": noop, "input": {"n": i * 500 + j}}))
            .collect();
        host.post("/v1/jobs/batch", json!({"jobs": jobs}));
    }
    eventually("host c ran some jobs", || {
        c.counter("wasmjob_jobs_completed_total") > 0.0
    });
    let c_owner = c.owner();
    c.child.kill().unwrap();
    c.child.wait().unwrap();
    let mut last = (0, Instant::now());
    loop {
        let stats = a.get("/v1/stats");
        let done = stats["jobs"]["completed"].as_u64().unwrap();
        if done == JOBS as u64 {
            break;
        }
        if done != last.0 {
            last = (done, Instant::now());
        }
        assert!(
            last.1.elapsed() < HANG,
            "no progress: {stats}, {}",
            a.get("/v1/workers")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let lost = cluster.query("SELECT count(*) FROM attempts WHERE report LIKE '{\"lost\"%'")[0];
    let lost_elsewhere = cluster.query(&format!(
        "SELECT count(*) FROM attempts WHERE report LIKE '{{\"lost\"%' \
         AND report NOT LIKE '%\"{c_owner}\"%'"
    ))[0];
    assert_eq!(
        lost_elsewhere,
        0,
        "only the dead host's ({c_owner}) leases expired: {:?}",
        cluster.rows(
            "SELECT report FROM attempts WHERE report LIKE '{\"lost\"%' LIMIT 5",
            |row| row.get::<_, String>(0)
        )
    );
    let attempts = cluster.query("SELECT count(*) FROM attempts")[0];
    assert_eq!(
        attempts,
        JOBS as i64 + lost,
        "one more attempt per lost one"
    );
    eprintln!("{lost} jobs of the killed host were rescued");
}

/// Three hosts, one of them with a clock ten minutes fast and leading: it
/// judges leases on the database's clock, so it rescues no live host's
/// job. A host is killed while it runs jobs: the leader rescues them once
/// their leases expire (a `lost` attempt naming the dead host) and every
/// job ends. Then the leader is killed: the surviving host takes the lead.
#[test]
fn a_dead_hosts_jobs_are_rescued_by_the_leader_whose_clock_is_wrong() {
    let Some(url) = database_url() else {
        return;
    };
    let cluster = Cluster::new(url);
    let args = ["--lease", "2s", "--concurrency", "2"];
    let fast = cluster.start("fast", &args, &[("WASMJOB_TEST_CLOCK_SKEW_MS", "600000")]);
    eventually("the first host leads", || fast.leads());
    let b = cluster.start("b", &args, &[]);
    let mut c = cluster.start("c", &args, &[]);
    let offset = fast.get("/v1/workers")["clock_offset_ms"].as_i64().unwrap();
    assert!(
        (-600_000 - 5_000..=-600_000 + 5_000).contains(&offset),
        "the fast host follows the database's clock: offset {offset} ms"
    );
    assert!(!b.leads() && !c.leads(), "one leader");
    let module = fast.upload(guests::INFINITE_LOOP);
    let ids: Vec<i64> = (0..6)
        .map(|_| fast.submit(looping(&module, 8_000, 2)))
        .collect();
    eventually("host c runs two jobs", || c.running().len() == 2);
    let on_c = c.running();
    let c_owner = c.owner();
    // Killed: no result, no renewal, no goodbye.
    c.child.kill().unwrap();
    c.child.wait().unwrap();
    for &id in &ids {
        let job = b.wait_final(id);
        let lost: Vec<&Value> = job["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["report"]["status"] == "lost")
            .collect();
        // Only the dead host's leases expire: those of its running jobs
        // and of any it had claimed ahead.
        for attempt in &lost {
            assert_eq!(
                attempt["report"]["owner"],
                c_owner.as_str(),
                "a live host's job was rescued: {job}"
            );
        }
        if on_c.contains(&id) {
            assert_eq!(lost.len(), 1, "rescued once: {job}");
        }
    }
    drop(fast);
    eventually("the surviving host takes the lead", || b.leads());
}

/// Two hosts with hour-long leases, each running jobs; one is killed and
/// started again with the same data directory (so the same identity): it
/// rescues its own jobs at once, and leaves the other host's alone.
#[test]
fn a_restarted_host_takes_back_only_its_own_jobs() {
    let Some(url) = database_url() else {
        return;
    };
    let cluster = Cluster::new(url);
    let args = ["--lease", "1h", "--concurrency", "2"];
    let a = cluster.start("a", &args, &[]);
    let mut b = cluster.start("b", &args, &[]);
    let module = a.upload(guests::INFINITE_LOOP);
    let ids: Vec<i64> = (0..4)
        .map(|_| a.submit(looping(&module, 600_000, 2)))
        .collect();
    let deadline = Instant::now() + HANG;
    while !(a.running().len() == 2 && b.running().len() == 2) {
        assert!(
            Instant::now() < deadline,
            "each host never ran two jobs: a {:?}, b {:?}, jobs {:?}",
            a.get("/v1/workers"),
            b.get("/v1/workers"),
            ids.iter().map(|&id| a.job(id)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (on_a, on_b, b_owner) = (a.running(), b.running(), b.owner());
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let b = cluster.start("b", &args, &[]);
    assert_eq!(b.owner(), b_owner, "the same identity");
    for &id in &on_b {
        let job = a.wait_job(id, "rescued", |job| {
            job["attempts"].as_array().is_some_and(|a| !a.is_empty())
        });
        let report = &job["attempts"][0]["report"];
        assert_eq!(report["status"], "lost", "{job}");
        assert_eq!(report["owner"], b_owner.as_str(), "{job}");
    }
    for &id in &on_a {
        let job = b.job(id);
        assert_eq!(job["state"], "running", "{job}");
        assert!(job["attempts"].as_array().unwrap().is_empty(), "{job}");
    }
    for id in ids {
        b.post(&format!("/v1/jobs/{id}/cancel"), json!({}));
    }
}

/// Across two hosts: a cancel on one stops the job the other runs; a long
/// poll on one answers when the other finishes the job; a module name
/// moved on one resolves to its new module on the other.
#[test]
fn cancels_long_polls_and_module_names_reach_across_hosts() {
    let Some(url) = database_url() else {
        return;
    };
    let cluster = Cluster::new(url);
    let args = ["--lease", "1h", "--concurrency", "1"];
    let hosts = [
        cluster.start("a", &args, &[]),
        cluster.start("b", &args, &[]),
    ];
    let module = hosts[0].upload(guests::INFINITE_LOOP);
    // Cancel.
    let id = hosts[0].submit(looping(&module, 600_000, 1));
    let (running, other) = runner(&hosts, id);
    let asked = Instant::now();
    let job = other.post(&format!("/v1/jobs/{id}/cancel"), json!({}));
    assert_eq!(job["state"], "cancelled", "{job}");
    eventually("the running host stopped the job", || {
        !running.running().contains(&id)
    });
    eprintln!(
        "a cancel on one host stopped the job on the other after {:?}",
        asked.elapsed()
    );

    // Long poll.
    let id = hosts[0].submit(looping(&module, 3_000, 1));
    let (_, other) = runner(&hosts, id);
    let job = other.get(&format!("/v1/jobs/{id}?wait_ms=60000"));
    assert_eq!(
        job["state"], "failed",
        "the long poll answered at the end: {job}"
    );

    // A module name moved on one host.
    let hello = hosts[0].upload(guests::HELLO);
    let named = |host: &Host, wasm: &str| {
        let bytes = std::fs::read(wasm).unwrap();
        let answer: Value = ureq::post(&host.url("/v1/modules?name=greeter"))
            .send(&bytes[..])
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        answer["hash"].as_str().unwrap().to_owned()
    };
    assert_eq!(named(&hosts[0], guests::HELLO), hello);
    let first = hosts[1].submit(json!({"module": "greeter", "input": {"name": "x"}}));
    assert_eq!(hosts[1].job(first)["module"], hello);
    let sum = named(&hosts[0], guests::SUM);
    eventually("the other host resolves the name to its new module", || {
        let id = hosts[1].submit(json!({"module": "greeter", "input": {"numbers": [1]}}));
        hosts[1].job(id)["module"] == sum.as_str()
    });
}

/// Which of two hosts runs job `id` (waiting until one does), and the
/// other one.
fn runner(hosts: &[Host; 2], id: i64) -> (&Host, &Host) {
    let mut found = None;
    eventually("the job runs", || {
        found = hosts.iter().position(|h| h.running().contains(&id));
        found.is_some()
    });
    let i = found.unwrap();
    (&hosts[i], &hosts[1 - i])
}

/// Three hosts, one schedule firing every second: each fire time creates
/// exactly one job.
#[test]
fn a_schedule_fires_once_per_tick_with_three_hosts() {
    let Some(url) = database_url() else {
        return;
    };
    let cluster = Cluster::new(url);
    let hosts: Vec<Host> = ["a", "b", "c"]
        .iter()
        .map(|name| cluster.start(name, &["--lease", "1h"], &[]))
        .collect();
    let noop = hosts[0].upload(guests::NOOP);
    hosts[0].post(
        "/v1/schedules",
        json!({"name": "tick", "cron": "* * * * * *", "job": {"module": noop}}),
    );
    eventually("five ticks fired", || {
        cluster.query("SELECT count(*) FROM jobs WHERE schedule = 'tick'")[0] >= 5
    });
    let doubled = cluster.query(
        "SELECT run_at FROM jobs WHERE schedule = 'tick' GROUP BY run_at HAVING count(*) > 1",
    );
    assert!(
        doubled.is_empty(),
        "fire times that fired twice: {doubled:?}"
    );
}

/// `s` as a TOML string.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
