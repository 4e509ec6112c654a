//! `wasmjob serve` on PostgreSQL: two real host processes pointed at one
//! database share one queue. Needs a server named by
//! `WASMJOB_TEST_POSTGRES_URL` (`.ci/postgres` starts one); without it the
//! test says it is skipped and passes, except in CI, where it fails.

use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
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

/// A schema of its own for the test, dropped afterwards.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn run(&self, sql: &str) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client.batch_execute(sql).await.unwrap();
        });
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        self.run(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

impl Host {
    /// Starts `wasmjob serve` on the schema, with its own data directory
    /// (for compiled artifacts only).
    fn start(config: &Path, data_dir: &Path) -> Host {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmjob"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--lease", "1h"])
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir);
        Host::spawn(command)
    }

    /// Polls job `id` until it is final. (A long poll on one host is not
    /// woken by another host finishing the job.)
    fn wait_final(&self, id: i64) -> Value {
        let deadline = Instant::now() + HANG;
        loop {
            let job = self.job(id);
            if matches!(
                job["state"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} never finished: {job}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A module uploaded on one host runs on both; jobs submitted to either
/// are seen by both; every job runs once.
#[test]
fn two_hosts_on_one_database_share_one_queue() {
    let Some(url) = database_url() else {
        return;
    };
    let schema = Schema {
        url: url.clone(),
        name: format!("wasmjob_serve_{}_{}", std::process::id(), fastrand::u32(..)),
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmjob.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = {}\nschema = {}\n",
            toml_string(&url),
            toml_string(&schema.name)
        ),
    )
    .unwrap();
    let a = Host::start(&config, &dir.path().join("a"));
    let b = Host::start(&config, &dir.path().join("b"));
    let hello = a.upload(guests::HELLO);
    let ids: Vec<i64> = (0..40)
        .map(|i| {
            let host = if i % 2 == 0 { &a } else { &b };
            host.submit(json!({"module": hello, "input": {"name": format!("n{i}")}}))
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        // Read through the host it was not submitted to.
        let host = if i % 2 == 0 { &b } else { &a };
        let job = host.wait_final(*id);
        assert_eq!(job["state"], "completed", "{job}");
        assert_eq!(job["output"]["greeting"], format!("Hello, n{i}!"), "{job}");
        let attempts = job["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "ran once: {job}");
    }
    drop((a, b));
}

/// `s` as a TOML string.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
