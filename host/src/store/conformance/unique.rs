//! Unique jobs: a key is held by its queue's job while that job is not
//! final, and for its window after it ends; a held key answers the holder
//! instead of storing another job, however many submissions race.

use super::*;
use crate::job::{JobState, Submitted, Unique};

/// A job of `queue` with unique key `key` and window `window_ms`.
fn keyed(f: &Fixture, queue: &str, key: &str, window_ms: u64) -> NewJob {
    NewJob {
        unique: Some(Unique {
            key: key.to_owned(),
            window_ms,
        }),
        ..f.job_in(queue, 5, T0)
    }
}

async fn insert(f: &Fixture, job: NewJob, now: Millis) -> Submitted {
    f.store.insert_jobs(vec![job], now).await.unwrap().remove(0)
}

pub(crate) async fn a_held_key_answers_the_holder_until_it_is_final(open: OpenFn) {
    let f = fixture(open).await;
    let first = insert(&f, keyed(&f, "default", "report:7", 0), T0).await;
    assert!(first.created);
    assert_eq!(first.job.unique_key.as_deref(), Some("report:7"));
    // Waiting, then running, then retrying: the key stays held.
    let again = insert(&f, keyed(&f, "default", "report:7", 0), T0 + 1).await;
    assert_eq!((again.created, again.job.id), (false, first.job.id));
    let claimed = f.claim(1, T0).await.remove(0);
    let running = insert(&f, keyed(&f, "default", "report:7", 0), T0 + 2).await;
    assert_eq!(
        (running.created, running.job.state),
        (false, JobState::Running)
    );
    let retry_at = T0 + 1_000;
    f.record(
        &claimed,
        Some(ran(Err("boom"))),
        Decision::Retry {
            run_at: retry_at,
            limits: Limits::default(),
        },
        T0,
        T0 + 3,
    )
    .await;
    let retrying = insert(&f, keyed(&f, "default", "report:7", 0), T0 + 4).await;
    assert_eq!(
        (retrying.created, retrying.job.state),
        (false, JobState::Retrying)
    );
    // Once final, without a window, the key is free again.
    let claimed = f.claim(1, retry_at).await.remove(0);
    f.record(
        &claimed,
        Some(ran(Ok(()))),
        Decision::Complete,
        retry_at,
        retry_at + 1,
    )
    .await;
    let next = insert(&f, keyed(&f, "default", "report:7", 0), retry_at + 1).await;
    assert!(next.created, "a final job without a window holds nothing");
    assert_ne!(next.job.id, first.job.id);
    // An unkeyed job or another key never collides.
    assert!(
        insert(&f, keyed(&f, "default", "report:8", 0), retry_at + 1)
            .await
            .created
    );
    assert!(insert(&f, f.job(5, T0), retry_at + 1).await.created);
}

pub(crate) async fn a_window_holds_the_key_after_the_job_ends(open: OpenFn) {
    let f = fixture(open).await;
    let first = insert(&f, keyed(&f, "default", "k", 60_000), T0).await;
    let claimed = f.claim(1, T0).await.remove(0);
    let ended = T0 + 10;
    f.record(&claimed, Some(ran(Ok(()))), Decision::Complete, T0, ended)
        .await;
    // The window counts from when the job ended.
    let within = insert(&f, keyed(&f, "default", "k", 60_000), ended + 59_999).await;
    assert_eq!((within.created, within.job.id), (false, first.job.id));
    assert_eq!(within.job.state, JobState::Completed);
    // Each submission's own window decides.
    assert!(
        insert(&f, keyed(&f, "default", "k", 5_000), ended + 5_001)
            .await
            .created,
        "a shorter window has passed"
    );
}

pub(crate) async fn a_cancelled_or_dead_job_holds_its_key_for_its_window_only(open: OpenFn) {
    let f = fixture(open).await;
    let cancelled = insert(&f, keyed(&f, "default", "c", 0), T0).await.job;
    f.store
        .cancel_unless_final(cancelled.id, T0 + 1)
        .await
        .unwrap();
    assert!(
        insert(&f, keyed(&f, "default", "c", 0), T0 + 2)
            .await
            .created
    );

    let dead = insert(&f, keyed(&f, "default", "d", 1_000), T0).await.job;
    let claimed = f.claim(10, T0).await;
    let claimed = claimed.iter().find(|c| c.job.id == dead.id).unwrap();
    f.record(
        claimed,
        Some(ran(Err("no"))),
        Decision::DeadLetter,
        T0,
        T0 + 5,
    )
    .await;
    let held = insert(&f, keyed(&f, "default", "d", 1_000), T0 + 1_004).await;
    assert_eq!((held.created, held.job.state), (false, JobState::Failed));
    assert!(
        insert(&f, keyed(&f, "default", "d", 1_000), T0 + 1_005)
            .await
            .created
    );
}

pub(crate) async fn keys_are_per_queue(open: OpenFn) {
    let f = fixture(open).await;
    let a = insert(&f, keyed(&f, "a", "same", 0), T0).await;
    let b = insert(&f, keyed(&f, "b", "same", 0), T0).await;
    assert!(a.created && b.created);
    assert_ne!(a.job.id, b.job.id);
}

pub(crate) async fn one_batch_stores_a_key_once_and_answers_the_rest(open: OpenFn) {
    let f = fixture(open).await;
    let batch = vec![
        keyed(&f, "default", "x", 0),
        f.job(5, T0),
        keyed(&f, "default", "x", 0),
    ];
    let out = f.store.insert_jobs(batch, T0).await.unwrap();
    let created: Vec<_> = out.iter().map(|s| s.created).collect();
    assert_eq!(created, [true, true, false]);
    assert_eq!(out[2].job.id, out[0].job.id);
    assert_eq!(pending(&f).await, 2);
}

pub(crate) async fn racing_submissions_of_one_key_store_one_job(open: OpenFn) {
    let f = fixture(open).await;
    let inserts = (0..50).map(|_| {
        let store = f.store.clone();
        let job = keyed(&f, "default", "race", 0);
        tokio::spawn(async move { store.insert_jobs(vec![job], T0).await.unwrap().remove(0) })
    });
    let mut out = Vec::new();
    for insert in inserts {
        out.push(insert.await.unwrap());
    }
    assert_eq!(out.iter().filter(|s| s.created).count(), 1);
    let id = out[0].job.id;
    assert!(out.iter().all(|s| s.job.id == id), "all answer one job");
    assert_eq!(pending(&f).await, 1);
}

async fn pending(f: &Fixture) -> u64 {
    let counts = f.store.counts().await.unwrap();
    counts
        .iter()
        .find(|(state, _)| *state == JobState::Pending)
        .map_or(0, |(_, n)| *n)
}
