//! Applying attempt outcomes, and listing leased jobs for the rescuer.
//!
//! An outcome is applied only while the job is still `running` under the
//! lease it was claimed with (for a rescue, also only while that lease is
//! still expired); anything else is stale and changes nothing. One
//! exception: a job cancelled while it ran keeps its token until its
//! worker reports, and then only the attempt's record is filed. What the
//! job becomes is the outcome's [`Decision`]: this module applies it, it
//! never makes one.
//!
//! Attempts are numbered by the job's `attempts_total`, which counts every
//! claim of the job and, unlike `attempt`, is not reset by a requeue.

use super::graph;
use super::jobs::{self, CLEAR_LEASE, Origin};
use super::rows::{self, JOB_COLUMN_COUNT, JOB_COLUMNS};
use crate::clock::Millis;
use crate::job::{JobId, JobState, NewJob, WorkflowId};
use crate::policy::Decision;
use crate::store::{
    AttemptRecord, Lease, LeaseFilter, LeasedJob, Outcome, Recorded, Result, encoding,
};
use rusqlite::{Connection, OptionalExtension, params};

/// Back to waiting without spending the attempt: `pending` again if it
/// never ran before, `retrying` otherwise. `run_at` is unchanged, so the
/// job is due at once.
const RELEASE: &str = "state = CASE WHEN attempt <= 1 THEN 'pending' ELSE 'retrying' END,
     attempt = max(attempt - 1, 0), attempts_total = max(attempts_total - 1, 0)";

/// Which leases an apply accepts.
#[derive(Clone, Copy, Debug)]
pub(super) enum Require {
    /// The lease is held: the job runs under its token.
    Held,
    /// The lease is held and expired before this time.
    ExpiredBefore(Millis),
}

/// Applies every outcome, stopping at the first that fails: the caller
/// rolls the whole command back and retries with [`apply_each`]. The fast
/// path: no savepoint per outcome.
pub(super) fn apply_all(
    conn: &Connection,
    outcomes: &[Outcome],
    require: Require,
) -> Result<Vec<Result<Recorded>>> {
    outcomes
        .iter()
        .map(|outcome| apply(conn, outcome, require).map(Ok))
        .collect()
}

/// Applies each outcome inside its own savepoint: one that fails is rolled
/// back and answered with its error, the others stand.
pub(super) fn apply_each(
    conn: &Connection,
    outcomes: &[Outcome],
    require: Require,
) -> Result<Vec<Result<Recorded>>> {
    let mut results = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        conn.prepare_cached("SAVEPOINT outcome")?.execute([])?;
        let result = apply(conn, outcome, require);
        if result.is_err() {
            conn.prepare_cached("ROLLBACK TO outcome")?.execute([])?;
        }
        conn.prepare_cached("RELEASE outcome")?.execute([])?;
        results.push(result);
    }
    Ok(results)
}

/// The attempt running under a held lease.
struct Held {
    /// Its number in the job's history.
    number: u32,
    /// The job was cancelled while the attempt ran.
    cancelled: bool,
}

fn apply(conn: &Connection, outcome: &Outcome, require: Require) -> Result<Recorded> {
    let Some(held) = held(conn, &outcome.lease, require)? else {
        return Ok(Recorded::Stale);
    };
    let id = outcome.lease.id;
    if held.cancelled {
        // The cancel won: keep the attempt as history, nothing else.
        if let Some(attempt) = &outcome.attempt {
            insert_attempt(conn, id, held.number, attempt, outcome.at)?;
        }
        conn.prepare_cached("UPDATE jobs SET lease_token = NULL WHERE id = ?1")?
            .execute([id])?;
        return Ok(Recorded::Applied);
    }
    if outcome.decision == Decision::Release {
        let sql = format!("UPDATE jobs SET {RELEASE}, {CLEAR_LEASE} WHERE id = ?1");
        conn.prepare_cached(&sql)?.execute([id])?;
        return Ok(Recorded::Applied);
    }
    let (started_at, error) = match &outcome.attempt {
        Some(attempt) => {
            insert_attempt(conn, id, held.number, attempt, outcome.at)?;
            (Some(attempt.started_at), attempt.report.error())
        }
        None => (None, None),
    };
    conn.prepare_cached(
        "UPDATE jobs SET started_at = coalesce(?2, started_at),
                last_error = coalesce(?3, last_error)
         WHERE id = ?1",
    )?
    .execute(params![id, started_at, error])?;
    // Whether jobs waiting for this one changed with it.
    let released = match &outcome.decision {
        Decision::Complete => {
            let output = outcome.output.as_ref().map(|o| o.as_str());
            let sql = format!(
                "UPDATE jobs SET state = 'completed', output = coalesce(?2, 'null'),
                        finished_at = ?3, {CLEAR_LEASE}
                 WHERE id = ?1"
            );
            conn.prepare_cached(&sql)?
                .execute(params![id, output, outcome.at])?;
            let changed = graph::ended(conn, id, JobState::Completed, outcome.at)?;
            if !outcome.follow_ups.is_empty() {
                follow_ups(conn, id, &outcome.follow_ups, outcome.at)?;
            }
            !changed.is_empty()
        }
        Decision::Retry { run_at, limits } => {
            let [fuel, memory, timeout, output, records, log_bytes, tail] =
                rows::limit_columns(limits)?;
            // A new attempt starts aging over.
            let sql = format!(
                "UPDATE jobs SET state = 'retrying', run_at = ?2, effective_priority = priority,
                        aged_at = NULL, fuel = ?3, memory_bytes = ?4, timeout_ms = ?5,
                        output_bytes = ?6, log_records = ?7, log_bytes = ?8,
                        stdio_tail_bytes = ?9, {CLEAR_LEASE}
                 WHERE id = ?1"
            );
            conn.prepare_cached(&sql)?.execute(params![
                id, run_at, fuel, memory, timeout, output, records, log_bytes, tail
            ])?;
            false
        }
        Decision::DeadLetter => finish(conn, id, JobState::Failed, outcome.at)?,
        Decision::Cancelled => finish(conn, id, JobState::Cancelled, outcome.at)?,
        Decision::Release => unreachable!("handled above"),
    };
    Ok(if released {
        Recorded::Released
    } else {
        Recorded::Applied
    })
}

