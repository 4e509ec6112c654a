//! The per-minute history table: rows added to (one read and one write per
//! minute and queue of a flush), read by time range, pruned by age.
//!
//! Encoding (the store's own, shared with PostgreSQL: `store::encoding`):
//! a histogram is its non-zero buckets as `bucket:count` pairs separated
//! by spaces; failures by kind are `kind:count` pairs the same way.

use crate::clock::Millis;
use crate::history::{MinuteCounts, MinuteRow};
use crate::store::Result;
use crate::store::encoding::{decode_histogram, decode_map, encode_histogram, encode_map};
use rusqlite::{Connection, OptionalExtension, Row, params};

const COLUMNS: &str =
    "minute, queue, completed, failed, retried, dead_lettered, cancelled, failures, wait, run";

/// Adds each row's counts to the stored row of its minute and queue
/// (creating it).
pub(super) fn add(conn: &Connection, rows: &[MinuteRow]) -> Result<()> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM history WHERE minute = ?1 AND queue = ?2"
    ))?;
    let mut upsert = conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO history ({COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?;
    for row in rows {
        let stored = select
            .query_row(params![row.at, row.queue], read_row)
            .optional()?;
        let mut counts = match stored {
            Some(stored) => stored?.counts,
            None => MinuteCounts::default(),
        };
        counts.merge(&row.counts);
        upsert.execute(params![
            row.at,
            row.queue,
            to_i64(counts.completed),
            to_i64(counts.failed),
            to_i64(counts.retried),
            to_i64(counts.dead_lettered),
            to_i64(counts.cancelled),
            encode_map(&counts.failures),
            encode_histogram(&counts.wait),
            encode_histogram(&counts.run),
        ])?;
    }
    Ok(())
}

/// Rows of minutes from `since` (inclusive) to `until` (exclusive), of
/// `queue` or of every queue, by minute then queue.
pub(super) fn read(
    conn: &Connection,
    since: Millis,
    until: Millis,
    queue: Option<&str>,
) -> Result<Vec<MinuteRow>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM history
         WHERE minute >= ?1 AND minute < ?2 AND (?3 IS NULL OR queue = ?3)
         ORDER BY minute, queue"
    ))?;
    let rows = statement
        .query_map(params![since, until, queue], read_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().collect()
}

/// Deletes rows of minutes before `before`; returns how many.
pub(super) fn prune(conn: &Connection, before: Millis) -> Result<u64> {
    let deleted = conn
        .prepare_cached("DELETE FROM history WHERE minute < ?1")?
        .execute([before])?;
    Ok(deleted as u64)
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<Result<MinuteRow>> {
    let count = |i: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
    let failures: String = row.get(7)?;
    let wait: String = row.get(8)?;
    let run: String = row.get(9)?;
    let at: Millis = row.get(0)?;
    let queue: String = row.get(1)?;
    let (completed, failed, retried, dead_lettered, cancelled) =
        (count(2)?, count(3)?, count(4)?, count(5)?, count(6)?);
    Ok((|| {
        Ok(MinuteRow {
            at,
            queue,
            counts: MinuteCounts {
                completed,
                failed,
                retried,
                dead_lettered,
                cancelled,
                failures: decode_map(&failures)?,
                wait: decode_histogram(&wait)?,
                run: decode_histogram(&run)?,
            },
        })
    })())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Histogram;
    use std::collections::BTreeMap;

    #[test]
    fn histograms_and_maps_round_trip() {
        let mut h = Histogram::default();
        h.record(0);
        h.record(250);
        h.record(250);
        let text = encode_histogram(&h);
        assert_eq!(decode_histogram(&text).unwrap(), h);
        assert_eq!(encode_histogram(&Histogram::default()), "");
        let map = BTreeMap::from([("timeout".to_owned(), 2), ("lost".to_owned(), 1)]);
        assert_eq!(decode_map(&encode_map(&map)).unwrap(), map);
        assert!(decode_histogram("3:x").is_err());
    }
}
