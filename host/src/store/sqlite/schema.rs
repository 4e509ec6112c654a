//! The database schema and its migrations, versioned by
//! `PRAGMA user_version`.
//!
//! Migration `n` (1-based) is `MIGRATIONS[n - 1]` and takes a database from
//! version `n - 1` to `n`. Each runs in its own transaction together with
//! the version bump, so a crash mid-migration leaves the previous version.
//! Adding a migration: append its SQL file here and, if it changes tables
//! the upgrade test seeds, a seed for the new version in the tests below.

use crate::store::{Error, Result};
use rusqlite::{Connection, TransactionBehavior};

/// One migration.
struct Migration {
    sql: &'static str,
    /// It rebuilds a table that others reference: it runs with foreign
    /// keys off (a dropped table must not cascade), and they are checked
    /// before it commits.
    rebuilds: bool,
}

/// Every migration, oldest first.
const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: include_str!("schema/v1.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("schema/v2.sql"),
        rebuilds: true,
    },
    Migration {
        sql: include_str!("schema/v3.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("schema/v4.sql"),
        rebuilds: true,
    },
    Migration {
        sql: include_str!("schema/v5.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("schema/v6.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("schema/v7.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("schema/v8.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("schema/v9.sql"),
        rebuilds: false,
    },
];

/// The schema version this code reads and writes.
pub(super) const LATEST: u32 = MIGRATIONS.len() as u32;

/// Brings the database to [`LATEST`]; refuses a database from a newer
/// wasmjob.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, LATEST)
}

/// Applies migrations until the database is at `target`.
fn migrate_to(conn: &mut Connection, target: u32) -> Result<()> {
    loop {
        // IMMEDIATE: the version is read under the write lock, so two
        // processes opening the same old database cannot both migrate it.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = version(&tx)?;
        if current > LATEST {
            return Err(Error::Database(format!(
                "the database has schema version {current}, newer than this wasmjob's ({LATEST})"
            )));
        }
        if current >= target {
            return Ok(());
        }
        let next = current + 1;
        let migration = &MIGRATIONS[current as usize];
        if migration.rebuilds {
            // Foreign keys can only be switched outside a transaction.
            drop(tx);
            conn.pragma_update(None, "foreign_keys", false)?;
            let applied = apply(conn, migration, current, next);
            conn.pragma_update(None, "foreign_keys", true)?;
            applied?;
        } else {
            tx.execute_batch(migration.sql)
                .map_err(|e| migration_failed(next, e))?;
            tx.pragma_update(None, "user_version", next)?;
            tx.commit()?;
        }
    }
}

/// Applies a rebuilding migration in its own transaction, checking foreign
/// keys before it commits. The version is read again under the write lock:
/// another process may have migrated meanwhile.
fn apply(conn: &mut Connection, migration: &Migration, from: u32, next: u32) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if version(&tx)? != from {
        return Ok(());
    }
    tx.execute_batch(migration.sql)
        .map_err(|e| migration_failed(next, e))?;
    let broken: i64 = tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
        row.get(0)
    })?;
    if broken > 0 {
        return Err(Error::Database(format!(
            "migration to schema version {next} left {broken} rows with a broken reference"
        )));
    }
    tx.pragma_update(None, "user_version", next)?;
    tx.commit()?;
    Ok(())
}

fn migration_failed(version: u32, error: rusqlite::Error) -> Error {
    Error::Database(format!("migration to schema version {version}: {error}"))
}

