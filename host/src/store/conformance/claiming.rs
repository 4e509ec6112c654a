//! Inserting, claiming, renewing and reading jobs back.

use super::*;
use crate::job::JobState;
use crate::store::{Error, JobFilter};

pub(crate) async fn claim_takes_the_most_urgent_priority_then_the_oldest_run_at(open: OpenFn) {
    let f = fixture(open).await;
    let a = f.submit(f.job(5, T0)).await.id;
    let b = f.submit(f.job(1, T0 + 10)).await.id;
    let c = f.submit(f.job(5, T0 - 10)).await.id;
    let d = f.submit(f.job(1, T0 + 5)).await.id;
    let e = f.submit(f.job(5, T0)).await.id; // same priority and time as a: id decides
    let mut order = Vec::new();
    for _ in 0..5 {
        order.push(f.claim(1, T0 + 100).await[0].job.id);
    }
    assert_eq!(order, [d, b, c, a, e]);
}

pub(crate) async fn a_batch_claim_returns_jobs_in_claim_order_up_to_the_limit(open: OpenFn) {
    let f = fixture(open).await;
    let low = f.submit(f.job(9, T0)).await.id;
    let high = f.submit(f.job(0, T0)).await.id;
    let mid = f.submit(f.job(4, T0)).await.id;
    let ids: Vec<_> = f.claim(2, T0).await.iter().map(|c| c.job.id).collect();
    assert_eq!(ids, [high, mid]);
    let ids: Vec<_> = f.claim(10, T0).await.iter().map(|c| c.job.id).collect();
    assert_eq!(ids, [low]);
    assert!(f.claim(10, T0).await.is_empty());
}

/// A store that claims with an insert ([`JobStore::claims_with_insert`])
/// takes what a claim right after would: in claim order (an older, more
/// urgent job first), within the limit, never from a paused queue, never
/// past a queue's cap; one that does not claims none.
pub(crate) async fn a_claim_with_an_insert_takes_what_a_claim_after_it_would(open: OpenFn) {
    let f = fixture(open).await;
    let urgent = f.submit(f.job(0, T0)).await.id;
    let (submitted, handed) = f.submit_claiming(vec![f.job(5, T0)], T0, 1, &[]).await;
    let new = submitted[0].job.id;
    assert!(submitted[0].created);
    let handed: Vec<_> = handed.iter().map(|c| c.job.id).collect();
    // What a claim of one after the insert would take: the urgent job.
    let claims = f.store.claims_with_insert();
    assert_eq!(handed, if claims { vec![urgent] } else { vec![] });
    for &id in &handed {
        let job = f.get(id).await.job;
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.attempt, 1);
    }
    let rest: Vec<_> = f.claim(10, T0).await.iter().map(|c| c.job.id).collect();
    assert_eq!([handed, rest].concat(), [urgent, new]);

    // Never from a paused queue.
    f.store.set_queue_paused("held", true, T0).await.unwrap();
    let (_, handed) = f
        .submit_claiming(vec![f.job_in("held", 0, T0)], T0, 5, &[])
        .await;
    assert!(handed.is_empty(), "claimed from a paused queue");
    // Never past a cap, counting the jobs of the submission itself.
    let capped = vec![f.job_in("capped", 5, T0), f.job_in("capped", 5, T0)];
    let (_, handed) = f.submit_claiming(capped, T0, 5, &[("capped", 1)]).await;
    assert_eq!(
        handed.len(),
        usize::from(claims),
        "one of the two, up to the cap of 1"
    );
    // A job due later is not claimed.
    let (_, handed) = f
        .submit_claiming(vec![f.job(0, T0 + 1_000)], T0, 5, &[])
        .await;
    assert!(
        handed.iter().all(|c| c.job.queue == "capped"),
        "a job claimed early"
    );
}

pub(crate) async fn claim_starts_an_attempt_with_a_fresh_token_per_job(open: OpenFn) {
    let f = fixture(open).await;
    for _ in 0..3 {
        f.submit(f.job(5, T0)).await;
    }
    let claimed = f.claim(3, T0 + 1).await;
    assert_eq!(claimed.len(), 3);
    let mut tokens: Vec<_> = claimed.iter().map(|c| c.token.clone()).collect();
    for c in &claimed {
        assert_eq!(c.job.state, JobState::Running);
        assert_eq!(c.job.attempt, 1);
        assert_eq!(c.input, f.job(5, T0).input);
        assert!(c.token.len() >= 32, "a token of 128 bits or more");
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "tokens are unique");
}

