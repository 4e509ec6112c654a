//! Per-minute history rows: added to by minute and queue, read by time
//! range and queue, pruned by age.

use super::*;
use crate::history::{MINUTE_MS, MinuteCounts, MinuteRow};
use std::collections::BTreeMap;

fn row(at: Millis, queue: &str, completed: u64, wait_ms: &[i64]) -> MinuteRow {
    let mut counts = MinuteCounts {
        completed,
        failed: 1,
        retried: 1,
        failures: BTreeMap::from([("timeout".to_owned(), 1)]),
        ..MinuteCounts::default()
    };
    for ms in wait_ms {
        counts.wait.record(*ms);
        counts.run.record(*ms / 2);
    }
    MinuteRow {
        at,
        queue: queue.to_owned(),
        counts,
    }
}

pub(crate) async fn history_rows_of_one_minute_and_queue_add_up(open: OpenFn) {
    let f = fixture(open).await;
    let first = row(T0, "a", 2, &[10, 2_000]);
    let second = row(T0, "a", 3, &[10]);
    f.store.add_history(vec![first.clone()]).await.unwrap();
    f.store.add_history(vec![second.clone()]).await.unwrap();
    let rows = f.store.history(T0, T0 + MINUTE_MS, None).await.unwrap();
    let mut sum = first.counts.clone();
    sum.merge(&second.counts);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].counts, sum);
    assert_eq!(rows[0].counts.completed, 5);
    assert_eq!(rows[0].counts.failures["timeout"], 2);
    assert_eq!(rows[0].counts.wait.count(), 3);
}

pub(crate) async fn history_is_read_by_minute_range_and_queue_oldest_first(open: OpenFn) {
    let f = fixture(open).await;
    let rows = vec![
        row(T0 + 2 * MINUTE_MS, "a", 1, &[1]),
        row(T0, "b", 1, &[1]),
        row(T0, "a", 1, &[1]),
        row(T0 + MINUTE_MS, "b", 1, &[1]),
    ];
    f.store.add_history(rows).await.unwrap();
    let keys = |rows: Vec<MinuteRow>| -> Vec<(Millis, String)> {
        rows.into_iter().map(|r| (r.at, r.queue)).collect()
    };
    let all = f.store.history(T0, T0 + 3 * MINUTE_MS, None).await.unwrap();
    assert_eq!(
        keys(all),
        [
            (T0, "a".to_owned()),
            (T0, "b".to_owned()),
            (T0 + MINUTE_MS, "b".to_owned()),
            (T0 + 2 * MINUTE_MS, "a".to_owned()),
        ]
    );
    let a = f
        .store
        .history(T0, T0 + 3 * MINUTE_MS, Some("a".to_owned()))
        .await
        .unwrap();
    assert_eq!(keys(a).len(), 2);
    let middle = f
        .store
        .history(T0 + MINUTE_MS, T0 + 2 * MINUTE_MS, None)
        .await
        .unwrap();
    assert_eq!(
        keys(middle),
        [(T0 + MINUTE_MS, "b".to_owned())],
        "until is exclusive"
    );
}

pub(crate) async fn pruning_history_deletes_only_minutes_before_the_cutoff(open: OpenFn) {
    let f = fixture(open).await;
    let rows = vec![
        row(T0, "a", 1, &[1]),
        row(T0 + MINUTE_MS, "a", 1, &[1]),
        row(T0 + MINUTE_MS, "b", 1, &[1]),
    ];
    f.store.add_history(rows).await.unwrap();
    assert_eq!(f.store.prune_history(T0 + MINUTE_MS).await.unwrap(), 1);
    let left = f.store.history(0, Millis::MAX, None).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|r| r.at == T0 + MINUTE_MS));
    assert_eq!(f.store.prune_history(T0 + MINUTE_MS).await.unwrap(), 0);
}
