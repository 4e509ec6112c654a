//! Cron schedules: through the HTTP API (what is refused and why, the next
//! fire times shown), and end to end on a driven clock, with the scheduler
//! pass the host runs (`Queue::fire_due_schedules`) at each fire time:
//! jobs created and run, daylight saving time in New York, missed fire
//! times, two hosts firing one schedule, a restart.

use crate::api::{Api, error_code, error_message};
use axum::http::StatusCode;
use serde_json::json;
use std::sync::Arc;
use wasmjob::clock::{Millis, TestClock};
use wasmjob::engine::{Engine, EngineConfig};
use wasmjob::job::{Job, JobState};
use wasmjob::queue::{Queue, QueueConfig};
use wasmjob::schedule::{Missed, ScheduleSpec};
use wasmjob::store::{JobFilter, SqliteStore, StoreConfig};
use wasmjob_tests::guests;
use wasmjob_tests::host::Host;

/// Milliseconds since the epoch of an RFC 3339 time.
fn at(text: &str) -> Millis {
    let at: jiff::Timestamp = text.parse().expect("an RFC 3339 time");
    at.as_millisecond()
}

fn spec(host: &Host, name: &str, cron: &str, zone: &str, missed: Missed) -> ScheduleSpec {
    ScheduleSpec {
        name: name.to_owned(),
        cron: cron.to_owned(),
        timezone: Some(zone.to_owned()),
        job: host.job("hello", json!({"name": name})),
        missed,
        paused: false,
    }
}

/// Runs the scheduler as the host does, on the driven clock: from now,
/// a pass at each next fire time up to `until`. Returns the jobs created.
async fn run_until(queue: &Queue, clock: &TestClock, until: Millis) -> Vec<Job> {
    let mut created = queue.fire_due_schedules().await.expect("a pass");
    while let Some(next) = queue.store().next_schedule_at().await.expect("next") {
        if next > until {
            break;
        }
        clock.set(next);
        created.extend(queue.fire_due_schedules().await.expect("a pass"));
    }
    clock.set(until);
    created
}

