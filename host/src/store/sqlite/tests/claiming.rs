//! Submitting, claiming, renewing and reading jobs back.

use super::*;
use crate::job::JobState;
use crate::store::{Error, JobFilter};

#[tokio::test]
async fn claim_takes_the_most_urgent_priority_then_the_oldest_run_at() {
    let f = fixture().await;
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

#[tokio::test]
async fn a_batch_claim_returns_jobs_in_claim_order_up_to_the_limit() {
    let f = fixture().await;
    let low = f.submit(f.job(9, T0)).await.id;
    let high = f.submit(f.job(0, T0)).await.id;
    let mid = f.submit(f.job(4, T0)).await.id;
    let ids: Vec<_> = f.claim(2, T0).await.iter().map(|c| c.job.id).collect();
    assert_eq!(ids, [high, mid]);
    let ids: Vec<_> = f.claim(10, T0).await.iter().map(|c| c.job.id).collect();
    assert_eq!(ids, [low]);
    assert!(f.claim(10, T0).await.is_empty());
}

#[tokio::test]
async fn claim_starts_an_attempt_with_a_fresh_token_per_job() {
    let f = fixture().await;
    for _ in 0..3 {
        f.submit(f.job(5, T0)).await;
    }
    let claimed = f.claim(3, T0 + 1).await;
    assert_eq!(claimed.len(), 3);
    let mut tokens: Vec<_> = claimed.iter().map(|c| c.token.clone()).collect();
    for c in &claimed {
        assert_eq!(c.job.state, JobState::Running);
        assert_eq!(c.job.attempt, 1);
        assert_eq!(c.job.started_at, Some(T0 + 1));
        assert_eq!(c.input, format!("input 5 {T0}").into_bytes());
        assert_eq!(c.token.len(), 32);
        assert!(c.token.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "tokens are unique");
}

#[tokio::test]
async fn a_job_is_not_claimed_before_its_run_at() {
    let f = fixture().await;
    let later = f.submit(f.job(0, T0 + 1_000)).await.id;
    assert!(f.claim(1, T0).await.is_empty());
    assert_eq!(f.store.next_due().await.unwrap(), Some(T0 + 1_000));
    assert!(f.claim(1, T0 + 999).await.is_empty());
    assert_eq!(f.claim(1, T0 + 1_000).await[0].job.id, later);
    assert_eq!(f.store.next_due().await.unwrap(), None);
}

#[tokio::test]
async fn renew_extends_only_the_leases_still_held() {
    let f = fixture().await;
    f.submit(f.job(5, T0)).await;
    f.submit(f.job(5, T0)).await;
    let claimed = f.claim(2, T0).await;
    f.store.cancel(claimed[0].job.id, T0 + 1).await.unwrap();
    let stale_token = Lease {
        id: claimed[1].job.id,
        token: "0".repeat(32),
    };
    let leases = vec![lease(&claimed[0]), lease(&claimed[1]), stale_token];
    let held = f.store.renew(leases, T0 + 2 * LEASE_MS).await.unwrap();
    assert_eq!(held, [claimed[1].job.id]);
    // The renewed lease outlives its first expiry.
    assert!(f.store.rescue(T0 + LEASE_MS + 1).await.unwrap().is_empty());
}

#[tokio::test]
async fn submit_refuses_an_unknown_module_and_stores_none_of_the_batch() {
    let f = fixture().await;
    let mut unknown = f.job(5, T0);
    unknown.module = "ff".repeat(32);
    let err = f
        .store
        .submit(vec![f.job(5, T0), unknown], T0)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    assert!(f.store.list(JobFilter::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn list_filters_and_pages_newest_first() {
    let f = fixture().await;
    let mut ids = Vec::new();
    for priority in [1, 2, 1, 2, 1] {
        ids.push(f.submit(f.job(priority, T0)).await.id);
    }
    f.store.cancel(ids[4], T0).await.unwrap();
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

#[tokio::test]
async fn counts_cover_every_state() {
    let f = fixture().await;
    for _ in 0..3 {
        f.submit(f.job(5, T0)).await;
    }
    let claimed = f.claim(1, T0).await;
    f.store.cancel(claimed[0].job.id + 1, T0).await.unwrap();
    let counts = f.store.counts().await.unwrap();
    assert_eq!(
        counts,
        [
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

#[tokio::test]
async fn the_claim_walks_its_index_in_order_without_sorting() {
    let f = fixture().await;
    let conn = rusqlite::Connection::open(f.dir.path().join("wasmjob.db")).unwrap();
    let sql = format!(
        "EXPLAIN QUERY PLAN {}",
        crate::store::sqlite::jobs::CLAIM_CANDIDATES
    );
    let mut plan = conn.prepare(&sql).unwrap();
    let steps: Vec<String> = plan
        .query_map([0, 0, 1, 5], |row| row.get(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        steps,
        ["SEARCH jobs USING INDEX jobs_claim (effective_priority=? AND run_at<?)"]
    );
}

#[tokio::test]
async fn the_claim_never_walks_over_delayed_jobs() {
    let f = fixture().await;
    // 2,000 jobs delayed by an hour at priority 5, one due job at 7: the
    // due one is behind all of them in index order.
    let delayed: Vec<_> = (0..2_000).map(|_| f.job(5, T0 + 3_600_000)).collect();
    f.store.submit(delayed, T0).await.unwrap();
    let due = f.submit(f.job(7, T0)).await;
    let conn = rusqlite::Connection::open(f.dir.path().join("wasmjob.db")).unwrap();
    let mut candidates = conn
        .prepare(crate::store::sqlite::jobs::CLAIM_CANDIDATES)
        .unwrap();
    let ids: Vec<i64> = candidates
        .query_map([0, 0, T0, 10], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids, [due.id]);
    let steps = candidates.get_status(rusqlite::StatementStatus::VmStep);
    assert!(
        steps < 500,
        "{steps} VM steps: the claim walked over the delayed jobs"
    );
}