/// Creates the follow-up jobs of job `parent`'s completed attempt: in the
/// parent's workflow, or a new one the parent joins.
fn follow_ups(conn: &Connection, parent: JobId, jobs: &[NewJob], now: Millis) -> Result<()> {
    let workflow: Option<WorkflowId> = conn
        .prepare_cached("SELECT workflow_id FROM jobs WHERE id = ?1")?
        .query_row([parent], |row| row.get(0))?;
    let workflow = match workflow {
        Some(workflow) => workflow,
        None => {
            let workflow = graph::insert_workflow(conn, None, now)?;
            conn.prepare_cached("UPDATE jobs SET workflow_id = ?2 WHERE id = ?1")?
                .execute(params![parent, workflow])?;
            workflow
        }
    };
    let origin = Origin {
        workflow: Some(workflow),
        parent: Some(parent),
        schedule: None,
    };
    jobs::insert(conn, jobs, now, origin)?;
    Ok(())
}

/// The attempt running under `lease`, if the lease is still held as
/// `require` says (or the job was cancelled while it ran and its worker has
/// not reported yet).
fn held(conn: &Connection, lease: &Lease, require: Require) -> Result<Option<Held>> {
    let expired_before = match require {
        Require::Held => None,
        Require::ExpiredBefore(now) => Some(now),
    };
    Ok(conn
        .prepare_cached(
            "SELECT attempts_total, state = 'cancelled' FROM jobs
             WHERE id = ?1 AND lease_token = ?2
               AND (state = 'running' OR (state = 'cancelled' AND ?3 IS NULL))
               AND (?3 IS NULL OR lease_expires_at < ?3)",
        )?
        .query_row(params![lease.id, lease.token, expired_before], |row| {
            Ok(Held {
                number: row.get(0)?,
                cancelled: row.get(1)?,
            })
        })
        .optional()?)
}

/// Ends the job in a final `state`; the jobs waiting for it follow.
/// Returns whether any of them changed.
fn finish(conn: &Connection, id: JobId, state: JobState, now: Millis) -> Result<bool> {
    let sql = format!(
        "UPDATE jobs SET state = ?2, finished_at = ?3, {CLEAR_LEASE}
         WHERE id = ?1"
    );
    conn.prepare_cached(&sql)?
        .execute(params![id, state.as_str(), now])?;
    Ok(!graph::ended(conn, id, state, now)?.is_empty())
}

fn insert_attempt(
    conn: &Connection,
    id: JobId,
    number: u32,
    attempt: &AttemptRecord,
    finished_at: Millis,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO attempts (job_id, attempt, started_at, finished_at, report)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id,
        number,
        attempt.started_at,
        finished_at,
        encoding::encode(&attempt.report)?
    ])?;
    Ok(())
}

/// Leased jobs, by id: every running job, or those whose lease expired.
pub(super) fn leased(
    conn: &Connection,
    filter: LeaseFilter,
    limit: usize,
) -> Result<Vec<LeasedJob>> {
    let (all, before, owner) = match filter {
        LeaseFilter::All => (true, 0, None),
        LeaseFilter::ExpiredBefore(now) => (false, now, None),
        LeaseFilter::OwnedBy(owner) => (true, 0, Some(owner)),
    };
    // INDEXED BY: straight to the running jobs (see `jobs::CLAIM_CANDIDATES`).
    let sql = format!(
        "SELECT {JOB_COLUMNS}, lease_token, lease_owner, claimed_at, lease_expires_at
         FROM jobs INDEXED BY jobs_leases
         WHERE state = 'running' AND (?1 OR lease_expires_at < ?2)
           AND (?4 IS NULL OR lease_owner = ?4)
         ORDER BY id LIMIT ?3"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let leased = conn
        .prepare_cached(&sql)?
        .query_map(params![all, before, limit, owner], |row| {
            let job = rows::job(row)?;
            let expires_at: Millis = row.get(JOB_COLUMN_COUNT + 3)?;
            Ok(LeasedJob {
                lease: Lease {
                    id: job.id,
                    token: row.get(JOB_COLUMN_COUNT)?,
                },
                owner: row.get(JOB_COLUMN_COUNT + 1)?,
                claimed_at: row
                    .get::<_, Option<Millis>>(JOB_COLUMN_COUNT + 2)?
                    .unwrap_or(expires_at),
                expires_at,
                job,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(leased)
}
