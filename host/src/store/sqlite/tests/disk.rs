//! What is particular to SQLite: module files, query plans, durability
//! across a reopen, group commit and the data directory's lock.

use super::*;
use crate::job::JobState;
use crate::policy::Decision;
use crate::report::ModuleKind;
use crate::store::conformance::{T0, ran};
use crate::store::{Error, JobFilter};

#[tokio::test]
async fn module_files_are_content_addressed_and_removed_with_their_module() {
    let s = sqlite().await;
    let bytes = vec![0, b'a', b's', b'm', 7];
    let hash = blake3::hash(&bytes).to_hex().to_string();
    for at in [T0, T0 + 1] {
        s.store
            .put_module(&hash, ModuleKind::Component, &bytes, None, at)
            .await
            .unwrap();
    }
    let files = std::fs::read_dir(s.dir.path().join("modules"))
        .unwrap()
        .count();
    assert_eq!(files, 2, "one file per module, the fixture's and this one");
    assert_eq!(std::fs::read(s.module_file(&hash)).unwrap(), bytes);
    s.store.delete_module_unless_needed(&hash).await.unwrap();
    assert!(!s.module_file(&hash).exists());
}

#[tokio::test]
async fn a_damaged_file_is_reported_corrupt() {
    let s = sqlite().await;
    let path = s.module_file(&s.f.module);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = s.store.module_bytes(&s.f.module).await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt(h) if *h == s.f.module),
        "{err}"
    );
    assert!(err.is_transient(), "a re-upload repairs it");
}

#[tokio::test]
async fn names_that_are_not_hashes_never_become_paths() {
    let s = sqlite().await;
    for name in ["../wasmjob.db", "test"] {
        assert!(matches!(
            s.store.module_bytes(name).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            s.store.delete_module_unless_needed(name).await,
            Err(Error::NotFound(_))
        ));
    }
    assert!(s.dir.path().join("wasmjob.db").exists());
}

