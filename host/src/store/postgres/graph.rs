//! Dependencies and workflows: the edges between jobs, what a job's end
//! does to the jobs waiting for it, and the workflow rows (see SQLite's
//! `graph` for the rules; the SQL here is PostgreSQL's).

use super::Tx;
use super::rows::{self, JOB_COLUMNS, execute, query, query_opt};
use crate::clock::Millis;
use crate::job::{
    Dependency, Edge, JobId, JobState, OnFailure, Prereq, Resolved, Submitted, Workflow,
    WorkflowDetail, WorkflowId,
};
use crate::store::{Error, Result, WorkflowFilter};
use deadpool_postgres::GenericClient;
use std::collections::HashSet;
use tokio_postgres::Row;

/// The columns [`edge`] reads, in order.
const EDGE_COLUMNS: &str = "d.job_id, d.prereq_id, d.name, d.on_failure";

/// An edge from a row of [`EDGE_COLUMNS`].
fn edge(row: &Row) -> Result<Edge> {
    let on_failure: String = rows::get(row, 3)?;
    Ok(Edge {
        job: rows::get(row, 0)?,
        prereq: rows::get(row, 1)?,
        name: rows::get(row, 2)?,
        on_failure: OnFailure::parse(&on_failure).unwrap_or_default(),
    })
}

/// A new job's prerequisites, checked and resolved to ids.
pub(super) struct Prereqs {
    /// `(prereq id, dependency)`, in the order given.
    pub edges: Vec<(JobId, Dependency)>,
    /// How many are not resolved yet.
    pub waiting: u32,
}

