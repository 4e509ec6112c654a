//! Dependencies and workflows: the edges between jobs, what a job's end
//! does to the jobs waiting for it, and the workflow rows.
//!
//! A dependent counts the prerequisites it still waits for
//! (`waiting_on`). When a prerequisite ends, each edge out of it is
//! resolved: a completed prerequisite, or one that failed behind an
//! `on_failure: continue` edge, takes one off the count (at zero the job is
//! `pending`, due at its `run_at` or now, whichever is later); one that
//! failed or was cancelled behind a `cancel` edge cancels the dependent,
//! with a reason naming the prerequisite and the root cause, and so on
//! down the graph. It all happens in the transaction that ended the
//! prerequisite.

use super::rows::{self, JOB_COLUMNS};
use crate::clock::Millis;
use crate::job::{
    Dependency, Edge, JobId, JobState, OnFailure, Prereq, Resolved, Submitted, Workflow,
    WorkflowDetail, WorkflowId,
};
use crate::store::{Error, Result, WorkflowFilter};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;

/// The columns [`edge`] reads, in order.
const EDGE_COLUMNS: &str = "d.job_id, d.prereq_id, d.name, d.on_failure";

/// An edge from a row of [`EDGE_COLUMNS`].
fn edge(row: &rusqlite::Row<'_>) -> rusqlite::Result<Edge> {
    let on_failure: String = row.get(3)?;
    Ok(Edge {
        job: row.get(0)?,
        prereq: row.get(1)?,
        name: row.get(2)?,
        on_failure: OnFailure::parse(&on_failure).unwrap_or_default(),
    })
}

/// A new job's prerequisites, checked and resolved to ids: each must
/// exist, appear once, and not have already failed behind a `cancel`
/// edge. `earlier` are the ids stored so far by the same insert.
pub(super) struct Prereqs {
    /// `(prereq id, dependency)`, in the order given.
    pub edges: Vec<(JobId, Dependency)>,
    /// How many are not resolved yet.
    pub waiting: u32,
}

/// Checks `depends_on` against the stored jobs (see [`Prereqs`]).
pub(super) fn prereqs(
    conn: &Connection,
    depends_on: &[Dependency],
    earlier: &[Submitted],
) -> Result<Prereqs> {
    let mut seen = HashSet::new();
    let mut edges = Vec::with_capacity(depends_on.len());
    let mut waiting = 0;
    let mut state_of = conn.prepare_cached("SELECT state FROM jobs WHERE id = ?1")?;
    for dependency in depends_on {
        let id = match dependency.on {
            Prereq::Job(id) => id,
            Prereq::Earlier(index) => earlier.get(index).map(|s| s.job.id).ok_or_else(|| {
                Error::BadReference(format!(
                    "dependency `{}` names job {index} of the submission, which is not \
                     before it",
                    dependency.name
                ))
            })?,
        };
        if !seen.insert(id) {
            return Err(Error::BadReference(format!(
                "depends_on: job {id} is named twice"
            )));
        }
        let state = state_of
            .query_row([id], |row| rows::state(row, 0))
            .optional()?
            .ok_or_else(|| {
                Error::BadReference(format!(
                    "depends_on: `{}` names job {id}, which does not exist",
                    dependency.name
                ))
            })?;
        match state {
            JobState::Completed => {}
            JobState::Failed | JobState::Cancelled
                if dependency.on_failure == OnFailure::Continue => {}
            JobState::Failed | JobState::Cancelled => {
                return Err(Error::Conflict(format!(
                    "depends_on: `{}` names job {id}, which is already {state}: a job waiting \
                     for it would be cancelled at once (on_failure: continue runs it anyway)",
                    dependency.name
                )));
            }
            _ => waiting += 1,
        }
        edges.push((id, dependency.clone()));
    }
    Ok(Prereqs { edges, waiting })
}