pub(crate) async fn a_job_is_not_claimed_before_its_run_at(open: OpenFn) {
    let f = fixture(open).await;
    let later = f.submit(f.job(0, T0 + 1_000)).await.id;
    assert!(f.claim(1, T0).await.is_empty());
    assert_eq!(f.store.next_due().await.unwrap(), Some(T0 + 1_000));
    assert!(f.claim(1, T0 + 999).await.is_empty());
    assert_eq!(f.claim(1, T0 + 1_000).await[0].job.id, later);
    assert_eq!(f.store.next_due().await.unwrap(), None);
}

pub(crate) async fn renew_extends_only_the_leases_still_held(open: OpenFn) {
    let f = fixture(open).await;
    f.submit(f.job(5, T0)).await;
    f.submit(f.job(5, T0)).await;
    let claimed = f.claim(2, T0).await;
    f.store
        .cancel_unless_final(claimed[0].job.id, T0 + 1)
        .await
        .unwrap();
    let stale_token = Lease {
        id: claimed[1].job.id,
        token: "0".repeat(32),
    };
    let leases = vec![lease(&claimed[0]), lease(&claimed[1]), stale_token];
    let held = f
        .store
        .renew_held_leases(leases, T0 + 2 * LEASE_MS)
        .await
        .unwrap();
    assert_eq!(held, [claimed[1].job.id]);
    // The renewed lease outlives its first expiry.
    let expired = crate::store::LeaseFilter::ExpiredBefore(T0 + LEASE_MS + 1);
    assert!(f.store.leased_jobs(expired, 10).await.unwrap().is_empty());
}

pub(crate) async fn insert_refuses_an_unknown_module_and_stores_none_of_the_batch(open: OpenFn) {
    let f = fixture(open).await;
    let mut unknown = f.job(5, T0);
    unknown.module.hash = "ff".repeat(32);
    let err = f
        .store
        .insert_jobs(vec![f.job(5, T0), unknown], T0)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    assert!(f.store.list(JobFilter::default()).await.unwrap().is_empty());
}

