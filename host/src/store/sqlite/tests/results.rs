//! Recording attempt results: every `Next`, and stale leases.

use super::*;
use crate::job::JobState;
use crate::store::AttemptReport;

#[tokio::test]
async fn complete_stores_the_output_and_the_attempt() {
    let f = fixture().await;
    let id = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0 + 10).await.remove(0);
    let next = Next::Complete {
        output: b"42".to_vec(),
    };
    let recorded = f
        .record(&claimed, Some(report(Ok("42"))), next, T0 + 20)
        .await;
    assert_eq!(recorded, Recorded::Applied);
    let detail = f.get(id).await;
    assert_eq!(detail.job.state, JobState::Completed);
    assert_eq!(detail.job.finished_at, Some(T0 + 20));
    assert_eq!(detail.output.as_deref(), Some(&b"42"[..]));
    assert_eq!(detail.attempts.len(), 1);
    let attempt = &detail.attempts[0];
    assert_eq!(
        (attempt.attempt, attempt.started_at, attempt.finished_at),
        (1, T0 + 10, T0 + 20)
    );
    assert_eq!(
        attempt.report,
        AttemptReport::Engine(Box::new(report(Ok("42"))))
    );
}

#[tokio::test]
async fn retry_waits_with_new_limits_and_the_failure_message() {
    let f = fixture().await;
    let id = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    let limits = Limits {
        fuel: 123,
        ..Limits::default()
    };
    let next = Next::Retry {
        run_at: T0 + 5_000,
        limits,
    };
    f.record(&claimed, Some(report(Err("boom"))), next, T0 + 1)
        .await;
    let job = f.get(id).await.job;
    assert_eq!(job.state, JobState::Retrying);
    assert_eq!(
        (job.run_at, job.limits, job.attempt),
        (T0 + 5_000, limits, 1)
    );
    assert_eq!(job.last_error.as_deref(), Some("boom"));
    assert!(f.claim(1, T0 + 4_999).await.is_empty());
    let again = f.claim(1, T0 + 5_000).await.remove(0);
    assert_eq!((again.job.attempt, again.job.limits), (2, limits));
    assert_ne!(again.token, claimed.token);
}

#[tokio::test]
async fn fail_dead_letters_the_job() {
    let f = fixture().await;
    let id = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    f.record(&claimed, Some(report(Err("fatal"))), Next::Fail, T0 + 1)
        .await;
    let detail = f.get(id).await;
    assert_eq!(detail.job.state, JobState::Failed);
    assert_eq!(detail.job.finished_at, Some(T0 + 1));
    assert_eq!(detail.job.last_error.as_deref(), Some("fatal"));
    assert_eq!(detail.attempts.len(), 1);
    assert!(f.claim(1, T0 + 10_000).await.is_empty());
}

#[tokio::test]
async fn cancelled_ends_the_job() {
    let f = fixture().await;
    let id = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    f.record(
        &claimed,
        Some(report(Err("stopped"))),
        Next::Cancelled,
        T0 + 1,
    )
    .await;
    let detail = f.get(id).await;
    assert_eq!(detail.job.state, JobState::Cancelled);
    assert_eq!(detail.attempts.len(), 1);
}

