//! Job reads: one job in detail, listings, counts and the next due time.
//! Every function runs on a reader connection and never writes.

use super::rows::{self, ATTEMPT_COLUMNS, JOB_COLUMN_COUNT, JOB_COLUMNS};
use crate::clock::Millis;
use crate::job::{Job, JobDetail, JobId, JobState};
use crate::store::{JobFilter, QueueStats, Result, StateCounts};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

/// Jobs listed when a filter says `limit: 0`.
pub(super) const DEFAULT_LIST_LIMIT: usize = 100;
/// Most jobs one listing returns, whatever the filter asks: pages keep
/// responses and the read they cost bounded.
pub(super) const MAX_LIST_LIMIT: usize = 1_000;

/// One job with its input, output and attempts, from one snapshot.
pub(super) fn job(conn: &Connection, id: JobId) -> Result<Option<JobDetail>> {
    let snapshot = conn.unchecked_transaction()?;
    let sql = format!("SELECT {JOB_COLUMNS}, input, output FROM jobs WHERE id = ?1");
    let found = snapshot
        .prepare_cached(&sql)?
        .query_row([id], |row| {
            let output: Option<String> = row.get(JOB_COLUMN_COUNT + 1)?;
            Ok((
                rows::job(row)?,
                rows::json(row, JOB_COLUMN_COUNT)?,
                output.map(crate::json::Json::from_stored),
            ))
        })
        .optional()?;
    let Some((job, input, output)) = found else {
        return Ok(None);
    };
    let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE job_id = ?1 ORDER BY attempt");
    let attempts = snapshot
        .prepare_cached(&sql)?
        .query_map([id], rows::attempt)?
        .collect::<rusqlite::Result<_>>()?;
    let depends_on = super::graph::edges_into(&snapshot, id)?;
    Ok(Some(JobDetail {
        job,
        input,
        output,
        attempts,
        depends_on,
    }))
}

/// Jobs matching `filter`, newest first.
pub(super) fn list(conn: &Connection, filter: &JobFilter) -> Result<Vec<Job>> {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    if let Some(state) = filter.state {
        conditions.push("state = ?");
        values.push(Value::Text(state.as_str().to_owned()));
    }
    if let Some(queue) = &filter.queue {
        conditions.push("queue = ?");
        values.push(Value::Text(queue.clone()));
    }
    if let Some(module) = &filter.module {
        conditions.push("module_id = (SELECT id FROM module_ids WHERE hash = ?)");
        values.push(Value::Text(module.clone()));
    }
    if let Some(priority) = filter.priority {
        conditions.push("priority = ?");
        values.push(Value::Integer(priority.into()));
    }
    if let Some(schedule) = &filter.schedule {
        conditions.push("schedule = ?");
        values.push(Value::Text(schedule.clone()));
    }
    if let Some(before) = filter.before {
        conditions.push("id < ?");
        values.push(Value::Integer(before));
    }
    let limit = match filter.limit {
        0 => DEFAULT_LIST_LIMIT,
        n => n.min(MAX_LIST_LIMIT),
    };
    values.push(Value::Integer(limit as i64));
    let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    let jobs = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(values), rows::job)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(jobs)
}

/// The number of jobs in every state, zeros included, in lifecycle order.
pub(super) fn counts(conn: &Connection) -> Result<StateCounts> {
    let mut statement = conn.prepare_cached("SELECT state, count(*) FROM jobs GROUP BY state")?;
    let found = statement
        .query_map([], |row| Ok((rows::state(row, 0)?, row.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(JobState::ALL
        .into_iter()
        .map(|state| {
            let count = found
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            (state, count as u64)
        })
        .collect())
}

/// The earliest `run_at` of a waiting job.
pub(super) fn next_due(conn: &Connection) -> Result<Option<Millis>> {
    // INDEXED BY: the minimum is the index's first entry, instead of a scan
    // of every waiting job through `jobs_by_state`.
    Ok(conn
        .prepare_cached(
            "SELECT min(run_at) FROM jobs INDEXED BY jobs_waiting
             WHERE state IN ('pending', 'retrying')",
        )?
        .query_row([], |row| row.get(0))?)
}

/// Every queue with its waiting and running jobs and the `run_at` of its
/// oldest due waiting job.
pub(super) fn queues(conn: &Connection, now: Millis) -> Result<Vec<QueueStats>> {
    let mut queues: Vec<QueueStats> = conn
        .prepare_cached("SELECT name, paused, created_at FROM queues ORDER BY name")?
        .query_map([], |row| {
            Ok(QueueStats {
                name: row.get(0)?,
                paused: row.get(1)?,
                created_at: row.get(2)?,
                blocked: 0,
                pending: 0,
                retrying: 0,
                running: 0,
                oldest_due: None,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut counts = conn.prepare_cached(
        "SELECT queue, state, count(*) FROM jobs
         WHERE state IN ('blocked', 'pending', 'retrying', 'running')
         GROUP BY queue, state",
    )?;
    let counts = counts
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                rows::state(row, 1)?,
                row.get::<_, i64>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // INDEXED BY: the head of each priority's range of due jobs.
    let mut oldest = conn.prepare_cached(
        "SELECT min(run_at) FROM jobs INDEXED BY jobs_claim
         WHERE queue = ?1 AND state IN ('pending', 'retrying')
           AND effective_priority = ?2 AND run_at <= ?3",
    )?;
    for queue in &mut queues {
        for (name, state, n) in &counts {
            if *name != queue.name {
                continue;
            }
            let n = u64::try_from(*n).unwrap_or(0);
            match state {
                JobState::Blocked => queue.blocked = n,
                JobState::Pending => queue.pending = n,
                JobState::Retrying => queue.retrying = n,
                JobState::Running => queue.running = n,
                _ => {}
            }
        }
        for priority in 0..=crate::job::PRIORITY_LOW {
            let head: Option<Millis> =
                oldest.query_row(params![queue.name, priority, now], |row| row.get(0))?;
            queue.oldest_due = match (queue.oldest_due, head) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    Ok(queues)
}

/// Succeeds when the database answers a query.
pub(super) fn ping(conn: &Connection) -> Result<()> {
    conn.prepare_cached("SELECT 1")?
        .query_row([], |row| row.get::<_, i64>(0))?;
    Ok(())
}
