//! Faults other than a crash, against the real `wasmjob` binary: the disk
//! full, the database locked by another process, module files deleted or
//! damaged on disk. Each test checks that nothing acknowledged is lost,
//! that clients get a clear answer meanwhile, and that the host recovers
//! by itself.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wasmjob_tests::guests;

mod common;
use common::Served;

/// Upper bound for things that must happen; reaching it is a failure.
const HANG: Duration = Duration::from_secs(120);

fn start(data_dir: &Path, extra: &[&str]) -> Served {
    start_with_env(data_dir, extra, &[])
}

fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Served {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmjob"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--lease", "1h"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .envs(env.iter().copied());
    Served::spawn(command)
}

/// A client that hands back every status instead of failing on 4xx/5xx.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Status, `Retry-After` and JSON body of a submission.
fn try_submit(server: &Served, job: &Value) -> (u16, Option<String>, Value) {
    let mut response = agent()
        .post(&server.url("/v1/jobs"))
        .send_json(job)
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.body_mut().read_json().unwrap();
    (status, retry_after, body)
}

fn readyz(server: &Served) -> Value {
    let mut response = agent().get(&server.url("/readyz")).call().unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "the store still answers reads"
    );
    response.body_mut().read_json().unwrap()
}

/// Polls `/readyz` until its status is `status`.
fn wait_ready_status(server: &Served, status: &str) -> Value {
    let deadline = Instant::now() + HANG;
    loop {
        let body = readyz(server);
        if body["status"] == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never said {status}: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// A size-limited tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`24m`); `None` when this process may not
    /// mount (not root, or no mount permission in the container).
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills `path` with zeros until the filesystem is full; returns the bytes
/// written.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
                break;
            }
        }
    }
    let _ = file.sync_all();
    written
}

/// The disk fills up under a stream of submissions: the host answers 507
/// `storage_full` (never a 500), says `degraded` on `/readyz`, keeps
/// running, and once space returns accepts submissions again by itself;
/// every job it acknowledged completes.
///
/// On a real small filesystem (a tmpfs of 24 MiB) where the test may mount
/// one (as root: CI's container); elsewhere it says so, and the next test
/// still covers the host's side.
#[test]
fn a_full_disk_refuses_submissions_with_507_and_the_host_recovers_when_space_returns() {
    match SmallDisk::mount("24m") {
        Some(disk) => full_disk(&disk),
        None => eprintln!("skipped: cannot mount a tmpfs here (needs root)"),
    }
}

/// The same with the failure injected, on any machine: the writer's test
/// hook (`WASMJOB_TEST_DISK_FULL`) fails every commit as SQLite does on a
/// full disk while a flag file exists.
#[test]
fn an_injected_full_disk_refuses_submissions_with_507_and_the_host_recovers() {
    injected_full_disk();
}

fn full_disk(disk: &SmallDisk) {
    let data = disk.path().join("data");
    // Room the test gives back later.
    let reserve = disk.path().join("reserve");
    std::fs::write(&reserve, vec![0u8; 6 << 20]).unwrap();
    let server = start(&data, &["--concurrency", "2"]);
    let noop = server.upload(guests::NOOP);
    let pad = "x".repeat(256 * 1024);
    let job = json!({"module": noop, "input": {"pad": pad}});

    let mut accepted = Vec::new();
    let mut refusal = None;
    for _ in 0..400 {
        let (status, retry_after, body) = try_submit(&server, &job);
        match status {
            201 => accepted.push(body["id"].as_i64().unwrap()),
            _ => {
                refusal = Some((status, retry_after, body));
                break;
            }
        }
    }
    let (status, retry_after, body) = refusal.expect("24 MiB never filled up");
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "storage_full", "{body}");
    assert!(retry_after.is_some(), "a refusal says when to retry");
    assert!(!accepted.is_empty());
    // Fill what is left to the last byte (the database may still find
    // room for small writes in pages it holds), then submissions are
    // refused while /readyz says why.
    let filler = disk.path().join("filler");
    fill(&filler);
    let deadline = Instant::now() + HANG;
    loop {
        let (status, _, body) = try_submit(&server, &job);
        assert_eq!(status, 507, "{body}");
        let health = readyz(&server);
        if health["status"] == "degraded" {
            let problems = health["problems"].to_string();
            assert!(problems.contains("storage full"), "{health}");
            break;
        }
        assert!(Instant::now() < deadline, "never degraded: {health}");
    }
    assert_eq!(
        server.job(accepted[0])["id"],
        accepted[0],
        "reads still work"
    );
    // An upload's bytes cannot be written either: the same answer.
    let mut response = agent()
        .post(&server.url("/v1/modules"))
        .send(&std::fs::read(guests::FIB).unwrap()[..])
        .unwrap();
    let body: Value = response.body_mut().read_json().unwrap();
    assert_eq!(response.status().as_u16(), 507, "{body}");
    assert_eq!(body["error"]["code"], "storage_full", "{body}");

    // Space returns: the host accepts work again without a restart.
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(&reserve).unwrap();
    recovers(&server, &job, accepted);
}