/// Stores the edges of job `id`.
pub(super) fn insert_edges(conn: &Connection, id: JobId, prereqs: &Prereqs) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO job_deps (job_id, prereq_id, name, on_failure) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (prereq, dependency) in &prereqs.edges {
        insert.execute(params![
            id,
            prereq,
            dependency.name,
            dependency.on_failure.as_str()
        ])?;
    }
    Ok(())
}

/// What the end of job `id` in `state` (final) does to the jobs waiting
/// for it, transitively. Returns the jobs it changed.
pub(super) fn ended(
    conn: &Connection,
    id: JobId,
    state: JobState,
    now: Millis,
) -> Result<Vec<JobId>> {
    debug_assert!(state.is_final());
    let mut changed = Vec::new();
    // (a job that ended, how, why it was cancelled if by a cascade)
    let mut work = vec![(id, state, None::<String>)];
    let mut dependents = conn.prepare_cached(&format!(
        "SELECT {EDGE_COLUMNS} FROM job_deps d INDEXED BY job_deps_by_prereq
         WHERE d.prereq_id = ?1"
    ))?;
    let mut release = conn.prepare_cached(
        "UPDATE jobs SET waiting_on = waiting_on - 1,
                state = CASE WHEN waiting_on = 1 THEN 'pending' ELSE state END,
                run_at = CASE WHEN waiting_on = 1 THEN max(run_at, ?2) ELSE run_at END
         WHERE id = ?1 AND state = 'blocked'",
    )?;
    let mut cancel = conn.prepare_cached(
        "UPDATE jobs SET state = 'cancelled', finished_at = ?2, last_error = ?3
         WHERE id = ?1 AND state = 'blocked'",
    )?;
    while let Some((prereq, how, cause)) = work.pop() {
        let edges = dependents
            .query_map([prereq], edge)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for edge in edges {
            if how == JobState::Completed || edge.on_failure == OnFailure::Continue {
                if release.execute(params![edge.job, now])? == 1 {
                    changed.push(edge.job);
                }
                continue;
            }
            let what = if how == JobState::Failed {
                "failed"
            } else {
                "was cancelled"
            };
            let direct = format!("prerequisite `{}` (job {prereq}) {what}", edge.name);
            let reason = match &cause {
                Some(root) => format!("{direct}: {root}"),
                None => direct.clone(),
            };
            if cancel.execute(params![edge.job, now, reason])? == 1 {
                changed.push(edge.job);
                // Further down, name this job and the root cause only.
                work.push((
                    edge.job,
                    JobState::Cancelled,
                    Some(cause.clone().unwrap_or(direct)),
                ));
            }
        }
    }
    Ok(changed)
}

