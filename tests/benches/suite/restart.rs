//! Scenario 6: start-up. A host with 100 stored modules is stopped and
//! started again; the figure is the time from spawning the process to the
//! first job (on the module uploaded last) being completed, with the
//! compiled-artifact cache warm, then cold (the cache deleted, so the
//! module is compiled again on first use).

use crate::Settings;
use crate::host::{self, HostProcess};
use crate::report::{Section, Target};
use serde_json::json;
use std::path::Path;
use std::time::Instant;
use wasmjob_tests::{guest_bytes, guests};

pub fn run(settings: &Settings) -> Section {
    let modules = settings.pick(100, 3);
    let mut section = Section::new(format!("6 start-up ({modules} stored modules)"));
    let dir = tempfile::tempdir().expect("temp dir");
    let noop = guest_bytes(guests::NOOP);
    let host = HostProcess::start(dir.path(), &[]);
    let client = host.client();
    let started = Instant::now();
    let hashes: Vec<String> = (0..modules)
        .map(|i| host::upload(&client, &variant(&noop, i), &format!("noop-{i}")))
        .collect();
    let uploading = started.elapsed();
    host.stop();
    let last = hashes.last().expect("a module");

    let warm = first_job(dir.path(), last);
    std::fs::remove_dir_all(dir.path().join("artifacts")).expect("deleting the artifact cache");
    let cold = first_job(dir.path(), last);

    section.figure(
        "upload (validate, compile, store) per module",
        uploading.as_secs_f64() * 1e3 / modules as f64,
        "ms",
    );
    section.figure("warm: spawn to listening", warm.0, "ms");
    section.target(
        "warm: spawn to first job completed",
        warm.1,
        "ms",
        Target::AtMost(1_000.0),
    );
    section.figure("cold: spawn to listening", cold.0, "ms");
    section.figure("cold: spawn to first job completed", cold.1, "ms");
    section.set(
        "startup",
        json!({
            "modules": modules,
            "warm": {"listening_ms": warm.0, "first_job_ms": warm.1},
            "cold": {"listening_ms": cold.0, "first_job_ms": cold.1},
        }),
    );
    section
}

/// Starts a host on `dir`, runs one job of `module`; ms from spawning to
/// listening and to the job's completion.
fn first_job(dir: &Path, module: &str) -> (f64, f64) {
    let host = HostProcess::start(dir, &[]);
    let client = host.client();
    let job = client
        .post_json("/v1/jobs", &host::noop_job(module, 0, 0))
        .unwrap_or_else(|e| panic!("submit: {e}"));
    let id = job["id"].as_i64().expect("an id");
    let detail = client
        .get(&format!("/v1/jobs/{id}?wait_ms=60000"))
        .unwrap_or_else(|e| panic!("wait: {e}"));
    let done = Instant::now();
    assert_eq!(detail["state"], "completed", "{detail}");
    let ms = |t: Instant| t.duration_since(host.spawned).as_secs_f64() * 1e3;
    let figures = (ms(host.listening), ms(done));
    host.stop();
    figures
}

/// The module with a custom section appended: a different hash, the same
/// code.
fn variant(module: &[u8], i: usize) -> Vec<u8> {
    let name = b"wasmjob-bench";
    let payload = i.to_le_bytes();
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut bytes = module.to_vec();
    bytes.push(0); // custom section id
    bytes.push(section.len() as u8); // < 128: one LEB128 byte
    bytes.extend_from_slice(&section);
    bytes
}
