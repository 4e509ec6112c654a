//! How jobs, attempts and modules are laid out in rows: the column lists
//! the queries select and the conversions between rows and the store's
//! types. States, kinds, policies and limits are stored as the same
//! snake_case names and JSON the API shows.

use crate::job::{Job, JobState};
use crate::report::ModuleKind;
use crate::store::{Attempt, AttemptReport, ModuleRecord};
use rusqlite::Row;
use rusqlite::types::Type;

/// The columns [`job`] reads, in order.
pub(super) const JOB_COLUMNS: &str = "id, module, state, priority, attempt, max_attempts, \
     retry, limits, run_at, created_at, started_at, finished_at, last_error";

/// How many columns [`JOB_COLUMNS`] has: further columns start here.
pub(super) const JOB_COLUMN_COUNT: usize = 13;

/// A job from a row starting with [`JOB_COLUMNS`].
pub(super) fn job(row: &Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: row.get(0)?,
        module: row.get(1)?,
        state: state(row, 2)?,
        priority: row.get(3)?,
        attempt: row.get(4)?,
        max_attempts: row.get(5)?,
        retry: json(row, 6)?,
        limits: json(row, 7)?,
        run_at: row.get(8)?,
        created_at: row.get(9)?,
        started_at: row.get(10)?,
        finished_at: row.get(11)?,
        last_error: row.get(12)?,
    })
}

/// The columns [`attempt`] reads, in order.
pub(super) const ATTEMPT_COLUMNS: &str = "attempt, started_at, finished_at, report";

/// An attempt from a row of [`ATTEMPT_COLUMNS`].
pub(super) fn attempt(row: &Row<'_>) -> rusqlite::Result<Attempt> {
    Ok(Attempt {
        attempt: row.get(0)?,
        started_at: row.get(1)?,
        finished_at: row.get(2)?,
        report: json::<AttemptReport>(row, 3)?,
    })
}

/// The columns [`module`] reads, in order, for a query over `modules m`:
/// the name is the one given last.
pub(super) const MODULE_COLUMNS: &str = "m.hash, m.kind, m.size, m.created_at, \
     (SELECT n.name FROM module_names n WHERE n.hash = m.hash ORDER BY n.id DESC LIMIT 1)";

/// A module from a row of [`MODULE_COLUMNS`].
pub(super) fn module(row: &Row<'_>) -> rusqlite::Result<ModuleRecord> {
    let kind: String = row.get(1)?;
    Ok(ModuleRecord {
        hash: row.get(0)?,
        kind: parse_kind(&kind).ok_or_else(|| invalid(1, format!("unknown module kind {kind}")))?,
        size: u64::try_from(row.get::<_, i64>(2)?).map_err(|e| invalid(2, e))?,
        name: row.get(4)?,
        created_at: row.get(3)?,
    })
}

/// The stored name of a module kind.
pub(super) fn kind_name(kind: ModuleKind) -> &'static str {
    match kind {
        ModuleKind::Component => "component",
        ModuleKind::Command => "command",
    }
}

fn parse_kind(name: &str) -> Option<ModuleKind> {
    [ModuleKind::Component, ModuleKind::Command]
        .into_iter()
        .find(|kind| kind_name(*kind) == name)
}

/// Limits and policies as stored.
pub(super) fn to_json<T: serde::Serialize>(value: &T) -> crate::store::Result<String> {
    serde_json::to_string(value).map_err(|e| crate::store::Error::Database(e.to_string()))
}

/// A job state column.
pub(super) fn state(row: &Row<'_>, index: usize) -> rusqlite::Result<JobState> {
    let name: String = row.get(index)?;
    JobState::parse(&name).ok_or_else(|| invalid(index, format!("unknown job state {name}")))
}

/// A JSON text column.
pub(super) fn json<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| invalid(index, e))
}

fn invalid(
    index: usize,
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, error.into())
}
