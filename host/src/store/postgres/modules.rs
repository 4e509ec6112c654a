//! Modules: metadata (`modules`, `module_names`) and bytes
//! (`module_blobs`), all in the database so every host sees the same
//! ones. The caller checks the bytes against their hash before `put`, and
//! after reading them back.

use super::Tx;
use super::rows::{self, MODULE_COLUMNS, execute, query, query_opt};
use crate::clock::Millis;
use crate::report::ModuleKind;
use crate::store::{Error, ModuleRecord, Result};

/// Whether `text` can be a module hash: 64 lowercase hex digits (blake3).
pub(super) fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Records a module and its bytes (idempotent) and gives it `name`,
/// making it the newest module with that name.
pub(super) async fn put(
    tx: &Tx<'_>,
    hash: &str,
    kind: ModuleKind,
    bytes: &[u8],
    name: Option<&str>,
    now: Millis,
) -> Result<ModuleRecord> {
    let size = i64::try_from(bytes.len()).map_err(|e| Error::TooLarge(e.to_string()))?;
    execute(
        tx,
        "INSERT INTO modules (hash, kind, size, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (hash) DO NOTHING",
        &[&hash, &kind.as_str(), &size, &now],
    )
    .await?;
    execute(
        tx,
        "INSERT INTO module_blobs (hash, bytes) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
        &[&hash, &bytes],
    )
    .await?;
    if let Some(name) = name {
        // Delete and insert rather than ignore: the pair gets a new id, so
        // giving a name back to an older module makes it the newest again.
        execute(
            tx,
            "DELETE FROM module_names WHERE name = $1 AND hash = $2",
            &[&name, &hash],
        )
        .await?;
        execute(
            tx,
            "INSERT INTO module_names (name, hash, created_at) VALUES ($1, $2, $3)",
            &[&name, &hash, &now],
        )
        .await?;
    }
    by_hash(tx, hash)
        .await?
        .ok_or_else(|| Error::Database(format!("module {hash} vanished")))
}

/// A module's bytes, as stored ([`Error::NotFound`] for an unknown hash).
pub(super) async fn bytes(tx: &Tx<'_>, hash: &str) -> Result<Vec<u8>> {
    let row = query_opt(
        tx,
        "SELECT bytes FROM module_blobs WHERE hash = $1",
        &[&hash],
    )
    .await?
    .ok_or_else(|| Error::module_not_found(hash))?;
    rows::get(&row, 0)
}

/// Deletes a module (its bytes go with it); refused while a job that is
/// not final needs it. The module's row is locked first, so a submission
/// naming it (which locks it to share) waits or is waited for.
pub(super) async fn delete(tx: &Tx<'_>, hash: &str) -> Result<()> {
    if query_opt(
        tx,
        "SELECT 1 FROM modules WHERE hash = $1 FOR UPDATE",
        &[&hash],
    )
    .await?
    .is_none()
    {
        return Err(Error::module_not_found(hash));
    }
    let user = query_opt(
        tx,
        "SELECT id, state FROM jobs
         WHERE module = $1 AND state NOT IN ('completed', 'failed', 'cancelled')
         ORDER BY id LIMIT 1",
        &[&hash],
    )
    .await?;
    if let Some(row) = user {
        let (id, state): (i64, String) = (rows::get(&row, 0)?, rows::get(&row, 1)?);
        return Err(Error::Conflict(format!(
            "module {hash} is still needed by job {id}, which is {state}"
        )));
    }
    execute(tx, "DELETE FROM modules WHERE hash = $1", &[&hash]).await?;
    Ok(())
}

/// Whether a module with exactly this hash is recorded; locks it against
/// a concurrent delete until the transaction ends.
pub(super) async fn exists(tx: &Tx<'_>, hash: &str) -> Result<bool> {
    Ok(query_opt(
        tx,
        "SELECT 1 FROM modules WHERE hash = $1 FOR KEY SHARE",
        &[&hash],
    )
    .await?
    .is_some())
}

/// The module with exactly this hash.
pub(super) async fn by_hash(tx: &Tx<'_>, hash: &str) -> Result<Option<ModuleRecord>> {
    let sql = format!("SELECT {MODULE_COLUMNS} FROM modules m WHERE m.hash = $1");
    query_opt(tx, &sql, &[&hash])
        .await?
        .map(|row| rows::module(&row))
        .transpose()
}

/// The module that was given `name` last.
async fn by_name(tx: &Tx<'_>, name: &str) -> Result<Option<ModuleRecord>> {
    query_opt(
        tx,
        "SELECT m.hash, m.kind, m.size, m.created_at, n.name, m.grants
         FROM module_names n JOIN modules m ON m.hash = n.hash
         WHERE n.name = $1 ORDER BY n.id DESC LIMIT 1",
        &[&name],
    )
    .await?
    .map(|row| rows::module(&row))
    .transpose()
}

/// A module by exact hash, or else by name.
pub(super) async fn lookup(tx: &Tx<'_>, hash_or_name: &str) -> Result<Option<ModuleRecord>> {
    match by_hash(tx, hash_or_name).await? {
        Some(module) => Ok(Some(module)),
        None => by_name(tx, hash_or_name).await,
    }
}

/// Gives the module `hash_or_name` resolves to exactly these grants.
pub(super) async fn set_grants(
    tx: &Tx<'_>,
    hash_or_name: &str,
    grants: &[String],
) -> Result<ModuleRecord> {
    let module = lookup(tx, hash_or_name)
        .await?
        .ok_or_else(|| Error::module_not_found(hash_or_name))?;
    if let Some(bad) = grants
        .iter()
        .find(|g| g.is_empty() || g.contains(char::is_whitespace))
    {
        return Err(Error::Database(format!(
            "grant name `{bad}` cannot be stored"
        )));
    }
    execute(
        tx,
        "UPDATE modules SET grants = $2 WHERE hash = $1",
        &[&module.hash, &grants.join(" ")],
    )
    .await?;
    Ok(ModuleRecord {
        grants: grants.to_vec(),
        ..module
    })
}

/// Every module, newest first.
pub(super) async fn all(tx: &Tx<'_>) -> Result<Vec<ModuleRecord>> {
    let sql =
        format!("SELECT {MODULE_COLUMNS} FROM modules m ORDER BY m.created_at DESC, m.seq DESC");
    query(tx, &sql, &[])
        .await?
        .iter()
        .map(rows::module)
        .collect()
}
