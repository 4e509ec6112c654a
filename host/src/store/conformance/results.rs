//! Recording attempt outcomes: every decision, host-made reports, stale
//! leases, and outcomes that cannot be stored.

use super::*;
use crate::job::JobState;
use crate::store::Error;

pub(crate) async fn complete_stores_the_output_once_and_the_attempt(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0 + 10).await.remove(0);
    let recorded = f
        .record(
            &claimed,
            Some(ran(Ok(()))),
            Decision::Complete,
            T0 + 10,
            T0 + 20,
        )
        .await;
    assert_eq!(recorded, Recorded::Applied);
    let detail = f.get(id).await;
    assert_eq!(detail.job.state, JobState::Completed);
    assert_eq!(detail.job.finished_at, Some(T0 + 20));
    assert_eq!(detail.output.unwrap().as_str(), r#""done""#);
    assert_eq!(detail.attempts.len(), 1);
    let attempt = &detail.attempts[0];
    assert_eq!(
        (attempt.number, attempt.started_at, attempt.finished_at),
        (1, T0 + 10, T0 + 20)
    );
    assert_eq!(
        attempt.report,
        ran(Ok(())),
        "the report, without the output"
    );
    assert_eq!(detail.job.last_error, None);
}

pub(crate) async fn the_attempt_records_when_it_started_not_when_it_was_claimed(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    // Claimed at T0, held in a worker's buffer, started at T0 + 40.
    let claimed = f.claim(1, T0).await.remove(0);
    f.record(
        &claimed,
        Some(ran(Ok(()))),
        Decision::Complete,
        T0 + 40,
        T0 + 45,
    )
    .await;
    let detail = f.get(id).await;
    assert_eq!(detail.attempts[0].started_at, T0 + 40);
    assert_eq!(detail.job.started_at, Some(T0 + 40));
}

pub(crate) async fn retry_waits_with_new_limits_and_the_failure_message(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    let limits = Limits {
        fuel: 123,
        ..Limits::default()
    };
    let retry = Decision::Retry {
        run_at: T0 + 5_000,
        limits,
    };
    f.record(&claimed, Some(ran(Err("boom"))), retry, T0, T0 + 1)
        .await;
    let job = f.get(id).await.job;
    assert_eq!(job.state, JobState::Retrying);
    assert_eq!(
        (job.run_at, job.limits, job.attempt),
        (T0 + 5_000, limits, 1)
    );
    assert_eq!(job.retry, f.job(5, T0).retry, "the policy is unchanged");
    assert_eq!(job.last_error.as_deref(), Some("boom"));
    assert!(f.claim(1, T0 + 4_999).await.is_empty());
    let again = f.claim(1, T0 + 5_000).await.remove(0);
    assert_eq!((again.job.attempt, again.job.limits), (2, limits));
    assert_ne!(again.token, claimed.token);
}

pub(crate) async fn dead_letter_ends_the_job(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    f.record(
        &claimed,
        Some(ran(Err("fatal"))),
        Decision::DeadLetter,
        T0,
        T0 + 1,
    )
    .await;
    let detail = f.get(id).await;
    assert_eq!(detail.job.state, JobState::Failed);
    assert_eq!(detail.job.finished_at, Some(T0 + 1));
    assert_eq!(detail.job.last_error.as_deref(), Some("fatal"));
    assert_eq!(detail.attempts.len(), 1);
    assert!(f.claim(1, T0 + 10_000).await.is_empty());
}

pub(crate) async fn cancelled_ends_the_job(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    f.record(
        &claimed,
        Some(ran(Err("stopped"))),
        Decision::Cancelled,
        T0,
        T0 + 1,
    )
    .await;
    let detail = f.get(id).await;
    assert_eq!(detail.job.state, JobState::Cancelled);
    assert_eq!(detail.job.finished_at, Some(T0 + 1));
    assert_eq!(detail.attempts.len(), 1);
}

pub(crate) async fn a_host_made_report_is_kept_like_an_engine_report(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    let report = AttemptReport::HostFailed {
        message: "module x could not be loaded: compile timed out".to_owned(),
        retryable: true,
    };
    let retry = Decision::Retry {
        run_at: T0 + 1_000,
        limits: Limits::default(),
    };
    f.record(&claimed, Some(report.clone()), retry, T0, T0 + 1)
        .await;
    let detail = f.get(id).await;
    assert_eq!(detail.job.state, JobState::Retrying);
    assert_eq!(detail.attempts[0].report, report);
    assert_eq!(
        detail.job.last_error.as_deref(),
        Some("module x could not be loaded: compile timed out")
    );
}

pub(crate) async fn release_gives_the_attempt_back_without_a_record(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    let first = f.claim(1, T0).await.remove(0);
    f.record(&first, None, Decision::Release, T0, T0 + 1).await;
    let job = f.get(id).await.job;
    assert_eq!(
        (job.state, job.attempt, job.started_at, job.run_at),
        (JobState::Pending, 0, None, T0)
    );
    // A job that already failed once goes back to retrying.
    let first = f.claim(1, T0 + 2).await.remove(0);
    assert_eq!(first.job.attempt, 1);
    let retry = Decision::Retry {
        run_at: T0 + 3,
        limits: Limits::default(),
    };
    f.record(&first, Some(ran(Err("once"))), retry, T0 + 2, T0 + 3)
        .await;
    let second = f.claim(1, T0 + 3).await.remove(0);
    assert_eq!(second.job.attempt, 2);
    f.record(&second, None, Decision::Release, T0 + 3, T0 + 4)
        .await;
    let detail = f.get(id).await;
    assert_eq!(
        (detail.job.state, detail.job.attempt),
        (JobState::Retrying, 1)
    );
    assert_eq!(detail.attempts.len(), 1, "a release keeps no record");
    // The next claim is attempt 2 again and its record is numbered 2.
    let again = f.claim(1, T0 + 5).await.remove(0);
    assert_eq!(again.job.attempt, 2);
    f.record(
        &again,
        Some(ran(Ok(()))),
        Decision::Complete,
        T0 + 5,
        T0 + 6,
    )
    .await;
    let numbers: Vec<_> = f.get(id).await.attempts.iter().map(|a| a.number).collect();
    assert_eq!(numbers, [1, 2]);
}