#[tokio::test]
async fn a_schedule_is_checked_shown_with_its_next_fire_times_and_managed() {
    let api = Api::new();
    api.host.clock.set(at("2026-03-07T12:00:00Z"));
    api.upload(guests::HELLO, Some("hello")).await;
    let nightly = json!({
        "name": "nightly",
        "cron": "30 2 * * *",
        "timezone": "America/New_York",
        "job": {"module": "hello", "input": {"name": "night"}, "priority": 2},
        "missed": "run_once",
    });
    let (status, schedule) = api.post_json("/v1/schedules", nightly.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    // Across the change to daylight saving time (2026-03-08): 02:30 does
    // not exist that night, so it fires once, at 03:00 EDT.
    let local: Vec<&str> = schedule["upcoming"]
        .as_array()
        .unwrap()
        .iter()
        .map(|time| time["local"].as_str().unwrap())
        .collect();
    assert_eq!(
        local,
        [
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T02:30:00-04:00",
            "2026-03-10T02:30:00-04:00",
            "2026-03-11T02:30:00-04:00",
            "2026-03-12T02:30:00-04:00",
        ]
    );
    assert_eq!(schedule["upcoming"][0]["at"], at("2026-03-08T07:00:00Z"));
    assert_eq!(schedule["job"]["priority"], 2);
    assert_eq!(schedule["missed"], "run_once");

    // A name taken is a conflict; PUT replaces.
    let (status, body) = api.post_json("/v1/schedules", nightly).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = api
        .put_json(
            "/v1/schedules/nightly",
            json!({"cron": "@hourly", "job": {"module": "hello"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["timezone"], "UTC");
    assert_eq!(body["upcoming"][0]["local"], "2026-03-07T13:00:00+00:00");
    let (status, body) = api
        .put_json(
            "/v1/schedules/weekly",
            json!({"cron": "0 9 * * MON", "job": {"module": "hello"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Paused: no fire times; resumed: from now.
    let (status, body) = api
        .post_json("/v1/schedules/nightly/pause", json!(null))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["paused"], true);
    assert_eq!(body["upcoming"], json!([]));
    let (_, list) = api.get("/v1/schedules").await;
    let names: Vec<&str> = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nightly", "weekly"]);
    let (status, body) = api
        .post_json("/v1/schedules/nightly/resume", json!(null))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["upcoming"].as_array().unwrap().len(), 5);

    // Deleted: gone.
    let (status, _) = api.delete("/v1/schedules/weekly").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.get("/v1/schedules/weekly").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = api.delete("/v1/schedules/weekly").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn a_bad_schedule_is_a_4xx_naming_the_field_and_stores_nothing() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    let cases = [
        (
            json!({"name": "x", "cron": "61 * * * *", "job": {"module": "hello"}}),
            StatusCode::BAD_REQUEST,
            "cron: `61 * * * *` is not a cron expression",
        ),
        (
            json!({"name": "x", "cron": "0 0 30 2 *", "job": {"module": "hello"}}),
            StatusCode::BAD_REQUEST,
            "cron: `0 0 30 2 *` never fires",
        ),
        (
            json!({"name": "x", "cron": "@daily", "timezone": "Mars/Olympus",
                   "job": {"module": "hello"}}),
            StatusCode::BAD_REQUEST,
            "timezone: `Mars/Olympus` is not an IANA time zone",
        ),
        (
            json!({"name": "no spaces", "cron": "@daily", "job": {"module": "hello"}}),
            StatusCode::BAD_REQUEST,
            "name: invalid schedule name `no spaces`",
        ),
        (
            json!({"name": "x", "cron": "@daily", "job": {"module": "hello", "priority": 11}}),
            StatusCode::BAD_REQUEST,
            "job.priority:",
        ),
        (
            json!({"name": "x", "cron": "@daily", "job": {"module": "hello", "queue": "a b"}}),
            StatusCode::BAD_REQUEST,
            "job.queue:",
        ),
        (
            json!({"name": "x", "cron": "@daily", "job": {"module": "nope"}}),
            StatusCode::NOT_FOUND,
            "job.module: no module `nope`",
        ),
    ];
    for (body, status, message) in cases {
        let (got, answer) = api.post_json("/v1/schedules", body.clone()).await;
        assert_eq!(got, status, "{body} -> {answer}");
        assert!(
            error_message(&answer).starts_with(message),
            "{body} -> {answer}, expected `{message}`"
        );
    }
    // Fields a scheduled job cannot have are unknown fields.
    for job in [
        json!({"module": "hello", "run_at": "2030-01-01T00:00:00Z"}),
        json!({"module": "hello", "delay_ms": 5}),
        json!({"module": "hello", "depends_on": [1]}),
    ] {
        let (status, answer) = api
            .post_json(
                "/v1/schedules",
                json!({"name": "x", "cron": "@daily", "job": job}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(error_code(&answer), "invalid_json", "{answer}");
    }
    let (status, body) = api.get("/v1/schedules/no%20such").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api.post_json("/v1/schedules/nope/pause", json!(null)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, list) = api.get("/v1/schedules").await;
    assert_eq!(list["schedules"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn each_fire_time_creates_one_job_that_runs_and_names_its_schedule() {
    let mut host = Host::new(QueueConfig::default());
    host.upload_named(guests::HELLO, "hello").await;
    let start = at("2026-06-01T10:00:30Z");
    host.clock.set(start);
    let schedule = host
        .queue
        .put_schedule(
            spec(&host, "every-minute", "* * * * *", "UTC", Missed::Skip),
            false,
        )
        .await
        .expect("stored");
    assert_eq!(schedule.next_at, at("2026-06-01T10:01:00Z"));
    assert!(
        host.queue.fire_due_schedules().await.unwrap().is_empty(),
        "nothing is due yet"
    );

    let created = run_until(&host.queue, &host.clock, at("2026-06-01T10:05:30Z")).await;
    assert_eq!(created.len(), 5, "10:01 to 10:05");
    for job in &created {
        assert_eq!(job.schedule.as_deref(), Some("every-minute"));
        assert_eq!(job.state, JobState::Pending);
    }
    // A second pass at the same time creates nothing more.
    assert!(host.queue.fire_due_schedules().await.unwrap().is_empty());
    let schedule = host.queue.schedule("every-minute").await.unwrap();
    assert_eq!(schedule.last_fired_at, Some(at("2026-06-01T10:05:00Z")));
    assert_eq!(schedule.last_job, Some(created[4].id));
    assert_eq!(schedule.next_at, at("2026-06-01T10:06:00Z"));

    host.start_workers();
    let done = host.wait_for(created[0].id, JobState::Completed).await;
    let output: serde_json::Value =
        serde_json::from_str(done.output.expect("an output").as_str()).unwrap();
    assert_eq!(output["greeting"], "Hello, every-minute!");
    let listed = host
        .queue
        .list(JobFilter {
            schedule: Some("every-minute".into()),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 5);

    // Paused, it creates nothing; resumed, it goes on from now.
    host.queue
        .set_schedule_paused("every-minute", true)
        .await
        .unwrap();
    let paused = run_until(&host.queue, &host.clock, at("2026-06-01T10:30:30Z")).await;
    assert!(paused.is_empty());
    let resumed = host
        .queue
        .set_schedule_paused("every-minute", false)
        .await
        .unwrap();
    assert_eq!(resumed.next_at, at("2026-06-01T10:31:00Z"));
    host.stop_workers().await;
}

/// New York's fire times over 2025's two changes, as jobs created.
async fn fire_times_over(cron: &str, from: &str, until: &str) -> Vec<Millis> {
    let host = Host::new(QueueConfig::default());
    host.upload_named(guests::HELLO, "hello").await;
    host.clock.set(at(from));
    host.queue
        .put_schedule(
            spec(&host, "ny", cron, "America/New_York", Missed::Skip),
            false,
        )
        .await
        .expect("stored");
    let mut times = Vec::new();
    for job in run_until(&host.queue, &host.clock, at(until)).await {
        times.push(job.created_at);
    }
    // Created at the fire time, to the step of the driven clock.
    times.iter().map(|t| t - t % 1000).collect()
}

#[tokio::test]
async fn daylight_saving_time_skips_nothing_and_repeats_nothing() {
    // Spring forward, 2025-03-09: 02:00 EST becomes 03:00 EDT, so 02:30
    // does not exist; it fires once, at 03:00 EDT.
    let spring =
        fire_times_over("30 2 * * *", "2025-03-07T12:00:00Z", "2025-03-11T12:00:00Z").await;
    assert_eq!(
        spring,
        [
            at("2025-03-08T02:30:00-05:00"),
            at("2025-03-09T03:00:00-04:00"),
            at("2025-03-10T02:30:00-04:00"),
            at("2025-03-11T02:30:00-04:00"),
        ]
    );
    // Fall back, 2025-11-02: 01:00 to 02:00 EDT happens again in EST, so
    // 01:30 exists twice; it fires once, at the first.
    let fall = fire_times_over("30 1 * * *", "2025-10-31T12:00:00Z", "2025-11-04T12:00:00Z").await;
    assert_eq!(
        fall,
        [
            at("2025-11-01T01:30:00-04:00"),
            at("2025-11-02T01:30:00-04:00"),
            at("2025-11-03T01:30:00-05:00"),
            at("2025-11-04T01:30:00-05:00"),
        ]
    );
    // Hourly through the night of the change: one job an hour, real time.
    let hourly = fire_times_over("0 * * * *", "2025-11-02T03:30:00Z", "2025-11-02T07:30:00Z").await;
    assert_eq!(
        hourly,
        [
            at("2025-11-02T04:00:00Z"),
            at("2025-11-02T05:00:00Z"),
            at("2025-11-02T06:00:00Z"),
            at("2025-11-02T07:00:00Z"),
        ],
        "00:00 EDT, 01:00 EDT, 01:00 EST, 02:00 EST"
    );
}

#[tokio::test]
async fn fire_times_missed_while_down_are_skipped_or_run_once() {
    let host = Host::new(QueueConfig::default());
    host.upload_named(guests::HELLO, "hello").await;
    host.clock.set(at("2026-06-01T09:30:00Z"));
    for (name, missed) in [("skip", Missed::Skip), ("once", Missed::RunOnce)] {
        host.queue
            .put_schedule(spec(&host, name, "0 * * * *", "UTC", missed), false)
            .await
            .expect("stored");
    }
    // The host was down from 09:30 to 15:20: five fire times passed.
    host.clock.set(at("2026-06-01T15:20:00Z"));
    let created = host.queue.fire_due_schedules().await.unwrap();
    assert_eq!(created.len(), 1, "one job for all five: {created:?}");
    assert_eq!(created[0].schedule.as_deref(), Some("once"));
    let once = host.queue.schedule("once").await.unwrap();
    assert!(
        once.last_error
            .as_deref()
            .unwrap()
            .starts_with("made up for fire times from 2026-06-01T10:00:00+00:00"),
        "{once:?}"
    );
    let skip = host.queue.schedule("skip").await.unwrap();
    assert!(
        skip.last_error.as_deref().unwrap().contains("was missed"),
        "{skip:?}"
    );
    assert_eq!(skip.last_job, None);
    for schedule in [&once, &skip] {
        assert_eq!(schedule.next_at, at("2026-06-01T16:00:00Z"));
    }
    // Back on time, both fire at 16:00, and the notes clear.
    let created = run_until(&host.queue, &host.clock, at("2026-06-01T16:00:10Z")).await;
    assert_eq!(created.len(), 2);
    assert_eq!(host.queue.schedule("skip").await.unwrap().last_error, None);

    // A pass a little late (the host was busy) is still on time.
    host.clock.set(at("2026-06-01T17:00:45Z"));
    assert_eq!(host.queue.fire_due_schedules().await.unwrap().len(), 2);
}

/// Another host's queue: its own clock and engine, on a store.
fn another_queue(store: Arc<SqliteStore>) -> (Queue, TestClock) {
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let clock = TestClock::new(0);
    let queue = Queue::new(
        store,
        engine,
        Arc::new(clock.clone()),
        QueueConfig::default(),
    );
    (queue, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_schedulers_fire_each_time_once_and_a_restart_fires_nothing_again() {
    let host = Host::new(QueueConfig::default());
    host.upload_named(guests::HELLO, "hello").await;
    host.clock.set(at("2026-06-01T09:59:30Z"));
    host.queue
        .put_schedule(
            spec(&host, "minutely", "* * * * *", "UTC", Missed::Skip),
            false,
        )
        .await
        .expect("stored");
    // A second scheduler on the same store (as two hosts on one
    // database): each reads the schedule due, one of them fires it.
    let (other, other_clock) = another_queue(host.store.clone());
    let mut created = 0;
    for minute in 0..20 {
        let tick = at("2026-06-01T10:00:00Z") + minute * 60_000;
        host.clock.set(tick);
        other_clock.set(tick + 3);
        let (a, b) = tokio::join!(host.queue.fire_due_schedules(), other.fire_due_schedules());
        created += a.unwrap().len() + b.unwrap().len();
    }
    assert_eq!(created, 20, "each minute once, whichever fired it");
    let jobs = host
        .queue
        .list(JobFilter {
            schedule: Some("minutely".into()),
            limit: 1000,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 20);

    // A restart: the database file opened again by a new host, at the
    // last fire time, fires nothing again; it carries on at the next.
    let Host {
        queue, store, dir, ..
    } = host;
    drop((queue, store, other));
    let store = Arc::new(SqliteStore::open(StoreConfig::new(dir.path())).expect("reopened"));
    let (restarted, clock) = another_queue(store);
    clock.set(at("2026-06-01T10:19:00Z") + 5);
    assert!(restarted.fire_due_schedules().await.unwrap().is_empty());
    clock.set(at("2026-06-01T10:20:00Z"));
    assert_eq!(restarted.fire_due_schedules().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_unique_key_keeps_scheduled_runs_from_overlapping() {
    let host = Host::new(QueueConfig::default());
    host.upload_named(guests::HELLO, "hello").await;
    host.clock.set(at("2026-06-01T09:59:30Z"));
    let mut spec = spec(&host, "sync", "* * * * *", "UTC", Missed::Skip);
    spec.job.unique = Some(wasmjob::policy::UniqueSpec {
        key: "sync".into(),
        window_ms: None,
    });
    host.queue.put_schedule(spec, false).await.expect("stored");
    // No worker runs: the first job is still pending at each later tick.
    let created = run_until(&host.queue, &host.clock, at("2026-06-01T10:05:30Z")).await;
    let ids: std::collections::BTreeSet<_> = created.iter().map(|job| job.id).collect();
    assert_eq!(ids.len(), 1, "one job, returned at each tick: {created:?}");
    let schedule = host.queue.schedule("sync").await.unwrap();
    assert_eq!(schedule.last_job, Some(created[0].id));
}
