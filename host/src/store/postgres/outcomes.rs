//! Applying attempt outcomes, and listing leased jobs for the rescuer.
//!
//! The rules are SQLite's (`store/sqlite/outcomes.rs`): an outcome is
//! applied only while the job is still `running` under its lease (for a
//! rescue, also only while that lease is still expired), a job cancelled
//! while it ran files only the attempt's record, and the outcome's
//! [`Decision`] is applied, never made. Here the job's row is locked
//! (`FOR UPDATE`) while the lease is checked, so a concurrent renewal,
//! cancel or second outcome from another host waits for the decision.

use super::jobs::{self, CLEAR_LEASE, Origin};
use super::rows::{self, JOB_COLUMN_COUNT, JOB_COLUMNS, execute, query, query_opt};
use super::{Tx, graph};
use crate::clock::Millis;
use crate::job::{JobId, JobState, NewJob, WorkflowId};
use crate::policy::Decision;
use crate::store::{
    AttemptRecord, Lease, LeaseFilter, LeasedJob, Outcome, Recorded, Result, encoding,
};
use deadpool_postgres::GenericClient;

/// Back to waiting without spending the attempt: `pending` again if it
/// never ran before, `retrying` otherwise; due at once.
const RELEASE: &str = "state = CASE WHEN attempt <= 1 THEN 'pending' ELSE 'retrying' END,
     attempt = greatest(attempt - 1, 0), attempts_total = greatest(attempts_total - 1, 0)";

/// Which leases an apply accepts.
#[derive(Clone, Copy, Debug)]
pub(super) enum Require {
    /// The lease is held: the job runs under its token.
    Held,
    /// The lease is held and expired before this time.
    ExpiredBefore(Millis),
}

/// The attempt running under a held lease.
struct Held {
    /// Its number in the job's history.
    number: i64,
    /// The job was cancelled while the attempt ran.
    cancelled: bool,
}

/// Applies one outcome (see the module docs).
pub(super) async fn apply(tx: &Tx<'_>, outcome: &Outcome, require: Require) -> Result<Recorded> {
    let Some(held) = held(tx, &outcome.lease, require).await? else {
        return Ok(Recorded::Stale);
    };
    let id = outcome.lease.id;
    if held.cancelled {
        // The cancel won: keep the attempt as history, nothing else.
        if let Some(attempt) = &outcome.attempt {
            insert_attempt(tx, id, held.number, attempt, outcome.at).await?;
        }
        execute(
            tx,
            "UPDATE jobs SET lease_token = NULL WHERE id = $1",
            &[&id],
        )
        .await?;
        return Ok(Recorded::Applied);
    }
    if outcome.decision == Decision::Release {
        let sql = format!("UPDATE jobs SET {RELEASE}, {CLEAR_LEASE} WHERE id = $1");
        execute(tx, &sql, &[&id]).await?;
        return Ok(Recorded::Applied);
    }
    let (started_at, error) = match &outcome.attempt {
        Some(attempt) => {
            insert_attempt(tx, id, held.number, attempt, outcome.at).await?;
            (Some(attempt.started_at), attempt.report.error())
        }
        None => (None, None),
    };
    execute(
        tx,
        "UPDATE jobs SET started_at = coalesce($2, started_at),
                last_error = coalesce($3, last_error)
         WHERE id = $1",
        &[&id, &started_at, &error],
    )
    .await?;
    // Whether jobs waiting for this one changed with it.
    let released = match &outcome.decision {
        Decision::Complete => {
            let output = outcome.output.as_ref().map(|o| o.as_str());
            let sql = format!(
                "UPDATE jobs SET state = 'completed', output = coalesce($2, 'null'),
                        finished_at = $3, {CLEAR_LEASE}
                 WHERE id = $1"
            );
            execute(tx, &sql, &[&id, &output, &outcome.at]).await?;
            let changed = graph::ended(tx, id, JobState::Completed, outcome.at).await?;
            if !outcome.follow_ups.is_empty() {
                follow_ups(tx, id, &outcome.follow_ups, outcome.at).await?;
            }
            !changed.is_empty()
        }
        Decision::Retry { run_at, limits } => {
            let [fuel, memory, timeout, output, records, log_bytes, tail] =
                rows::limit_columns(limits)?;
            // A new attempt starts aging over.
            let sql = format!(
                "UPDATE jobs SET state = 'retrying', run_at = $2, effective_priority = priority,
                        aged_at = NULL, fuel = $3, memory_bytes = $4, timeout_ms = $5,
                        output_bytes = $6, log_records = $7, log_bytes = $8,
                        stdio_tail_bytes = $9, {CLEAR_LEASE}
                 WHERE id = $1"
            );
            execute(
                tx,
                &sql,
                &[
                    &id, run_at, &fuel, &memory, &timeout, &output, &records, &log_bytes, &tail,
                ],
            )
            .await?;
            false
        }
        Decision::DeadLetter => finish(tx, id, JobState::Failed, outcome.at).await?,
        Decision::Cancelled => finish(tx, id, JobState::Cancelled, outcome.at).await?,
        Decision::Release => unreachable!("handled above"),
    };
    Ok(if released {
        Recorded::Released
    } else {
        Recorded::Applied
    })
}

