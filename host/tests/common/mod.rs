//! What the real-binary tests share: a running `wasmjob serve` process and
//! the calls they make to its HTTP API.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `wasmjob serve` process, killed when dropped.
pub struct Served {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Served {
    /// Spawns `command` (a `wasmjob serve` listening on port 0), waits for
    /// the address it prints, and keeps draining its stderr so it never
    /// blocks on a full pipe.
    pub fn spawn(mut command: Command) -> Served {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wasmjob serve");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("the server printed its address before exiting")
                .unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Served { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Uploads the module file at `path`; returns its hash.
    pub fn upload(&self, path: &str) -> String {
        let bytes = std::fs::read(path).unwrap();
        let mut response = ureq::post(&self.url("/v1/modules"))
            .send(&bytes[..])
            .unwrap();
        let body: Value = response.body_mut().read_json().unwrap();
        body["hash"].as_str().unwrap().to_owned()
    }

    /// Submits `job`; returns its id.
    pub fn submit(&self, job: Value) -> i64 {
        let mut response = ureq::post(&self.url("/v1/jobs")).send_json(&job).unwrap();
        let body: Value = response.body_mut().read_json().unwrap();
        body["id"].as_i64().unwrap()
    }

    /// The job's view.
    pub fn job(&self, id: i64) -> Value {
        let mut response = ureq::get(&self.url(&format!("/v1/jobs/{id}")))
            .call()
            .unwrap();
        response.body_mut().read_json().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
