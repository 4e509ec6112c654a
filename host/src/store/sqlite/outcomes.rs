//! What happens to a running job after an attempt: a worker's result
//! (`record`), or its host gone (`rescue`: an expired lease, or start-up).
//!
//! A result is applied only while the job is still `running` under the
//! lease it was claimed with; anything else is stale and changes nothing.
//! One exception: a job cancelled while it ran keeps its token until the
//! worker reports, and then only the attempt's report is filed.
//! Attempts are numbered by the job's `attempts_total`, which counts every
//! claim of the job and, unlike `attempt`, is not reset by a requeue.

use super::jobs::CLEAR_LEASE;
use super::rows;
use crate::clock::Millis;
use crate::job::{JobId, RetryPolicy};
use crate::limits::Limits;
use crate::store::{AttemptReport, AttemptResult, Lease, Next, Recorded, Result};
use rusqlite::{Connection, OptionalExtension, params};

/// Back to waiting without spending the attempt: `pending` again if it
/// never ran before, `retrying` otherwise. `run_at` is unchanged, so the
/// job is due at once.
const RELEASE: &str = "state = CASE WHEN attempt <= 1 THEN 'pending' ELSE 'retrying' END,
     attempt = max(attempt - 1, 0), attempts_total = max(attempts_total - 1, 0),
     started_at = CASE WHEN attempt <= 1 THEN NULL ELSE started_at END";

/// Applies each result whose lease is still held.
pub(super) fn record(conn: &Connection, results: Vec<AttemptResult>) -> Result<Vec<Recorded>> {
    results
        .into_iter()
        .map(|result| record_one(conn, result))
        .collect()
}

/// The running attempt of a held lease: its number and start.
struct Held {
    number: u32,
    started_at: Option<Millis>,
    /// The job was cancelled while the attempt ran.
    cancelled: bool,
}

fn record_one(conn: &Connection, result: AttemptResult) -> Result<Recorded> {
    let AttemptResult {
        lease,
        report,
        next,
        finished_at: now,
    } = result;
    let Some(held) = held(conn, &lease)? else {
        return Ok(Recorded::Stale);
    };
    let id = lease.id;
    if held.cancelled {
        // Cancel won: keep the attempt's report as history, nothing else.
        if let Some(report) = report {
            let report = AttemptReport::Engine(Box::new(report));
            let started_at = held.started_at.unwrap_or(now);
            insert_attempt(conn, id, held.number, started_at, now, &report)?;
        }
        conn.prepare_cached("UPDATE jobs SET lease_token = NULL WHERE id = ?1")?
            .execute([id])?;
        return Ok(Recorded::Applied);
    }
    if matches!(next, Next::Release) {
        let sql = format!("UPDATE jobs SET {RELEASE}, {CLEAR_LEASE} WHERE id = ?1");
        conn.prepare_cached(&sql)?.execute([id])?;
        return Ok(Recorded::Applied);
    }
    let error = report
        .as_ref()
        .and_then(|r| r.failure.as_ref())
        .map(|f| f.message.clone());
    if let Some(report) = report {
        let started_at = held.started_at.unwrap_or(now);
        let report = AttemptReport::Engine(Box::new(report));
        insert_attempt(conn, id, held.number, started_at, now, &report)?;
    }
    match next {
        Next::Complete { output } => {
            let sql = format!(
                "UPDATE jobs SET state = 'completed', output = ?2, finished_at = ?3, {CLEAR_LEASE}
                 WHERE id = ?1"
            );
            conn.prepare_cached(&sql)?
                .execute(params![id, output, now])?;
        }
        Next::Retry { run_at, limits } => retry(conn, id, run_at, Some(&limits), error)?,
        Next::Fail => finish(conn, id, "failed", now, error)?,
        Next::Cancelled => finish(conn, id, "cancelled", now, error)?,
        Next::Release => {}
    }
    Ok(Recorded::Applied)
}

/// The attempt running under `lease`, if the lease is still held (or the
/// job was cancelled while it ran and has not reported yet).
fn held(conn: &Connection, lease: &Lease) -> Result<Option<Held>> {
    Ok(conn
        .prepare_cached(
            "SELECT attempts_total, started_at, state = 'cancelled' FROM jobs
             WHERE id = ?1 AND lease_token = ?2 AND state IN ('running', 'cancelled')",
        )?
        .query_row(params![lease.id, lease.token], |row| {
            Ok(Held {
                number: row.get(0)?,
                started_at: row.get(1)?,
                cancelled: row.get(2)?,
            })
        })
        .optional()?)
}

