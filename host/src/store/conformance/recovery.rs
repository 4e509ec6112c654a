//! Leaving the normal path: cancel, rescue of lost attempts, requeue and
//! purge of dead letters.

use super::*;
use crate::job::JobState;
use crate::store::{Error, LeaseFilter, LeasedJob};

pub(crate) async fn cancel_stops_waiting_and_running_jobs_only(open: OpenFn) {
    let f = fixture(open).await;
    let pending = f.submit(f.job(5, T0 + 1_000)).await.id;
    let running = f.submit(f.job(0, T0)).await.id;
    f.claim(1, T0).await;
    for id in [pending, running] {
        let job = f.store.cancel_unless_final(id, T0 + 1).await.unwrap();
        assert_eq!(
            (job.state, job.finished_at),
            (JobState::Cancelled, Some(T0 + 1))
        );
    }
    let err = f
        .store
        .cancel_unless_final(pending, T0 + 2)
        .await
        .unwrap_err();
    match err {
        Error::Conflict(message) => assert_eq!(
            message,
            format!("job {pending} is cancelled and cannot be cancelled")
        ),
        other => panic!("{other}"),
    }
    let missing = f.store.cancel_unless_final(999, T0).await.unwrap_err();
    assert_eq!(missing.to_string(), "job 999 not found");
}

fn ids(leased: &[LeasedJob]) -> Vec<JobId> {
    leased.iter().map(|l| l.job.id).collect()
}

pub(crate) async fn leased_jobs_lists_running_jobs_or_those_whose_lease_expired(open: OpenFn) {
    let f = fixture(open).await;
    let early = f.submit(f.job(0, T0)).await.id;
    f.claim(1, T0).await;
    let late = f.submit(f.job(0, T0)).await.id;
    f.claim(1, T0 + 100).await;
    f.submit(f.job(5, T0 + 60_000)).await;
    let all = f.store.leased_jobs(LeaseFilter::All, 10).await.unwrap();
    assert_eq!(ids(&all), [early, late]);
    assert_eq!(
        (
            all[0].owner.as_deref(),
            all[0].claimed_at,
            all[0].expires_at
        ),
        (Some("worker-1"), T0, T0 + LEASE_MS)
    );
    assert_eq!(all[0].job.attempt, 1);
    let expired = |at| LeaseFilter::ExpiredBefore(at);
    let listed = f
        .store
        .leased_jobs(expired(T0 + LEASE_MS), 10)
        .await
        .unwrap();
    assert!(listed.is_empty(), "a lease expiring now has not expired");
    let listed = f
        .store
        .leased_jobs(expired(T0 + LEASE_MS + 1), 10)
        .await
        .unwrap();
    assert_eq!(ids(&listed), [early]);
    let listed = f
        .store
        .leased_jobs(expired(T0 + LEASE_MS + 101), 1)
        .await
        .unwrap();
    assert_eq!(ids(&listed), [early], "at most `limit`, by id");
}

