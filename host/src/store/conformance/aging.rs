//! Aging: a waiting job's effective priority improves one step per
//! `after_ms` of waiting, so low priorities cannot starve.

use super::*;
use crate::store::LeaseFilter;

const AFTER_MS: i64 = 1_000;

pub(crate) async fn an_old_low_priority_job_overtakes_a_stream_of_new_urgent_ones(open: OpenFn) {
    let f = fixture(open).await;
    let low = f.submit(f.job(8, T0)).await.id;
    // Every second a new priority-2 job arrives and one job is claimed.
    let mut claimed_low_at = None;
    for step in 1..=10 {
        let now = T0 + step * AFTER_MS;
        f.submit(f.job(2, now)).await;
        f.store.age_waiting(AFTER_MS, now).await.unwrap();
        if f.claim(1, now).await[0].job.id == low {
            claimed_low_at = Some(step);
            break;
        }
    }
    // After six steps it competes as 8 - 6 = 2 and is older than the
    // newcomer.
    assert_eq!(claimed_low_at, Some(6));
}

pub(crate) async fn aging_counts_from_run_at_and_stops_at_zero(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(2, T0 + 5_000)).await.id;
    assert_eq!(
        f.store.age_waiting(AFTER_MS, T0 + 5_999).await.unwrap(),
        0,
        "not yet due long enough"
    );
    let mut aged = 0;
    for step in 1..=5 {
        let now = T0 + 5_000 + step * AFTER_MS;
        aged += f.store.age_waiting(AFTER_MS, now).await.unwrap();
    }
    assert_eq!(
        aged, 2,
        "two steps take priority 2 to 0, then it stays there"
    );
    // At 0 it beats a priority-1 job that was due earlier.
    let rival = f.submit(f.job(1, T0)).await.id;
    assert_eq!(f.claim(1, T0 + 20_000).await[0].job.id, id);
    assert_eq!(f.claim(1, T0 + 20_000).await[0].job.id, rival);
    assert_eq!(
        f.get(id).await.job.priority,
        2,
        "the submitted priority is kept"
    );
}

pub(crate) async fn missed_steps_are_caught_up_one_per_call_without_drift(open: OpenFn) {
    let f = fixture(open).await;
    f.submit(f.job(9, T0)).await;
    // One call after 3.5 intervals: one step now, then one per call until
    // the three whole intervals are counted.
    let now = T0 + 3 * AFTER_MS + AFTER_MS / 2;
    let mut steps = Vec::new();
    for _ in 0..4 {
        steps.push(f.store.age_waiting(AFTER_MS, now).await.unwrap());
    }
    assert_eq!(steps, [1, 1, 1, 0]);
    assert_eq!(
        f.store
            .age_waiting(AFTER_MS, T0 + 4 * AFTER_MS)
            .await
            .unwrap(),
        1
    );
}

pub(crate) async fn a_retry_starts_aging_over_and_zero_turns_it_off(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    assert_eq!(
        f.store.age_waiting(0, T0 + 100 * AFTER_MS).await.unwrap(),
        0,
        "off"
    );
    for step in 1..=3 {
        f.store
            .age_waiting(AFTER_MS, T0 + step * AFTER_MS)
            .await
            .unwrap();
    }
    let now = T0 + 3 * AFTER_MS;
    let claimed = f.claim(1, now).await.remove(0);
    let retry = Decision::Retry {
        run_at: now,
        limits: Limits::default(),
    };
    f.record(&claimed, Some(ran(Err("again"))), retry, now, now)
        .await;
    // Back at priority 5: a fresh priority-4 job goes first.
    let urgent = f.submit(f.job(4, now)).await.id;
    assert_eq!(f.claim(1, now).await[0].job.id, urgent);
    assert_eq!(f.claim(1, now).await[0].job.id, id);
}

/// Ages a priority-5 job due at `T0` three steps (to 2).
async fn aged_three_steps(f: &Fixture) -> JobId {
    let id = f.submit(f.job(5, T0)).await.id;
    for step in 1..=3 {
        f.store
            .age_waiting(AFTER_MS, T0 + step * AFTER_MS)
            .await
            .unwrap();
    }
    id
}

pub(crate) async fn a_requeue_and_a_rescue_start_aging_over_and_a_release_keeps_it(open: OpenFn) {
    let f = fixture(open).await;
    let now = T0 + 3 * AFTER_MS;
    // A release: the attempt did not happen, the aging stays (2 beats 3).
    let released = aged_three_steps(&f).await;
    let claimed = f.claim(1, now).await.remove(0);
    f.record(&claimed, None, Decision::Release, now, now).await;
    let rival = f.submit(f.job(3, now)).await.id;
    assert_eq!(f.claim(1, now).await[0].job.id, released);
    assert_eq!(f.claim(1, now).await[0].job.id, rival);
    // A rescue: a new attempt starts aging over (5 loses to 4).
    let leased = f.store.leased_jobs(LeaseFilter::All, 10).await.unwrap();
    let rescued = leased.iter().find(|l| l.job.id == released).unwrap();
    let lost = Outcome {
        lease: rescued.lease.clone(),
        decision: Decision::Retry {
            run_at: now,
            limits: Limits::default(),
        },
        attempt: Some(AttemptRecord {
            started_at: now,
            report: AttemptReport::Lost {
                owner: None,
                message: "lost".to_owned(),
            },
        }),
        output: None,
        follow_ups: Vec::new(),
        at: now,
    };
    f.store.record_if_leased(vec![lost]).await.unwrap();
    let urgent = f.submit(f.job(4, now)).await.id;
    assert_eq!(f.claim(1, now).await[0].job.id, urgent);
    // A requeue: back to the submitted priority too.
    let id = f.claim(1, now).await[0].job.id;
    assert_eq!(id, released);
    let claimed = f
        .store
        .leased_jobs(LeaseFilter::All, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.job.id == id)
        .unwrap();
    let dead = Outcome {
        lease: claimed.lease,
        decision: Decision::DeadLetter,
        attempt: None,
        output: None,
        follow_ups: Vec::new(),
        at: now,
    };
    f.store.record_if_leased(vec![dead]).await.unwrap();
    f.store.requeue_if_failed(id, now).await.unwrap();
    for step in 1..=2 {
        f.store
            .age_waiting(AFTER_MS, now + step * AFTER_MS)
            .await
            .unwrap();
    }
    // Two steps since the requeue: 5 - 2 = 3, behind a priority-2 job.
    let two = f.submit(f.job(2, now + 2 * AFTER_MS)).await.id;
    assert_eq!(f.claim(1, now + 2 * AFTER_MS).await[0].job.id, two);
    assert_eq!(f.claim(1, now + 2 * AFTER_MS).await[0].job.id, id);
}
