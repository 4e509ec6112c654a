//! The database schema and its migrations, versioned by the one row of
//! `wasmjob_schema`.
//!
//! Migration `n` (1-based) is `MIGRATIONS[n - 1]`. All pending migrations
//! run in one transaction that first takes a transaction-scoped advisory
//! lock (keyed by the schema's name): hosts starting together wait for
//! each other, and the second finds the schema up to date. A crash
//! mid-migration leaves the previous version (PostgreSQL's DDL is
//! transactional).

use crate::store::{Error, Result};

/// Every migration, oldest first.
const MIGRATIONS: &[&str] = &[include_str!("schema/v1.sql")];

/// The schema version this code reads and writes.
pub(super) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Brings the schema to [`LATEST`]; refuses a schema from a newer wasmjob.
pub(super) async fn migrate(client: &mut deadpool_postgres::Object) -> Result<()> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SET LOCAL lock_timeout = 0;
         SELECT pg_advisory_xact_lock(hashtextextended('wasmjob migrate ' || current_schema(), 0));
         CREATE TABLE IF NOT EXISTS wasmjob_schema (version bigint NOT NULL);",
    )
    .await?;
    let current: i64 = match tx
        .query_opt("SELECT version FROM wasmjob_schema", &[])
        .await?
    {
        Some(row) => row.try_get(0)?,
        None => {
            tx.execute("INSERT INTO wasmjob_schema (version) VALUES (0)", &[])
                .await?;
            0
        }
    };
    if current > LATEST {
        return Err(Error::Database(format!(
            "the database has schema version {current}, newer than this wasmjob's ({LATEST})"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let next = index as i64 + 1;
        tx.batch_execute(sql).await.map_err(|e| {
            Error::Database(format!(
                "migration to schema version {next}: {}",
                Error::from(e)
            ))
        })?;
        tx.execute("UPDATE wasmjob_schema SET version = $1", &[&next])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The schema's version.
#[cfg(test)]
pub(super) async fn version(client: &tokio_postgres::Client) -> Result<i64> {
    Ok(client
        .query_one("SELECT version FROM wasmjob_schema", &[])
        .await?
        .try_get(0)?)
}
