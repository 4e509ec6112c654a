//! The per-minute history table: rows added to, read by time range,
//! pruned by age. Histograms and failure counts are text in the store's
//! encoding (`store::encoding`), so a flush merges into a row under its
//! row lock: the row is created empty if missing, locked, read, merged
//! and written back, and flushes from several hosts add up.

use super::Tx;
use super::rows::{self, execute, query};
use crate::clock::Millis;
use crate::history::{MinuteCounts, MinuteRow};
use crate::store::Result;
use crate::store::encoding::{decode_histogram, decode_map, encode_histogram, encode_map};
use tokio_postgres::Row;

const COLUMNS: &str =
    "minute, queue, completed, failed, retried, dead_lettered, cancelled, failures, wait, run";

/// Adds each row's counts to the stored row of its minute and queue
/// (creating it).
pub(super) async fn add(tx: &Tx<'_>, rows: &[MinuteRow]) -> Result<()> {
    // In a fixed order, so two hosts' flushes lock rows in one order.
    let mut sorted: Vec<&MinuteRow> = rows.iter().collect();
    sorted.sort_by(|a, b| (a.at, &a.queue).cmp(&(b.at, &b.queue)));
    for row in sorted {
        execute(
            tx,
            "INSERT INTO history (minute, queue) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&row.at, &row.queue],
        )
        .await?;
        let stored = rows::query_one(
            tx,
            &format!("SELECT {COLUMNS} FROM history WHERE minute = $1 AND queue = $2 FOR UPDATE"),
            &[&row.at, &row.queue],
        )
        .await?;
        let mut counts = read_row(&stored)?.counts;
        counts.merge(&row.counts);
        execute(
            tx,
            "UPDATE history SET completed = $3, failed = $4, retried = $5, dead_lettered = $6,
                    cancelled = $7, failures = $8, wait = $9, run = $10
             WHERE minute = $1 AND queue = $2",
            &[
                &row.at,
                &row.queue,
                &to_i64(counts.completed),
                &to_i64(counts.failed),
                &to_i64(counts.retried),
                &to_i64(counts.dead_lettered),
                &to_i64(counts.cancelled),
                &encode_map(&counts.failures),
                &encode_histogram(&counts.wait),
                &encode_histogram(&counts.run),
            ],
        )
        .await?;
    }
    Ok(())
}

/// Rows of minutes from `since` (inclusive) to `until` (exclusive), of
/// `queue` or of every queue, by minute then queue.
pub(super) async fn read(
    tx: &Tx<'_>,
    since: Millis,
    until: Millis,
    queue: Option<&str>,
) -> Result<Vec<MinuteRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM history
         WHERE minute >= $1 AND minute < $2 AND ($3::text IS NULL OR queue = $3)
         ORDER BY minute, queue COLLATE \"C\""
    );
    query(tx, &sql, &[&since, &until, &queue])
        .await?
        .iter()
        .map(read_row)
        .collect()
}

/// Deletes rows of minutes before `before`; returns how many.
pub(super) async fn prune(tx: &Tx<'_>, before: Millis) -> Result<u64> {
    execute(tx, "DELETE FROM history WHERE minute < $1", &[&before]).await
}

fn read_row(row: &Row) -> Result<MinuteRow> {
    let count = |i: usize| -> Result<u64> { Ok(rows::get::<i64>(row, i)?.max(0) as u64) };
    Ok(MinuteRow {
        at: rows::get(row, 0)?,
        queue: rows::get(row, 1)?,
        counts: MinuteCounts {
            completed: count(2)?,
            failed: count(3)?,
            retried: count(4)?,
            dead_lettered: count(5)?,
            cancelled: count(6)?,
            failures: decode_map(rows::get(row, 7)?)?,
            wait: decode_histogram(rows::get(row, 8)?)?,
            run: decode_histogram(rows::get(row, 9)?)?,
        },
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