/// Checks `depends_on` against the stored jobs: each must exist, appear
/// once, and not have already failed behind a `cancel` edge. Each
/// prerequisite's row is locked to share, so it cannot end (and miss this
/// dependent) before the dependent is stored. `earlier` are the jobs
/// stored so far by the same insert.
pub(super) async fn prereqs(
    tx: &Tx<'_>,
    depends_on: &[Dependency],
    earlier: &[Submitted],
) -> Result<Prereqs> {
    let mut seen = HashSet::new();
    let mut edges = Vec::with_capacity(depends_on.len());
    let mut waiting = 0;
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
        let row = query_opt(tx, "SELECT state FROM jobs WHERE id = $1 FOR SHARE", &[&id])
            .await?
            .ok_or_else(|| {
                Error::BadReference(format!(
                    "depends_on: `{}` names job {id}, which does not exist",
                    dependency.name
                ))
            })?;
        let state = rows::state(&row, 0)?;
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
pub(super) async fn insert_edges(tx: &Tx<'_>, id: JobId, prereqs: &Prereqs) -> Result<()> {
    for (prereq, dependency) in &prereqs.edges {
        execute(
            tx,
            "INSERT INTO job_deps (job_id, prereq_id, name, on_failure) VALUES ($1, $2, $3, $4)",
            &[
                &id,
                prereq,
                &dependency.name,
                &dependency.on_failure.as_str(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// What the end of job `id` in `state` (final) does to the jobs waiting
/// for it, transitively. Returns the jobs it changed.
pub(super) async fn ended(
    tx: &Tx<'_>,
    id: JobId,
    state: JobState,
    now: Millis,
) -> Result<Vec<JobId>> {
    debug_assert!(state.is_final());
    let mut changed = Vec::new();
    // (a job that ended, how, why it was cancelled if by a cascade)
    let mut work = vec![(id, state, None::<String>)];
    let dependents =
        format!("SELECT {EDGE_COLUMNS} FROM job_deps d WHERE d.prereq_id = $1 ORDER BY d.job_id");
    while let Some((prereq, how, cause)) = work.pop() {
        let edges = query(tx, &dependents, &[&prereq])
            .await?
            .iter()
            .map(edge)
            .collect::<Result<Vec<_>>>()?;
        for edge in edges {
            if how == JobState::Completed || edge.on_failure == OnFailure::Continue {
                let released = execute(
                    tx,
                    "UPDATE jobs SET waiting_on = waiting_on - 1,
                            state = CASE WHEN waiting_on = 1 THEN 'pending' ELSE state END,
                            run_at = CASE WHEN waiting_on = 1 THEN greatest(run_at, $2)
                                          ELSE run_at END
                     WHERE id = $1 AND state = 'blocked'",
                    &[&edge.job, &now],
                )
                .await?;
                if released == 1 {
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
            let cancelled = execute(
                tx,
                "UPDATE jobs SET state = 'cancelled', finished_at = $2, last_error = $3
                 WHERE id = $1 AND state = 'blocked'",
                &[&edge.job, &now, &reason],
            )
            .await?;
            if cancelled == 1 {
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
pub(super) async fn resolved(db: &impl GenericClient, id: JobId) -> Result<Vec<Resolved>> {
    query(
        db,
        "SELECT d.name, d.prereq_id, j.state, j.output, j.last_error
         FROM job_deps d JOIN jobs j ON j.id = d.prereq_id
         WHERE d.job_id = $1 ORDER BY d.name",
        &[&id],
    )
    .await?
    .iter()
    .map(|row| {
        let output: Option<String> = rows::get(row, 3)?;
        let state = rows::state(row, 2)?;
        Ok(Resolved {
            name: rows::get(row, 0)?,
            job: rows::get(row, 1)?,
            state,
            output: output
                .filter(|_| state == JobState::Completed)
                .map(crate::json::Json::from_stored),
            error: rows::get::<Option<String>>(row, 4)?.filter(|_| state != JobState::Completed),
        })
    })
    .collect()
}

/// The edges into job `id`.
pub(super) async fn edges_into(tx: &Tx<'_>, id: JobId) -> Result<Vec<Edge>> {
    let sql =
        format!("SELECT {EDGE_COLUMNS} FROM job_deps d WHERE d.job_id = $1 ORDER BY d.prereq_id");
    query(tx, &sql, &[&id]).await?.iter().map(edge).collect()
}

/// Stores a workflow row; its jobs are inserted after it.
pub(super) async fn insert_workflow(
    tx: &Tx<'_>,
    name: Option<&str>,
    now: Millis,
) -> Result<WorkflowId> {
    let row = rows::query_one(
        tx,
        "INSERT INTO workflows (name, created_at) VALUES ($1, $2) RETURNING id",
        &[&name, &now],
    )
    .await?;
    rows::get(&row, 0)
}

/// Jobs counted by state, every state present.
fn counts(by_state: &[(JobState, i64)]) -> Vec<(JobState, u64)> {
    JobState::ALL
        .into_iter()
        .map(|state| {
            let n = by_state
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            (state, u64::try_from(n).unwrap_or(0))
        })
        .collect()
}

/// One workflow with its jobs and edges (the caller's snapshot).
pub(super) async fn workflow(tx: &Tx<'_>, id: WorkflowId) -> Result<Option<WorkflowDetail>> {
    let Some(row) = query_opt(
        tx,
        "SELECT name, created_at FROM workflows WHERE id = $1",
        &[&id],
    )
    .await?
    else {
        return Ok(None);
    };
    let (name, created_at) = (rows::get(&row, 0)?, rows::get(&row, 1)?);
    let jobs = rows::jobs(
        &query(
            tx,
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE workflow_id = $1 ORDER BY id"),
            &[&id],
        )
        .await?,
    )?;
    let edges = query(
        tx,
        &format!(
            "SELECT {EDGE_COLUMNS} FROM jobs j JOIN job_deps d ON d.job_id = j.id
             WHERE j.workflow_id = $1 ORDER BY d.job_id, d.prereq_id"
        ),
        &[&id],
    )
    .await?
    .iter()
    .map(edge)
    .collect::<Result<Vec<_>>>()?;
    let by_state: Vec<(JobState, i64)> = JobState::ALL
        .into_iter()
        .map(|state| {
            (
                state,
                jobs.iter().filter(|j| j.state == state).count() as i64,
            )
        })
        .collect();
    Ok(Some(WorkflowDetail {
        workflow: Workflow {
            id,
            name,
            created_at,
            counts: counts(&by_state),
        },
        jobs,
        edges,
    }))
}

/// Workflows, newest first, with their jobs counted by state.
pub(super) async fn workflows(tx: &Tx<'_>, filter: &WorkflowFilter) -> Result<Vec<Workflow>> {
    let limit = match filter.limit {
        0 => super::read::DEFAULT_LIST_LIMIT,
        n => n.min(super::read::MAX_LIST_LIMIT),
    } as i64;
    let found = query(
        tx,
        "SELECT id, name, created_at FROM workflows
         WHERE $1::bigint IS NULL OR id < $1 ORDER BY id DESC LIMIT $2",
        &[&filter.before, &limit],
    )
    .await?;
    let mut workflows = Vec::with_capacity(found.len());
    for row in &found {
        let id: WorkflowId = rows::get(row, 0)?;
        let by_state = query(
            tx,
            "SELECT state, count(*) FROM jobs WHERE workflow_id = $1 GROUP BY state",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| Ok((rows::state(r, 0)?, rows::get::<i64>(r, 1)?)))
        .collect::<Result<Vec<_>>>()?;
        workflows.push(Workflow {
            id,
            name: rows::get(row, 1)?,
            created_at: rows::get(row, 2)?,
            counts: counts(&by_state),
        });
    }
    Ok(workflows)
}

/// The jobs of workflow `id` that are not final; [`Error::NotFound`] for
/// an unknown workflow.
pub(super) async fn unfinished(tx: &Tx<'_>, id: WorkflowId) -> Result<Vec<JobId>> {
    if query_opt(tx, "SELECT 1 FROM workflows WHERE id = $1", &[&id])
        .await?
        .is_none()
    {
        return Err(Error::NotFound(format!("workflow {id} not found")));
    }
    query(
        tx,
        "SELECT id FROM jobs
         WHERE workflow_id = $1 AND state NOT IN ('completed', 'failed', 'cancelled')
         ORDER BY id",
        &[&id],
    )
    .await?
    .iter()
    .map(|row| rows::get(row, 0))
    .collect()
}
