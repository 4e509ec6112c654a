//! How jobs, attempts and modules are laid out in rows: the column lists
//! the queries select and the conversions between rows and the store's
//! types. Limits and retry policies are columns; reports use the store's
//! encoding (`store::encoding`); states and kinds are their snake_case
//! names.

use crate::job::{Attempt, Job, JobState, ModuleRef, TraceParent};
use crate::json::Json;
use crate::limits::Limits;
use crate::policy::{Backoff, RetryPolicy};
use crate::report::ModuleKind;
use crate::store::{Error, ModuleRecord, Result, encoding};
use rusqlite::Row;
use rusqlite::types::Type;

/// The SQL of [`MODULE_HASH`], as a literal [`JOB_COLUMNS`] can be
/// `concat!`ed from.
macro_rules! module_hash {
    () => {
        "(SELECT hash FROM module_ids WHERE module_ids.id = module_id)"
    };
}

/// The hash of a job's module (jobs hold its id in `module_ids`).
pub(super) const MODULE_HASH: &str = module_hash!();

/// The columns [`job`] reads, in order.
pub(super) const JOB_COLUMNS: &str = concat!(
    "id, ",
    module_hash!(),
    ", module_name, state, priority, attempt, \
     max_attempts, fuel, memory_bytes, timeout_ms, output_bytes, log_records, log_bytes, \
     stdio_tail_bytes, backoff, retry_base_ms, retry_max_delay_ms, retry_jitter, run_at, \
     created_at, started_at, finished_at, last_error, queue, unique_key, workflow_id, node, \
     parent_id, schedule, grants, trace_parent"
);

/// How many columns [`JOB_COLUMNS`] has: further columns start here.
pub(super) const JOB_COLUMN_COUNT: usize = 31;

/// The limit and retry columns, in the order [`limit_columns`] and
/// [`retry_columns`] give their values.
pub(super) const POLICY_COLUMNS: &str = "fuel, memory_bytes, timeout_ms, output_bytes, \
     log_records, log_bytes, stdio_tail_bytes, backoff, retry_base_ms, retry_max_delay_ms, \
     retry_jitter";

/// A job from a row starting with [`JOB_COLUMNS`].
pub(super) fn job(row: &Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: row.get(0)?,
        queue: row.get(23)?,
        module: ModuleRef {
            hash: row.get(1)?,
            name: row.get(2)?,
        },
        state: state(row, 3)?,
        priority: row.get(4)?,
        attempt: row.get(5)?,
        max_attempts: row.get(6)?,
        limits: Limits {
            fuel: unsigned(row, 7)?,
            memory_bytes: unsigned(row, 8)?,
            timeout_ms: unsigned(row, 9)?,
            output_bytes: unsigned(row, 10)?,
            log_records: row.get(11)?,
            log_bytes: unsigned(row, 12)?,
            stdio_tail_bytes: unsigned(row, 13)?,
        },
        retry: RetryPolicy {
            backoff: backoff(row, 14)?,
            base_ms: unsigned(row, 15)?,
            max_delay_ms: unsigned(row, 16)?,
            jitter: row.get(17)?,
        },
        run_at: row.get(18)?,
        created_at: row.get(19)?,
        started_at: row.get(20)?,
        finished_at: row.get(21)?,
        last_error: row.get(22)?,
        unique_key: row.get(24)?,
        workflow: row.get(25)?,
        node: row.get(26)?,
        parent: row.get(27)?,
        schedule: row.get(28)?,
        grants: row
            .get::<_, Option<String>>(29)?
            .map(|text| grants_column(&text)),
        // Written only from a parsed value: anything else reads as none.
        trace: row
            .get::<_, Option<String>>(30)?
            .and_then(|text| TraceParent::parse(&text)),
    })
}

/// Limits as the first 7 values of [`POLICY_COLUMNS`]; a value the
/// columns cannot hold is [`Error::TooLarge`] (the policy's ceilings keep
/// values below it).
pub(super) fn limit_columns(limits: &Limits) -> Result<[i64; 7]> {
    Ok([
        column(limits.fuel)?,
        column(limits.memory_bytes)?,
        column(limits.timeout_ms)?,
        column(limits.output_bytes)?,
        i64::from(limits.log_records),
        column(limits.log_bytes)?,
        column(limits.stdio_tail_bytes)?,
    ])
}

/// A retry policy as the last 4 values of [`POLICY_COLUMNS`].
pub(super) fn retry_columns(retry: &RetryPolicy) -> Result<[i64; 4]> {
    Ok([
        backoff_code(retry.backoff),
        column(retry.base_ms)?,
        column(retry.max_delay_ms)?,
        i64::from(retry.jitter),
    ])
}

fn column(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        Error::TooLarge(format!(
            "{value} is larger than the store keeps ({})",
            i64::MAX
        ))
    })
}

fn backoff_code(backoff: Backoff) -> i64 {
    match backoff {
        Backoff::Exponential => 0,
        Backoff::Linear => 1,
        Backoff::Fixed => 2,
        Backoff::None => 3,
    }
}

fn backoff(row: &Row<'_>, index: usize) -> rusqlite::Result<Backoff> {
    let code: i64 = row.get(index)?;
    Backoff::ALL
        .into_iter()
        .find(|b| backoff_code(*b) == code)
        .ok_or_else(|| invalid(index, format!("unknown backoff code {code}")))
}

fn unsigned(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|e| invalid(index, e))
}

/// A JSON text column (input, output).
pub(super) fn json(row: &Row<'_>, index: usize) -> rusqlite::Result<Json> {
    Ok(Json::from_stored(row.get(index)?))
}

/// The columns [`attempt`] reads, in order.
pub(super) const ATTEMPT_COLUMNS: &str = "attempt, started_at, finished_at, report";

/// An attempt from a row of [`ATTEMPT_COLUMNS`].
pub(super) fn attempt(row: &Row<'_>) -> rusqlite::Result<Attempt> {
    let text: String = row.get(3)?;
    Ok(Attempt {
        number: row.get(0)?,
        started_at: row.get(1)?,
        finished_at: row.get(2)?,
        report: encoding::decode(&text).map_err(|e| invalid(3, e))?,
    })
}

/// The columns [`module`] reads, in order, for a query over `modules m`:
/// the name is the one given last.
pub(super) const MODULE_COLUMNS: &str = "m.hash, m.kind, m.size, m.created_at, \
     (SELECT n.name FROM module_names n WHERE n.hash = m.hash ORDER BY n.id DESC LIMIT 1), \
     m.grants";

/// A module from a row of [`MODULE_COLUMNS`].
pub(super) fn module(row: &Row<'_>) -> rusqlite::Result<ModuleRecord> {
    let kind: String = row.get(1)?;
    Ok(ModuleRecord {
        hash: row.get(0)?,
        kind: ModuleKind::parse(&kind)
            .ok_or_else(|| invalid(1, format!("unknown module kind {kind}")))?,
        size: unsigned(row, 2)?,
        name: row.get(4)?,
        created_at: row.get(3)?,
        grants: grants_column(&row.get::<_, String>(5)?),
    })
}

/// The `grants` column: names separated by spaces.
pub(super) fn grants_column(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// A job state column.
pub(super) fn state(row: &Row<'_>, index: usize) -> rusqlite::Result<JobState> {
    let name: String = row.get(index)?;
    JobState::parse(&name).ok_or_else(|| invalid(index, format!("unknown job state {name}")))
}

fn invalid(
    index: usize,
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, error.into())
}
