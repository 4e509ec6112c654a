//! Opening SQLite connections with the store's settings, and turning
//! SQLite's errors into the store's.
//!
//! Owns every `PRAGMA` the store relies on; knows nothing of the schema.

use crate::store::{Error, Result};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Prepared statements cached per connection: every statement the store
/// runs, plus room for the filter combinations of `list`.
const STATEMENT_CACHE: usize = 64;

/// Settings every connection of a store shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Settings {
    /// How long a statement waits for another process's lock.
    pub busy_timeout: Duration,
    /// The largest string or blob a statement may bind, when lower than
    /// SQLite's own limit (1 GB).
    pub max_value_bytes: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            busy_timeout: Duration::from_secs(5),
            max_value_bytes: None,
        }
    }
}

/// What a connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// The one connection that writes (owned by the writer thread).
    Writer,
    /// A read-only connection from the reader pool.
    Reader,
}

/// Opens the database at `path` for `role`.
///
/// The writer creates the file if needed and switches it to WAL mode (a
/// persistent setting), so readers never wait for the writer and the
/// writer never waits for readers. `synchronous = NORMAL`: a commit does
/// not fsync the WAL; the writer's threads fsync the WAL file themselves
/// before they acknowledge a durable write (see `writer`), so an
/// acknowledged write still survives a process crash and a power loss.
/// SQLite still syncs the WAL before each checkpoint and the database
/// after it. `fullfsync` asks macOS for a real flush of the drive's cache
/// at those syncs (no effect elsewhere).
pub(super) fn open(path: &Path, role: Role, settings: &Settings) -> Result<Connection> {
    let flags = match role {
        Role::Writer => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Role::Reader => OpenFlags::SQLITE_OPEN_READ_WRITE,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(settings.busy_timeout)?;
    if let Some(max) = settings.max_value_bytes {
        conn.set_limit(
            rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH,
            i32::try_from(max).unwrap_or(i32::MAX),
        )?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The query planner stability guarantee: a cached statement keeps its
    // plan. Without it the bundled SQLite (built with STAT4) re-prepares
    // statements whose plan could depend on a bound value, such as the
    // claim, on every run.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    match role {
        Role::Writer => {
            let mode: String =
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::Database(format!(
                    "{} cannot use WAL mode (journal mode is {mode})",
                    path.display()
                )));
            }
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Savepoints copy the pages they change into a statement
            // journal; in memory that is a memcpy, not a temp file written
            // (and opened and closed) per batch.
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            conn.pragma_update(None, "fullfsync", true)?;
        }
        // Readers may open the file for writing (WAL readers need the
        // shared-memory index) but never change the database.
        Role::Reader => conn.pragma_update(None, "query_only", true)?,
    }
    Ok(conn)
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            // A value past SQLITE_LIMIT_LENGTH: refused, and refused again
            // if retried.
            Some(rusqlite::ErrorCode::TooBig) => {
                Error::TooLarge(format!("the value is too large to store: {error}"))
            }
            // The disk is full: nothing was written; retried once space
            // returns.
            Some(rusqlite::ErrorCode::DiskFull) => Error::Full(error.to_string()),
            // Another process held the lock past the busy timeout.
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::Busy(error.to_string())
            }
            _ => Error::Database(error.to_string()),
        }
    }
}
