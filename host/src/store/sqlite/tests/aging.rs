//! Aging: a waiting job's effective priority improves one step per
//! `after_ms` of waiting, so low priorities cannot starve.

use super::*;

const AFTER_MS: i64 = 1_000;

#[tokio::test]
async fn an_old_low_priority_job_overtakes_a_stream_of_new_urgent_ones() {
    let f = fixture().await;
    let low = f.submit(f.job(8, T0)).await.id;
    // Every second a new priority-2 job arrives and one job is claimed.
    let mut claimed_low_at = None;
    for step in 1..=10 {
        let now = T0 + step * AFTER_MS;
        f.submit(f.job(2, now)).await;
        f.store.age(AFTER_MS, now).await.unwrap();
        if f.claim(1, now).await[0].job.id == low {
            claimed_low_at = Some(step);
            break;
        }
    }
    // After six steps it competes as 8 - 6 = 2 and is older than the
    // newcomer.
    assert_eq!(claimed_low_at, Some(6));
}

#[tokio::test]
async fn aging_counts_from_run_at_and_stops_at_zero() {
    let f = fixture().await;
    let id = f.submit(f.job(2, T0 + 5_000)).await.id;
    assert_eq!(
        f.store.age(AFTER_MS, T0 + 5_999).await.unwrap(),
        0,
        "not yet due long enough"
    );
    let mut aged = 0;
    for step in 1..=5 {
        aged += f
            .store
            .age(AFTER_MS, T0 + 5_000 + step * AFTER_MS)
            .await
            .unwrap();
    }
    assert_eq!(
        aged, 2,
        "two steps take priority 2 to 0, then it stays there"
    );
    let conn = rusqlite::Connection::open(f.dir.path().join("wasmjob.db")).unwrap();
    let effective: i64 = conn
        .query_row(
            "SELECT effective_priority FROM jobs WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(effective, 0);
    assert_eq!(
        f.get(id).await.job.priority,
        2,
        "the submitted priority is kept"
    );
}

#[tokio::test]
async fn missed_steps_are_caught_up_one_per_call_without_drift() {
    let f = fixture().await;
    f.submit(f.job(9, T0)).await;
    // One call after 3.5 intervals: one step now, then one per call until
    // the three whole intervals are counted.
    let now = T0 + 3 * AFTER_MS + AFTER_MS / 2;
    let steps: Vec<u64> = {
        let mut steps = Vec::new();
        for _ in 0..4 {
            steps.push(f.store.age(AFTER_MS, now).await.unwrap());
        }
        steps
    };
    assert_eq!(steps, [1, 1, 1, 0]);
    assert_eq!(f.store.age(AFTER_MS, T0 + 4 * AFTER_MS).await.unwrap(), 1);
}

#[tokio::test]
async fn a_retry_starts_aging_over_and_zero_turns_it_off() {
    let f = fixture().await;
    let id = f.submit(f.job(5, T0)).await.id;
    assert_eq!(f.store.age(0, T0 + 100 * AFTER_MS).await.unwrap(), 0, "off");
    for step in 1..=3 {
        f.store.age(AFTER_MS, T0 + step * AFTER_MS).await.unwrap();
    }
    let now = T0 + 3 * AFTER_MS;
    let claimed = f.claim(1, now).await.remove(0);
    let retry = Next::Retry {
        run_at: now,
        limits: Limits::default(),
    };
    f.record(&claimed, Some(report(Err("again"))), retry, now)
        .await;
    // Back at priority 5: a fresh priority-4 job goes first.
    let urgent = f.submit(f.job(4, now)).await.id;
    assert_eq!(f.claim(1, now).await[0].job.id, urgent);
    assert_eq!(f.claim(1, now).await[0].job.id, id);
}
