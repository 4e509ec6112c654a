//! Cron schedules: kept with their job template, paused and resumed, and
//! fired with a compare-and-set on the next fire time, so each fire time
//! creates one job however many schedulers race.

use super::*;
use crate::policy::{Backoff, JobSpec, LimitsSpec, RetrySpec, UniqueSpec};
use crate::schedule::{Missed, Schedule};
use crate::store::{Error, Fired, JobFilter, Tick};

pub(crate) fn schedule(f: &Fixture, name: &str, next_at: Millis) -> Schedule {
    Schedule {
        name: name.to_owned(),
        cron: "0 * * * *".to_owned(),
        timezone: "UTC".to_owned(),
        job: JobSpec::new(f.module.clone(), Json::parse_str(r#"{"n": 1}"#).unwrap()),
        missed: Missed::Skip,
        paused: false,
        next_at,
        last_fired_at: None,
        last_job: None,
        last_error: None,
        created_at: T0,
        updated_at: T0,
    }
}

fn tick(f: &Fixture, name: &str, expected: Millis, next_at: Millis) -> Tick {
    Tick {
        schedule: name.to_owned(),
        expected_next_at: expected,
        next_at,
        fired_at: expected,
        job: Some(f.job(5, expected)),
        error: None,
    }
}

pub(crate) async fn a_schedule_keeps_its_template_and_is_replaced_only_when_asked(open: OpenFn) {
    let f = fixture(open).await;
    let mut nightly = schedule(&f, "nightly", T0 + 1_000);
    nightly.timezone = "America/New_York".to_owned();
    nightly.missed = Missed::RunOnce;
    nightly.job = JobSpec {
        queue: Some("reports".to_owned()),
        priority: Some(2),
        max_attempts: Some(7),
        retry: RetrySpec {
            backoff: Some(Backoff::Linear),
            base_ms: Some(250),
            max_delay_ms: Some(9_000),
            jitter: Some(true),
        },
        limits: LimitsSpec {
            fuel: Some(123),
            timeout_ms: Some(4_000),
            ..LimitsSpec::default()
        },
        unique: Some(UniqueSpec {
            key: "nightly".to_owned(),
            window_ms: Some(60_000),
        }),
        ..nightly.job.clone()
    };
    let stored = f.store.put_schedule(nightly.clone(), false).await.unwrap();
    assert_eq!(stored, nightly);
    assert_eq!(
        f.store.schedule("nightly").await.unwrap(),
        Some(nightly.clone())
    );
    let error = f
        .store
        .put_schedule(nightly.clone(), false)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Conflict(_)), "{error}");
    // Replaced: a new definition, the same creation time.
    let mut replaced = schedule(&f, "nightly", T0 + 5_000);
    replaced.cron = "*/5 * * * *".to_owned();
    replaced.created_at = T0 + 9;
    replaced.updated_at = T0 + 9;
    let stored = f.store.put_schedule(replaced, true).await.unwrap();
    assert_eq!(
        (stored.cron.as_str(), stored.created_at, stored.updated_at),
        ("*/5 * * * *", T0, T0 + 9)
    );
    f.store
        .put_schedule(schedule(&f, "hourly", T0), false)
        .await
        .unwrap();
    let names: Vec<_> = f
        .store
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["hourly", "nightly"]);
    f.store.delete_schedule("hourly").await.unwrap();
    assert!(matches!(
        f.store.delete_schedule("hourly").await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(f.store.schedule("hourly").await.unwrap(), None);
}

pub(crate) async fn a_fire_time_creates_one_job_and_moves_the_schedule_on(open: OpenFn) {
    let f = fixture(open).await;
    f.store
        .put_schedule(schedule(&f, "s", T0), false)
        .await
        .unwrap();
    let fired = f
        .store
        .fire_schedule(tick(&f, "s", T0, T0 + 60_000), T0 + 5)
        .await
        .unwrap();
    let Fired::Created(submitted) = fired else {
        panic!("{fired:?}");
    };
    assert_eq!(submitted.job.schedule.as_deref(), Some("s"));
    assert_eq!(submitted.job.run_at, T0);
    // The same fire time again (a second scheduler that read it too): lost.
    let again = f
        .store
        .fire_schedule(tick(&f, "s", T0, T0 + 60_000), T0 + 6)
        .await
        .unwrap();
    assert_eq!(again, Fired::Lost);
    let s = f.store.schedule("s").await.unwrap().unwrap();
    assert_eq!(
        (s.next_at, s.last_fired_at, s.last_job),
        (T0 + 60_000, Some(T0), Some(submitted.job.id))
    );
    assert_eq!(f.store.list(JobFilter::default()).await.unwrap().len(), 1);
    // Due: only what is not paused and at or before now.
    assert!(
        f.store
            .due_schedules(T0 + 59_999, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        f.store.due_schedules(T0 + 60_000, 10).await.unwrap().len(),
        1
    );
    assert_eq!(f.store.next_schedule_at().await.unwrap(), Some(T0 + 60_000));
}

pub(crate) async fn a_tick_without_a_job_advances_and_keeps_why(open: OpenFn) {
    let f = fixture(open).await;
    f.store
        .put_schedule(schedule(&f, "s", T0), false)
        .await
        .unwrap();
    let mut skipped = tick(&f, "s", T0, T0 + 60_000);
    skipped.job = None;
    skipped.error = Some("module `gone` not found".to_owned());
    assert_eq!(
        f.store.fire_schedule(skipped, T0).await.unwrap(),
        Fired::Advanced
    );
    let s = f.store.schedule("s").await.unwrap().unwrap();
    assert_eq!(s.next_at, T0 + 60_000);
    assert_eq!(s.last_fired_at, None);
    assert_eq!(s.last_error.as_deref(), Some("module `gone` not found"));
    assert!(f.store.list(JobFilter::default()).await.unwrap().is_empty());
}

pub(crate) async fn a_paused_schedule_fires_nothing_until_resumed(open: OpenFn) {
    let f = fixture(open).await;
    f.store
        .put_schedule(schedule(&f, "s", T0), false)
        .await
        .unwrap();
    let paused = f
        .store
        .set_schedule_paused("s", true, 0, T0 + 1)
        .await
        .unwrap();
    assert!(paused.paused);
    assert!(
        f.store
            .due_schedules(T0 + 10_000_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(f.store.next_schedule_at().await.unwrap(), None);
    let lost = f
        .store
        .fire_schedule(tick(&f, "s", T0, T0 + 1), T0 + 2)
        .await
        .unwrap();
    assert_eq!(lost, Fired::Lost, "a tick read before the pause");
    let resumed = f
        .store
        .set_schedule_paused("s", false, T0 + 7_200_000, T0 + 3)
        .await
        .unwrap();
    assert_eq!((resumed.paused, resumed.next_at), (false, T0 + 7_200_000));
    assert!(matches!(
        f.store.set_schedule_paused("nope", true, 0, T0).await,
        Err(Error::NotFound(_))
    ));
}

pub(crate) async fn racing_schedulers_create_one_job_per_fire_time(open: OpenFn) {
    let f = fixture(open).await;
    f.store
        .put_schedule(schedule(&f, "s", T0), false)
        .await
        .unwrap();
    let fires = (0..20).map(|_| {
        let store = f.store.clone();
        let tick = tick(&f, "s", T0, T0 + 60_000);
        tokio::spawn(async move { store.fire_schedule(tick, T0).await.unwrap() })
    });
    let mut created = 0;
    for fire in fires {
        if let Fired::Created(_) = fire.await.unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(f.store.list(JobFilter::default()).await.unwrap().len(), 1);
}