/// Whether `outcome` may take [`complete_many`]'s path: a completion of a
/// held lease with its attempt and no follow-ups.
pub(super) fn plain_completion(outcome: &Outcome, require: Require) -> bool {
    matches!(require, Require::Held)
        && outcome.decision == Decision::Complete
        && outcome.attempt.is_some()
        && outcome.follow_ups.is_empty()
}

/// Applies many [`plain_completion`]s in one statement: each whose lease
/// is still held and whose job no other job waits for (those take
/// [`apply`], which releases or cancels the dependents) is completed with
/// its attempt recorded, exactly as [`apply`] would. Returns the ids
/// completed; the others are left untouched for [`apply`] to answer
/// (stale, cancelled meanwhile, or with dependents). Rows are locked in
/// id order. The input is joined once, to `jobs` by primary key: the
/// planner takes an `unnest` for ten rows, and a second join between two
/// CTEs was a nested loop, quadratic in the batch (0.1 s for 420).
pub(super) async fn complete_many(
    db: &impl GenericClient,
    outcomes: &[&Outcome],
) -> Result<Vec<JobId>> {
    let mut ids = Vec::with_capacity(outcomes.len());
    let mut tokens = Vec::with_capacity(outcomes.len());
    let mut outputs: Vec<Option<&str>> = Vec::with_capacity(outcomes.len());
    let mut ats = Vec::with_capacity(outcomes.len());
    let mut starts = Vec::with_capacity(outcomes.len());
    let mut reports = Vec::with_capacity(outcomes.len());
    let mut errors: Vec<Option<&str>> = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let attempt = outcome
            .attempt
            .as_ref()
            .expect("a plain completion has its attempt");
        ids.push(outcome.lease.id);
        tokens.push(outcome.lease.token.as_str());
        outputs.push(outcome.output.as_ref().map(|o| o.as_str()));
        ats.push(outcome.at);
        starts.push(attempt.started_at);
        reports.push(encoding::encode(&attempt.report)?);
        errors.push(attempt.report.error());
    }
    let sql = format!(
        "WITH input AS (
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[],
                                  $5::bigint[], $6::text[], $7::text[])
                 AS i (id, token, output, at, started_at, report, error)
         ),
         held AS (
             SELECT jobs.id, jobs.attempts_total, i.output, i.at, i.started_at, i.report,
                    i.error
             FROM jobs JOIN input i ON jobs.id = i.id AND jobs.lease_token = i.token
             WHERE jobs.state = 'running'
               AND NOT EXISTS (SELECT 1 FROM job_deps d WHERE d.prereq_id = jobs.id)
             ORDER BY jobs.id
             FOR UPDATE OF jobs
         ),
         done AS (
             UPDATE jobs SET state = 'completed', output = coalesce(held.output, 'null'),
                    finished_at = held.at, started_at = held.started_at,
                    last_error = coalesce(held.error, jobs.last_error), {CLEAR_LEASE}
             FROM held
             WHERE jobs.id = held.id
             RETURNING jobs.id, held.attempts_total, held.started_at, held.at, held.report
         ),
         recorded AS (
             INSERT INTO attempts (job_id, attempt, started_at, finished_at, report)
             SELECT id, attempts_total, started_at, at, report FROM done
         )
         SELECT id FROM done"
    );
    query(
        db,
        &sql,
        &[&ids, &tokens, &outputs, &ats, &starts, &reports, &errors],
    )
    .await?
    .iter()
    .map(|row| rows::get(row, 0))
    .collect()
}