/// Waits for another attempt at `run_at` (with new limits, if given). The
/// job's aging starts over.
fn retry(
    conn: &Connection,
    id: JobId,
    run_at: Millis,
    limits: Option<&Limits>,
    error: Option<String>,
) -> Result<()> {
    let limits = limits.map(rows::to_json).transpose()?;
    let sql = format!(
        "UPDATE jobs SET state = 'retrying', run_at = ?2, limits = coalesce(?3, limits),
                effective_priority = priority, aged_at = NULL,
                last_error = coalesce(?4, last_error), {CLEAR_LEASE}
         WHERE id = ?1"
    );
    conn.prepare_cached(&sql)?
        .execute(params![id, run_at, limits, error])?;
    Ok(())
}

/// Ends the job in a final `state`.
fn finish(
    conn: &Connection,
    id: JobId,
    state: &str,
    now: Millis,
    error: Option<String>,
) -> Result<()> {
    let sql = format!(
        "UPDATE jobs SET state = ?2, finished_at = ?3, last_error = coalesce(?4, last_error),
                {CLEAR_LEASE}
         WHERE id = ?1"
    );
    conn.prepare_cached(&sql)?
        .execute(params![id, state, now, error])?;
    Ok(())
}

fn insert_attempt(
    conn: &Connection,
    id: JobId,
    number: u32,
    started_at: Millis,
    finished_at: Millis,
    report: &AttemptReport,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO attempts (job_id, attempt, started_at, finished_at, report)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id,
        number,
        started_at,
        finished_at,
        rows::to_json(report)?
    ])?;
    Ok(())
}

/// A running job whose lease expired.
struct Expired {
    id: JobId,
    attempt: u32,
    number: u32,
    max_attempts: u32,
    retry: RetryPolicy,
    started_at: Option<Millis>,
    owner: Option<String>,
    expired_at: Millis,
}

/// Which running jobs a rescue takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rescue {
    /// Those whose lease expired: their host stopped renewing it.
    Expired,
    /// All of them: their host is known to be gone.
    All,
}

/// Every running job whose lease expired before `now` (or every running
/// job, for [`Rescue::All`]) gets a `lost` attempt, then waits for its
/// backoff, or fails when that was its last attempt or its policy never
/// retries.
pub(super) fn rescue(conn: &Connection, now: Millis, which: Rescue) -> Result<Vec<JobId>> {
    // INDEXED BY: straight to the running jobs (see `jobs::CLAIM_CANDIDATES`).
    let expired = conn
        .prepare_cached(
            "SELECT id, attempt, attempts_total, max_attempts, retry, started_at,
                    lease_owner, lease_expires_at
             FROM jobs INDEXED BY jobs_leases
             WHERE state = 'running' AND (?2 OR lease_expires_at < ?1)
             ORDER BY id",
        )?
        .query_map(params![now, which == Rescue::All], |row| {
            Ok(Expired {
                id: row.get(0)?,
                attempt: row.get(1)?,
                number: row.get(2)?,
                max_attempts: row.get(3)?,
                retry: rows::json(row, 4)?,
                started_at: row.get(5)?,
                owner: row.get(6)?,
                expired_at: row.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut rescued = Vec::with_capacity(expired.len());
    for job in expired {
        rescue_one(conn, &job, now, which)?;
        rescued.push(job.id);
    }
    Ok(rescued)
}

fn rescue_one(conn: &Connection, job: &Expired, now: Millis, which: Rescue) -> Result<()> {
    let owner = job.owner.as_deref().unwrap_or("unknown");
    let message = match which {
        Rescue::Expired => format!(
            "attempt {} was lost: the lease held by {owner} expired at {} without a result",
            job.attempt, job.expired_at
        ),
        Rescue::All => format!(
            "attempt {} was lost: its host {owner} stopped without a result",
            job.attempt
        ),
    };
    let report = AttemptReport::Lost {
        status: "lost".to_owned(),
        owner: job.owner.clone(),
        message: message.clone(),
    };
    let started_at = job.started_at.unwrap_or(now.min(job.expired_at));
    insert_attempt(conn, job.id, job.number, started_at, now, &report)?;
    let delay = if job.attempt >= job.max_attempts {
        None
    } else {
        job.retry.delay_ms(job.attempt, fastrand::f64())
    };
    match delay {
        Some(delay) => {
            let run_at = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
            retry(conn, job.id, run_at, None, Some(message))
        }
        None => finish(conn, job.id, "failed", now, Some(message)),
    }
}
