//! Scenario 7: scheduling. How late delayed jobs and cron fire times
//! start, how fast cancelling a running job stops it, and how long a
//! 10,000-node fan-out/fan-in workflow takes from submit to its last node.
//!
//! Lateness and stop times are read from the host's own timestamps
//! (milliseconds): a delayed job's `started_at - run_at`; a cron job's
//! `started_at` against the whole second it was due (the schedule fires
//! every second); a cancelled job's attempt `finished_at` (when its report
//! was filed, the guest stopped) against the job's `finished_at` (when the
//! cancel was stored).

use crate::Settings;
use crate::host::{self, HostProcess, Submitter};
use crate::report::{Section, Stats, Target};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wasmjob::client::Client;
use wasmjob_tests::{guest_bytes, guests};

pub fn run(settings: &Settings) -> Section {
    let mut section = Section::new("7 scheduling: delays, cron, cancel, a 10,000-node workflow");
    let dir = tempfile::tempdir().expect("temp dir");
    let host = HostProcess::start(dir.path(), &[]);
    let client = host.client();
    let noop = host::upload(&client, &guest_bytes(guests::NOOP), "noop");
    let spin = host::upload(&client, &guest_bytes(guests::INFINITE_LOOP), "spin");
    // Warm: the modules loaded, the connection open.
    host::wait_final(&client, Some(one(&client, &noop)), 1);

    let delayed = delayed_lateness(&host, &client, &noop, settings.pick(300, 20));
    section.target(
        "delayed job, run_at to start: p50",
        delayed.p50,
        "ms",
        Target::AtMost(5.0),
    );
    section.target(
        "delayed job, run_at to start: p99",
        delayed.p99,
        "ms",
        Target::AtMost(10.0),
    );

    let cron = cron_lateness(&client, settings.pick(10, 2));
    section.figure("cron fire time to start: p50", cron.p50, "ms");
    section.figure("cron fire time to start: max", cron.max, "ms");

    let stops = cancel_running(&client, &spin, settings.pick(30, 3));
    section.target(
        "cancel of a running job to its stop: p50",
        stops.p50,
        "ms",
        Target::AtMost(50.0),
    );
    section.target(
        "cancel of a running job to its stop: max",
        stops.max,
        "ms",
        Target::AtMost(100.0),
    );

    let nodes = settings.pick(10_000, 100);
    let fan = fan_out_fan_in(&client, &noop, nodes);
    section.figure("fan-out/fan-in workflow: nodes", nodes as f64, "");
    section.figure(
        "  submit (checked, stored, acknowledged)",
        fan.submit_ms,
        "ms",
    );
    section.figure("  submit to the last node completed", fan.total_ms, "ms");
    section.figure(
        "  nodes per second",
        nodes as f64 / (fan.total_ms / 1e3),
        "/s",
    );
    host.stop();
    section.set(
        "scheduling",
        json!({
            "delayed_lateness": delayed.json("ms"),
            "cron_lateness": cron.json("ms"),
            "cancel_to_stop": stops.json("ms"),
            "fan_out_fan_in": {
                "nodes": nodes,
                "submit_ms": fan.submit_ms,
                "submit_to_last_ms": fan.total_ms,
            },
        }),
    );
    section
}

fn one(client: &Client, module: &str) -> i64 {
    let job = client
        .post_json("/v1/jobs", &host::noop_job(module, 5, 0))
        .unwrap_or_else(|e| panic!("submit: {e}"));
    job["id"].as_i64().expect("an id")
}

fn stamp(job: &Value, field: &str) -> i64 {
    job[field]
        .as_i64()
        .unwrap_or_else(|| panic!("no {field}: {job}"))
}

/// Jobs due one every 10 ms from 200 ms on, on an otherwise idle host:
/// how late each starts.
fn delayed_lateness(host: &HostProcess, client: &Client, module: &str, jobs: usize) -> Stats {
    let texts: Vec<String> = (0..jobs)
        .map(|i| host::noop_job(module, 5, 200 + 10 * i as u64).to_string())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ids = Submitter::new(host).submit(&refs);
    let mut late = Vec::with_capacity(jobs);
    for id in ids {
        let job = wait(client, id);
        assert_eq!(job["state"], "completed", "{job}");
        late.push((stamp(&job, "started_at") - stamp(&job, "run_at")) as f64);
    }
    Stats::of(late)
}