pub(crate) async fn insert_keeps_every_field_as_given(open: OpenFn) {
    let f = fixture(open).await;
    let mut new = f.job(7, T0 + 5);
    new.max_attempts = 9;
    new.retry = RetryPolicy {
        backoff: Backoff::Linear,
        base_ms: 250,
        max_delay_ms: 9_000,
        jitter: true,
    };
    new.limits = Limits {
        fuel: i64::MAX as u64,
        memory_bytes: 1 << 20,
        timeout_ms: 7,
        output_bytes: 11,
        log_records: 13,
        log_bytes: 17,
        stdio_tail_bytes: 19,
    };
    new.module.name = Some("by-name".to_owned());
    new.input = Json::parse_str(r#"{"nested": [1, "two", null]}"#).unwrap();
    new.trace =
        crate::job::TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let job = f.submit(new.clone()).await;
    let stored = f.get(job.id).await;
    assert_eq!(stored.job, job, "the insert returns what is stored");
    assert_eq!(
        (job.state, job.priority, job.max_attempts, job.attempt),
        (JobState::Pending, 7, 9, 0)
    );
    assert_eq!((job.retry, job.limits), (new.retry, new.limits));
    assert_eq!((job.run_at, job.created_at), (T0 + 5, T0));
    assert_eq!(job.module, new.module);
    assert_eq!((job.trace, new.trace.is_some()), (new.trace, true));
    assert_eq!(f.claim(1, T0 + 5).await[0].job.trace, new.trace);
    assert_eq!(stored.input, new.input);
    assert_eq!((stored.output, stored.attempts.len()), (None, 0));
    assert_eq!(
        (job.started_at, job.finished_at, job.last_error),
        (None, None, None)
    );
}

/// A batch mixing plain jobs with a dependent and a unique one is stored
/// in the order given, each job as given (a backend may store the plain
/// ones in bulk).
pub(crate) async fn a_mixed_batch_is_stored_in_the_order_given(open: OpenFn) {
    let f = fixture(open).await;
    let mut granted = f.job_in("b", 2, T0 + 7);
    granted.grants = Some(vec!["http".to_owned()]);
    granted.node = Some("second".to_owned());
    let mut dependent = f.job_in("a", 4, T0);
    dependent.depends_on = vec![Dependency {
        on: Prereq::Earlier(0),
        name: "first".to_owned(),
        on_failure: OnFailure::Cancel,
    }];
    let mut unique = f.job_in("a", 5, T0);
    unique.unique = Some(crate::job::Unique {
        key: "k".to_owned(),
        window_ms: 0,
    });
    let batch = vec![
        f.job_in("a", 1, T0),
        granted.clone(),
        dependent,
        f.job_in("c", 6, T0),
        unique,
        f.job_in("a", 3, T0 + 1),
    ];
    let stored = f.store.insert_jobs(batch, T0).await.unwrap();
    let ids: Vec<JobId> = stored.iter().map(|s| s.job.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let shape: Vec<_> = stored
        .iter()
        .map(|s| (s.job.queue.as_str(), s.job.priority, s.job.state, s.created))
        .collect();
    assert_eq!(
        shape,
        [
            ("a", 1, JobState::Pending, true),
            ("b", 2, JobState::Pending, true),
            ("a", 4, JobState::Blocked, true),
            ("c", 6, JobState::Pending, true),
            ("a", 5, JobState::Pending, true),
            ("a", 3, JobState::Pending, true),
        ]
    );
    for s in &stored {
        assert_eq!(f.get(s.job.id).await.job, s.job, "returned as stored");
    }
    assert_eq!(stored[1].job.grants, granted.grants);
    assert_eq!(stored[1].job.node, granted.node);
    assert_eq!(stored[1].job.run_at, T0 + 7);
    assert_eq!(stored[5].job.run_at, T0 + 1);
    let detail = f.get(stored[2].job.id).await;
    assert_eq!(detail.job.state, JobState::Blocked);
}

pub(crate) async fn list_filters_and_pages_newest_first(open: OpenFn) {
    let f = fixture(open).await;
    let mut ids = Vec::new();
    for priority in [1, 2, 1, 2, 1] {
        ids.push(f.submit(f.job(priority, T0)).await.id);
    }
    f.store.cancel_unless_final(ids[4], T0).await.unwrap();
    let listed = |filter: JobFilter| async {
        let jobs = f.store.list(filter).await.unwrap();
        jobs.iter().map(|j| j.id).collect::<Vec<_>>()
    };
    assert_eq!(
        listed(JobFilter::default()).await,
        [ids[4], ids[3], ids[2], ids[1], ids[0]]
    );
    let page = JobFilter {
        limit: 2,
        ..JobFilter::default()
    };
    assert_eq!(listed(page.clone()).await, [ids[4], ids[3]]);
    let next = JobFilter {
        before: Some(ids[3]),
        ..page
    };
    assert_eq!(listed(next).await, [ids[2], ids[1]]);
    let ones = JobFilter {
        priority: Some(1),
        state: Some(JobState::Pending),
        module: Some(f.module.clone()),
        ..JobFilter::default()
    };
    assert_eq!(listed(ones).await, [ids[2], ids[0]]);
    let other_module = JobFilter {
        module: Some("ab".repeat(32)),
        ..JobFilter::default()
    };
    assert!(listed(other_module).await.is_empty());
}

pub(crate) async fn counts_cover_every_state(open: OpenFn) {
    let f = fixture(open).await;
    for _ in 0..3 {
        f.submit(f.job(5, T0)).await;
    }
    let claimed = f.claim(1, T0).await;
    f.store
        .cancel_unless_final(claimed[0].job.id + 1, T0)
        .await
        .unwrap();
    f.submit(f.after(&[claimed[0].job.id], 5, T0)).await;
    let counts = f.store.counts().await.unwrap();
    assert_eq!(
        counts,
        [
            (JobState::Blocked, 1),
            (JobState::Pending, 1),
            (JobState::Running, 1),
            (JobState::Retrying, 0),
            (JobState::Completed, 0),
            (JobState::Failed, 0),
            (JobState::Cancelled, 1),
        ]
    );
    f.store.ping().await.unwrap();
}
