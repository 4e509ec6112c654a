//! The randomized crash suite: a steady mixed stream of jobs (quick, slow,
//! failing, flaky, delayed and dependent) against the real `wasmjob`
//! binary, SIGKILLed at random moments and restarted on the same data
//! directory, many times. At the end, every job the host acknowledged
//! (answered 201) reached the final state its module implies, with the
//! output it implies; no job has two recorded completions; every job's
//! attempt count matches its history. How many attempts were lost, and to
//! which cause (a restart, or a lease that expired on a live host: the
//! only way a job may run twice past its start), is printed.
//!
//! `WASMJOB_CRASH_KILLS` (20 by default) sets the number of kills, and
//! `WASMJOB_CRASH_SEED` the seed (printed, so a failing run can be
//! repeated). The long run: `WASMJOB_CRASH_KILLS=200 cargo test -p wasmjob
//! --test crash -- --nocapture`.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmjob_tests::guests;

mod common;
use common::Served;

/// Upper bound for the final wait of one job; reaching it is a failure.
const HANG: Duration = Duration::from_secs(180);

/// The module hashes the stream uses.
#[derive(Clone)]
struct Modules {
    hello: String,
    fib: String,
    fatal: String,
    flaky: String,
    sum: String,
}

/// What a job must end as.
#[derive(Clone, Debug)]
enum Expect {
    /// Completed, with this output.
    Completed(Value),
    /// Completed, with an output this checks.
    CompletedAfterRetry,
    /// Failed (dead letter), by the guest's fatal error.
    Failed,
}

/// SplitMix64: small, seeded, good enough to pick moments and jobs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
        .unwrap_or(default)
}

fn start(data_dir: &Path) -> Served {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmjob"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        // Short leases: a job whose lease expires on a live host is
        // rescued quickly, and counted below.
        .args(["--lease", "5s", "--concurrency", "4"])
        .arg("--data-dir")
        .arg(data_dir);
    Served::spawn(command)
}

fn fib(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a.wrapping_add(b));
    }
    a
}

/// Retries quickly and never runs out of attempts because of lost ones.
fn common_fields(mut job: Value) -> Value {
    job["max_attempts"] = json!(100);
    job["retry"] = json!({"backoff": "fixed", "base_ms": 10, "max_delay_ms": 10});
    job
}

/// Submits `job`; its id when the host acknowledged it, `None` when the
/// host was not there to answer.
fn submit(agent: &ureq::Agent, base: &str, job: &Value) -> Option<i64> {
    let mut response = agent.post(&format!("{base}/v1/jobs")).send_json(job).ok()?;
    let status = response.status().as_u16();
    let body: Value = response.body_mut().read_json().ok()?;
    assert_eq!(status, 201, "a submission was refused: {body}");
    Some(body["id"].as_i64().unwrap())
}

/// Submits a random mix until `stop` or until the host stops answering;
/// returns the acknowledged jobs and what each must end as.
fn stream(
    base: &str,
    modules: &Modules,
    rng: &mut Rng,
    counter: &mut u64,
    stop: &AtomicBool,
) -> Vec<(i64, Expect)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut acknowledged = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        *counter += 1;
        let i = *counter;
        let (job, expect) = match rng.below(6) {
            0 => {
                let name = format!("q{i}");
                let greeting = json!({"greeting": format!("Hello, {name}!")});
                (
                    json!({"module": modules.hello, "input": {"name": name}}),
                    Expect::Completed(greeting),
                )
            }
            1 => {
                let n = 28 + rng.below(8);
                (
                    json!({"module": modules.fib, "input": {"n": n}}),
                    Expect::Completed(json!({"n": n, "value": fib(n)})),
                )
            }
            2 => (
                json!({"module": modules.fatal, "input": {}}),
                Expect::Failed,
            ),
            3 => (
                json!({"module": modules.flaky, "input": {"succeed_on": 2}}),
                Expect::CompletedAfterRetry,
            ),
            4 => {
                let name = format!("d{i}");
                let greeting = json!({"greeting": format!("Hello, {name}!")});
                (
                    json!({"module": modules.hello, "input": {"name": name},
                           "delay_ms": 50 + rng.below(1500)}),
                    Expect::Completed(greeting),
                )
            }
            _ => {
                // A prerequisite and its dependent: the dependent adds the
                // prerequisite's total to its own.
                let first = common_fields(json!({"module": modules.sum, "input": {"add": 1}}));
                let Some(prereq) = submit(&agent, base, &first) else {
                    break;
                };
                acknowledged.push((prereq, Expect::Completed(json!({"total": 1, "inputs": {}}))));
                (
                    json!({"module": modules.sum, "input": {"add": 2},
                           "depends_on": [{"job": prereq, "name": "first"}]}),
                    Expect::Completed(json!({"total": 3, "inputs": {"first": 1}})),
                )
            }
        };
        match submit(&agent, base, &common_fields(job)) {
            Some(id) => acknowledged.push((id, expect)),
            None => break,
        }
    }
    acknowledged
}

