//! What survives: reopening the same directory, and concurrent writers
//! through group commit.

use super::*;
use crate::job::JobState;
use crate::store::{Error, JobFilter};
use std::sync::Arc;

#[tokio::test]
async fn everything_survives_dropping_the_store_and_reopening() {
    let f = fixture().await;
    let done = f.submit(f.job(5, T0)).await.id;
    let waiting = f.submit(f.job(5, T0 + 1_000)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    let next = Next::Complete {
        output: b"out".to_vec(),
    };
    f.record(&claimed, Some(report(Ok("out"))), next, T0 + 1)
        .await;
    let Fixture { dir, store, module } = f;
    drop(store); // no close: acknowledged writes are already durable
    let store = SqliteStore::open(StoreConfig::new(dir.path())).unwrap();
    let detail = store.job(done).await.unwrap().unwrap();
    assert_eq!(detail.job.state, JobState::Completed);
    assert_eq!(detail.output.as_deref(), Some(&b"out"[..]));
    assert_eq!(detail.attempts.len(), 1);
    assert_eq!(
        store.job(waiting).await.unwrap().unwrap().job.state,
        JobState::Pending
    );
    assert_eq!(store.module("test").await.unwrap().unwrap().hash, module);
    assert!(!store.module_bytes(&module).await.unwrap().is_empty());
    store.close().await;
    let store = SqliteStore::open(StoreConfig::new(dir.path())).unwrap();
    assert_eq!(store.list(JobFilter::default()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_closed_store_refuses_calls() {
    let f = fixture().await;
    f.store.close().await;
    assert!(f.store.ping().await.is_err());
    let err = f.store.submit(vec![f.job(5, T0)], T0).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submits_all_land_and_each_caller_gets_its_own_ids() {
    let f = Arc::new(fixture().await);
    let tasks: Vec<_> = (0..64)
        .map(|task| {
            let f = Arc::clone(&f);
            tokio::spawn(async move {
                let mut jobs: Vec<_> = (0..4).map(|_| f.job(5, T0)).collect();
                // One caller in eight names an unknown module: its submit
                // fails alone, the rest of its batch commits.
                if task % 8 == 0 {
                    jobs[1].module = "ee".repeat(32);
                }
                let inputs: Vec<_> = jobs.iter().map(|j| j.input.clone()).collect();
                (task, inputs, f.store.submit(jobs, T0).await)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let (task, inputs, result) = task.await.unwrap();
        if task % 8 == 0 {
            assert!(matches!(result, Err(Error::NotFound(_))));
            continue;
        }
        let jobs = result.unwrap();
        let mine: Vec<_> = jobs.iter().map(|j| j.id).collect();
        assert_eq!(mine.len(), 4);
        assert!(
            mine.windows(2).all(|w| w[1] == w[0] + 1),
            "one caller's jobs are contiguous"
        );
        for (job, input) in jobs.iter().zip(&inputs) {
            assert_eq!(f.get(job.id).await.input, *input);
        }
        ids.extend(mine);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 56 * 4);
    let stored = f
        .store
        .list(JobFilter {
            limit: 1_000,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 56 * 4);
    assert!(
        f.store.batches() <= 1 + 64,
        "at most one batch per call (and the module's)"
    );
}