/// The same story with the failure injected: every commit fails while the
/// flag file exists.
fn injected_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let flag = dir.path().join("disk-full");
    let server = start_with_env(
        &data,
        &["--concurrency", "2"],
        &[("WASMJOB_TEST_DISK_FULL", &flag)],
    );
    let noop = server.upload(guests::NOOP);
    let job = json!({"module": noop, "input": {"pad": "x".repeat(1024)}});
    let mut accepted: Vec<i64> = (0..5).map(|_| server.submit(job.clone())).collect();
    // A job running when the disk fills: its result cannot be written then,
    // is kept, and written later (one attempt, not a lost one run again).
    let fib = server.upload(guests::FIB);
    let running = server.submit(json!({"module": fib, "input": {"n": 38}}));
    let deadline = Instant::now() + HANG;
    while server.job(running)["state"] != "running" {
        assert!(Instant::now() < deadline, "never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(&flag, b"").unwrap();
    let full_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (status, retry_after, body) = try_submit(&server, &job);
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "storage_full", "{body}");
    assert!(retry_after.is_some(), "a refusal says when to retry");
    let health = wait_ready_status(&server, "degraded");
    assert!(
        health["problems"].to_string().contains("storage full"),
        "{health}"
    );
    std::fs::remove_file(&flag).unwrap();
    let done = wait_final(&server, running);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["attempts"].as_array().unwrap().len(), 1, "{done}");
    // Whether its result met the full disk depends on the machine's speed:
    // said, not asserted.
    let attempt = &done["attempts"][0];
    let ended_at = attempt["started_at"].as_i64().unwrap()
        + attempt["report"]["duration_us"].as_i64().unwrap() / 1000;
    eprintln!(
        "the running job's result {} the disk filled",
        if ended_at >= full_at {
            "was ready after"
        } else {
            "was written before"
        }
    );
    accepted.push(running);
    recovers(&server, &job, accepted);
}

/// Space has returned: submissions are accepted again, every acknowledged
/// job completes, and `/readyz` says ready.
fn recovers(server: &Served, job: &Value, mut accepted: Vec<i64>) {
    let deadline = Instant::now() + HANG;
    loop {
        let (status, _, body) = try_submit(server, job);
        if status == 201 {
            accepted.push(body["id"].as_i64().unwrap());
            break;
        }
        assert_eq!(status, 507, "{body}");
        assert!(Instant::now() < deadline, "never accepted again: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for &id in &accepted {
        let job = wait_final(server, id);
        assert_eq!(job["state"], "completed", "{job}");
    }
    wait_ready_status(server, "ready");
    eprintln!(
        "{} jobs acknowledged around the full disk, all completed",
        accepted.len()
    );
}

/// Another process holds the database's write lock (a backup, an
/// operator's `sqlite3`): the host's writes wait for it instead of
/// failing, `/readyz` says `degraded` meanwhile, and once the lock is
/// released every submission made meanwhile is stored and runs.
#[test]
fn a_database_locked_by_another_process_delays_writes_and_loses_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--concurrency", "2"]);
    let hello = server.upload(guests::HELLO);
    let before = server.submit(json!({"module": hello, "input": {"name": "before"}}));
    assert_eq!(wait_final(&server, before)["state"], "completed");

    let other = rusqlite::Connection::open(dir.path().join("wasmjob.db")).unwrap();
    other.busy_timeout(Duration::from_secs(60)).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let base = server.base.clone();
    let submitter = std::thread::spawn(move || {
        (0..3)
            .map(|i| {
                let job = json!({"module": hello, "input": {"name": format!("locked {i}")}});
                let mut response = agent()
                    .post(&format!("{base}/v1/jobs"))
                    .send_json(&job)
                    .unwrap();
                let status = response.status().as_u16();
                let body: Value = response.body_mut().read_json().unwrap();
                assert_eq!(status, 201, "{body}");
                body["id"].as_i64().unwrap()
            })
            .collect::<Vec<i64>>()
    });
    // The lock is held until the host says it waits for it.
    let health = wait_ready_status(&server, "degraded");
    assert!(
        health["problems"].to_string().contains("locked"),
        "{health}"
    );
    assert!(
        !submitter.is_finished(),
        "a submission went through the lock"
    );
    other.execute_batch("COMMIT").unwrap();
    drop(other);

    let ids = submitter.join().expect("every submission was stored");
    for id in ids {
        let job = wait_final(&server, id);
        assert_eq!(job["state"], "completed", "{job}");
    }
    wait_ready_status(&server, "ready");
}

fn module_file(data: &Path, hash: &str) -> PathBuf {
    data.join("modules").join(format!("{hash}.wasm"))
}

