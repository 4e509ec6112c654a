//! Cron schedules: stored, listed, paused, deleted, and fired. Firing is
//! one transaction: a compare-and-set of the schedule's `next_at` from the
//! value the scheduler read, then the job's insert, so two schedulers that
//! read the same due schedule create one job between them.

use super::jobs::{self, Origin};
use crate::clock::Millis;
use crate::schedule::{Missed, Schedule};
use crate::store::{Error, Fired, Result, Tick, encoding};
use rusqlite::{Connection, Row, params};

const COLUMNS: &str = "name, cron, timezone, template, missed, paused, next_at, last_fired_at, \
     last_job, last_error, created_at, updated_at";

fn schedule(row: &Row<'_>) -> rusqlite::Result<(Schedule, String)> {
    let missed: String = row.get(4)?;
    let template: String = row.get(3)?;
    Ok((
        Schedule {
            name: row.get(0)?,
            cron: row.get(1)?,
            timezone: row.get(2)?,
            job: crate::policy::JobSpec::new(String::new(), crate::json::Json::null()),
            missed: Missed::parse(&missed).unwrap_or_default(),
            paused: row.get(5)?,
            next_at: row.get(6)?,
            last_fired_at: row.get(7)?,
            last_job: row.get(8)?,
            last_error: row.get(9)?,
            created_at: row.get(10)?,
            updated_at: row.get(11)?,
        },
        template,
    ))
}

/// Rows of `sql` (selecting [`COLUMNS`]) as schedules.
fn query(conn: &Connection, sql: &str, values: impl rusqlite::Params) -> Result<Vec<Schedule>> {
    let rows = conn
        .prepare_cached(sql)?
        .query_map(values, schedule)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(mut schedule, template)| {
            schedule.job = encoding::decode_template(&template)?;
            Ok(schedule)
        })
        .collect()
}

/// One schedule by name.
pub(super) fn get(conn: &Connection, name: &str) -> Result<Option<Schedule>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules WHERE name = ?1");
    Ok(query(conn, &sql, [name])?.pop())
}

/// Every schedule, by name.
pub(super) fn all(conn: &Connection) -> Result<Vec<Schedule>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules ORDER BY name");
    query(conn, &sql, [])
}

/// Schedules not paused whose next fire time is at or before `now`, the
/// most overdue first.
pub(super) fn due(conn: &Connection, now: Millis, limit: usize) -> Result<Vec<Schedule>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM schedules INDEXED BY schedules_due
         WHERE NOT paused AND next_at <= ?1 ORDER BY next_at LIMIT ?2"
    );
    query(
        conn,
        &sql,
        params![now, i64::try_from(limit).unwrap_or(i64::MAX)],
    )
}

/// The earliest next fire time of a schedule that is not paused.
pub(super) fn next_at(conn: &Connection) -> Result<Option<Millis>> {
    Ok(conn
        .prepare_cached(
            "SELECT min(next_at) FROM schedules INDEXED BY schedules_due WHERE NOT paused",
        )?
        .query_row([], |row| row.get(0))?)
}

/// Stores `schedule`: a new one, or with `replace` over the one of that
/// name (keeping when it was created and what it last fired).
pub(super) fn put(conn: &Connection, schedule: &Schedule, replace: bool) -> Result<Schedule> {
    let template = encoding::encode_template(&schedule.job)?;
    let exists = get(conn, &schedule.name)?.is_some();
    if exists && !replace {
        return Err(Error::Conflict(format!(
            "a schedule named `{}` exists already (replace it with PUT)",
            schedule.name
        )));
    }
    conn.prepare_cached(
        "INSERT INTO schedules (name, cron, timezone, template, missed, paused, next_at,
                                created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT (name) DO UPDATE SET
             cron = excluded.cron, timezone = excluded.timezone,
             template = excluded.template, missed = excluded.missed,
             paused = excluded.paused, next_at = excluded.next_at,
             last_error = NULL, updated_at = excluded.updated_at",
    )?
    .execute(params![
        schedule.name,
        schedule.cron,
        schedule.timezone,
        template,
        schedule.missed.as_str(),
        schedule.paused,
        schedule.next_at,
        schedule.updated_at,
    ])?;
    get(conn, &schedule.name)?
        .ok_or_else(|| Error::Database(format!("schedule {} vanished", schedule.name)))
}

/// Pauses or resumes a schedule; a resume sets its next fire time.
pub(super) fn set_paused(
    conn: &Connection,
    name: &str,
    paused: bool,
    next_at: Millis,
    now: Millis,
) -> Result<Schedule> {
    let changed = conn
        .prepare_cached(
            "UPDATE schedules SET paused = ?2, updated_at = ?4,
                    next_at = CASE WHEN ?2 THEN next_at ELSE ?3 END
             WHERE name = ?1",
        )?
        .execute(params![name, paused, next_at, now])?;
    if changed == 0 {
        return Err(not_found(name));
    }
    get(conn, name)?.ok_or_else(|| not_found(name))
}

/// Deletes a schedule (the jobs it created stay).
pub(super) fn delete(conn: &Connection, name: &str) -> Result<()> {
    let deleted = conn
        .prepare_cached("DELETE FROM schedules WHERE name = ?1")?
        .execute([name])?;
    if deleted == 0 {
        return Err(not_found(name));
    }
    Ok(())
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("schedule `{name}` not found"))
}

/// Fires one tick (see the module docs): nothing happens unless the
/// schedule is still not paused and still due at the `next_at` the
/// scheduler read.
pub(super) fn fire(conn: &Connection, tick: &Tick, now: Millis) -> Result<Fired> {
    let moved = conn
        .prepare_cached(
            "UPDATE schedules
             SET next_at = ?3, last_error = ?4,
                 last_fired_at = CASE WHEN ?5 IS NULL THEN last_fired_at ELSE ?5 END
             WHERE name = ?1 AND next_at = ?2 AND NOT paused",
        )?
        .execute(params![
            tick.schedule,
            tick.expected_next_at,
            tick.next_at,
            tick.error,
            tick.job.as_ref().map(|_| tick.fired_at),
        ])?;
    if moved == 0 {
        return Ok(Fired::Lost);
    }
    let Some(job) = &tick.job else {
        return Ok(Fired::Advanced);
    };
    let origin = Origin {
        schedule: Some(&tick.schedule),
        ..Origin::default()
    };
    let submitted = jobs::insert(conn, std::slice::from_ref(job), now, origin)?
        .pop()
        .ok_or_else(|| Error::Database("a fired job was not stored".to_owned()))?;
    conn.prepare_cached("UPDATE schedules SET last_job = ?2 WHERE name = ?1")?
        .execute(params![tick.schedule, submitted.job.id])?;
    Ok(Fired::Created(Box::new(submitted)))
}