/// The prerequisites of job `id` as its attempt sees them: how each ended
/// and, if it completed, its output.
pub(super) fn resolved(conn: &Connection, id: JobId) -> Result<Vec<Resolved>> {
    let resolved = conn
        .prepare_cached(
            "SELECT d.name, d.prereq_id, j.state, j.output, j.last_error
             FROM job_deps d JOIN jobs j ON j.id = d.prereq_id
             WHERE d.job_id = ?1 ORDER BY d.name",
        )?
        .query_map([id], |row| {
            let output: Option<String> = row.get(3)?;
            let state = rows::state(row, 2)?;
            Ok(Resolved {
                name: row.get(0)?,
                job: row.get(1)?,
                state,
                output: output
                    .filter(|_| state == JobState::Completed)
                    .map(crate::json::Json::from_stored),
                error: row
                    .get::<_, Option<String>>(4)?
                    .filter(|_| state != JobState::Completed),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(resolved)
}

/// The edges into job `id`.
pub(super) fn edges_into(conn: &Connection, id: JobId) -> Result<Vec<Edge>> {
    let edges = conn
        .prepare_cached(&format!(
            "SELECT {EDGE_COLUMNS} FROM job_deps d WHERE d.job_id = ?1 ORDER BY d.prereq_id"
        ))?
        .query_map([id], edge)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(edges)
}

/// Stores a workflow row; its jobs are inserted after it.
pub(super) fn insert_workflow(
    conn: &Connection,
    name: Option<&str>,
    now: Millis,
) -> Result<WorkflowId> {
    Ok(conn
        .prepare_cached("INSERT INTO workflows (name, created_at) VALUES (?1, ?2) RETURNING id")?
        .query_row(params![name, now], |row| row.get(0))?)
}

/// One workflow with its jobs and edges, from one snapshot.
pub(super) fn workflow(conn: &Connection, id: WorkflowId) -> Result<Option<WorkflowDetail>> {
    let snapshot = conn.unchecked_transaction()?;
    let Some((name, created_at)) = snapshot
        .prepare_cached("SELECT name, created_at FROM workflows WHERE id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
    else {
        return Ok(None);
    };
    let jobs: Vec<_> = snapshot
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_by_workflow
             WHERE workflow_id = ?1 ORDER BY id"
        ))?
        .query_map([id], rows::job)?
        .collect::<rusqlite::Result<_>>()?;
    let edges = snapshot
        .prepare_cached(&format!(
            "SELECT {EDGE_COLUMNS} FROM jobs j INDEXED BY jobs_by_workflow
             JOIN job_deps d ON d.job_id = j.id
             WHERE j.workflow_id = ?1 ORDER BY d.job_id, d.prereq_id"
        ))?
        .query_map([id], edge)?
        .collect::<rusqlite::Result<_>>()?;
    let counts = JobState::ALL
        .into_iter()
        .map(|state| {
            let n = jobs.iter().filter(|j| j.state == state).count();
            (state, n as u64)
        })
        .collect();
    Ok(Some(WorkflowDetail {
        workflow: Workflow {
            id,
            name,
            created_at,
            counts,
        },
        jobs,
        edges,
    }))
}

/// Workflows, newest first, with their jobs counted by state.
pub(super) fn workflows(conn: &Connection, filter: &WorkflowFilter) -> Result<Vec<Workflow>> {
    let limit = match filter.limit {
        0 => super::read::DEFAULT_LIST_LIMIT,
        n => n.min(super::read::MAX_LIST_LIMIT),
    };
    let snapshot = conn.unchecked_transaction()?;
    let found: Vec<(WorkflowId, Option<String>, Millis)> = snapshot
        .prepare_cached(
            "SELECT id, name, created_at FROM workflows
             WHERE ?1 IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2",
        )?
        .query_map(params![filter.before, limit as i64], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut count = snapshot.prepare_cached(
        "SELECT state, count(*) FROM jobs INDEXED BY jobs_by_workflow
         WHERE workflow_id = ?1 GROUP BY state",
    )?;
    let mut workflows = Vec::with_capacity(found.len());
    for (id, name, created_at) in found {
        let by_state = count
            .query_map([id], |row| {
                Ok((rows::state(row, 0)?, row.get::<_, i64>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let counts = JobState::ALL
            .into_iter()
            .map(|state| {
                let n = by_state
                    .iter()
                    .find(|(s, _)| *s == state)
                    .map_or(0, |(_, n)| *n);
                (state, n as u64)
            })
            .collect();
        workflows.push(Workflow {
            id,
            name,
            created_at,
            counts,
        });
    }
    Ok(workflows)
}

/// The jobs of workflow `id` that are not final; [`Error::NotFound`] for
/// an unknown workflow.
pub(super) fn unfinished(conn: &Connection, id: WorkflowId) -> Result<Vec<JobId>> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM workflows WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?;
    if exists.is_none() {
        return Err(Error::NotFound(format!("workflow {id} not found")));
    }
    let ids = conn
        .prepare_cached(
            "SELECT id FROM jobs INDEXED BY jobs_by_workflow
             WHERE workflow_id = ?1
               AND state NOT IN ('completed', 'failed', 'cancelled')
             ORDER BY id",
        )?
        .query_map([id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}
