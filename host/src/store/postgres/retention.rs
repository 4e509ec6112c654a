//! Retention: one batch of finished jobs past their age deleted, with
//! their attempts and edges (the foreign keys cascade), and the workflows
//! left without jobs. The rules are SQLite's (`store/sqlite/retention.rs`).

use super::Tx;
use super::rows::{self, execute, query};
use crate::clock::Millis;
use crate::store::{Pruned, Result, Retention};

/// A job is past its age: its state's cutoff (`$1` completed, `$2`
/// cancelled, `$3` failed) is after it finished.
const PAST_AGE: &str = "((j.state = 'completed' AND j.finished_at < $1)
     OR (j.state = 'cancelled' AND j.finished_at < $2)
     OR (j.state = 'failed' AND j.finished_at < $3))";

/// Deletes up to `retention.batch` finished jobs past their state's age
/// (see SQLite's `prune` for what is kept), then the workflows left
/// without jobs. Rows another transaction holds are skipped, not waited
/// for.
pub(super) async fn prune(tx: &Tx<'_>, retention: &Retention, now: Millis) -> Result<Pruned> {
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
           AND (j.unique_key IS NULL OR j.finished_at < $4)
           AND NOT EXISTS (
               SELECT 1 FROM job_deps AS d JOIN jobs AS dependent ON dependent.id = d.job_id
               WHERE d.prereq_id = j.id
                 AND dependent.state NOT IN ('completed', 'failed', 'cancelled'))
           AND (j.workflow_id IS NULL OR NOT EXISTS (
               SELECT 1 FROM jobs AS w
               WHERE w.workflow_id = j.workflow_id AND NOT {past_age_w}))
         LIMIT $5
         FOR UPDATE OF j SKIP LOCKED"
    );
    let victims = query(
        tx,
        &select,
        &[&completed, &cancelled, &failed, &unique, &limit],
    )
    .await?;
    let ids: Vec<i64> = victims
        .iter()
        .map(|r| rows::get(r, 0))
        .collect::<Result<_>>()?;
    execute(tx, "DELETE FROM jobs WHERE id = ANY($1)", &[&ids]).await?;
    let mut workflows: Vec<i64> = victims
        .iter()
        .map(|r| rows::get::<Option<i64>>(r, 1))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    workflows.sort_unstable();
    workflows.dedup();
    let emptied = execute(
        tx,
        "DELETE FROM workflows w WHERE w.id = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM jobs WHERE workflow_id = w.id)",
        &[&workflows],
    )
    .await?;
    Ok(Pruned {
        jobs: ids.len() as u64,
        workflows: emptied,
    })
}