/// Creates the follow-up jobs of job `parent`'s completed attempt: in the
/// parent's workflow, or a new one the parent joins.
async fn follow_ups(tx: &Tx<'_>, parent: JobId, jobs: &[NewJob], now: Millis) -> Result<()> {
    let row = rows::query_one(tx, "SELECT workflow_id FROM jobs WHERE id = $1", &[&parent]).await?;
    let workflow: Option<WorkflowId> = rows::get(&row, 0)?;
    let workflow = match workflow {
        Some(workflow) => workflow,
        None => {
            let workflow = graph::insert_workflow(tx, None, now).await?;
            execute(
                tx,
                "UPDATE jobs SET workflow_id = $2 WHERE id = $1",
                &[&parent, &workflow],
            )
            .await?;
            workflow
        }
    };
    let origin = Origin {
        workflow: Some(workflow),
        parent: Some(parent),
        schedule: None,
    };
    jobs::insert(tx, jobs, now, origin).await?;
    Ok(())
}

/// The attempt running under `lease`, if the lease is still held as
/// `require` says (or the job was cancelled while it ran and its worker has
/// not reported yet); the job's row is locked until the transaction ends.
async fn held(tx: &Tx<'_>, lease: &Lease, require: Require) -> Result<Option<Held>> {
    let expired_before = match require {
        Require::Held => None,
        Require::ExpiredBefore(now) => Some(now),
    };
    let row = query_opt(
        tx,
        "SELECT attempts_total, state = 'cancelled' FROM jobs
         WHERE id = $1 AND lease_token = $2
           AND (state = 'running' OR (state = 'cancelled' AND $3::bigint IS NULL))
           AND ($3::bigint IS NULL OR lease_expires_at < $3)
         FOR UPDATE",
        &[&lease.id, &lease.token, &expired_before],
    )
    .await?;
    row.map(|row| {
        Ok(Held {
            number: rows::get(&row, 0)?,
            cancelled: rows::get(&row, 1)?,
        })
    })
    .transpose()
}

/// Ends the job in a final `state`; the jobs waiting for it follow.
/// Returns whether any of them changed.
async fn finish(tx: &Tx<'_>, id: JobId, state: JobState, now: Millis) -> Result<bool> {
    let sql = format!("UPDATE jobs SET state = $2, finished_at = $3, {CLEAR_LEASE} WHERE id = $1");
    execute(tx, &sql, &[&id, &state.as_str(), &now]).await?;
    Ok(!graph::ended(tx, id, state, now).await?.is_empty())
}

async fn insert_attempt(
    tx: &Tx<'_>,
    id: JobId,
    number: i64,
    attempt: &AttemptRecord,
    finished_at: Millis,
) -> Result<()> {
    let report = encoding::encode(&attempt.report)?;
    execute(
        tx,
        "INSERT INTO attempts (job_id, attempt, started_at, finished_at, report)
         VALUES ($1, $2, $3, $4, $5)",
        &[&id, &number, &attempt.started_at, &finished_at, &report],
    )
    .await?;
    Ok(())
}

/// Leased jobs, by id: every running job, or those whose lease expired.
pub(super) async fn leased(
    tx: &Tx<'_>,
    filter: LeaseFilter,
    limit: usize,
) -> Result<Vec<LeasedJob>> {
    let (all, before, owner) = match filter {
        LeaseFilter::All => (true, 0, None),
        LeaseFilter::ExpiredBefore(now) => (false, now, None),
        LeaseFilter::OwnedBy(owner) => (true, 0, Some(owner)),
    };
    let sql = format!(
        "SELECT {JOB_COLUMNS}, lease_token, lease_owner, claimed_at, lease_expires_at
         FROM jobs
         WHERE state = 'running' AND ($1 OR lease_expires_at < $2)
           AND ($4::text IS NULL OR lease_owner = $4)
         ORDER BY id LIMIT $3"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    query(tx, &sql, &[&all, &before, &limit, &owner])
        .await?
        .iter()
        .map(|row| {
            let job = rows::job(row)?;
            let expires_at: Millis = rows::get(row, JOB_COLUMN_COUNT + 3)?;
            Ok(LeasedJob {
                lease: Lease {
                    id: job.id,
                    token: rows::get(row, JOB_COLUMN_COUNT)?,
                },
                owner: rows::get(row, JOB_COLUMN_COUNT + 1)?,
                claimed_at: rows::get::<Option<Millis>>(row, JOB_COLUMN_COUNT + 2)?
                    .unwrap_or(expires_at),
                expires_at,
                job,
            })
        })
        .collect()
}