#[tokio::test]
async fn release_gives_the_attempt_back_without_a_report() {
    let f = fixture().await;
    let id = f.submit(f.job(5, T0)).await.id;
    let first = f.claim(1, T0).await.remove(0);
    f.record(&first, None, Next::Release, T0 + 1).await;
    let job = f.get(id).await.job;
    assert_eq!(
        (job.state, job.attempt, job.started_at),
        (JobState::Pending, 0, None)
    );
    // A job that already failed once goes back to retrying.
    let first = f.claim(1, T0 + 2).await.remove(0);
    assert_eq!(first.job.attempt, 1);
    let next = Next::Retry {
        run_at: T0 + 3,
        limits: Limits::default(),
    };
    f.record(&first, Some(report(Err("once"))), next, T0 + 3)
        .await;
    let second = f.claim(1, T0 + 3).await.remove(0);
    assert_eq!(second.job.attempt, 2);
    f.record(&second, Some(report(Err("ignored"))), Next::Release, T0 + 4)
        .await;
    let detail = f.get(id).await;
    assert_eq!(
        (detail.job.state, detail.job.attempt),
        (JobState::Retrying, 1)
    );
    assert_eq!(detail.attempts.len(), 1, "a release keeps no report");
    // The next claim is attempt 2 again and its report is numbered 2.
    let again = f.claim(1, T0 + 5).await.remove(0);
    assert_eq!(again.job.attempt, 2);
    let done = Next::Complete { output: Vec::new() };
    f.record(&again, Some(report(Ok(""))), done, T0 + 6).await;
    let numbers: Vec<_> = f.get(id).await.attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [1, 2]);
}

#[tokio::test]
async fn a_result_after_cancel_files_its_report_and_nothing_else() {
    let f = fixture().await;
    let id = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    let cancelled = f.store.cancel(id, T0 + 1).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    let next = Next::Complete {
        output: b"late".to_vec(),
    };
    let recorded = f
        .record(&claimed, Some(report(Ok("late"))), next.clone(), T0 + 2)
        .await;
    assert_eq!(recorded, Recorded::Applied);
    let detail = f.get(id).await;
    assert_eq!(detail.job.state, JobState::Cancelled, "cancel won");
    assert_eq!(detail.job.finished_at, Some(T0 + 1));
    assert_eq!(detail.output, None);
    assert_eq!(detail.attempts.len(), 1, "the attempt's report is kept");
    assert_eq!(detail.attempts[0].finished_at, T0 + 2);
    // Once: the same lease reporting again is stale.
    let again = f
        .record(&claimed, Some(report(Ok("late"))), next, T0 + 3)
        .await;
    assert_eq!(again, Recorded::Stale);
    assert_eq!(f.get(id).await.attempts.len(), 1);
}

#[tokio::test]
async fn a_result_after_rescue_is_stale_even_once_reclaimed() {
    let f = fixture().await;
    let id = f.submit(f.job(5, T0)).await.id;
    let first = f.claim(1, T0).await.remove(0);
    assert_eq!(f.store.rescue(T0 + LEASE_MS + 1).await.unwrap(), [id]);
    let second = f.claim(1, T0 + LEASE_MS + 1_001).await.remove(0);
    let next = Next::Complete { output: Vec::new() };
    let recorded = f
        .record(
            &first,
            Some(report(Ok(""))),
            next.clone(),
            T0 + LEASE_MS + 1_002,
        )
        .await;
    assert_eq!(recorded, Recorded::Stale);
    assert_eq!(f.get(id).await.job.state, JobState::Running);
    let recorded = f
        .record(&second, Some(report(Ok(""))), next, T0 + LEASE_MS + 1_003)
        .await;
    assert_eq!(recorded, Recorded::Applied);
}

#[tokio::test]
async fn one_call_applies_each_result_on_its_own() {
    let f = fixture().await;
    f.submit(f.job(5, T0)).await;
    f.submit(f.job(5, T0)).await;
    let claimed = f.claim(2, T0).await;
    let done = |c: &Claimed| AttemptResult {
        lease: lease(c),
        report: Some(report(Ok("ok"))),
        next: Next::Complete {
            output: b"ok".to_vec(),
        },
        finished_at: T0 + 1,
    };
    // The same lease twice: the second is stale once the first applied.
    let results = vec![done(&claimed[0]), done(&claimed[1]), done(&claimed[0])];
    let recorded = f.store.record(results).await.unwrap();
    assert_eq!(
        recorded,
        [Recorded::Applied, Recorded::Applied, Recorded::Stale]
    );
}