pub(crate) async fn leased_jobs_lists_one_owners_leases_expired_or_not(open: OpenFn) {
    let f = fixture(open).await;
    let mine = f.submit(f.job(0, T0)).await.id;
    f.claim(1, T0).await;
    let theirs = f.submit(f.job(0, T0)).await.id;
    let request = ClaimRequest {
        owner: "worker-2".to_owned(),
        limit: 1,
        lease_ms: LEASE_MS,
        caps: Default::default(),
    };
    assert_eq!(f.store.claim_due(request, T0).await.unwrap().len(), 1);
    let owned = |owner: &str| LeaseFilter::OwnedBy(owner.to_owned());
    let listed = f.store.leased_jobs(owned("worker-1"), 10).await.unwrap();
    assert_eq!(ids(&listed), [mine], "a live lease of the owner is listed");
    let listed = f.store.leased_jobs(owned("worker-2"), 10).await.unwrap();
    assert_eq!(ids(&listed), [theirs]);
    assert!(
        f.store
            .leased_jobs(owned("worker-3"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Once finished, a job is no longer anyone's lease.
    f.store.cancel_unless_final(mine, T0 + 1).await.unwrap();
    assert!(
        f.store
            .leased_jobs(owned("worker-1"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

fn lost(leased: &LeasedJob, decision: Decision, now: Millis) -> Outcome {
    Outcome {
        lease: leased.lease.clone(),
        decision,
        attempt: Some(AttemptRecord {
            started_at: leased.claimed_at,
            report: AttemptReport::Lost {
                owner: leased.owner.clone(),
                message: format!("attempt {} was lost", leased.job.attempt),
            },
        }),
        output: None,
        follow_ups: Vec::new(),
        at: now,
    }
}

pub(crate) async fn rescue_applies_only_while_the_lease_is_still_expired(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    let now = T0 + LEASE_MS + 1;
    let listed = f
        .store
        .leased_jobs(LeaseFilter::ExpiredBefore(now), 10)
        .await
        .unwrap();
    let retry = Decision::Retry {
        run_at: now + 1_000,
        limits: Limits::default(),
    };
    // The worker renewed the lease after the rescuer listed it.
    f.store
        .renew_held_leases(vec![lease(&claimed)], now + LEASE_MS)
        .await
        .unwrap();
    let outcome = lost(&listed[0], retry.clone(), now);
    let results = f.store.rescue_if_expired(vec![outcome], now).await.unwrap();
    assert!(matches!(results[0], Ok(Recorded::Stale)), "{results:?}");
    assert_eq!(f.get(id).await.job.state, JobState::Running);
    // Once it expires for good, the rescue applies, once.
    let later = now + LEASE_MS + 1;
    let outcome = lost(&listed[0], retry, later);
    let results = f
        .store
        .rescue_if_expired(vec![outcome.clone(), outcome], later)
        .await
        .unwrap();
    assert!(matches!(results[0], Ok(Recorded::Applied)), "{results:?}");
    assert!(matches!(results[1], Ok(Recorded::Stale)), "{results:?}");
    assert_eq!(f.get(id).await.job.state, JobState::Retrying);
}

pub(crate) async fn a_lost_attempt_is_recorded_with_the_decision_it_was_given(open: OpenFn) {
    let f = fixture(open).await;
    let retried = f.submit(f.job(5, T0)).await.id;
    let failed = f.submit(f.job(5, T0)).await.id;
    f.claim(2, T0).await;
    let now = T0 + 5;
    // A host restart rescues every running job at once: the leases are
    // held, not expired.
    let all = f.store.leased_jobs(LeaseFilter::All, 10).await.unwrap();
    let decisions = [
        Decision::Retry {
            run_at: now + 1_000,
            limits: Limits::default(),
        },
        Decision::DeadLetter,
    ];
    let outcomes: Vec<_> = all
        .iter()
        .zip(decisions)
        .map(|(leased, decision)| lost(leased, decision, now))
        .collect();
    let results = f.store.record_if_leased(outcomes).await.unwrap();
    assert!(results.iter().all(|r| matches!(r, Ok(Recorded::Applied))));
    let detail = f.get(retried).await;
    assert_eq!(
        (detail.job.state, detail.job.run_at, detail.job.attempt),
        (JobState::Retrying, now + 1_000, 1),
        "the lost attempt counts"
    );
    let attempt = &detail.attempts[0];
    assert_eq!(
        (attempt.number, attempt.started_at, attempt.finished_at),
        (1, T0, now)
    );
    assert_eq!(
        attempt.report,
        AttemptReport::Lost {
            owner: Some("worker-1".to_owned()),
            message: "attempt 1 was lost".to_owned(),
        }
    );
    assert_eq!(detail.job.last_error.as_deref(), Some("attempt 1 was lost"));
    let detail = f.get(failed).await;
    assert_eq!(
        (detail.job.state, detail.job.finished_at),
        (JobState::Failed, Some(now))
    );
    assert!(
        f.store
            .leased_jobs(LeaseFilter::All, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A job that failed all of its `max_attempts` (3). Priority 0, so that
/// it is claimed before the test's other jobs.
async fn dead_letter(f: &Fixture) -> JobId {
    let id = f.submit(f.job(0, T0)).await.id;
    for n in 0..3 {
        let claimed = f.claim(1, T0 + n).await.remove(0);
        let decision = if n < 2 {
            Decision::Retry {
                run_at: T0 + n + 1,
                limits: Limits::default(),
            }
        } else {
            Decision::DeadLetter
        };
        f.record(&claimed, Some(ran(Err("no"))), decision, T0 + n, T0 + n)
            .await;
    }
    id
}

pub(crate) async fn requeue_gives_a_failed_job_a_new_budget_and_keeps_its_history(open: OpenFn) {
    let f = fixture(open).await;
    let id = dead_letter(&f).await;
    let job = f.store.requeue_if_failed(id, T0 + 100).await.unwrap();
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
    f.record(
        &claimed,
        Some(ran(Ok(()))),
        Decision::Complete,
        T0 + 100,
        T0 + 101,
    )
    .await;
    let detail = f.get(id).await;
    assert_eq!(detail.job.state, JobState::Completed);
    let numbers: Vec<_> = detail.attempts.iter().map(|a| a.number).collect();
    assert_eq!(
        numbers,
        [1, 2, 3, 4],
        "attempt numbers continue after a requeue"
    );
}

pub(crate) async fn requeue_refuses_jobs_that_are_not_failed(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    let err = f.store.requeue_if_failed(id, T0).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(m) if m.contains("pending")),
        "{err}"
    );
    let missing = f.store.requeue_if_failed(999, T0).await.unwrap_err();
    assert_eq!(missing.to_string(), "job 999 not found");
}

pub(crate) async fn requeue_refuses_a_job_whose_module_was_deleted(open: OpenFn) {
    let f = fixture(open).await;
    let id = dead_letter(&f).await;
    f.store
        .delete_module_unless_needed(&f.module)
        .await
        .unwrap();
    let err = f.store.requeue_if_failed(id, T0 + 100).await.unwrap_err();
    match &err {
        Error::Conflict(message) => {
            assert!(message.contains(&f.module), "names the module: {message}");
            assert!(message.contains("deleted"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.get(id).await.job.state, JobState::Failed, "unchanged");
}

pub(crate) async fn purge_deletes_failed_jobs_and_their_attempts_only(open: OpenFn) {
    let f = fixture(open).await;
    let first = dead_letter(&f).await;
    let second = dead_letter(&f).await;
    let third = dead_letter(&f).await;
    let alive = f.submit(f.job(5, T0)).await.id;
    assert_eq!(f.store.purge_failed(vec![first, alive]).await.unwrap(), 1);
    assert!(f.store.job(first).await.unwrap().is_none());
    assert_eq!(f.store.purge_failed(Vec::new()).await.unwrap(), 2);
    for id in [second, third] {
        assert!(f.store.job(id).await.unwrap().is_none());
    }
    assert!(f.store.job(alive).await.unwrap().is_some());
    // Ids are never reused, even after the newest job was purged.
    let newest = dead_letter(&f).await;
    assert_eq!(f.store.purge_failed(vec![newest]).await.unwrap(), 1);
    assert!(f.submit(f.job(5, T0)).await.id > newest);
}
