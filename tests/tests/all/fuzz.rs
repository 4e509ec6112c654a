//! Seeded fuzzing through the real router: mutated submissions and query
//! strings never get a server error (every refusal is a 4xx with a code),
//! and mutated modules are refused cleanly or accepted and runnable.
//!
//! Each case comes from a fixed seed, so a failure replays; the message
//! names the seed and shows the input. `WASMJOB_FUZZ_CASES` runs more
//! (CI runs the default; the README gives the long run).

use crate::api::Api;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use wasmjob::job::JobState;
use wasmjob_tests::guests;

/// Cases per test, unless `WASMJOB_FUZZ_CASES` says otherwise.
fn cases(default: u64) -> u64 {
    std::env::var("WASMJOB_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// A JSON value of any kind, nested up to `depth`, with the edges that
/// break parsers and bounds: huge, negative and fractional numbers, empty
/// and odd strings, deep nesting.
fn value(rng: &mut fastrand::Rng, depth: u32) -> Value {
    match rng.u8(0..12) {
        0 => Value::Null,
        1 => json!(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => json!(rng.u64(..)),
        4 => json!([0i64, 1, -1, 10, 11, 255, 256, 65_536, 1 << 32][rng.usize(..9)]),
        5 => json!(rng.f64() * 1e300 - 5e299),
        6 => json!(""),
        7 => json!(["x", "default", "a b", "é", "\u{0}", "../..", "hello", "-1"][rng.usize(..8)]),
        8 => json!("y".repeat(rng.usize(0..2_000))),
        9 if depth > 0 => Value::Array(
            (0..rng.usize(0..4))
                .map(|_| value(rng, depth - 1))
                .collect(),
        ),
        10 if depth > 0 => Value::Object(
            (0..rng.usize(0..4))
                .map(|_| (key(rng), value(rng, depth - 1)))
                .collect(),
        ),
        _ => json!(rng.u8(..)),
    }
}

/// A field name: a real one of a submission, or not.
fn key(rng: &mut fastrand::Rng) -> String {
    const KEYS: &[&str] = &[
        "module",
        "input",
        "queue",
        "priority",
        "max_attempts",
        "retry",
        "limits",
        "delay_ms",
        "unique",
        "depends_on",
        "run_at",
        "grants",
        "fuel",
        "memory_bytes",
        "timeout_ms",
        "output_bytes",
        "log_records",
        "log_bytes",
        "stdio_tail_bytes",
        "backoff",
        "base_ms",
        "max_delay_ms",
        "jitter",
        "key",
        "window_ms",
        "job",
        "name",
        "on_failure",
        "jobs",
        "unknown",
    ];
    KEYS[rng.usize(..KEYS.len())].to_owned()
}

/// A valid submission with some fields replaced, removed or added.
fn submission(rng: &mut fastrand::Rng) -> Value {
    let mut job = json!({
        "module": "hello",
        "input": {"name": "Ada"},
        "priority": 3,
        "max_attempts": 2,
        "retry": {"backoff": "fixed", "base_ms": 10},
        "limits": {"fuel": 1_000_000, "timeout_ms": 1_000},
        "unique": {"key": "k", "window_ms": 0},
    });
    for _ in 0..rng.usize(1..4) {
        let object = if rng.bool() {
            job.as_object_mut().unwrap()
        } else {
            let nested = ["retry", "limits", "unique"][rng.usize(..3)];
            match job.get_mut(nested).and_then(Value::as_object_mut) {
                Some(object) => object,
                None => job.as_object_mut().unwrap(),
            }
        };
        match rng.u8(0..3) {
            0 => {
                object.remove(&key(rng));
            }
            _ => {
                object.insert(key(rng), value(rng, 3));
            }
        }
    }
    job
}

/// Checks an answer: never a server error, and a refusal says why.
fn check(case: &str, status: StatusCode, body: &Value) {
    assert!(
        !status.is_server_error(),
        "{case}: answered {status}: {body}"
    );
    if status.is_client_error() {
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{case}: {status} without an error code: {body}"
        );
    }
}

#[tokio::test]
async fn mutated_submissions_and_queries_never_get_a_server_error() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    for seed in 0..cases(100) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let job = submission(&mut rng);
        let (status, body) = api.post_json("/v1/jobs", job.clone()).await;
        check(&format!("seed {seed}: POST /v1/jobs {job}"), status, &body);
        assert!(
            matches!(status.as_u16(), 200 | 201 | 400 | 404),
            "seed {seed}: {status} for {job}: {body}"
        );
        let batch = json!({"jobs": [job, submission(&mut rng)]});
        let (status, body) = api.post_json("/v1/jobs/batch", batch.clone()).await;
        check(
            &format!("seed {seed}: POST /v1/jobs/batch {batch}"),
            status,
            &body,
        );

        // Query strings: real parameters with any value, or made-up ones.
        const PARAMS: &[&str] = &[
            "state", "queue", "module", "priority", "limit", "before", "workflow", "schedule",
            "parent", "wait_ms", "since", "until", "x",
        ];
        let query: Vec<String> = (0..rng.usize(0..4))
            .map(|_| {
                let raw = match value(&mut rng, 0) {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                let encoded: String = raw.bytes().take(200).map(|b| format!("%{b:02X}")).collect();
                format!("{}={encoded}", PARAMS[rng.usize(..PARAMS.len())])
            })
            .collect();
        let query = query.join("&");
        for path in [
            "/v1/jobs",
            "/v1/dead-letter",
            "/v1/history",
            "/v1/workflows",
        ] {
            let uri = format!("{path}?{query}");
            let (status, body) = api.get(&uri).await;
            check(&format!("seed {seed}: GET {uri}"), status, &body);
        }
        let id = match value(&mut rng, 0) {
            Value::String(text) => text.bytes().map(|b| format!("%{b:02X}")).collect(),
            other => other.to_string(),
        };
        let uri = format!("/v1/jobs/{id}?wait_ms=0");
        let (status, body) = api.get(&uri).await;
        check(&format!("seed {seed}: GET {uri}"), status, &body);
    }
}

/// `bytes` with one random mutation: bits flipped, bytes replaced,
/// inserted or deleted, a cut, or a run duplicated.
fn mutate(rng: &mut fastrand::Rng, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..rng.usize(1..4) {
        if out.is_empty() {
            break;
        }
        let at = rng.usize(..out.len());
        match rng.u8(0..6) {
            0 => out[at] ^= 1 << rng.u8(0..8),
            1 => out[at] = rng.u8(..),
            2 => out.insert(at, rng.u8(..)),
            3 => {
                out.remove(at);
            }
            4 => out.truncate(at),
            _ => {
                let end = (at + rng.usize(1..64)).min(out.len());
                let run = out[at..end].to_vec();
                out.splice(at..at, run);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_modules_are_refused_cleanly_or_accepted_and_run() {
    let mut api = Api::new();
    api.host.start_workers();
    let seeds: Vec<Vec<u8>> = vec![
        wasmjob_tests::guest_bytes(guests::HELLO),
        wat::parse_str(
            r#"(module (memory (export "memory") 1)
                 (func (export "_start") (local i32)
                   (loop (local.set 0 (i32.add (local.get 0) (i32.const 1)))
                         (br_if 0 (i32.lt_u (local.get 0) (i32.const 1000))))))"#,
        )
        .unwrap(),
    ];
    let mut accepted = Vec::new();
    for seed in 0..cases(150) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let original = &seeds[rng.usize(..seeds.len())];
        let bytes = mutate(&mut rng, original);
        let request = Request::post("/v1/modules")
            .body(Body::from(bytes.clone()))
            .unwrap();
        let (status, body) = api.call(request).await;
        let case = format!("seed {seed} ({} bytes)", bytes.len());
        check(&case, status, &body);
        match status.as_u16() {
            201 => accepted.push((seed, body["hash"].as_str().unwrap().to_owned())),
            400 | 413 => assert!(
                ["invalid_module", "invalid_request", "payload_too_large"]
                    .contains(&body["error"]["code"].as_str().unwrap()),
                "{case}: {body}"
            ),
            other => panic!("{case}: unexpected {other}: {body}"),
        }
    }
    eprintln!("{} of the mutated modules were accepted", accepted.len());
    // Every accepted module runs to a final state, whatever it does.
    for (seed, hash) in &accepted {
        let (status, job) = api
            .call(
                Request::post("/v1/jobs")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(
                        json!({"module": hash, "max_attempts": 1,
                               "limits": {"fuel": 100_000_000, "timeout_ms": 5_000}})
                        .to_string(),
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "seed {seed}: {job}");
        let id = job["id"].as_i64().unwrap();
        let detail = api
            .host
            .wait_job(id, |job| job.job.state.is_final())
            .await
            .unwrap_or_else(|| panic!("seed {seed}: job {id} never finished"));
        assert!(
            matches!(detail.job.state, JobState::Completed | JobState::Failed),
            "seed {seed}: {detail:?}"
        );
    }
    api.host.stop_workers().await;
}
