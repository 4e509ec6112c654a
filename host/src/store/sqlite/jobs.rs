//! Job writes driven by clients and the scheduler: insert, claim, renew,
//! cancel, requeue, purge and aging. (What happens after an attempt is in
//! `outcomes`.)
//!
//! Every function runs inside one writer batch, on the writer's connection,
//! and changes only rows whose current state allows the verb.

use super::rows::{self, JOB_COLUMN_COUNT, JOB_COLUMNS, MODULE_HASH, POLICY_COLUMNS};
use super::{graph, modules};
use crate::clock::Millis;
use crate::job::{Job, JobId, JobState, NewJob, Submitted, Unique, WorkflowId};
use crate::store::{ClaimRequest, Claimed, Error, Lease, Result};
use rusqlite::{Connection, OptionalExtension, params};

/// The SQL that drops a job's lease.
pub(super) const CLEAR_LEASE: &str =
    "lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL";

/// A queue's due jobs, most urgent first: the claim's candidates from one
/// queue. `INDEXED BY`: without statistics SQLite prefers `jobs_by_state`
/// and sorts every waiting job; `jobs_claim` yields them in order and stops
/// after `LIMIT` due ones. Listing every priority turns the walk into one
/// range per priority that ends at `run_at <= now`: delayed jobs are never
/// visited, however many there are (a plain scan would step over every
/// delayed job of a priority before reaching the next one).
pub(super) const CLAIM_CANDIDATES: &str = "SELECT id, effective_priority, run_at
     FROM jobs INDEXED BY jobs_claim
     WHERE queue = ?1 AND state IN ('pending', 'retrying')
       AND effective_priority IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) AND run_at <= ?2
     ORDER BY effective_priority, run_at, id
     LIMIT ?3";

/// Where new jobs come from: a workflow, the attempt of another job.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Origin<'a> {
    /// The workflow they join.
    pub workflow: Option<WorkflowId>,
    /// The job whose attempt submitted them.
    pub parent: Option<JobId>,
    /// The schedule that created them.
    pub schedule: Option<&'a str>,
}

/// Stores new jobs: `pending`, or `blocked` while a prerequisite is not
/// resolved (see `graph`); each module must be recorded. A unique job
/// whose key matches a job of its queue that is not final, or finished
/// within its window, is not stored: that job is returned instead. Runs in
/// one writer command, so concurrent submissions of one key store one job.
pub(super) fn insert(
    conn: &Connection,
    jobs: &[NewJob],
    now: Millis,
    origin: Origin<'_>,
) -> Result<Vec<Submitted>> {
    let sql = format!(
        "INSERT INTO jobs (module_id, module_name, input, priority, effective_priority, state,
                           max_attempts, run_at, created_at, {POLICY_COLUMNS}, queue,
                           unique_key, prereqs, waiting_on, workflow_id, node, parent_id,
                           schedule, grants, trace_parent)
         VALUES (?1, ?2, ?3, ?4, ?4, CASE WHEN ?22 > 0 THEN 'blocked' ELSE 'pending' END,
                 ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                 ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)
         RETURNING {JOB_COLUMNS}"
    );
    let mut insert = conn.prepare_cached(&sql)?;
    let mut queue = conn.prepare_cached(
        "INSERT INTO queues (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )?;
    let mut stored = Vec::with_capacity(jobs.len());
    let mut last_queue: Option<&str> = None;
    let mut last_module: Option<(&str, i64)> = None;
    for new in jobs {
        let module_id = match last_module {
            Some((hash, id)) if hash == new.module.hash => id,
            _ => {
                let id = modules::id(conn, &new.module.hash)?
                    .ok_or_else(|| Error::module_not_found(&new.module.hash))?;
                last_module = Some((&new.module.hash, id));
                id
            }
        };
        if let Some(unique) = &new.unique
            && let Some(job) = holding(conn, &new.queue, unique, now)?
        {
            stored.push(Submitted {
                job,
                created: false,
            });
            continue;
        }
        let prereqs = graph::prereqs(conn, &new.depends_on, &stored)?;
        // A queue is created on first use.
        if last_queue != Some(new.queue.as_str()) {
            queue.execute(params![new.queue, now])?;
            last_queue = Some(&new.queue);
        }
        let [fuel, memory, timeout, output, records, log_bytes, tail] =
            rows::limit_columns(&new.limits)?;
        let [backoff, base, max, jitter] = rows::retry_columns(&new.retry)?;
        let values = params![
            module_id,
            new.module.name,
            new.input.as_str(),
            new.priority,
            new.max_attempts,
            new.run_at,
            now,
            fuel,
            memory,
            timeout,
            output,
            records,
            log_bytes,
            tail,
            backoff,
            base,
            max,
            jitter,
            new.queue,
            new.unique.as_ref().map(|u| u.key.as_str()),
            prereqs.edges.len() as i64,
            prereqs.waiting,
            origin.workflow,
            new.node,
            origin.parent,
            origin.schedule,
            new.grants.as_ref().map(|grants| grants.join(" ")),
            new.trace.map(|trace| trace.to_string()),
        ];
        let job = insert.query_row(values, rows::job)?;
        graph::insert_edges(conn, job.id, &prereqs)?;
        stored.push(Submitted { job, created: true });
    }
    Ok(stored)
}

