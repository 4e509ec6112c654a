//! Module metadata in SQL: the `modules` and `module_names` tables.
//!
//! Every function runs on a connection it is given: the writer's inside a
//! batch for the writes, a reader's for the lookups. The bytes themselves
//! are [`Blobs`]' business; the write functions here only make sure the
//! file and the metadata agree.

use super::blobs::Blobs;
use super::rows::{self, MODULE_COLUMNS};
use crate::clock::Millis;
use crate::report::ModuleKind;
use crate::store::{Error, ModuleRecord, Result};
use rusqlite::{Connection, OptionalExtension, params};

/// What `put` stores.
pub(super) struct NewModule<'a> {
    /// The blake3 hash of `bytes`, checked by the caller.
    pub hash: &'a str,
    /// How it runs.
    pub kind: ModuleKind,
    /// The bytes, already written to `blobs` by the caller.
    pub bytes: &'a [u8],
    /// A name to give it.
    pub name: Option<&'a str>,
}

/// Records a module (idempotent) and gives it `name`, making it the newest
/// module with that name.
pub(super) fn put(
    conn: &Connection,
    blobs: &Blobs,
    module: NewModule<'_>,
    now: Millis,
) -> Result<ModuleRecord> {
    let NewModule {
        hash,
        kind,
        bytes,
        name,
    } = module;
    // Files are removed only by this (the writer) thread, after their
    // metadata is gone: if a delete got in since the caller wrote the file,
    // write it again before recording the metadata.
    if !blobs.exists(hash) {
        blobs.ensure(hash, bytes)?;
    }
    let size = i64::try_from(bytes.len()).map_err(|e| Error::Database(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO modules (hash, kind, size, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (hash) DO NOTHING",
    )?
    .execute(params![hash, kind.as_str(), size, now])?;
    // Jobs name the module by this id (see `id`).
    conn.prepare_cached("INSERT INTO module_ids (hash) VALUES (?1) ON CONFLICT (hash) DO NOTHING")?
        .execute([hash])?;
    if let Some(name) = name {
        // Delete and insert rather than ignore: the pair gets a new id, so
        // giving a name back to an older module makes it the newest again.
        conn.prepare_cached("DELETE FROM module_names WHERE name = ?1 AND hash = ?2")?
            .execute(params![name, hash])?;
        conn.prepare_cached(
            "INSERT INTO module_names (name, hash, created_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![name, hash, now])?;
    }
    by_hash(conn, hash)?.ok_or_else(|| Error::Database(format!("module {hash} vanished")))
}

/// Deletes a module's metadata; refused while a job that is not final
/// needs it. The file goes afterwards, with [`remove_unused_file`].
pub(super) fn delete(conn: &Connection, hash: &str) -> Result<()> {
    if !exists(conn, hash)? {
        return Err(Error::module_not_found(hash));
    }
    let user: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, state FROM jobs
             WHERE module_id = (SELECT id FROM module_ids WHERE hash = ?1)
               AND state NOT IN ('completed', 'failed', 'cancelled')
             ORDER BY id LIMIT 1",
        )?
        .query_row([hash], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    if let Some((id, state)) = user {
        return Err(Error::Conflict(format!(
            "module {hash} is still needed by job {id}, which is {state}"
        )));
    }
    conn.prepare_cached("DELETE FROM modules WHERE hash = ?1")?
        .execute([hash])?;
    Ok(())
}

/// Removes the file of `hash` unless a module with that hash is recorded
/// (again): run by the writer after the delete committed.
pub(super) fn remove_unused_file(conn: &Connection, blobs: &Blobs, hash: &str) -> Result<()> {
    if !exists(conn, hash)? {
        blobs.remove(hash)?;
    }
    Ok(())
}

/// The id jobs name a recorded module by (`module_ids`), or `None` when no
/// module with exactly this hash is recorded.
pub(super) fn id(conn: &Connection, hash: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT i.id FROM modules m JOIN module_ids i ON i.hash = m.hash WHERE m.hash = ?1",
        )?
        .query_row([hash], |row| row.get(0))
        .optional()?)
}

/// Whether a module with exactly this hash is recorded.
pub(super) fn exists(conn: &Connection, hash: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM modules WHERE hash = ?1")?
        .exists([hash])?)
}

/// The module with exactly this hash.
pub(super) fn by_hash(conn: &Connection, hash: &str) -> Result<Option<ModuleRecord>> {
    let sql = format!("SELECT {MODULE_COLUMNS} FROM modules m WHERE m.hash = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([hash], rows::module)
        .optional()?)
}

/// The module that was given `name` last.
fn by_name(conn: &Connection, name: &str) -> Result<Option<ModuleRecord>> {
    Ok(conn
        .prepare_cached(
            "SELECT m.hash, m.kind, m.size, m.created_at, n.name, m.grants
             FROM module_names n JOIN modules m ON m.hash = n.hash
             WHERE n.name = ?1 ORDER BY n.id DESC LIMIT 1",
        )?
        .query_row([name], rows::module)
        .optional()?)
}

/// A module by exact hash, or else by name.
pub(super) fn lookup(conn: &Connection, hash_or_name: &str) -> Result<Option<ModuleRecord>> {
    match by_hash(conn, hash_or_name)? {
        Some(module) => Ok(Some(module)),
        None => by_name(conn, hash_or_name),
    }
}

/// Gives the module `hash_or_name` resolves to exactly these grants.
pub(super) fn set_grants(
    conn: &Connection,
    hash_or_name: &str,
    grants: &[String],
) -> Result<ModuleRecord> {
    let module =
        lookup(conn, hash_or_name)?.ok_or_else(|| Error::module_not_found(hash_or_name))?;
    if let Some(bad) = grants
        .iter()
        .find(|g| g.is_empty() || g.contains(char::is_whitespace))
    {
        return Err(Error::Database(format!(
            "grant name `{bad}` cannot be stored"
        )));
    }
    conn.prepare_cached("UPDATE modules SET grants = ?2 WHERE hash = ?1")?
        .execute(params![module.hash, grants.join(" ")])?;
    Ok(ModuleRecord {
        grants: grants.to_vec(),
        ..module
    })
}

/// Every module, newest first.
pub(super) fn all(conn: &Connection) -> Result<Vec<ModuleRecord>> {
    let sql =
        format!("SELECT {MODULE_COLUMNS} FROM modules m ORDER BY m.created_at DESC, m.rowid DESC");
    let mut statement = conn.prepare_cached(&sql)?;
    let modules = statement
        .query_map([], rows::module)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(modules)
}
