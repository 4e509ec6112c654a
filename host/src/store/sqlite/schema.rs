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

/// Every migration's SQL, oldest first.
const MIGRATIONS: &[&str] = &[include_str!("schema/v1.sql")];

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
        tx.execute_batch(MIGRATIONS[current as usize])
            .map_err(|e| Error::Database(format!("migration to schema version {next}: {e}")))?;
        tx.pragma_update(None, "user_version", next)?;
        tx.commit()?;
    }
}

/// The database's schema version.
pub(super) fn version(conn: &Connection) -> Result<u32> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::connection::{Role, open};
    use crate::store::{JobFilter, JobStore, SqliteStore, StoreConfig};
    use std::path::Path;
    use std::time::Duration;

    /// Data written with the schema of a given version (the newest seed at
    /// or below a database's version is used), so upgrades are checked to
    /// keep it: one module and one pending job of it, id 1.
    const SEEDS: &[(u32, &str)] = &[(
        1,
        "INSERT INTO modules (hash, kind, size, created_at)
             VALUES ('aa', 'command', 3, 1000);
         INSERT INTO module_names (name, hash, created_at) VALUES ('seed', 'aa', 1000);
         INSERT INTO jobs (module, input, priority, effective_priority, state,
                           max_attempts, retry, limits, run_at, created_at)
             VALUES ('aa', x'01', 5, 5, 'pending', 3, '{}', '{}', 1000, 1000);",
    )];

    fn connect(path: &Path) -> Connection {
        open(path, Role::Writer, Duration::from_secs(5)).unwrap()
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
        let jobs = store.list(JobFilter::default()).await.unwrap();
        let seeded = SEEDS.iter().any(|(v, _)| *v <= from);
        assert_eq!(
            jobs.len(),
            usize::from(seeded),
            "seeded data kept from {from}"
        );
        if seeded {
            let module = store.module("seed").await.unwrap().unwrap();
            assert_eq!(module.hash, "aa");
        }
        store.close().await;
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