/// The job of `queue` that holds `unique`'s key now: not final, or
/// finished less than the window ago.
fn holding(conn: &Connection, queue: &str, unique: &Unique, now: Millis) -> Result<Option<Job>> {
    let since = now.saturating_sub(i64::try_from(unique.window_ms).unwrap_or(i64::MAX));
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_unique
         WHERE queue = ?1 AND unique_key = ?2
           AND (state NOT IN ('completed', 'failed', 'cancelled') OR finished_at > ?3)
         ORDER BY id DESC LIMIT 1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![queue, unique.key, since], rows::job)
        .optional()?)
}

/// Claims up to `request.limit` due jobs, most urgent first across every
/// queue that is not paused and below its cap. Each queue's candidates
/// come from its own index range (at most what the queue may still take),
/// so a paused or full queue's backlog is never walked; the candidates are
/// merged in claim order. Each claimed job gets a fresh 128-bit token from
/// SQLite's CSPRNG (`randomblob`), as 32 hex digits.
pub(super) fn claim(
    conn: &Connection,
    request: &ClaimRequest,
    now: Millis,
) -> Result<Vec<Claimed>> {
    let limit = request.limit;
    let mut candidates: Vec<(i64, Millis, JobId)> = Vec::new();
    let queues: Vec<String> = conn
        .prepare_cached("SELECT name FROM queues WHERE NOT paused ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut seek = conn.prepare_cached(CLAIM_CANDIDATES)?;
    for queue in &queues {
        let room = match request.caps.get(queue) {
            Some(&cap) => cap.saturating_sub(running_in(conn, queue)?),
            None => limit,
        };
        let take = i64::try_from(room.min(limit)).unwrap_or(i64::MAX);
        if take == 0 {
            continue;
        }
        let rows = seek.query_map(params![queue, now, take], |row| {
            Ok((row.get(1)?, row.get(2)?, row.get(0)?))
        })?;
        for row in rows {
            candidates.push(row?);
        }
    }
    candidates.sort_unstable();
    candidates.truncate(limit);
    let sql = format!(
        "UPDATE jobs SET state = 'running', attempt = attempt + 1,
                attempts_total = attempts_total + 1, lease_owner = ?2,
                lease_token = lower(hex(randomblob(16))), lease_expires_at = ?3,
                claimed_at = ?4
         WHERE id = ?1
         RETURNING {JOB_COLUMNS}, input, lease_token, prereqs"
    );
    let mut update = conn.prepare_cached(&sql)?;
    let expires = now.saturating_add(request.lease_ms);
    let mut claimed = Vec::with_capacity(candidates.len());
    for (_, _, id) in candidates {
        let (mut job, prereqs): (Claimed, i64) =
            update.query_row(params![id, request.owner, expires, now], |row| {
                Ok((
                    Claimed {
                        job: rows::job(row)?,
                        input: rows::json(row, JOB_COLUMN_COUNT)?,
                        token: row.get(JOB_COLUMN_COUNT + 1)?,
                        dependencies: Vec::new(),
                    },
                    row.get(JOB_COLUMN_COUNT + 2)?,
                ))
            })?;
        if prereqs > 0 {
            job.dependencies = graph::resolved(conn, id)?;
        }
        claimed.push(job);
    }
    Ok(claimed)
}

/// How many jobs of `queue` are running (claimed, on any host).
fn running_in(conn: &Connection, queue: &str) -> Result<usize> {
    // INDEXED BY: the running jobs only (see `outcomes::leased`).
    let count: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM jobs INDEXED BY jobs_leases
             WHERE state = 'running' AND queue = ?1",
        )?
        .query_row([queue], |row| row.get(0))?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// Extends the leases still held; returns their ids.
pub(super) fn renew(conn: &Connection, leases: &[Lease], until: Millis) -> Result<Vec<JobId>> {
    let mut update = conn.prepare_cached(
        "UPDATE jobs SET lease_expires_at = ?3
         WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
    )?;
    let mut held = Vec::new();
    for lease in leases {
        if update.execute(params![lease.id, lease.token, until])? == 1 {
            held.push(lease.id);
        }
    }
    Ok(held)
}

/// Cancels a job that is not final. A running job's lease stops counting
/// (no renewal, no rescue) but its token is kept, so the worker's report of
/// the interrupted attempt is still filed; the job stays cancelled.
///
/// `reason`, when given, is kept as the job's `last_error`. The jobs
/// waiting for it follow (see `graph`).
pub(super) fn cancel(
    conn: &Connection,
    id: JobId,
    reason: Option<&str>,
    now: Millis,
) -> Result<Job> {
    let state = state_of(conn, id)?;
    if state.is_final() {
        return Err(Error::Conflict(format!(
            "job {id} is {state} and cannot be cancelled"
        )));
    }
    let sql = format!(
        "UPDATE jobs SET state = 'cancelled', finished_at = ?2, lease_owner = NULL,
                lease_expires_at = NULL, last_error = coalesce(?3, last_error)
         WHERE id = ?1 RETURNING {JOB_COLUMNS}"
    );
    let job = conn
        .prepare_cached(&sql)?
        .query_row(params![id, now, reason], rows::job)?;
    graph::ended(conn, id, JobState::Cancelled, now)?;
    Ok(job)
}

/// Moves a `failed` job back to `pending` with a fresh attempt budget, due
/// now, provided its module is still there. Its attempts and `last_error`
/// are kept as history.
pub(super) fn requeue(conn: &Connection, id: JobId, now: Millis) -> Result<Job> {
    let state = state_of(conn, id)?;
    if state != JobState::Failed {
        return Err(Error::Conflict(format!(
            "job {id} is {state}; only failed jobs can be requeued"
        )));
    }
    let module: String = conn
        .prepare_cached(&format!("SELECT {MODULE_HASH} FROM jobs WHERE id = ?1"))?
        .query_row([id], |row| row.get(0))?;
    if !modules::exists(conn, &module)? {
        return Err(Error::Conflict(format!(
            "job {id} cannot be requeued: its module {module} was deleted; upload it again first"
        )));
    }
    let sql = format!(
        "UPDATE jobs SET state = 'pending', attempt = 0, run_at = ?2, finished_at = NULL,
                effective_priority = priority, aged_at = NULL
         WHERE id = ?1 RETURNING {JOB_COLUMNS}"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![id, now], rows::job)?)
}

/// Pauses or resumes a queue, creating it if it was never used.
pub(super) fn set_paused(conn: &Connection, queue: &str, paused: bool, now: Millis) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO queues (name, paused, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
    )?
    .execute(params![queue, paused, now])?;
    Ok(())
}

/// Deletes `failed` jobs (these, or all when `ids` is empty) and, by
/// cascade, their attempts. Other ids are skipped.
pub(super) fn purge(conn: &Connection, ids: &[JobId]) -> Result<u64> {
    if ids.is_empty() {
        let deleted = conn
            .prepare_cached("DELETE FROM jobs WHERE state = 'failed'")?
            .execute([])?;
        return Ok(deleted as u64);
    }
    let mut delete = conn.prepare_cached("DELETE FROM jobs WHERE id = ?1 AND state = 'failed'")?;
    let mut deleted = 0;
    for id in ids {
        deleted += delete.execute([id])? as u64;
    }
    Ok(deleted)
}

/// One aging step for every due waiting job that has waited `after_ms`
/// since it became due or since its last step. The step's time is that
/// boundary, not `now`, so steps do not drift with the caller's period and
/// a job that missed several catches up one step per call. `after_ms <= 0`
/// turns aging off.
pub(super) fn age(conn: &Connection, after_ms: i64, now: Millis) -> Result<u64> {
    if after_ms <= 0 {
        return Ok(0);
    }
    // INDEXED BY: only due waiting jobs are candidates.
    let aged = conn
        .prepare_cached(
            "UPDATE jobs INDEXED BY jobs_waiting
             SET effective_priority = effective_priority - 1,
                 aged_at = max(run_at, coalesce(aged_at, run_at)) + ?1
             WHERE state IN ('pending', 'retrying') AND run_at <= ?2
               AND effective_priority > 0
               AND max(run_at, coalesce(aged_at, run_at)) + ?1 <= ?2",
        )?
        .execute(params![after_ms, now])?;
    Ok(aged as u64)
}

/// A job's state; [`Error::NotFound`] for an unknown id.
fn state_of(conn: &Connection, id: JobId) -> Result<JobState> {
    conn.prepare_cached("SELECT state FROM jobs WHERE id = ?1")?
        .query_row([id], |row| rows::state(row, 0))
        .optional()?
        .ok_or_else(|| Error::job_not_found(id))
}
