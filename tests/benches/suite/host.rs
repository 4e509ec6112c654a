//! A real host in a child process, and the HTTP calls the scenarios make.
//!
//! The child is this benchmark binary re-executed with [`SERVE_FLAG`]: it
//! runs `wasmjob serve` through the same `wasmjob::cli` code as the
//! `wasmjob` binary, so its figures (RSS included) are the host's alone,
//! not the load generator's.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wasmjob::client::Client;

/// The first argument that makes this binary a host instead of the suite.
pub const SERVE_FLAG: &str = "--serve-host";

/// The environment variable naming another build of this benchmark to
/// run the hosts with (their binary is this one by default): an earlier
/// commit's build, for an A/B run.
pub const HOST_EXE: &str = "WASMJOB_BENCH_HOST_EXE";

/// How long a host may take to start listening or to stop.
const START_STOP: Duration = Duration::from_secs(120);

/// `wasmjob serve` in a child process, listening on a free local port.
pub struct HostProcess {
    /// `None` once stopped.
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// When the process was spawned.
    pub spawned: Instant,
    /// When it printed that it listens.
    pub listening: Instant,
}

impl HostProcess {
    /// Starts a host on `data_dir` with the default settings (extra flags
    /// in `args`) and waits until it listens.
    pub fn start(data_dir: &Path, args: &[&str]) -> HostProcess {
        let exe = match std::env::var_os(HOST_EXE) {
            Some(exe) => PathBuf::from(exe),
            None => std::env::current_exe().expect("the benchmark's own path"),
        };
        HostProcess::start_exe(&exe, data_dir, args)
    }

    /// [`start`](Self::start) with the host run by `exe`, a build of this
    /// benchmark (for an A/B of two builds in one run).
    pub fn start_exe(exe: &Path, data_dir: &Path, args: &[&str]) -> HostProcess {
        let mut command = Command::new(exe);
        command
            .arg(SERVE_FLAG)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The host's settings are exactly the defaults plus `args`.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("WASMJOB_") {
                command.env_remove(name);
            }
        }
        let spawned = Instant::now();
        let mut child = command.spawn().expect("spawning the host");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!("the host exited before listening"),
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .expect("an address")
                    .to_owned();
            }
            assert!(spawned.elapsed() < START_STOP, "the host did not start");
        };
        let listening = Instant::now();
        // Keep draining stderr so the host never blocks on a full pipe;
        // pass its lines on when asked to.
        let verbose = std::env::var_os("WASMJOB_BENCH_VERBOSE").is_some();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if verbose {
                    eprintln!("host: {line}");
                }
            }
        });
        HostProcess {
            child: Some(child),
            url,
            spawned,
            listening,
        }
    }

    fn id(&self) -> u32 {
        self.child.as_ref().expect("a running host").id()
    }

    /// A new client (one keep-alive connection) of this host.
    pub fn client(&self) -> Client {
        Client::new(&self.url, None)
    }

    /// The host's resident memory now and at its peak, in bytes.
    pub fn rss(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.id()))
            .expect("/proc status of the host");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Stops the host with SIGTERM (a graceful shutdown) and waits.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
        // Wait for the exit on a thread, so the wait can have a deadline.
        let mut child = self.child.take().expect("a running host");
        let (exited, exit) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = exited.send(child.wait());
        });
        let status = exit
            .recv_timeout(START_STOP)
            .expect("the host did not stop")
            .expect("waiting for the host");
        assert!(status.success(), "the host exited with {status}");
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Uploads a module; returns its hash.
pub fn upload(client: &Client, bytes: &[u8], name: &str) -> String {
    let record = client
        .post_bytes(&format!("/v1/modules?name={name}"), bytes)
        .unwrap_or_else(|e| panic!("upload {name}: {e}"));
    record["hash"].as_str().expect("a hash").to_owned()
}

/// A no-op job of `module`.
pub fn noop_job(module: &str, priority: u8, delay_ms: u64) -> Value {
    json!({"module": module, "input": null, "priority": priority, "delay_ms": delay_ms,
           "max_attempts": 1})
}

/// A lean client for bulk submission: the body is serialized once per
/// batch from prepared job texts, and only the ids are read back, so the
/// load generator spends as little of the shared CPUs as it can.
pub struct Submitter {
    agent: ureq::Agent,
    base: String,
}

#[derive(serde::Deserialize)]
struct Batch {
    jobs: Vec<Id>,
}

#[derive(serde::Deserialize)]
struct Id {
    id: i64,
}

impl Submitter {
    pub fn new(host: &HostProcess) -> Submitter {
        Submitter {
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(120)))
                .build()
                .into(),
            base: host.url.clone(),
        }
    }

    /// Submits the jobs (each one JSON object's text); returns their ids.
    pub fn submit(&self, jobs: &[&str]) -> Vec<i64> {
        let mut body = String::with_capacity(16 + jobs.iter().map(|j| j.len() + 1).sum::<usize>());
        body.push_str("{\"jobs\":[");
        for (i, job) in jobs.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(job);
        }
        body.push_str("]}");
        let mut response = self
            .agent
            .post(format!("{}/v1/jobs/batch", self.base))
            .header("content-type", "application/json")
            .send(body)
            .unwrap_or_else(|e| panic!("batch submit: {e}"));
        let batch: Batch = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_json()
            .unwrap_or_else(|e| panic!("batch answer: {e}"));
        batch.jobs.into_iter().map(|j| j.id).collect()
    }
}

/// The host's job counts by state.
pub fn counts(client: &Client) -> Value {
    client
        .get("/v1/stats")
        .unwrap_or_else(|e| panic!("stats: {e}"))["jobs"]
        .clone()
}

/// Waits for `last` (the job expected to finish last) with a long poll,
/// then polls the counts until `done` jobs are final; panics if any failed
/// or nothing moves for a minute. Returns when it saw them all final.
pub fn wait_final(client: &Client, last_job: Option<i64>, done: u64) -> Instant {
    if let Some(id) = last_job {
        loop {
            let job = client
                .get(&format!("/v1/jobs/{id}?wait_ms=60000"))
                .unwrap_or_else(|e| panic!("wait: {e}"));
            if matches!(
                job["state"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                break;
            }
        }
    }
    let mut last = (0, Instant::now());
    loop {
        let counts = counts(client);
        let get = |s: &str| counts[s].as_u64().unwrap_or(0);
        assert_eq!(get("failed"), 0, "no job may fail: {counts}");
        let finished = get("completed") + get("cancelled");
        if finished >= done {
            return Instant::now();
        }
        if finished != last.0 {
            last = (finished, Instant::now());
        }
        assert!(
            last.1.elapsed() < Duration::from_secs(60),
            "no progress for a minute: {counts}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Lists every job (pages of 1,000); the fields the scenarios read.
pub fn all_jobs(client: &Client) -> Vec<Value> {
    let mut jobs = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(id) => format!("/v1/jobs?limit=1000&before={id}"),
            None => "/v1/jobs?limit=1000".to_owned(),
        };
        let page = client.get(&path).unwrap_or_else(|e| panic!("list: {e}"));
        let items = page["jobs"].as_array().expect("a page").clone();
        jobs.extend(items);
        match page["next_cursor"].as_i64() {
            Some(cursor) => before = Some(cursor),
            None => return jobs,
        }
    }
}

/// Sizes of the batches (at most `batch` each) that make up `jobs`.
pub fn chunks(jobs: usize, batch: usize) -> impl Iterator<Item = usize> {
    (0..jobs)
        .step_by(batch)
        .map(move |start| batch.min(jobs - start))
}

/// Wall-clock time, ms since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}