/// The database's schema version.
pub(super) fn version(conn: &Connection) -> Result<u32> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobState;
    use crate::policy::Backoff;
    use crate::report::{AttemptReport, FailureKind};
    use crate::store::sqlite::connection::{Role, Settings, open};
    use crate::store::{JobFilter, JobStore, SqliteStore, StoreConfig};
    use std::path::Path;

    /// Data written with the schema of a given version, so upgrades are
    /// checked to keep it. (The newest seed at or below a database's
    /// version is used.)
    ///
    /// Version 1 (the API's JSON in the rows): module `aa` named `seed`;
    /// job 1 pending with its limits and policy as JSON; job 2 completed
    /// with an output that is JSON and an engine report that repeats it;
    /// job 3 failed after a lost attempt, with a plain-text output; ids
    /// up to 10 were used (newer jobs purged).
    const SEEDS: &[(u32, &str)] = &[
        (
            1,
            r#"INSERT INTO modules (hash, kind, size, created_at)
                 VALUES ('aa', 'command', 3, 1000);
             INSERT INTO module_names (name, hash, created_at) VALUES ('seed', 'aa', 1000);
             INSERT INTO jobs (id, module, input, priority, effective_priority, state,
                               max_attempts, retry, limits, run_at, created_at)
                 VALUES (1, 'aa', CAST('{"n": 1}' AS BLOB), 5, 4, 'pending', 3,
                         '{"backoff":"linear","base_ms":250,"max_delay_ms":9000,"jitter":true}',
                         '{"fuel":123,"memory_bytes":1048576,"timeout_ms":7,"output_bytes":11,"log_records":13,"log_bytes":17,"stdio_tail_bytes":19}',
                         1000, 1000);
             INSERT INTO jobs (id, module, input, priority, effective_priority, state,
                               attempt, max_attempts, attempts_total, retry, limits, run_at,
                               created_at, started_at, finished_at, output)
                 VALUES (2, 'aa', CAST('null' AS BLOB), 2, 2, 'completed', 1, 3, 1, '{}', '{}',
                         1000, 1000, 1100, 1200, CAST('{"ok": true}' AS BLOB));
             INSERT INTO attempts (job_id, attempt, started_at, finished_at, report)
                 VALUES (2, 1, 1100, 1200, '{"status":"success","output":{"ok":true},"module":"aa","kind":"command","limits":{"fuel":1,"memory_bytes":2,"timeout_ms":3,"output_bytes":4,"log_records":5,"log_bytes":6,"stdio_tail_bytes":7},"fuel":{"consumed":1,"limit":1},"memory":{"peak_bytes":1,"limit_bytes":2},"duration_us":9,"logs":[{"at_us":1,"level":"warn","message":"w"}],"logs_dropped":0,"stdout":{"total_bytes":0,"tail":""},"stderr":{"total_bytes":0,"tail":""}}');
             INSERT INTO jobs (id, module, input, priority, effective_priority, state,
                               attempt, max_attempts, attempts_total, retry, limits, run_at,
                               created_at, started_at, finished_at, output, last_error)
                 VALUES (3, 'aa', CAST('{}' AS BLOB), 5, 5, 'failed', 1, 1, 1, '{}', '{}',
                         1000, 1000, 1100, 1300, CAST('plain text' AS BLOB), 'lost it');
             INSERT INTO attempts (job_id, attempt, started_at, finished_at, report)
                 VALUES (3, 1, 1100, 1300, '{"status":"lost","owner":"host-a","message":"lost it"}');
             UPDATE sqlite_sequence SET seq = 10 WHERE name = 'jobs';"#,
        ),
        (
            2,
            r#"INSERT INTO modules (hash, kind, size, created_at)
                 VALUES ('aa', 'command', 3, 1000);
             INSERT INTO module_names (name, hash, created_at) VALUES ('seed', 'aa', 1000);
             INSERT INTO jobs (id, module, module_name, input, priority, effective_priority,
                               state, max_attempts, fuel, memory_bytes, timeout_ms,
                               output_bytes, log_records, log_bytes, stdio_tail_bytes, backoff,
                               retry_base_ms, retry_max_delay_ms, retry_jitter, run_at,
                               created_at)
                 VALUES (1, 'aa', 'seed', '{"n":1}', 5, 4, 'pending', 3, 123, 1048576, 7,
                         11, 13, 17, 19, 1, 250, 9000, 1, 1000, 1000);
             UPDATE sqlite_sequence SET seq = 10 WHERE name = 'jobs';"#,
        ),
        (
            3,
            r#"INSERT INTO modules (hash, kind, size, created_at)
                 VALUES ('aa', 'command', 3, 1000);
             INSERT INTO module_names (name, hash, created_at) VALUES ('seed', 'aa', 1000);
             INSERT INTO queues (name, paused, created_at) VALUES ('emails', 1, 1000);
             INSERT INTO jobs (id, module, module_name, input, priority, effective_priority,
                               state, max_attempts, fuel, memory_bytes, timeout_ms,
                               output_bytes, log_records, log_bytes, stdio_tail_bytes, backoff,
                               retry_base_ms, retry_max_delay_ms, retry_jitter, run_at,
                               created_at, queue, unique_key)
                 VALUES (1, 'aa', 'seed', '{"n":1}', 5, 4, 'pending', 3, 123, 1048576, 7,
                         11, 13, 17, 19, 1, 250, 9000, 1, 1000, 1000, 'emails', 'k');
             UPDATE sqlite_sequence SET seq = 10 WHERE name = 'jobs';"#,
        ),
        (
            9,
            r#"INSERT INTO modules (hash, kind, size, created_at)
                 VALUES ('aa', 'command', 3, 1000);
             INSERT INTO module_ids (id, hash) VALUES (7, 'aa');
             INSERT INTO module_names (name, hash, created_at) VALUES ('seed', 'aa', 1000);
             INSERT INTO queues (name, paused, created_at) VALUES ('emails', 1, 1000);
             INSERT INTO jobs (id, module_id, module_name, input, priority, effective_priority,
                               state, max_attempts, fuel, memory_bytes, timeout_ms,
                               output_bytes, log_records, log_bytes, stdio_tail_bytes, backoff,
                               retry_base_ms, retry_max_delay_ms, retry_jitter, run_at,
                               created_at, queue, unique_key)
                 VALUES (1, 7, 'seed', '{"n":1}', 5, 4, 'pending', 3, 123, 1048576, 7,
                         11, 13, 17, 19, 1, 250, 9000, 1, 1000, 1000, 'emails', 'k');
             UPDATE sqlite_sequence SET seq = 10 WHERE name = 'jobs';"#,
        ),
    ];

    fn connect(path: &Path) -> Connection {
        open(path, Role::Writer, &Settings::default()).unwrap()
    }

    /// A database file at exactly `version`, seeded.
    fn database_at(dir: &Path, version: u32) {
        let mut conn = connect(&dir.join("wasmjob.db"));
        migrate_to(&mut conn, version).unwrap();
        assert_eq!(super::version(&conn).unwrap(), version);
        if let Some((_, seed)) = SEEDS.iter().rev().find(|(v, _)| *v <= version) {
            conn.execute_batch(seed).unwrap();
        }
    }

    async fn check_upgrade(from: u32) {
        let dir = tempfile::tempdir().unwrap();
        database_at(dir.path(), from);
        let store = SqliteStore::open(StoreConfig::new(dir.path())).unwrap();
        let conn = connect(&dir.path().join("wasmjob.db"));
        assert_eq!(version(&conn).unwrap(), LATEST, "upgrade from {from}");
        let broken: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(broken, 0);
        if from == 0 {
            assert!(store.list(JobFilter::default()).await.unwrap().is_empty());
            return;
        }
        let module = store.module("seed").await.unwrap().unwrap();
        assert_eq!(module.hash, "aa");
        let pending = store.job(1).await.unwrap().unwrap();
        assert_eq!(pending.job.state, JobState::Pending);
        assert_eq!(pending.input.as_str(), r#"{"n":1}"#);
        assert_eq!(pending.job.module.name.as_deref(), Some("seed"));
        // Version 9: the job names its module by id, read back as the hash.
        assert_eq!(pending.job.module.hash, "aa");
        let by_module = JobFilter {
            module: Some("aa".to_owned()),
            ..JobFilter::default()
        };
        assert!(
            store
                .list(by_module)
                .await
                .unwrap()
                .iter()
                .any(|j| j.id == 1),
            "upgrade from {from}"
        );
        assert_eq!(
            (pending.job.limits.fuel, pending.job.limits.memory_bytes),
            (123, 1_048_576)
        );
        assert_eq!(
            (
                pending.job.limits.timeout_ms,
                pending.job.limits.output_bytes,
                pending.job.limits.log_records,
                pending.job.limits.log_bytes,
                pending.job.limits.stdio_tail_bytes
            ),
            (7, 11, 13, 17, 19)
        );
        assert_eq!(pending.job.retry.backoff, Backoff::Linear);
        assert_eq!(
            (
                pending.job.retry.base_ms,
                pending.job.retry.max_delay_ms,
                pending.job.retry.jitter
            ),
            (250, 9_000, true)
        );
        let effective: i64 = conn
            .query_row(
                "SELECT effective_priority FROM jobs WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(effective, 4, "aging is kept");
        if from == 1 {
            check_v1_history(&store).await;
        }
        if from >= 3 {
            assert_eq!(pending.job.queue, "emails");
            assert_eq!(pending.job.unique_key.as_deref(), Some("k"));
            let queues = store.queues(2_000).await.unwrap();
            assert!(queues[0].paused, "{queues:?}");
        }
        // Ids keep increasing past every id ever used.
        let new = crate::job::NewJob {
            module: crate::job::ModuleRef {
                hash: "aa".to_owned(),
                name: None,
            },
            ..store
                .job(1)
                .await
                .unwrap()
                .map(|d| to_new(d.job, d.input))
                .unwrap()
        };
        let inserted = store.insert_jobs(vec![new], 2_000).await.unwrap();
        assert_eq!(inserted[0].job.id, 11, "upgrade from {from}");
        // Version 7: the history table takes rows and gives them back.
        let mut minute = crate::history::MinuteRow {
            at: 60_000,
            queue: "emails".to_owned(),
            ..Default::default()
        };
        minute.counts.completed = 2;
        minute.counts.wait.record(1_500);
        store.add_history(vec![minute.clone()]).await.unwrap();
        assert_eq!(
            store.history(0, 120_000, None).await.unwrap(),
            vec![minute],
            "upgrade from {from}"
        );
        store.close().await;
    }

    fn to_new(job: crate::job::Job, input: crate::json::Json) -> crate::job::NewJob {
        crate::job::NewJob {
            queue: job.queue,
            module: job.module,
            input,
            priority: job.priority,
            max_attempts: job.max_attempts,
            retry: job.retry,
            limits: job.limits,
            run_at: job.run_at,
            unique: None,
            depends_on: Vec::new(),
            node: None,
            grants: None,
            trace: None,
        }
    }

    /// Version 1's outputs and reports, read back in version 2's encoding.
    async fn check_v1_history(store: &SqliteStore) {
        let completed = store.job(2).await.unwrap().unwrap();
        assert_eq!(completed.job.state, JobState::Completed);
        assert_eq!(completed.output.unwrap().as_str(), r#"{"ok":true}"#);
        assert_eq!(
            completed.job.limits,
            crate::limits::Limits {
                // The default when version 2 was written (v2.sql fills it
                // in); defaults chosen later do not change stored jobs.
                fuel: 5_000_000_000,
                ..crate::limits::Limits::default()
            },
            "limits left out of the JSON take the defaults of their time"
        );
        let AttemptReport::Ran(report) = &completed.attempts[0].report else {
            panic!("{:?}", completed.attempts[0].report);
        };
        assert!(report.is_success());
        assert_eq!(report.output, None, "the output is kept once, with the job");
        assert_eq!(report.logs[0].message, "w");
        let failed = store.job(3).await.unwrap().unwrap();
        assert_eq!(
            failed.output.unwrap().as_str(),
            r#""plain text""#,
            "an output that was not JSON becomes a JSON string"
        );
        assert_eq!(
            failed.attempts[0].report,
            AttemptReport::Lost {
                owner: Some("host-a".to_owned()),
                message: "lost it".to_owned(),
            }
        );
        assert_eq!(
            failed.attempts[0].report.failure_kind(),
            None::<FailureKind>
        );
    }

    #[tokio::test]
    async fn every_older_version_upgrades_to_the_latest() {
        for from in 0..LATEST {
            check_upgrade(from).await;
        }
    }

    #[tokio::test]
    async fn an_up_to_date_database_opens_unchanged() {
        check_upgrade(LATEST).await;
    }

    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wasmjob.db");
        connect(&path)
            .pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        let err = migrate(&mut connect(&path)).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = connect(&dir.path().join("wasmjob.db"));
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), LATEST);
    }
}
