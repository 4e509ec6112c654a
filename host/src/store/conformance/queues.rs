//! Named queues: a job keeps its queue; paused queues start nothing; caps
//! bound what runs; claim order holds across queues.

use super::*;
use crate::job::JobState;
use crate::store::JobFilter;

fn ids(claimed: &[Claimed]) -> Vec<JobId> {
    claimed.iter().map(|c| c.job.id).collect()
}

pub(crate) async fn a_job_keeps_its_queue_and_listings_filter_by_it(open: OpenFn) {
    let f = fixture(open).await;
    let email = f.submit(f.job_in("emails", 5, T0)).await;
    let default = f.submit(f.job(5, T0)).await;
    assert_eq!(
        (email.queue.as_str(), default.queue.as_str()),
        ("emails", "default")
    );
    assert_eq!(f.get(email.id).await.job.queue, "emails");
    let filter = JobFilter {
        queue: Some("emails".to_owned()),
        ..JobFilter::default()
    };
    let listed: Vec<_> = f
        .store
        .list(filter)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, [email.id]);
    assert_eq!(f.claim(2, T0).await.len(), 2, "claimed across queues");
}

pub(crate) async fn a_paused_queue_accepts_jobs_and_starts_none(open: OpenFn) {
    let f = fixture(open).await;
    f.store.set_queue_paused("emails", true, T0).await.unwrap();
    let email = f.submit(f.job_in("emails", 0, T0)).await.id;
    let other = f.submit(f.job(9, T0)).await.id;
    assert_eq!(
        ids(&f.claim(10, T0).await),
        [other],
        "only the active queue"
    );
    f.store.set_queue_paused("emails", false, T0).await.unwrap();
    assert_eq!(ids(&f.claim(10, T0).await), [email]);
}

pub(crate) async fn a_queue_at_its_cap_never_blocks_the_others(open: OpenFn) {
    let f = fixture(open).await;
    let mut capped = Vec::new();
    for _ in 0..3 {
        capped.push(f.submit(f.job_in("slow", 0, T0)).await.id);
    }
    let free: Vec<_> = {
        let mut free = Vec::new();
        for _ in 0..3 {
            free.push(f.submit(f.job(9, T0)).await.id);
        }
        free
    };
    let caps = [("slow", 2)];
    let first = f.claim_capped(10, T0, &caps).await;
    // The capped queue's two most urgent, then the others, in claim order.
    assert_eq!(
        ids(&first),
        [capped[0], capped[1], free[0], free[1], free[2]]
    );
    assert!(f.claim_capped(10, T0, &caps).await.is_empty(), "at its cap");
    // One of its jobs ends: room for one more.
    f.record(&first[0], Some(ran(Ok(()))), Decision::Complete, T0, T0 + 1)
        .await;
    assert_eq!(ids(&f.claim_capped(10, T0 + 1, &caps).await), [capped[2]]);
}

pub(crate) async fn priority_order_and_aging_hold_across_queues(open: OpenFn) {
    let f = fixture(open).await;
    let a5 = f.submit(f.job_in("a", 5, T0)).await.id;
    let b1 = f.submit(f.job_in("b", 1, T0 + 10)).await.id;
    let a1 = f.submit(f.job_in("a", 1, T0 + 5)).await.id;
    let b9 = f.submit(f.job_in("b", 9, T0 - 50_000)).await.id;
    // b9 has waited 50 s: with 10 s aging steps it competes as priority 4.
    for step in 1..=5 {
        f.store
            .age_waiting(10_000, T0 - 50_000 + step * 10_000)
            .await
            .unwrap();
    }
    let order = ids(&f.claim(10, T0 + 100).await);
    assert_eq!(order, [a1, b1, b9, a5]);
}

pub(crate) async fn queue_stats_count_what_waits_and_runs_and_the_oldest_wait(open: OpenFn) {
    let f = fixture(open).await;
    f.submit(f.job_in("emails", 5, T0 - 3_000)).await;
    f.submit(f.job_in("emails", 0, T0 - 1_000)).await;
    f.submit(f.job_in("emails", 5, T0 + 60_000)).await; // not due
    f.submit(f.job(5, T0)).await;
    let claimed = f.claim(1, T0).await; // emails' priority 0
    assert_eq!(claimed[0].job.queue, "emails");
    f.store.set_queue_paused("idle", true, T0).await.unwrap();
    let queues = f.store.queues(T0).await.unwrap();
    let names: Vec<_> = queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["default", "emails", "idle"]);
    let emails = &queues[1];
    assert_eq!(
        (
            emails.pending,
            emails.retrying,
            emails.running,
            emails.paused
        ),
        (2, 0, 1, false)
    );
    assert_eq!(emails.oldest_due, Some(T0 - 3_000), "the oldest due job");
    let idle = &queues[2];
    assert!(idle.paused);
    assert_eq!((idle.pending, idle.oldest_due), (0, None));
    assert_eq!(f.get(claimed[0].job.id).await.job.state, JobState::Running);
}
