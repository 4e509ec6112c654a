//! Scenario 4: submission under concurrency. Many HTTP clients, each with
//! its own keep-alive connection, submit single jobs back to back (each
//! waits for its acknowledgement before sending the next) for a fixed time
//! while the pool runs them: acknowledged (durable) jobs/s and the
//! acknowledgement's latency. Every acknowledged job must then complete.
//!
//! The clients are tasks on one thread speaking minimal HTTP/1.1 (like
//! `wrk`), so the load generator takes as little of the shared CPUs as it
//! can: the figure is the host's.

use crate::Settings;
use crate::host::{self, HostProcess};
use crate::report::{Section, Stats, Target};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasmjob_tests::{guest_bytes, guests};

pub fn run(settings: &Settings) -> Section {
    let clients = settings.pick(64, 8);
    let duration = Duration::from_secs(settings.pick(20, 1) as u64);
    let mut section = Section::new(format!(
        "4 submission under concurrency ({clients} HTTP clients, {} s)",
        duration.as_secs()
    ));
    let dir = tempfile::tempdir().expect("temp dir");
    let host = HostProcess::start(dir.path(), &[]);
    let noop = host::upload(&host.client(), &guest_bytes(guests::NOOP), "noop");
    let address = host
        .url
        .strip_prefix("http://")
        .expect("an http URL")
        .to_owned();
    let body = host::noop_job(&noop, 5, 0).to_string();
    let request = format!(
        "POST /v1/jobs HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let start = Instant::now();
    let deadline = start + duration;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let results = runtime.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| tokio::spawn(client(address.clone(), request.clone(), deadline)))
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("a client task"));
        }
        results
    });
    let elapsed = start.elapsed();
    let mut latencies = Vec::new();
    let mut last = 0;
    for (mut samples, id) in results {
        latencies.append(&mut samples);
        last = last.max(id);
    }
    let accepted = latencies.len();
    let rate = accepted as f64 / elapsed.as_secs_f64();
    let ack = Stats::of(latencies);
    let drained = host::wait_final(&host.client(), Some(last), accepted as u64);
    let (rss, peak) = host.rss();
    host.stop();
    section.target(
        "acknowledged submissions",
        rate,
        "jobs/s",
        Target::AtLeast(15_000.0),
    );
    section.target("acknowledgement: p99", ack.p99, "ms", Target::AtMost(20.0));
    section.figure("acknowledgement: p50", ack.p50, "ms");
    section.figure(
        "all accepted jobs completed, after the last submit",
        drained
            .saturating_duration_since(start + elapsed)
            .as_secs_f64()
            * 1e3,
        "ms",
    );
    section.figure("host RSS at the end", rss as f64 / 1e6, "MB");
    section.set(
        "submission",
        json!({
            "clients": clients, "seconds": elapsed.as_secs_f64(), "accepted": accepted,
            "jobs_per_s": rate, "acknowledgement": ack.json("ms"),
            "host_rss_bytes": rss, "host_peak_rss_bytes": peak,
        }),
    );
    section
}

/// One client: sends `request` on its connection until `deadline`, each
/// after the previous answer; returns the latencies (ms) and the last id.
async fn client(address: String, request: String, deadline: Instant) -> (Vec<f64>, i64) {
    let mut stream = TcpStream::connect(&address).await.expect("connecting");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let mut buffer = Vec::with_capacity(4096);
    let mut latencies = Vec::new();
    let mut last = 0;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        stream.write_all(request.as_bytes()).await.expect("sending");
        let answer = read_response(&mut stream, &mut buffer).await;
        latencies.push(t0.elapsed().as_secs_f64() * 1e3);
        last = job_id(answer);
    }
    (latencies, last)
}

/// Reads one response (status 201 and a `content-length` body); returns
/// the body.
async fn read_response<'b>(stream: &mut TcpStream, buffer: &'b mut Vec<u8>) -> &'b [u8] {
    buffer.clear();
    let (head, length) = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("receiving");
        assert!(n > 0, "the host closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).expect("an HTTP head");
            assert!(head.starts_with("HTTP/1.1 201"), "not accepted: {head}");
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("a content-length");
            break (end + 4, length);
        }
    };
    while buffer.len() < head + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("receiving");
        assert!(n > 0, "the host closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
    }
    &buffer[head..head + length]
}

/// The `id` of a job's JSON.
fn job_id(body: &[u8]) -> i64 {
    #[derive(serde::Deserialize)]
    struct Id {
        id: i64,
    }
    serde_json::from_slice::<Id>(body).expect("a job").id
}