/// A schedule firing every second, for `seconds`: how late each job
/// starts after its fire time.
fn cron_lateness(client: &Client, seconds: usize) -> Stats {
    let schedule = json!({
        "name": "tick", "cron": "* * * * * *",
        "job": {"module": "noop", "max_attempts": 1},
    });
    client
        .post_json("/v1/schedules", &schedule)
        .unwrap_or_else(|e| panic!("schedule: {e}"));
    // Until it has fired `seconds` times (the schedule's own clock sets
    // the pace; a deadline guards against it never firing).
    let deadline = Instant::now() + Duration::from_secs(60 + seconds as u64);
    let jobs = loop {
        let page = client
            .get("/v1/jobs?schedule=tick&limit=1000")
            .unwrap_or_else(|e| panic!("list: {e}"));
        let jobs = page["jobs"].as_array().expect("a page").clone();
        if jobs.len() >= seconds {
            break jobs;
        }
        assert!(
            Instant::now() < deadline,
            "{} jobs, {seconds} expected",
            jobs.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    client
        .delete("/v1/schedules/tick")
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let late = jobs
        .iter()
        .map(|job| {
            let job = wait(client, stamp(job, "id"));
            let created = stamp(&job, "created_at");
            // Due at the whole second it was created in (it is never a
            // second late on an idle host).
            (stamp(&job, "started_at") - (created - created % 1000)) as f64
        })
        .collect();
    Stats::of(late)
}

/// Jobs spinning in an endless loop, each cancelled once it runs: how long
/// from the cancel to the attempt's report being filed.
fn cancel_running(client: &Client, module: &str, jobs: usize) -> Stats {
    let mut stops = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let job = client
            .post_json(
                "/v1/jobs",
                &json!({"module": module, "max_attempts": 1,
                        "limits": {"fuel": 1_000_000_000_000u64, "timeout_ms": 600_000}}),
            )
            .unwrap_or_else(|e| panic!("submit: {e}"));
        let id = stamp(&job, "id");
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.get(&format!("/v1/jobs/{id}")).expect("job")["state"] != "running" {
            assert!(Instant::now() < deadline, "job {id} never ran");
            std::thread::sleep(Duration::from_millis(2));
        }
        // Let it spin a little: a stop, not a race with the start.
        std::thread::sleep(Duration::from_millis(20));
        client
            .post_json(&format!("/v1/jobs/{id}/cancel"), &Value::Null)
            .unwrap_or_else(|e| panic!("cancel: {e}"));
        let job = loop {
            let job = client.get(&format!("/v1/jobs/{id}")).expect("job");
            if job["attempts"].as_array().is_some_and(|a| !a.is_empty()) {
                break job;
            }
            assert!(Instant::now() < deadline, "job {id} never stopped: {job}");
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(job["state"], "cancelled", "{job}");
        let filed = stamp(&job["attempts"][0], "finished_at");
        stops.push((filed - stamp(&job, "finished_at")) as f64);
    }
    Stats::of(stops)
}

struct Fan {
    submit_ms: f64,
    total_ms: f64,
}

/// One root, `nodes - 2` jobs after it, one sink after all of those, as
/// one workflow: from the submit to the sink's completion.
fn fan_out_fan_in(client: &Client, module: &str, nodes: usize) -> Fan {
    let middle: Vec<String> = (0..nodes - 2).map(|i| format!("m{i}")).collect();
    let mut jobs = vec![json!({"name": "root", "module": module, "max_attempts": 1})];
    jobs.extend(middle.iter().map(
        |name| json!({"name": name, "module": module, "max_attempts": 1, "depends_on": ["root"]}),
    ));
    jobs.push(json!({"name": "sink", "module": module, "max_attempts": 1, "depends_on": middle}));
    let body = json!({"name": "fan", "jobs": jobs});
    let t0 = Instant::now();
    let workflow = client
        .post_json("/v1/workflows", &body)
        .unwrap_or_else(|e| panic!("workflow: {e}"));
    let submit_ms = t0.elapsed().as_secs_f64() * 1e3;
    let sink = workflow["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|node| node["node"] == "sink")
        .map(|node| stamp(node, "id"))
        .expect("the sink");
    let job = wait(client, sink);
    let total_ms = t0.elapsed().as_secs_f64() * 1e3;
    assert_eq!(job["state"], "completed", "{job}");
    let id = stamp(&workflow, "id");
    let detail = client
        .get(&format!("/v1/workflows/{id}"))
        .unwrap_or_else(|e| panic!("workflow: {e}"));
    assert_eq!(detail["state"], "completed", "every node completed");
    Fan {
        submit_ms,
        total_ms,
    }
}

/// Job `id` once final (a long poll).
fn wait(client: &Client, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = client
            .get(&format!("/v1/jobs/{id}?wait_ms=60000"))
            .unwrap_or_else(|e| panic!("wait: {e}"));
        if matches!(
            job["state"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} never ended: {job}");
    }
}
