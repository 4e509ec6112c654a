//! Retention: finished jobs past their state's age are deleted in
//! batches, with their attempts; what a waiting dependent, a unique key
//! or an unfinished workflow still needs stays.

use super::*;
use crate::job::{NewWorkflow, Unique};
use crate::store::{Pruned, Retention};

const DAY: i64 = 86_400_000;

fn retention() -> Retention {
    Retention {
        completed_ms: Some(7 * DAY),
        cancelled_ms: Some(3 * DAY),
        dead_letter_ms: Some(30 * DAY),
        unique_window_ms: 0,
        batch: 100,
    }
}

/// Submits `job` (due at once), claims it at `at` and records `decision`
/// for it then.
async fn finish(f: &Fixture, job: NewJob, decision: Decision, at: Millis) -> JobId {
    let id = f.submit(job).await.id;
    finish_claimed(f, id, decision, at).await;
    id
}

/// Claims job `id` (the only one due) at `at` and records `decision`.
async fn finish_claimed(f: &Fixture, id: JobId, decision: Decision, at: Millis) {
    let claimed = f.claim(1, at).await.remove(0);
    assert_eq!(claimed.job.id, id, "the only job due");
    let report = match decision {
        Decision::Complete => ran(Ok(())),
        _ => ran(Err("no")),
    };
    let recorded = f.record(&claimed, Some(report), decision, at, at).await;
    assert_eq!(recorded, Recorded::Applied);
}

async fn prune(f: &Fixture, retention: Retention, now: Millis) -> Pruned {
    f.store.prune_finished(retention, now).await.unwrap()
}

async fn exists(f: &Fixture, id: JobId) -> bool {
    f.store.job(id).await.unwrap().is_some()
}

pub(crate) async fn finished_jobs_past_their_age_are_deleted_with_their_attempts(open: OpenFn) {
    let f = fixture(open).await;
    let old = finish(&f, f.job(5, T0), Decision::Complete, T0).await;
    let recent = finish(&f, f.job(5, T0), Decision::Complete, T0 + 5 * DAY).await;
    let cancelled = f.submit(f.job(5, T0 + 100 * DAY)).await.id;
    f.store
        .cancel_unless_final(cancelled, T0 + 4 * DAY)
        .await
        .unwrap();
    let waiting = f.submit(f.job(5, T0 + 100 * DAY)).await.id;
    let now = T0 + 8 * DAY;
    assert_eq!(
        prune(&f, retention(), now).await,
        Pruned {
            jobs: 2,
            workflows: 0
        },
        "completed 8 days ago, cancelled 4 days ago"
    );
    assert!(!exists(&f, old).await && !exists(&f, cancelled).await);
    assert!(exists(&f, recent).await && exists(&f, waiting).await);
    assert_eq!(f.get(recent).await.attempts.len(), 1, "its attempt stays");
    assert_eq!(prune(&f, retention(), now).await, Pruned::default());
}

pub(crate) async fn the_dead_letter_is_kept_for_its_own_age_or_for_ever(open: OpenFn) {
    let f = fixture(open).await;
    let dead = finish(&f, f.job(5, T0), Decision::DeadLetter, T0).await;
    assert_eq!(prune(&f, retention(), T0 + 8 * DAY).await.jobs, 0);
    let never = Retention {
        dead_letter_ms: None,
        ..retention()
    };
    assert_eq!(prune(&f, never, T0 + 365 * DAY).await.jobs, 0);
    assert_eq!(prune(&f, retention(), T0 + 31 * DAY).await.jobs, 1);
    assert!(!exists(&f, dead).await);
}

pub(crate) async fn a_finished_prerequisite_stays_while_a_dependent_needs_it(open: OpenFn) {
    let f = fixture(open).await;
    let prereq = finish(&f, f.job(5, T0), Decision::Complete, T0).await;
    let dependent = f.submit(f.after(&[prereq], 5, T0)).await.id;
    assert_eq!(
        prune(&f, retention(), T0 + 8 * DAY).await.jobs,
        0,
        "its output is still to be given to the dependent"
    );
    finish_claimed(&f, dependent, Decision::Complete, T0 + 8 * DAY).await;
    assert_eq!(prune(&f, retention(), T0 + 16 * DAY).await.jobs, 2);
}

pub(crate) async fn a_workflow_is_deleted_whole_once_every_job_is_past_its_age(open: OpenFn) {
    let f = fixture(open).await;
    let node = |name: &str| NewJob {
        node: Some(name.to_owned()),
        ..f.job(5, T0)
    };
    let workflow = NewWorkflow {
        name: Some("pair".to_owned()),
        jobs: vec![node("a"), node("b")],
    };
    let (id, jobs) = f.store.insert_workflow(workflow, T0).await.unwrap();
    let early = f.claim(1, T0).await.remove(0);
    f.record(&early, Some(ran(Ok(()))), Decision::Complete, T0, T0)
        .await;
    let late = jobs.iter().find(|j| j.id != early.job.id).unwrap().id;
    finish_claimed(&f, late, Decision::Complete, T0 + 5 * DAY).await;
    assert_eq!(
        prune(&f, retention(), T0 + 8 * DAY).await.jobs,
        0,
        "one job of it is not past its age"
    );
    assert_eq!(
        prune(&f, retention(), T0 + 13 * DAY).await,
        Pruned {
            jobs: 2,
            workflows: 1
        }
    );
    assert!(f.store.workflow(id).await.unwrap().is_none());
}

pub(crate) async fn a_unique_job_is_kept_while_its_key_may_be_held(open: OpenFn) {
    let f = fixture(open).await;
    let unique = NewJob {
        unique: Some(Unique {
            key: "k".to_owned(),
            window_ms: 10 * DAY as u64,
        }),
        ..f.job(5, T0)
    };
    finish(&f, unique, Decision::Complete, T0).await;
    let longest = Retention {
        unique_window_ms: 10 * DAY,
        ..retention()
    };
    assert_eq!(prune(&f, longest, T0 + 8 * DAY).await.jobs, 0);
    assert_eq!(prune(&f, longest, T0 + 11 * DAY).await.jobs, 1);
}

pub(crate) async fn one_call_deletes_at_most_a_batch(open: OpenFn) {
    let f = fixture(open).await;
    for _ in 0..5 {
        finish(&f, f.job(5, T0), Decision::Complete, T0).await;
    }
    let small = Retention {
        batch: 2,
        ..retention()
    };
    let mut deleted = Vec::new();
    for _ in 0..4 {
        deleted.push(prune(&f, small, T0 + 8 * DAY).await.jobs);
    }
    assert_eq!(deleted, [2, 2, 1, 0]);
}
