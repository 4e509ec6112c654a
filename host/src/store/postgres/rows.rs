//! How jobs, attempts and modules are laid out in rows (the same columns
//! as SQLite's, see `store/sqlite/rows.rs`), and the statement helpers
//! every query goes through (statements prepared once per connection).

use crate::job::{Attempt, Job, JobState, ModuleRef, TraceParent};
use crate::json::Json;
use crate::limits::Limits;
use crate::policy::{Backoff, RetryPolicy};
use crate::report::ModuleKind;
use crate::store::{Error, ModuleRecord, Result, encoding};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

/// Statement parameters.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// The rows of `sql`.
pub(super) async fn query(
    db: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query(&statement, params).await?)
}

/// The one row of `sql`, if any.
pub(super) async fn query_opt(
    db: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query_opt(&statement, params).await?)
}

/// The one row of `sql`.
pub(super) async fn query_one(
    db: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Row> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query_one(&statement, params).await?)
}

/// Runs `sql`; returns how many rows it changed.
pub(super) async fn execute(
    db: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.execute(&statement, params).await?)
}

/// Column `index` of `row`.
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T> {
    row.try_get(index)
        .map_err(|e| Error::Database(format!("column {index}: {e}")))
}

/// The columns [`job`] reads, in order.
pub(super) const JOB_COLUMNS: &str = "id, module, module_name, state, priority, attempt, \
     max_attempts, fuel, memory_bytes, timeout_ms, output_bytes, log_records, log_bytes, \
     stdio_tail_bytes, backoff, retry_base_ms, retry_max_delay_ms, retry_jitter, run_at, \
     created_at, started_at, finished_at, last_error, queue, unique_key, workflow_id, node, \
     parent_id, schedule, grants, trace_parent";

/// How many columns [`JOB_COLUMNS`] has: further columns start here.
pub(super) const JOB_COLUMN_COUNT: usize = 31;

/// The limit and retry columns, in the order [`limit_columns`] and
/// [`retry_columns`] give their values.
pub(super) const POLICY_COLUMNS: &str = "fuel, memory_bytes, timeout_ms, output_bytes, \
     log_records, log_bytes, stdio_tail_bytes, backoff, retry_base_ms, retry_max_delay_ms, \
     retry_jitter";

/// A job from a row starting with [`JOB_COLUMNS`].
pub(super) fn job(row: &Row) -> Result<Job> {
    Ok(Job {
        id: get(row, 0)?,
        queue: get(row, 23)?,
        module: ModuleRef {
            hash: get(row, 1)?,
            name: get(row, 2)?,
        },
        state: state(row, 3)?,
        priority: small(row, 4)?,
        attempt: small(row, 5)?,
        max_attempts: small(row, 6)?,
        limits: Limits {
            fuel: small(row, 7)?,
            memory_bytes: small(row, 8)?,
            timeout_ms: small(row, 9)?,
            output_bytes: small(row, 10)?,
            log_records: small(row, 11)?,
            log_bytes: small(row, 12)?,
            stdio_tail_bytes: small(row, 13)?,
        },
        retry: RetryPolicy {
            backoff: backoff(row, 14)?,
            base_ms: small(row, 15)?,
            max_delay_ms: small(row, 16)?,
            jitter: get(row, 17)?,
        },
        run_at: get(row, 18)?,
        created_at: get(row, 19)?,
        started_at: get(row, 20)?,
        finished_at: get(row, 21)?,
        last_error: get(row, 22)?,
        unique_key: get(row, 24)?,
        workflow: get(row, 25)?,
        node: get(row, 26)?,
        parent: get(row, 27)?,
        schedule: get(row, 28)?,
        grants: get::<Option<String>>(row, 29)?.map(|text| grants_column(&text)),
        // Written only from a parsed value: anything else reads as none.
        trace: get::<Option<String>>(row, 30)?.and_then(|text| TraceParent::parse(&text)),
    })
}

/// A bigint column as a narrower unsigned type.
fn small<T: TryFrom<i64>>(row: &Row, index: usize) -> Result<T> {
    let value: i64 = get(row, index)?;
    T::try_from(value)
        .map_err(|_| Error::Database(format!("column {index}: {value} is out of range")))
}

/// Limits as the first 7 values of [`POLICY_COLUMNS`]; a value the
/// columns cannot hold is [`Error::TooLarge`].
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

/// A retry policy as values 8 to 10 of [`POLICY_COLUMNS`] (the jitter,
/// a boolean, is the policy's own).
pub(super) fn retry_columns(retry: &RetryPolicy) -> Result<[i64; 3]> {
    Ok([
        backoff_code(retry.backoff),
        column(retry.base_ms)?,
        column(retry.max_delay_ms)?,
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

fn backoff(row: &Row, index: usize) -> Result<Backoff> {
    let code: i64 = get(row, index)?;
    Backoff::ALL
        .into_iter()
        .find(|b| backoff_code(*b) == code)
        .ok_or_else(|| Error::Database(format!("unknown backoff code {code}")))
}

/// A JSON text column (input, output).
pub(super) fn json(row: &Row, index: usize) -> Result<Json> {
    Ok(Json::from_stored(get(row, index)?))
}

/// The columns [`attempt`] reads, in order.
pub(super) const ATTEMPT_COLUMNS: &str = "attempt, started_at, finished_at, report";

/// An attempt from a row of [`ATTEMPT_COLUMNS`].
pub(super) fn attempt(row: &Row) -> Result<Attempt> {
    let text: String = get(row, 3)?;
    Ok(Attempt {
        number: small(row, 0)?,
        started_at: get(row, 1)?,
        finished_at: get(row, 2)?,
        report: encoding::decode(&text)?,
    })
}

/// The columns [`module`] reads, in order, for a query over `modules m`:
/// the name is the one given last.
pub(super) const MODULE_COLUMNS: &str = "m.hash, m.kind, m.size, m.created_at, \
     (SELECT n.name FROM module_names n WHERE n.hash = m.hash ORDER BY n.id DESC LIMIT 1), \
     m.grants";

/// A module from a row of [`MODULE_COLUMNS`].
pub(super) fn module(row: &Row) -> Result<ModuleRecord> {
    let kind: String = get(row, 1)?;
    Ok(ModuleRecord {
        hash: get(row, 0)?,
        kind: ModuleKind::parse(&kind)
            .ok_or_else(|| Error::Database(format!("unknown module kind {kind}")))?,
        size: small(row, 2)?,
        name: get(row, 4)?,
        created_at: get(row, 3)?,
        grants: grants_column(&get::<String>(row, 5)?),
    })
}

/// The `grants` column: names separated by spaces.
pub(super) fn grants_column(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// A job state column.
pub(super) fn state(row: &Row, index: usize) -> Result<JobState> {
    let name: String = get(row, index)?;
    JobState::parse(&name).ok_or_else(|| Error::Database(format!("unknown job state {name}")))
}

/// Every job in `rows`.
pub(super) fn jobs(rows: &[Row]) -> Result<Vec<Job>> {
    rows.iter().map(job).collect()
}
