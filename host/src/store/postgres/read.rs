//! Job reads: one job in detail, listings, counts and the next due time.
//! Every function runs in the caller's read-only snapshot.

use super::Tx;
use super::rows::{self, ATTEMPT_COLUMNS, JOB_COLUMN_COUNT, JOB_COLUMNS, query, query_opt};
use crate::clock::Millis;
use crate::job::{Job, JobDetail, JobId, JobState};
use crate::store::{JobFilter, QueueStats, Result, StateCounts};
use tokio_postgres::types::ToSql;

/// Jobs listed when a filter says `limit: 0`.
pub(super) const DEFAULT_LIST_LIMIT: usize = 100;
/// Most jobs one listing returns, whatever the filter asks.
pub(super) const MAX_LIST_LIMIT: usize = 1_000;

/// One job with its input, output and attempts.
pub(super) async fn job(tx: &Tx<'_>, id: JobId) -> Result<Option<JobDetail>> {
    let sql = format!("SELECT {JOB_COLUMNS}, input, output FROM jobs WHERE id = $1");
    let Some(row) = query_opt(tx, &sql, &[&id]).await? else {
        return Ok(None);
    };
    let job = rows::job(&row)?;
    let input = rows::json(&row, JOB_COLUMN_COUNT)?;
    let output = rows::get::<Option<String>>(&row, JOB_COLUMN_COUNT + 1)?
        .map(crate::json::Json::from_stored);
    let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE job_id = $1 ORDER BY attempt");
    let attempts = query(tx, &sql, &[&id])
        .await?
        .iter()
        .map(rows::attempt)
        .collect::<Result<_>>()?;
    let depends_on = super::graph::edges_into(tx, id).await?;
    Ok(Some(JobDetail {
        job,
        input,
        output,
        attempts,
        depends_on,
    }))
}

/// Jobs matching `filter`, newest first.
pub(super) async fn list(tx: &Tx<'_>, filter: &JobFilter) -> Result<Vec<Job>> {
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut push = |column: &str, value: Box<dyn ToSql + Sync + Send>| {
        values.push(value);
        conditions.push(format!("{column} ${}", values.len()));
    };
    if let Some(state) = filter.state {
        push("state =", Box::new(state.as_str().to_owned()));
    }
    if let Some(queue) = &filter.queue {
        push("queue =", Box::new(queue.clone()));
    }
    if let Some(module) = &filter.module {
        push("module =", Box::new(module.clone()));
    }
    if let Some(priority) = filter.priority {
        push("priority =", Box::new(i64::from(priority)));
    }
    if let Some(schedule) = &filter.schedule {
        push("schedule =", Box::new(schedule.clone()));
    }
    if let Some(before) = filter.before {
        push("id <", Box::new(before));
    }
    let limit = match filter.limit {
        0 => DEFAULT_LIST_LIMIT,
        n => n.min(MAX_LIST_LIMIT),
    } as i64;
    values.push(Box::new(limit));
    let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", values.len()));
    let params: Vec<&(dyn ToSql + Sync)> = values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect();
    rows::jobs(&query(tx, &sql, &params).await?)
}

/// The number of jobs in every state, zeros included, in lifecycle order.
pub(super) async fn counts(tx: &Tx<'_>) -> Result<StateCounts> {
    let found = query(tx, "SELECT state, count(*) FROM jobs GROUP BY state", &[])
        .await?
        .iter()
        .map(|row| Ok((rows::state(row, 0)?, rows::get::<i64>(row, 1)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(JobState::ALL
        .into_iter()
        .map(|state| {
            let count = found
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            (state, u64::try_from(count).unwrap_or(0))
        })
        .collect())
}

/// The earliest `run_at` of a waiting job.
pub(super) async fn next_due(tx: &Tx<'_>) -> Result<Option<Millis>> {
    let row = rows::query_one(
        tx,
        "SELECT min(run_at) FROM jobs WHERE state IN ('pending', 'retrying')",
        &[],
    )
    .await?;
    rows::get(&row, 0)
}

/// Every queue with its waiting and running jobs and the `run_at` of its
/// oldest due waiting job.
pub(super) async fn queues(tx: &Tx<'_>, now: Millis) -> Result<Vec<QueueStats>> {
    let mut queues: Vec<QueueStats> = query(
        tx,
        "SELECT name, paused, created_at FROM queues ORDER BY name COLLATE \"C\"",
        &[],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(QueueStats {
            name: rows::get(row, 0)?,
            paused: rows::get(row, 1)?,
            created_at: rows::get(row, 2)?,
            blocked: 0,
            pending: 0,
            retrying: 0,
            running: 0,
            oldest_due: None,
        })
    })
    .collect::<Result<_>>()?;
    let counts = query(
        tx,
        "SELECT queue, state, count(*) FROM jobs
         WHERE state IN ('blocked', 'pending', 'retrying', 'running')
         GROUP BY queue, state",
        &[],
    )
    .await?;
    let oldest = query(
        tx,
        "SELECT q.name, (SELECT min(j.run_at) FROM jobs j
                         WHERE j.queue = q.name AND j.state IN ('pending', 'retrying')
                           AND j.run_at <= $1)
         FROM queues q",
        &[&now],
    )
    .await?;
    for queue in &mut queues {
        for row in &counts {
            if rows::get::<&str>(row, 0)? != queue.name {
                continue;
            }
            let n = u64::try_from(rows::get::<i64>(row, 2)?).unwrap_or(0);
            match rows::state(row, 1)? {
                JobState::Blocked => queue.blocked = n,
                JobState::Pending => queue.pending = n,
                JobState::Retrying => queue.retrying = n,
                JobState::Running => queue.running = n,
                _ => {}
            }
        }
        for row in &oldest {
            if rows::get::<&str>(row, 0)? == queue.name {
                queue.oldest_due = rows::get(row, 1)?;
            }
        }
    }
    Ok(queues)
}