pub(crate) async fn an_outcome_after_cancel_files_its_attempt_and_nothing_else(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    let cancelled = f.store.cancel_unless_final(id, T0 + 1).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    let recorded = f
        .record(&claimed, Some(ran(Ok(()))), Decision::Complete, T0, T0 + 2)
        .await;
    assert_eq!(recorded, Recorded::Applied);
    let detail = f.get(id).await;
    assert_eq!(detail.job.state, JobState::Cancelled, "cancel won");
    assert_eq!(detail.job.finished_at, Some(T0 + 1));
    assert_eq!(detail.output, None);
    assert_eq!(detail.attempts.len(), 1, "the attempt's record is kept");
    assert_eq!(detail.attempts[0].finished_at, T0 + 2);
    // Once: the same lease reporting again is stale.
    let again = f
        .record(&claimed, Some(ran(Ok(()))), Decision::Complete, T0, T0 + 3)
        .await;
    assert_eq!(again, Recorded::Stale);
    assert_eq!(f.get(id).await.attempts.len(), 1);
}

pub(crate) async fn an_outcome_after_rescue_is_stale_even_once_reclaimed(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    let first = f.claim(1, T0).await.remove(0);
    let now = T0 + LEASE_MS + 1;
    let lost = outcome(
        &first,
        Some(AttemptReport::Lost {
            owner: Some("worker-1".to_owned()),
            message: "lost".to_owned(),
        }),
        Decision::Retry {
            run_at: now,
            limits: Limits::default(),
        },
        T0,
        now,
    );
    let rescued = f.store.rescue_if_expired(vec![lost], now).await.unwrap();
    assert_eq!(rescued[0].as_ref().unwrap(), &Recorded::Applied);
    let second = f.claim(1, now).await.remove(0);
    let recorded = f
        .record(&first, Some(ran(Ok(()))), Decision::Complete, T0, now + 1)
        .await;
    assert_eq!(recorded, Recorded::Stale);
    assert_eq!(f.get(id).await.job.state, JobState::Running);
    let recorded = f
        .record(&second, Some(ran(Ok(()))), Decision::Complete, now, now + 2)
        .await;
    assert_eq!(recorded, Recorded::Applied);
}

pub(crate) async fn one_call_applies_each_outcome_on_its_own(open: OpenFn) {
    let f = fixture(open).await;
    f.submit(f.job(5, T0)).await;
    f.submit(f.job(5, T0)).await;
    let claimed = f.claim(2, T0).await;
    let done = |c: &Claimed| outcome(c, Some(ran(Ok(()))), Decision::Complete, T0, T0 + 1);
    // The same lease twice: the second is stale once the first applied.
    let outcomes = vec![done(&claimed[0]), done(&claimed[1]), done(&claimed[0])];
    let recorded: Vec<_> = f
        .store
        .record_if_leased(outcomes)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        recorded,
        [Recorded::Applied, Recorded::Applied, Recorded::Stale]
    );
    // The stale one left no trace: one attempt recorded per job.
    for c in &claimed {
        assert_eq!(f.get(c.job.id).await.attempts.len(), 1);
    }
}

pub(crate) async fn an_outcome_too_large_to_store_is_refused_alone(open: OpenFn) {
    let f = Fixture::new(open(Options::small()).await).await;
    for _ in 0..3 {
        f.submit(f.job(5, T0)).await;
    }
    let claimed = f.claim(3, T0).await;
    let done = |c: &Claimed| outcome(c, Some(ran(Ok(()))), Decision::Complete, T0, T0 + 1);
    let mut big = done(&claimed[1]);
    let text = format!("\"{}\"", "x".repeat(SMALL_VALUE_BYTES + 1));
    big.output = Some(Json::parse_str(&text).unwrap());
    let outcomes = vec![done(&claimed[0]), big, done(&claimed[2])];
    let results = f.store.record_if_leased(outcomes).await.unwrap();
    assert!(matches!(results[0], Ok(Recorded::Applied)), "{results:?}");
    assert!(matches!(results[1], Err(Error::TooLarge(_))), "{results:?}");
    assert!(matches!(results[2], Ok(Recorded::Applied)), "{results:?}");
    for (c, state) in
        claimed
            .iter()
            .zip([JobState::Completed, JobState::Running, JobState::Completed])
    {
        let detail = f.get(c.job.id).await;
        assert_eq!(detail.job.state, state, "job {}", c.job.id);
    }
    let refused = f.get(claimed[1].job.id).await;
    assert!(
        refused.attempts.is_empty(),
        "nothing of the refused outcome"
    );
    // Its lease is still held: a smaller outcome can still be written.
    let failed = AttemptReport::HostFailed {
        message: "too large".to_owned(),
        retryable: false,
    };
    let recorded = f
        .record(&claimed[1], Some(failed), Decision::DeadLetter, T0, T0 + 2)
        .await;
    assert_eq!(recorded, Recorded::Applied);
    assert_eq!(f.get(claimed[1].job.id).await.job.state, JobState::Failed);
}