fn wait_final(server: &Served, id: i64) -> Value {
    let deadline = Instant::now() + HANG;
    loop {
        let path = format!("/v1/jobs/{id}?wait_ms=30000");
        let mut response = ureq::get(&server.url(&path)).call().unwrap();
        let job: Value = response.body_mut().read_json().unwrap();
        if matches!(
            job["state"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} never finished: {job}");
    }
}

/// What the histories say, summed over every job.
#[derive(Debug, Default)]
struct Tally {
    lost_to_restarts: usize,
    lost_to_lease_expiry: usize,
    jobs_rerun_after_a_lost_attempt: usize,
    jobs_rerun_after_a_lease_expiry: usize,
    states: BTreeMap<String, usize>,
}

/// Checks one final job against what its module implies; adds its
/// history to `tally`.
fn check(job: &Value, expect: &Expect, tally: &mut Tally) {
    let state = job["state"].as_str().unwrap();
    *tally.states.entry(state.to_owned()).or_default() += 1;
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(
        job["attempt"].as_u64().unwrap() as usize,
        attempts.len(),
        "the attempt count matches the history: {job}"
    );
    for (i, attempt) in attempts.iter().enumerate() {
        assert_eq!(
            attempt["attempt"],
            i + 1,
            "attempts numbered in order: {job}"
        );
    }
    let mut completions = 0;
    let mut lost = 0;
    let mut expired = 0;
    for attempt in attempts {
        let report = &attempt["report"];
        match report["status"].as_str().unwrap() {
            "lost" => {
                lost += 1;
                let message = report["message"].as_str().unwrap();
                if message.contains("expired") {
                    expired += 1;
                } else {
                    assert!(message.contains("stopped"), "{report}");
                }
            }
            "host_failed" => panic!("no host-side failure is expected: {job}"),
            "success" => completions += 1,
            _ => {}
        }
    }
    assert!(completions <= 1, "a job completed twice: {job}");
    tally.lost_to_restarts += lost - expired;
    tally.lost_to_lease_expiry += expired;
    if lost > 0 && attempts.len() > lost {
        tally.jobs_rerun_after_a_lost_attempt += 1;
    }
    if expired > 0 {
        tally.jobs_rerun_after_a_lease_expiry += 1;
    }
    match expect {
        Expect::Completed(output) => {
            assert_eq!(state, "completed", "{job}");
            assert_eq!(&job["output"], output, "{job}");
            assert_eq!(completions, 1, "{job}");
        }
        Expect::CompletedAfterRetry => {
            assert_eq!(state, "completed", "{job}");
            assert!(job["output"]["attempt"].as_u64().unwrap() >= 2, "{job}");
            assert_eq!(completions, 1, "{job}");
        }
        Expect::Failed => {
            assert_eq!(state, "failed", "{job}");
            assert_eq!(completions, 0, "{job}");
            let last = &attempts.last().unwrap()["report"];
            assert_eq!(last["failure"]["kind"], "fatal_error", "{job}");
        }
    }
}

#[test]
fn every_acknowledged_job_survives_random_sigkills() {
    let kills = env_number("WASMJOB_CRASH_KILLS", 20);
    let seed = env_number(
        "WASMJOB_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    eprintln!("crash suite: {kills} kills, WASMJOB_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let modules = Modules {
        hello: server.upload(guests::HELLO),
        fib: server.upload(guests::FIB),
        fatal: server.upload(guests::FATAL),
        flaky: server.upload(guests::FLAKY),
        sum: server.upload(guests::SUM),
    };
    let mut expected: Vec<(i64, Expect)> = Vec::new();
    let mut counter = 0;
    for _ in 0..kills {
        let stop = Arc::new(AtomicBool::new(false));
        let moment = Duration::from_millis(rng.below(1500));
        let killer = {
            let stop = Arc::clone(&stop);
            let pid = server.child.id();
            std::thread::spawn(move || {
                std::thread::sleep(moment);
                stop.store(true, Ordering::Relaxed);
                let status = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .unwrap();
                assert!(status.success());
            })
        };
        let mut stream_rng = Rng(rng.next());
        expected.extend(stream(
            &server.base,
            &modules,
            &mut stream_rng,
            &mut counter,
            &stop,
        ));
        killer.join().unwrap();
        server.child.wait().unwrap();
        server = start(dir.path());
    }

    let mut tally = Tally::default();
    for (id, expect) in &expected {
        let job = wait_final(&server, *id);
        check(&job, expect, &mut tally);
    }
    eprintln!(
        "crash suite: {kills} kills, {} acknowledged jobs, states {:?}; lost attempts: \
         {} to restarts, {} to lease expiry; jobs run again after a lost attempt: {} \
         (after a lease expiry: {}); jobs completed twice: 0",
        expected.len(),
        tally.states,
        tally.lost_to_restarts,
        tally.lost_to_lease_expiry,
        tally.jobs_rerun_after_a_lost_attempt,
        tally.jobs_rerun_after_a_lease_expiry,
    );
    assert!(
        expected.len() >= kills as usize,
        "the stream kept submitting"
    );
}
