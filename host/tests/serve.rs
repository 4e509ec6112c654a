//! `wasmjob serve` as a real process: jobs over HTTP, a host killed with
//! SIGKILL mid-run and restarted, graceful shutdown on SIGTERM.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wasmjob_tests::guests;

mod common;
use common::Served as Server;

/// Upper bound for things that must happen; reaching it is a failure.
const HANG: Duration = Duration::from_secs(90);

impl Server {
    /// Starts a host. Leases last an hour unless `extra` sets `--lease`:
    /// no test here is about a lease expiring, and a host starved of CPU
    /// for a moment must not see its live jobs rescued.
    fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(data_dir, extra, &[])
    }

    /// [`start`](Self::start) with environment variables set.
    fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let lease: &[&str] = if extra.contains(&"--lease") {
            &[]
        } else {
            &["--lease", "1h"]
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmjob"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(lease)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .envs(env.iter().copied());
        Server::spawn(command)
    }

    /// Waits for job `id` to be final, with the API's long poll: the host
    /// answers as soon as it is.
    fn wait_final(&self, id: i64) -> Value {
        let deadline = Instant::now() + HANG;
        loop {
            let path = format!("/v1/jobs/{id}?wait_ms=60000");
            let mut response = ureq::get(&self.url(&path)).call().unwrap();
            let job: Value = response.body_mut().read_json().unwrap();
            if final_state(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} never finished: {job}");
        }
    }

    /// Polls job `id` until `check` holds, for states the long poll does not
    /// wait for (`running`): every test here waits for a state that lasts.
    fn wait(&self, id: i64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + HANG;
        loop {
            let job = self.job(id);
            if check(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} never {what}: {job}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`TERM`, `INT`) and waits for the host to exit.
    fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + HANG;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn final_state(job: &Value) -> bool {
    matches!(
        job["state"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

/// Killed mid-run and restarted, a host recovers the jobs its previous
/// process left running at once: leases here last an hour, longer than the
/// test waits. The job killed mid-run loops until it is cancelled, so it is
/// surely running when the host is killed, however slow the machine.
#[test]
fn a_host_killed_mid_run_loses_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--concurrency", "1"]);
    let looping = server.upload(guests::INFINITE_LOOP);
    let hello = server.upload(guests::HELLO);
    let retry = json!({"backoff": "fixed", "base_ms": 10, "max_delay_ms": 10});
    let endless = server.submit(json!({
        "module": looping, "priority": 0, "retry": retry,
        "limits": {"fuel": 1_000_000_000_000u64, "timeout_ms": 3_600_000}
    }));
    let others: Vec<i64> = (0..10)
        .map(|i| {
            server
                .submit(json!({"module": hello, "input": {"name": format!("n{i}")}, "priority": 9}))
        })
        .collect();
    server.wait(endless, "started", |j| j["state"] == "running");
    server.child.kill().unwrap(); // SIGKILL mid-run
    server.child.wait().unwrap();

    let server = Server::start(dir.path(), &["--concurrency", "2"]);
    for id in others {
        let job = server.wait_final(id);
        assert_eq!(job["state"], "completed", "{job}");
    }
    // The killed attempt is recorded as lost, and the job runs again.
    let job = server.wait(endless, "running again", |j| {
        j["state"] == "running" && j["attempt"] == 2
    });
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{job}");
    assert_eq!(attempts[0]["report"]["status"], "lost", "{job}");
    let out = cli(&server, &["cancel", &endless.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// In `--durability interval` a job is acknowledged before any fsync; it
/// is in the operating system's hands all the same, so a host killed with
/// SIGKILL right after the acknowledgements (well inside the writer's
/// one-second sync interval) loses none of them.
#[test]
fn jobs_acknowledged_in_interval_mode_survive_a_killed_process() {
    let dir = tempfile::tempdir().unwrap();
    let interval = ["--durability", "interval"];
    let mut server = Server::start(dir.path(), &interval);
    let hello = server.upload(guests::HELLO);
    // Delayed by an hour: they stay pending, nothing else writes them.
    let ids: Vec<i64> = (0..20)
        .map(|i| {
            server.submit(json!({"module": hello, "input": {"name": format!("n{i}")},
                                 "delay_ms": 3_600_000}))
        })
        .collect();
    server.child.kill().unwrap(); // SIGKILL, no shutdown
    server.child.wait().unwrap();

    let server = Server::start(dir.path(), &interval);
    for id in ids {
        let job = server.job(id);
        assert_eq!(job["state"], "pending", "{job}");
        assert_eq!(
            job["input"]["name"].as_str().map(|n| n.starts_with('n')),
            Some(true)
        );
    }
}

#[test]
fn a_second_host_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let second = Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run wasmjob serve");
    assert_eq!(second.status.code(), Some(2));
    let message = stderr(&second);
    assert!(
        message.contains("in use by another wasmjob host"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "one line: {message}");
    // The first host is unaffected.
    let hello = server.upload(guests::HELLO);
    let id = server.submit(json!({"module": hello, "input": {"name": "Ada"}}));
    let job = server.wait_final(id);
    assert_eq!(job["state"], "completed", "{job}");
}

/// Stopped by `signal` with no grace, a host gives its running job back
/// without spending the attempt; restarted, it runs the job again.
fn a_signal_requeues_a_running_job_without_spending_an_attempt(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--shutdown-grace", "0s"]);
    let looping = server.upload(guests::INFINITE_LOOP);
    let id = server.submit(json!({
        "module": looping, "max_attempts": 1,
        "limits": {"fuel": 1_000_000_000_000u64, "timeout_ms": 600_000}
    }));
    server.wait(id, "started", |j| j["state"] == "running");
    server.signal(signal);
    assert_eq!(server.child.wait().unwrap().code(), Some(0));

    let server = Server::start(dir.path(), &[]);
    let job = server.job(id);
    assert!(
        matches!(
            job["state"].as_str(),
            Some("pending" | "retrying" | "running")
        ),
        "interrupted, not failed: {job}"
    );
    assert_eq!(
        job["attempts"],
        json!([]),
        "the interrupted attempt was not spent"
    );
    // It runs again on the restarted host: one attempt in all.
    let running = server.wait(id, "restarted", |j| j["state"] == "running");
    assert_eq!(running["attempt"], 1);
}

#[test]
fn sigterm_requeues_a_running_job_without_spending_an_attempt() {
    a_signal_requeues_a_running_job_without_spending_an_attempt("TERM");
}

#[test]
fn sigint_requeues_a_running_job_without_spending_an_attempt() {
    a_signal_requeues_a_running_job_without_spending_an_attempt("INT");
}

/// Runs a client command against `server`.
fn cli(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .args(args)
        .env("WASMJOB_URL", &server.base)
        .env("WASMJOB_CLIENT_CONFIG", "/nonexistent/client.toml")
        .output()
        .expect("run wasmjob")
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_client_commands_drive_a_host() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--concurrency", "2"]);

    let out = cli(&server, &["upload", guests::HELLO, "--name", "hello"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim().len(), 64, "prints the hash");
    cli(&server, &["upload", guests::FATAL, "--name", "fatal"]);

    let out = cli(
        &server,
        &["submit", "hello", "--input", r#"{"name":"Ada"}"#, "--wait"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let output: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(output["greeting"], "Hello, Ada!");

    let out = cli(
        &server,
        &["submit", "fatal", "--max-attempts", "3", "--wait"],
    );
    assert_eq!(out.status.code(), Some(1), "a failed job exits 1");
    assert!(stderr(&out).contains("failed"), "{}", stderr(&out));

    let out = cli(
        &server,
        &[
            "submit",
            "hello",
            "--input",
            r#"{"name":"Bo"}"#,
            "--delay",
            "1h",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let id = stdout(&out).trim().to_owned();
    // A unique key: the second submission prints the first job's id.
    let keyed = ["submit", "hello", "--delay", "1h", "--unique", "greet:bo"];
    let first = cli(&server, &keyed);
    let second = cli(&server, &keyed);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(stdout(&first), stdout(&second));
    assert_ne!(stdout(&first).trim(), id);
    let out = cli(&server, &["submit", "hello", "--unique-window", "1h"]);
    assert_eq!(out.status.code(), Some(2), "a window needs a key");
    let out = cli(&server, &["status", &id, "--json"]);
    let job: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(job["state"], "pending");
    let out = cli(&server, &["list", "--state", "pending"]);
    assert!(stdout(&out).contains(&id), "{}", stdout(&out));
    // Jobs submitted by name show the name, with the short hash.
    let hello_hash = job["module"].as_str().unwrap();
    let shown = format!("hello ({})", &hello_hash[..12]);
    assert!(stdout(&out).contains(&shown), "{}", stdout(&out));
    let out = cli(&server, &["status", &id]);
    assert!(stdout(&out).contains(&shown), "{}", stdout(&out));
    let out = cli(&server, &["dead-letter"]);
    assert!(stdout(&out).contains("fatal ("), "{}", stdout(&out));
    let out = cli(&server, &["retry", &id]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "requeue of a pending job is refused"
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("conflict"), "{}", stderr(&out));
    let out = cli(&server, &["cancel", &id]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("cancelled"));

    let out = cli(&server, &["dead-letter", "--json"]);
    let page: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1, "the fatal job");
    let fatal_id = page["jobs"][0]["id"].to_string();
    let out = cli(&server, &["stats", "--json"]);
    let stats: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(stats["jobs"]["completed"], 1);
    assert_eq!(stats["jobs"]["failed"], 1);
    assert_eq!(stats["jobs"]["cancelled"], 1);
    let out = cli(&server, &["logs", "1"]);
    assert!(stdout(&out).contains("greeting Ada"), "{}", stdout(&out));
    for command in ["modules", "workers"] {
        let out = cli(&server, &[command]);
        assert_eq!(out.status.code(), Some(0), "{command}: {}", stderr(&out));
    }

    let out = cli(&server, &["dead-letter", "--purge"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "purged 1 job(s)");
    let out = cli(&server, &["status", &fatal_id]);
    assert_eq!(out.status.code(), Some(2), "purged: {}", stdout(&out));

    let out = cli(&server, &["submit", "hello", "--input", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not valid JSON"));
    let out = cli(&server, &["status", "999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not_found"));
}

#[test]
fn an_unreachable_host_exits_4_with_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .args(["stats", "--url", "http://127.0.0.1:9"])
        .env("WASMJOB_CLIENT_CONFIG", "/nonexistent/client.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach the host"), "{err}");
}

/// A host that fails (HTTP 5xx): the client command exits 3 with one line
/// carrying the host's message. The "host" is a socket that answers every
/// request with a 500.
#[test]
fn a_failing_host_exits_3_with_one_line() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body = r#"{"error":{"code":"internal","message":"the disk is on fire"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let out = Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .args(["stats", "--url", &url])
        .env("WASMJOB_CLIENT_CONFIG", "/nonexistent/client.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("the disk is on fire"), "{err}");
}

#[test]
fn workflows_and_dependencies_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--concurrency", "2"]);
    let out = cli(&server, &["upload", guests::SUM, "--name", "sum"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let file = dir.path().join("fan.json");
    std::fs::write(
        &file,
        json!({"name": "fan", "jobs": [
            {"name": "a", "module": "sum", "input": {"add": 1}},
            {"name": "b", "module": "sum", "input": {"add": 10}},
            {"name": "d", "module": "sum", "input": {"add": 100}, "depends_on": ["a", "b"]},
        ]})
        .to_string(),
    )
    .unwrap();
    let out = cli(&server, &["workflow", "submit", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout(&out).trim().to_owned();
    let out = cli(&server, &["workflow", "show", &id, "--json"]);
    let workflow: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let d = workflow["nodes"][2]["id"].as_i64().unwrap();
    let done = server.wait_final(d);
    assert_eq!(done["output"]["total"], 111, "{done}");
    let out = cli(&server, &["workflow", "show", &id]);
    let shown = stdout(&out);
    assert!(
        shown.starts_with(&format!("workflow {id} fan: completed (3 completed)")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("│  └─ d #{d}  completed")),
        "{shown}"
    );
    assert!(shown.contains(&format!("└─ d #{d} (see above)")), "{shown}");
    let out = cli(&server, &["workflow", "list"]);
    assert!(stdout(&out).contains("fan"), "{}", stdout(&out));

    // A job after another by id, with a name for its output.
    let first = cli(&server, &["submit", "sum", "--input", r#"{"add": 5}"#]);
    let first = stdout(&first).trim().to_owned();
    let out = cli(
        &server,
        &[
            "submit",
            "sum",
            "--input",
            r#"{"add": 1}"#,
            "--depends-on",
            &format!("{first}=five"),
            "--wait",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let output: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(output, json!({"total": 6, "inputs": {"five": 5}}));

    // Mistakes are one line and exit 2.
    for bad in [
        vec!["submit", "sum", "--depends-on", "x"],
        vec!["submit", "sum", "--depends-on", "999"],
        vec!["workflow", "submit", "/nonexistent.json"],
        vec!["workflow", "show", "999"],
    ] {
        let out = cli(&server, &bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        let first = stderr(&out).lines().next().unwrap_or_default().to_owned();
        assert!(first.starts_with("error:"), "{bad:?}: {}", stderr(&out));
    }
    let blocked = cli(&server, &["submit", "sum", "--depends-on", &first]);
    assert_eq!(blocked.status.code(), Some(0));
    let waiting = cli(&server, &["workflow", "submit", "-"]);
    assert_eq!(waiting.status.code(), Some(2), "empty stdin is not JSON");
}

#[test]
fn a_schedule_added_from_the_command_line_creates_jobs_that_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--concurrency", "2"]);
    let out = cli(&server, &["upload", guests::HELLO, "--name", "hello"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = cli(
        &server,
        &[
            "schedule",
            "add",
            "tick",
            "hello",
            "--cron",
            "* * * * * *",
            "--input",
            r#"{"name": "cron"}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.starts_with("name        tick\n"), "{shown}");
    assert_eq!(
        shown.matches("+00:00").count(),
        5,
        "five fire times: {shown}"
    );

    // The host's scheduler fires it every second: a job that names it.
    let deadline = Instant::now() + HANG;
    let job = loop {
        let out = cli(&server, &["list", "--schedule", "tick", "--json"]);
        let page: Value = serde_json::from_str(&stdout(&out)).unwrap();
        if let Some(id) = page["jobs"]
            .as_array()
            .unwrap()
            .last()
            .map(|j| j["id"].clone())
        {
            break id.as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "the schedule never fired");
        std::thread::sleep(Duration::from_millis(100));
    };
    let done = server.wait_final(job);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["schedule"], "tick");
    assert_eq!(done["output"]["greeting"], "Hello, cron!");

    let out = cli(&server, &["schedule", "pause", "tick"]);
    assert!(
        stdout(&out).contains("state       paused"),
        "{}",
        stdout(&out)
    );
    let out = cli(&server, &["schedules"]);
    let listed = stdout(&out);
    assert!(
        listed.lines().nth(1).unwrap().starts_with("tick "),
        "{listed}"
    );
    assert!(listed.contains("paused"), "{listed}");
    let out = cli(&server, &["schedule", "show", "tick", "--json"]);
    let schedule: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(schedule["last_job"].as_i64().unwrap() >= job, "{schedule}");
    let out = cli(&server, &["schedule", "rm", "tick"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Mistakes are one line and exit 2.
    for bad in [
        vec!["schedule", "add", "x", "hello", "--cron", "61 * * * *"],
        vec![
            "schedule",
            "add",
            "x",
            "hello",
            "--cron",
            "@daily",
            "--timezone",
            "Mars/Base",
        ],
        vec!["schedule", "add", "x", "nope", "--cron", "@daily"],
        vec!["schedule", "show", "tick"],
        vec!["schedule", "rm", "tick"],
    ] {
        let out = cli(&server, &bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{bad:?}: {err}");
        assert!(err.starts_with("error:"), "{bad:?}: {err}");
    }
}

#[test]
fn a_failed_attempt_replays_locally_exactly_as_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let module = server.upload(guests::INFINITE_LOOP);
    let id = server.submit(json!({
        "module": module, "max_attempts": 1, "limits": {"fuel": 2_000_000}
    }));
    let job = server.wait_final(id);
    let host_report = &job["attempts"][0]["report"];
    assert_eq!(host_report["failure"]["kind"], "out_of_fuel", "{job}");

    let out = cli(&server, &["replay", &id.to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let local: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(local["failure"]["kind"], "out_of_fuel");
    assert_eq!(
        local["fuel"], host_report["fuel"],
        "the same fuel, to the unit"
    );
    assert_eq!(local["limits"], host_report["limits"]);
    assert!(
        stderr(&out).contains(
            "out_of_fuel after 2000000 fuel here, out_of_fuel after 2000000 fuel on the host"
        ),
        "{}",
        stderr(&out)
    );
    // The module's bytes are what was uploaded.
    let wasm = ureq::get(&server.url(&format!("/v1/modules/{module}/wasm")))
        .call()
        .unwrap()
        .body_mut()
        .read_to_vec()
        .unwrap();
    assert_eq!(wasm, std::fs::read(guests::INFINITE_LOOP).unwrap());

    for bad in [
        vec![
            "replay".to_owned(),
            id.to_string(),
            "--attempt".into(),
            "2".into(),
        ],
        vec!["replay".to_owned(), "999".into()],
    ] {
        let args: Vec<&str> = bad.iter().map(String::as_str).collect();
        let out = cli(&server, &args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{bad:?}: {}", stderr(&out));
    }
}

/// A caller's trace context (the W3C specification's example).
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// Its trace id.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[test]
fn json_logs_follow_a_job_from_submission_to_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "wasmjob=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wasmjob serve");
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let base = loop {
        let line = received.recv_timeout(HANG).expect("the address");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let mut server = Server { child, base };
    let hello = server.upload(guests::HELLO);
    let mut response = ureq::post(&server.url("/v1/jobs"))
        .header("traceparent", TRACEPARENT)
        .send_json(json!({"module": hello, "input": {"name": "logs"}}))
        .unwrap();
    let id = response.body_mut().read_json::<Value>().unwrap()["id"]
        .as_i64()
        .unwrap();
    let job = server.wait_final(id);
    // Spans are not exported here: the job keeps the caller's context.
    assert_eq!(job["traceparent"], TRACEPARENT, "{job}");
    // Every line after the address is one JSON object; this job's are
    // named by its id, its life's steps in order.
    let mut steps = Vec::new();
    let deadline = Instant::now() + HANG;
    while !steps.contains(&"recorded".to_owned()) {
        let line = received
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no `recorded` line; saw {steps:?}"));
        let event: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let fields = &event["fields"];
        let job_id = fields["job_id"]
            .as_i64()
            .or_else(|| event["span"]["job_id"].as_i64());
        if job_id == Some(id) {
            let message = fields["message"].as_str().unwrap().to_owned();
            if message == "submitted" {
                // Logged at the commit, in the submitting request's span.
                assert_eq!(event["span"]["name"], "submit", "{event}");
                assert_eq!(event["span"]["trace_id"], TRACE_ID, "{event}");
            }
            if message == "attempt ended" {
                assert_eq!(event["span"]["name"], "job", "{event}");
                assert_eq!(
                    event["span"]["module"]
                        .as_str()
                        .map(|m| m.contains(&hello[..12])),
                    Some(true),
                    "{event}"
                );
                assert_eq!(event["span"]["attempt"], 1, "{event}");
                assert_eq!(event["span"]["trace_id"], TRACE_ID, "{event}");
                assert_eq!(fields["decision"], "complete", "{event}");
            }
            steps.push(message);
        }
    }
    assert_eq!(
        steps,
        ["submitted", "claimed", "attempt ended", "recorded"],
        "{steps:?}"
    );
    server.signal("TERM");
}

#[test]
fn history_written_at_shutdown_is_shown_by_the_cli_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    cli(&server, &["upload", guests::HELLO, "--name", "hello"]);
    let out = cli(
        &server,
        &["submit", "hello", "--input", r#"{"name":"Ada"}"#, "--wait"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Well before the 10 s flush: only the flush at shutdown writes it.
    server.signal("TERM");
    let server = Server::start(dir.path(), &[]);
    let out = cli(&server, &["history", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let history: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let minute = &history["minutes"][0];
    assert_eq!(minute["queue"], "default", "{history}");
    assert_eq!(minute["completed"], 1, "{history}");
    assert_eq!(minute["run"]["count"], 1, "{history}");
    let out = cli(&server, &["history", "--queue", "default", "--last", "15m"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(
        table.contains("COMPLETED") && table.contains("default"),
        "{table}"
    );
}

/// A stand-in OTLP/HTTP collector: answers every request 200 and keeps
/// each body, by path.
#[cfg(feature = "otel")]
struct Collector {
    url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

/// A request's path and body.
#[cfg(feature = "otel")]
type Received = (String, Vec<u8>);

#[cfg(feature = "otel")]
impl Collector {
    fn start() -> Collector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = std::sync::Arc::default();
        let kept = std::sync::Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let kept = std::sync::Arc::clone(&kept);
                std::thread::spawn(move || Collector::serve(stream, &kept));
            }
        });
        Collector { url, received }
    }

    /// Reads HTTP/1.1 requests with a `content-length` off `stream` until
    /// it closes.
    fn serve(stream: std::net::TcpStream, kept: &std::sync::Mutex<Vec<(String, Vec<u8>)>>) {
        use std::io::{Read, Write};
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let path = request_line.split_whitespace().nth(1).unwrap().to_owned();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            kept.lock().unwrap().push((path, body));
            (&stream)
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                      content-length: 2\r\n\r\n{}",
                )
                .unwrap();
        }
    }

    /// Every span received (OTLP JSON), with its resource's `service.name`
    /// as `service`.
    fn spans(&self) -> Vec<Value> {
        let mut spans = Vec::new();
        for (path, body) in self.received.lock().unwrap().iter() {
            assert_eq!(path, "/v1/traces");
            let export: Value = serde_json::from_slice(body).unwrap();
            for resource in export["resourceSpans"].as_array().unwrap() {
                let service = attribute(&resource["resource"], "service.name");
                for scope in resource["scopeSpans"].as_array().unwrap() {
                    for span in scope["spans"].as_array().unwrap() {
                        let mut span = span.clone();
                        span["service"] = service.clone();
                        spans.push(span);
                    }
                }
            }
        }
        spans
    }
}

/// The value of an OTLP attribute of `holder` (a span or a resource), as
/// a string or a number.
#[cfg(feature = "otel")]
fn attribute(holder: &Value, key: &str) -> Value {
    let Some(found) = holder["attributes"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["key"] == key))
    else {
        return Value::Null;
    };
    let value = &found["value"];
    if let Some(text) = value["stringValue"].as_str() {
        return json!(text);
    }
    match &value["intValue"] {
        // Protobuf's JSON mapping writes 64-bit integers as strings.
        Value::String(text) => json!(text.parse::<i64>().unwrap()),
        other => other.clone(),
    }
}

#[cfg(feature = "otel")]
#[test]
fn spans_are_exported_over_otlp_in_the_trace_of_the_submitting_request() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_env(
        dir.path(),
        &["--otlp-endpoint", &collector.url],
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
    );
    let hello = server.upload(guests::HELLO);
    let mut response = ureq::post(&server.url("/v1/jobs"))
        .header("traceparent", TRACEPARENT)
        .send_json(json!({"module": hello, "input": {"name": "traced"}}))
        .unwrap();
    let id = response.body_mut().read_json::<Value>().unwrap()["id"]
        .as_i64()
        .unwrap();
    let job = server.wait_final(id);
    assert_eq!(job["state"], "completed", "{job}");
    // A job without a traceparent is in no caller's trace, but still in
    // one: the host's submission span starts it.
    let untraced = server.submit(json!({"module": hello, "input": {"name": "new trace"}}));
    let untraced = server.wait_final(untraced);
    // SIGTERM: the host sends the spans still buffered before it exits.
    server.signal("TERM");

    let spans = collector.spans();
    let submit = spans
        .iter()
        .find(|s| s["name"] == "submit" && s["traceId"] == TRACE_ID)
        .unwrap_or_else(|| panic!("no submit span in the caller's trace: {spans:#?}"));
    assert_eq!(submit["parentSpanId"], "00f067aa0ba902b7", "{submit}");
    assert_eq!(submit["service"], "wasmjob", "{submit}");
    // The job carries the submission span as its parent.
    let submit_id = submit["spanId"].as_str().unwrap();
    assert_eq!(
        job["traceparent"],
        format!("00-{TRACE_ID}-{submit_id}-01"),
        "{job}"
    );
    let attempt = spans
        .iter()
        .find(|s| s["name"] == "job" && attribute(s, "job_id") == json!(id))
        .unwrap_or_else(|| panic!("no span of job {id}: {spans:#?}"));
    assert_eq!(attempt["traceId"], TRACE_ID, "{attempt}");
    assert_eq!(attempt["parentSpanId"], submit_id, "{attempt}");
    assert_eq!(attribute(attempt, "attempt"), json!(1), "{attempt}");
    assert_eq!(attribute(attempt, "queue"), json!("default"), "{attempt}");
    let events: Vec<&str> = attempt["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"attempt ended") && events.contains(&"recorded"),
        "the span lasts until the outcome is recorded: {events:?}"
    );

    let carried = untraced["traceparent"].as_str().unwrap();
    let trace_id = &carried[3..35];
    assert_ne!(trace_id, TRACE_ID);
    let attempt = spans
        .iter()
        .find(|s| s["name"] == "job" && attribute(s, "job_id") == untraced["id"])
        .unwrap_or_else(|| panic!("no span of the untraced job: {spans:#?}"));
    assert_eq!(attempt["traceId"], trace_id, "{attempt}");
}

/// A WASI command module that writes `text` to stderr and exits with 1.
fn stderr_writer(text: &str) -> Vec<u8> {
    let escaped: String = text.bytes().map(|b| format!("\\{b:02x}")).collect();
    wat::parse_str(format!(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 100) "{escaped}")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 100))
            (i32.store (i32.const 4) (i32.const {len}))
            (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 12)))
            (call $proc_exit (i32.const 1))))"#,
        len = text.len()
    ))
    .unwrap()
}

#[test]
fn a_guests_terminal_sequences_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let module = dir.path().join("hostile.wasm");
    // Sets the terminal's title, turns text red, and a one-character CSI.
    std::fs::write(
        &module,
        stderr_writer("\x1b]0;pwned\x07\x1b[31mred\u{9b}2J\nsecond\tline\n"),
    )
    .unwrap();
    let out = cli(&server, &["upload", module.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let hash = stdout(&out).trim().to_owned();
    let id = server.submit(json!({"module": hash, "max_attempts": 1}));
    assert_eq!(server.wait_final(id)["state"], "failed");

    let out = cli(&server, &["logs", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        !shown.contains('\x1b') && !shown.contains('\x07') && !shown.contains('\u{9b}'),
        "raw control characters reached the terminal: {shown:?}"
    );
    assert!(
        shown.contains("\\x1b]0;pwned\\x07\\x1b[31mred\\u{9b}2J\nsecond\tline"),
        "{shown:?}"
    );
}

/// Reads from `stream` until the server closes it: EOF, or a reset.
/// Returns what was read. Panics if the server keeps it open past [`HANG`].
fn read_until_closed(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    stream.set_read_timeout(Some(HANG)).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return seen,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
}

/// A host started with `toml` as its configuration file.
fn start_with_config(dir: &Path, toml: &str) -> Server {
    let file = dir.join("wasmjob.toml");
    std::fs::write(&file, toml).unwrap();
    Server::start(&dir.join("data"), &["--config", file.to_str().unwrap()])
}

#[test]
fn a_client_sending_half_a_header_is_disconnected() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_config(dir.path(), "[server]\nheader_read_timeout_ms = 200\n");
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let answer = read_until_closed(&mut slow);
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "{answer:?}"
    );
    // A client that connects and sends nothing is closed the same way.
    let mut silent = std::net::TcpStream::connect(&addr).unwrap();
    read_until_closed(&mut silent);
    // The host still serves.
    let mut response = ureq::get(&server.url("/healthz")).call().unwrap();
    assert_eq!(
        response.body_mut().read_json::<Value>().unwrap()["status"],
        "ok"
    );
}

#[test]
fn connections_past_the_cap_are_refused_and_the_host_keeps_serving() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_config(
        dir.path(),
        "[server]\nmax_connections = 2\nheader_read_timeout_ms = 3600000\nidle_timeout_ms = 3600000\n",
    );
    let addr = server.base.trim_start_matches("http://").to_owned();
    // Two connections hold the cap: one mid-request, one kept alive
    // after an answered request (so it is surely accepted).
    let mut held = std::net::TcpStream::connect(&addr).unwrap();
    held.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    std::io::Read::read_exact(&mut held, &mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    // Past the cap: answered 503 (or reset before the answer is read),
    // then closed. Accepts are in order, so the first two hold the cap.
    for _ in 0..5 {
        let mut refused = std::net::TcpStream::connect(&addr).unwrap();
        let _ = refused.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let answer = String::from_utf8_lossy(&read_until_closed(&mut refused)).into_owned();
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
            "{answer}"
        );
    }
    // One held connection goes: the host serves again.
    drop(half);
    let deadline = Instant::now() + HANG;
    loop {
        match ureq::get(&server.url("/healthz")).call() {
            Ok(response) => {
                assert_eq!(response.status(), 200);
                break;
            }
            Err(error) => assert!(Instant::now() < deadline, "never served again: {error}"),
        }
    }
    drop(held);
}
