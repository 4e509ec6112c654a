//! Retention: one batch of finished jobs past their age deleted, with
//! their attempts (and so their outputs and logs) and edges (the foreign
//! keys cascade), and the workflows left without jobs.

use crate::clock::Millis;
use crate::store::{Pruned, Result, Retention};
use rusqlite::{Connection, params};

/// A job is past its age: its state's cutoff (`?1` completed, `?2`
/// cancelled, `?3` failed) is after it finished.
const PAST_AGE: &str = "((j.state = 'completed' AND j.finished_at < ?1)
     OR (j.state = 'cancelled' AND j.finished_at < ?2)
     OR (j.state = 'failed' AND j.finished_at < ?3))";

/// Deletes up to `retention.batch` finished jobs past their state's age,
/// except: one a dependent that is not final still needs (its output is
/// given to the dependent when it runs), one whose unique key may still
/// be held (finished less than `unique_window_ms` ago), and one of a
/// workflow in which any job is not yet past its age (a workflow goes
/// whole). Then deletes the workflows left without jobs.
pub(super) fn prune(conn: &Connection, retention: &Retention, now: Millis) -> Result<Pruned> {
    let cutoff = |age: Option<i64>| age.map_or(Millis::MIN, |age| now.saturating_sub(age));
    let completed = cutoff(retention.completed_ms);
    let cancelled = cutoff(retention.cancelled_ms);
    let failed = cutoff(retention.dead_letter_ms);
    let unique = now.saturating_sub(retention.unique_window_ms);
    let limit = i64::try_from(retention.batch.max(1)).unwrap_or(i64::MAX);
    let past_age_w = PAST_AGE.replace("j.", "w.");
    let select = format!(
        "SELECT j.id, j.workflow_id FROM jobs AS j
         WHERE {PAST_AGE}
           AND (j.unique_key IS NULL OR j.finished_at < ?4)
           AND NOT EXISTS (
               SELECT 1 FROM job_deps AS d JOIN jobs AS dependent ON dependent.id = d.job_id
               WHERE d.prereq_id = j.id
                 AND dependent.state NOT IN ('completed', 'failed', 'cancelled'))
           AND (j.workflow_id IS NULL OR NOT EXISTS (
               SELECT 1 FROM jobs AS w
               WHERE w.workflow_id = j.workflow_id AND NOT {past_age_w}))
         LIMIT ?5"
    );
    let victims: Vec<(i64, Option<i64>)> = conn
        .prepare_cached(&select)?
        .query_map(
            params![completed, cancelled, failed, unique, limit],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let mut delete = conn.prepare_cached("DELETE FROM jobs WHERE id = ?1")?;
    for (id, _) in &victims {
        delete.execute([id])?;
    }
    let mut workflows: Vec<i64> = victims.iter().filter_map(|(_, w)| *w).collect();
    workflows.sort_unstable();
    workflows.dedup();
    let mut delete_workflow = conn.prepare_cached(
        "DELETE FROM workflows WHERE id = ?1
           AND NOT EXISTS (SELECT 1 FROM jobs WHERE workflow_id = ?1)",
    )?;
    let mut emptied = 0;
    for id in workflows {
        emptied += delete_workflow.execute([id])? as u64;
    }
    Ok(Pruned {
        jobs: victims.len() as u64,
        workflows: emptied,
    })
}