#[tokio::test]
async fn the_claim_walks_its_index_in_order_without_sorting() {
    let s = sqlite().await;
    let sql = format!(
        "EXPLAIN QUERY PLAN {}",
        crate::store::sqlite::jobs::CLAIM_CANDIDATES
    );
    let conn = s.connect();
    let mut plan = conn.prepare(&sql).unwrap();
    let steps: Vec<String> = plan
        .query_map(rusqlite::params!["default", 1, 5], |row| row.get(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        steps,
        ["SEARCH jobs USING INDEX jobs_claim (queue=? AND effective_priority=? AND run_at<?)"]
    );
}

#[tokio::test]
async fn the_claim_never_walks_over_delayed_jobs() {
    let s = sqlite().await;
    // 2,000 jobs delayed by an hour at priority 5, one due job at 7: the
    // due one is behind all of them in index order.
    let delayed: Vec<_> = (0..2_000).map(|_| s.f.job(5, T0 + 3_600_000)).collect();
    s.store.insert_jobs(delayed, T0).await.unwrap();
    let due = s.f.submit(s.f.job(7, T0)).await;
    let conn = s.connect();
    let mut candidates = conn
        .prepare(crate::store::sqlite::jobs::CLAIM_CANDIDATES)
        .unwrap();
    let ids: Vec<i64> = candidates
        .query_map(rusqlite::params!["default", T0, 10], |row| row.get(0))
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

#[tokio::test]
async fn purged_jobs_take_their_attempts_with_them() {
    let s = sqlite().await;
    let id = s.f.submit(s.f.job(5, T0)).await.id;
    let claimed = s.f.claim(1, T0).await.remove(0);
    s.f.record(
        &claimed,
        Some(ran(Err("no"))),
        Decision::DeadLetter,
        T0,
        T0 + 1,
    )
    .await;
    assert_eq!(s.store.purge_failed(vec![id]).await.unwrap(), 1);
    let attempts: i64 = s
        .connect()
        .query_row("SELECT count(*) FROM attempts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(attempts, 0);
}

#[tokio::test]
async fn everything_survives_dropping_the_store_and_reopening() {
    let s = sqlite().await;
    let done = s.f.submit(s.f.job(5, T0)).await.id;
    let waiting = s.f.submit(s.f.job(5, T0 + 1_000)).await.id;
    let claimed = s.f.claim(1, T0).await.remove(0);
    s.f.record(&claimed, Some(ran(Ok(()))), Decision::Complete, T0, T0 + 1)
        .await;
    let Sqlite { dir, store, f } = s;
    let module = f.module.clone();
    drop(f);
    drop(store); // no close: acknowledged writes are already durable
    let store = SqliteStore::open(StoreConfig::new(dir.path())).unwrap();
    let detail = store.job(done).await.unwrap().unwrap();
    assert_eq!(detail.job.state, JobState::Completed);
    assert_eq!(detail.output.unwrap().as_str(), r#""done""#);
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
    let s = sqlite().await;
    s.store.close().await;
    let err = s.store.ping().await.unwrap_err();
    assert!(err.to_string().contains("not running"), "{err}");
    let err = s
        .store
        .insert_jobs(vec![s.f.job(5, T0)], T0)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_all_land_and_each_caller_gets_its_own_ids() {
    let s = Arc::new(sqlite().await);
    let tasks: Vec<_> = (0..64)
        .map(|task| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut jobs: Vec<_> = (0..4).map(|_| s.f.job(5, T0)).collect();
                // One caller in eight names an unknown module: its insert
                // fails alone, the others' commit.
                if task % 8 == 0 {
                    jobs[1].module.hash = "ee".repeat(32);
                }
                (task, s.store.insert_jobs(jobs, T0).await)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let (task, result) = task.await.unwrap();
        if task % 8 == 0 {
            assert!(matches!(result, Err(Error::NotFound(_))));
            continue;
        }
        let mine: Vec<_> = result.unwrap().iter().map(|s| s.job.id).collect();
        assert_eq!(mine.len(), 4);
        assert!(
            mine.windows(2).all(|w| w[1] == w[0] + 1),
            "one caller's jobs are contiguous"
        );
        ids.extend(mine);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 56 * 4);
    let stored = s
        .store
        .list(JobFilter {
            limit: 1_000,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 56 * 4);
    assert!(
        s.store.batches() <= 1 + 64,
        "at most one batch per call (and the module's)"
    );
}

#[tokio::test]
async fn a_data_directory_is_open_in_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open(StoreConfig::new(dir.path())).unwrap();
    let Err(error) = SqliteStore::open(StoreConfig::new(dir.path())) else {
        panic!("a second store opened the same directory");
    };
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    assert!(error.to_string().contains("in use"), "{error}");
    first.close().await;
    drop(first);
    SqliteStore::open(StoreConfig::new(dir.path())).expect("free again once the first is gone");
}

/// With `fsync` durability a submission's insert claims for idle workers
/// in its own commit (the answer waits for an fsync anyway, and the pages
/// both dirty are written once); with `interval` it does not: the answer
/// comes at the commit, which a claim would only delay.
#[tokio::test]
async fn an_insert_claims_with_fsync_durability_and_not_with_interval() {
    let s = sqlite().await;
    let f = &s.f;
    let (submitted, handed) = f.submit_claiming(vec![f.job(5, T0)], T0, 1, &[]).await;
    assert_eq!(handed.len(), 1);
    assert_eq!(handed[0].job.id, submitted[0].job.id);
    assert_eq!(handed[0].job.state, crate::job::JobState::Running);
    // One commit: the insert and the claim were one transaction.
    let batches = s.store.writer.batches();
    f.submit_claiming(vec![f.job(5, T0)], T0, 1, &[]).await;
    assert_eq!(s.store.writer.batches(), batches + 1);

    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        durability: super::super::DurabilityMode::Interval,
        ..StoreConfig::new(dir.path())
    };
    let store = Arc::new(SqliteStore::open(config).unwrap());
    let f = Fixture::new(Opened {
        store,
        keep: Box::new(()),
    })
    .await;
    let (submitted, handed) = f.submit_claiming(vec![f.job(5, T0)], T0, 1, &[]).await;
    assert!(handed.is_empty());
    assert_eq!(f.claim(1, T0).await[0].job.id, submitted[0].job.id);
}