fn artifact_files(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("artifacts"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

fn requeue(server: &Served, id: i64) {
    let response = ureq::post(&server.url(&format!("/v1/jobs/{id}/requeue")))
        .send_empty()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

/// A module's bytes damaged or deleted on disk are caught by their hash:
/// the jobs that need them fail with a host-made report that says to
/// upload the module again (retryable), the host keeps serving, and after
/// the upload the jobs run. A damaged compiled artifact is never loaded:
/// the module is compiled again from its verified bytes.
#[test]
fn module_files_damaged_on_disk_fail_their_attempts_clearly_until_uploaded_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let mut server = start(data, &["--concurrency", "2"]);
    let hello = server.upload(guests::HELLO);
    let job = json!({"module": hello, "input": {"name": "Ada"}, "max_attempts": 1});
    let first = server.submit(job.clone());
    assert_eq!(wait_final(&server, first)["state"], "completed");
    let _ = server.child.kill();
    let _ = server.child.wait();

    // The compiled artifact damaged in its middle: compiled again.
    let artifacts = artifact_files(data);
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let mut bytes = std::fs::read(&artifacts[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&artifacts[0], &bytes).unwrap();
    let mut server = start(data, &["--concurrency", "2"]);
    let id = server.submit(job.clone());
    let done = wait_final(&server, id);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["output"]["greeting"], "Hello, Ada!", "{done}");
    let rewritten = std::fs::read(&artifacts[0]).unwrap();
    assert!(
        rewritten != bytes,
        "the damaged artifact was loaded instead of compiled again"
    );
    let _ = server.child.kill();
    let _ = server.child.wait();

    // The module's bytes damaged, then deleted: each attempt fails with a
    // host-made report, retryable, naming the cure.
    let path = module_file(data, &hello);
    let original = std::fs::read(&path).unwrap();
    let mut damaged = original.clone();
    damaged[original.len() / 2] ^= 0x01;
    std::fs::write(&path, &damaged).unwrap();
    let server = start(data, &["--concurrency", "2"]);
    let corrupt = server.submit(job.clone());
    let failed = wait_final(&server, corrupt);
    let report = &failed["attempts"][0]["report"];
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(report["status"], "host_failed", "{failed}");
    assert_eq!(report["retryable"], true, "{failed}");
    let message = report["message"].as_str().unwrap();
    assert!(
        message.contains("corrupt") && message.contains("upload it again"),
        "{message}"
    );
    std::fs::remove_file(&path).unwrap();
    let missing = server.submit(job.clone());
    let failed = wait_final(&server, missing);
    let report = &failed["attempts"][0]["report"];
    assert_eq!(report["status"], "host_failed", "{failed}");
    assert_eq!(report["retryable"], true, "{failed}");
    let message = report["message"].as_str().unwrap();
    assert!(
        message.contains("missing") && message.contains("upload it again"),
        "{message}"
    );
    assert_eq!(readyz(&server)["status"], "ready", "the host keeps serving");

    // Uploading the same bytes again repairs the file; the jobs run.
    assert_eq!(server.upload(guests::HELLO), hello);
    assert_eq!(std::fs::read(&path).unwrap(), original);
    for id in [corrupt, missing] {
        requeue(&server, id);
        let job = wait_final(&server, id);
        assert_eq!(job["state"], "completed", "{job}");
    }
}

/// A host whose WAL cannot be fsync'd acknowledges nothing it could not
/// make durable, also to a submission that waits for its job (stored at
/// its commit, then made durable with the job's outcome): it answers an
/// error, not the job. Later writes are refused until a restart, and
/// `/readyz` says so. The failure is injected (`WASMJOB_TEST_FSYNC_FAILS`)
/// while a flag file exists.
#[test]
fn a_submission_that_waits_is_not_acknowledged_when_its_fsync_fails() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("fsync-fails");
    let server = start_with_env(
        &dir.path().join("data"),
        &[],
        &[("WASMJOB_TEST_FSYNC_FAILS", &flag)],
    );
    let noop = server.upload(guests::NOOP);
    let job = json!({"module": noop});
    let submit_and_wait = |wait_ms: u64| {
        let mut response = agent()
            .post(&server.url(&format!("/v1/jobs?wait_ms={wait_ms}")))
            .send_json(&job)
            .unwrap();
        let body: Value = response.body_mut().read_json().unwrap();
        (response.status().as_u16(), body)
    };
    let (status, body) = submit_and_wait(10_000);
    assert_eq!(
        (status, &body["state"]),
        (201, &json!("completed")),
        "{body}"
    );

    std::fs::write(&flag, b"").unwrap();
    let (status, body) = submit_and_wait(1_000);
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "internal", "{body}");
    // Refused from then on, and not ready: what it holds may not be on
    // disk.
    let (status, retry_after, body) = try_submit(&server, &job);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert!(retry_after.is_some());
    let mut response = agent().get(&server.url("/readyz")).call().unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.body_mut().read_json().unwrap();
    assert_eq!(body["error"]["code"], "not_ready", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("fsync of the WAL failed") && message.contains("restart the host"),
        "/readyz says why: {body}"
    );
}
