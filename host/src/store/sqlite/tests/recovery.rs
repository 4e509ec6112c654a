//! Leaving the normal path: cancel, rescue, release at shutdown, requeue
//! and purge of dead letters.

use super::*;
use crate::job::JobState;
use crate::store::{AttemptReport, Error};

#[tokio::test]
async fn cancel_stops_waiting_and_running_jobs_only() {
    let f = fixture().await;
    let pending = f.submit(f.job(5, T0 + 1_000)).await.id;
    let running = f.submit(f.job(0, T0)).await.id;
    f.claim(1, T0).await;
    for id in [pending, running] {
        let job = f.store.cancel(id, T0 + 1).await.unwrap();
        assert_eq!(
            (job.state, job.finished_at),
            (JobState::Cancelled, Some(T0 + 1))
        );
    }
    let err = f.store.cancel(pending, T0 + 2).await.unwrap_err();
    match err {
        Error::Conflict(message) => {
            assert_eq!(
                message,
                format!("job {pending} is cancelled and cannot be cancelled")
            )
        }
        other => panic!("{other}"),
    }
    assert!(matches!(
        f.store.cancel(999, T0).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn rescue_turns_an_expired_lease_into_a_lost_attempt_and_a_retry() {
    let f = fixture().await;
    let id = f.submit(f.job(5, T0)).await.id;
    f.claim(1, T0).await;
    assert!(
        f.store.rescue(T0 + LEASE_MS).await.unwrap().is_empty(),
        "not yet expired"
    );
    let now = T0 + LEASE_MS + 1;
    assert_eq!(f.store.rescue(now).await.unwrap(), [id]);
    let detail = f.get(id).await;
    assert_eq!(detail.job.state, JobState::Retrying);
    assert_eq!(
        detail.job.run_at,
        now + 1_000,
        "the policy's fixed one-second backoff"
    );
    assert_eq!(detail.attempts.len(), 1);
    let attempt = &detail.attempts[0];
    assert_eq!(
        (attempt.attempt, attempt.started_at, attempt.finished_at),
        (1, T0, now)
    );
    let AttemptReport::Lost {
        status,
        owner,
        message,
    } = &attempt.report
    else {
        panic!("{:?}", attempt.report);
    };
    assert_eq!(
        (status.as_str(), owner.as_deref()),
        ("lost", Some("worker-1"))
    );
    assert_eq!(detail.job.last_error.as_ref(), Some(message));
    assert!(
        f.store.rescue(now + 1).await.unwrap().is_empty(),
        "rescued once"
    );
}

#[tokio::test]
async fn rescue_fails_a_job_out_of_attempts_or_without_retries() {
    let f = fixture().await;
    let mut last_try = f.job(5, T0);
    last_try.max_attempts = 1;
    let last_try = f.submit(last_try).await.id;
    let mut never = f.job(5, T0);
    never.retry.backoff = Backoff::None;
    let never = f.submit(never).await.id;
    f.claim(2, T0).await;
    let now = T0 + LEASE_MS + 1;
    assert_eq!(f.store.rescue(now).await.unwrap(), [last_try, never]);
    for id in [last_try, never] {
        let detail = f.get(id).await;
        assert_eq!(
            (detail.job.state, detail.job.finished_at),
            (JobState::Failed, Some(now))
        );
        assert_eq!(detail.attempts.len(), 1);
    }
}

#[tokio::test]
async fn rescue_all_takes_every_running_job_without_waiting_for_its_lease() {
    let f = fixture().await;
    let first = f.submit(f.job(5, T0)).await.id;
    let last_try = {
        let mut job = f.job(5, T0);
        job.max_attempts = 1;
        f.submit(job).await.id
    };
    let waiting = f.submit(f.job(5, T0 + 60_000)).await.id;
    assert_eq!(f.claim(5, T0).await.len(), 2);
    // Leases run until T0 + LEASE_MS: a plain rescue takes nothing yet.
    assert!(f.store.rescue(T0 + 1).await.unwrap().is_empty());
    let mut rescued = f.store.rescue_all(T0 + 1).await.unwrap();
    rescued.sort_unstable();
    assert_eq!(rescued, [first, last_try]);
    let first = f.get(first).await;
    assert_eq!(first.job.state, JobState::Retrying, "{first:?}");
    assert_eq!(first.job.attempt, 1, "the lost attempt counts");
    let lost = serde_json::to_value(&first.attempts[0].report).unwrap();
    assert_eq!(lost["status"], "lost");
    assert!(
        lost["message"].as_str().unwrap().contains("stopped"),
        "{lost}"
    );
    assert_eq!(f.get(last_try).await.job.state, JobState::Failed);
    assert_eq!(f.get(waiting).await.job.state, JobState::Pending);
    assert!(
        f.store.rescue_all(T0 + 2).await.unwrap().is_empty(),
        "nothing runs"
    );
}

#[tokio::test]
async fn a_data_directory_is_open_in_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open(StoreConfig::new(dir.path())).unwrap();
    let Err(error) = SqliteStore::open(StoreConfig::new(dir.path())) else {
        panic!("a second store opened the same directory");
    };
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    assert!(error.to_string().contains("in use"), "{error}");
    first.close().await;
    drop(first);
    SqliteStore::open(StoreConfig::new(dir.path())).expect("free again once the first is gone");
}

/// A job that failed all of its `max_attempts` (3). Priority 0, so that
/// it is claimed before the test's other jobs.
async fn dead_letter(f: &Fixture) -> JobId {
    let id = f.submit(f.job(0, T0)).await.id;
    for n in 0..3 {
        let claimed = f.claim(1, T0 + n).await.remove(0);
        let next = if n < 2 {
            Next::Retry {
                run_at: T0 + n + 1,
                limits: Limits::default(),
            }
        } else {
            Next::Fail
        };
        f.record(&claimed, Some(report(Err("no"))), next, T0 + n)
            .await;
    }
    id
}

#[tokio::test]
async fn requeue_gives_a_failed_job_a_new_budget_and_keeps_its_history() {
    let f = fixture().await;
    let id = dead_letter(&f).await;
    let job = f.store.requeue(id, T0 + 100).await.unwrap();
    assert_eq!(
        (job.state, job.attempt, job.run_at),
        (JobState::Pending, 0, T0 + 100)
    );
    assert_eq!(
        (job.finished_at, job.last_error.as_deref()),
        (None, Some("no"))
    );
    let claimed = f.claim(1, T0 + 100).await.remove(0);
    assert_eq!(claimed.job.attempt, 1);
    let done = Next::Complete { output: Vec::new() };
    f.record(&claimed, Some(report(Ok(""))), done, T0 + 101)
        .await;
    let detail = f.get(id).await;
    assert_eq!(detail.job.state, JobState::Completed);
    let numbers: Vec<_> = detail.attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(
        numbers,
        [1, 2, 3, 4],
        "attempt numbers continue after a requeue"
    );
}

#[tokio::test]
async fn requeue_refuses_jobs_that_are_not_failed() {
    let f = fixture().await;
    let id = f.submit(f.job(5, T0)).await.id;
    let err = f.store.requeue(id, T0).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(m) if m.contains("pending")),
        "{err}"
    );
    assert!(matches!(
        f.store.requeue(999, T0).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn purge_deletes_failed_jobs_and_their_attempts_only() {
    let f = fixture().await;
    let first = dead_letter(&f).await;
    let second = dead_letter(&f).await;
    let third = dead_letter(&f).await;
    let alive = f.submit(f.job(5, T0)).await.id;
    assert_eq!(f.store.purge(vec![first, alive]).await.unwrap(), 1);
    assert!(f.store.job(first).await.unwrap().is_none());
    assert_eq!(f.store.purge(Vec::new()).await.unwrap(), 2);
    for id in [second, third] {
        assert!(f.store.job(id).await.unwrap().is_none());
    }
    assert!(f.store.job(alive).await.unwrap().is_some());
    let conn = rusqlite::Connection::open(f.dir.path().join("wasmjob.db")).unwrap();
    let attempts: i64 = conn
        .query_row("SELECT count(*) FROM attempts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(attempts, 0);
    // Ids are never reused, even after the newest job was purged.
    let newest = dead_letter(&f).await;
    assert_eq!(f.store.purge(vec![newest]).await.unwrap(), 1);
    assert!(f.submit(f.job(5, T0)).await.id > newest);
}
