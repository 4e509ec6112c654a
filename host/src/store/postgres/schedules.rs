//! Cron schedules: stored, listed, paused, deleted, and fired. Firing is
//! one transaction: a compare-and-set of the schedule's `next_at` from the
//! value the scheduler read (a concurrent one waits on the row lock and
//! then finds it moved), then the job's insert, so schedulers on several
//! hosts that read the same due schedule create one job between them.

use super::Tx;
use super::jobs::{self, Origin};
use super::rows::{self, execute, query};
use crate::clock::Millis;
use crate::schedule::{Missed, Schedule};
use crate::store::{Error, Fired, Result, Tick, encoding};
use tokio_postgres::Row;

const COLUMNS: &str = "name, cron, timezone, template, missed, paused, next_at, last_fired_at, \
     last_job, last_error, created_at, updated_at";

fn schedule(row: &Row) -> Result<Schedule> {
    let missed: String = rows::get(row, 4)?;
    let template: String = rows::get(row, 3)?;
    Ok(Schedule {
        name: rows::get(row, 0)?,
        cron: rows::get(row, 1)?,
        timezone: rows::get(row, 2)?,
        job: encoding::decode_template(&template)?,
        missed: Missed::parse(&missed).unwrap_or_default(),
        paused: rows::get(row, 5)?,
        next_at: rows::get(row, 6)?,
        last_fired_at: rows::get(row, 7)?,
        last_job: rows::get(row, 8)?,
        last_error: rows::get(row, 9)?,
        created_at: rows::get(row, 10)?,
        updated_at: rows::get(row, 11)?,
    })
}

/// One schedule by name.
pub(super) async fn get(tx: &Tx<'_>, name: &str) -> Result<Option<Schedule>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules WHERE name = $1");
    rows::query_opt(tx, &sql, &[&name])
        .await?
        .map(|row| schedule(&row))
        .transpose()
}

/// Every schedule, by name.
pub(super) async fn all(tx: &Tx<'_>) -> Result<Vec<Schedule>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules ORDER BY name COLLATE \"C\"");
    query(tx, &sql, &[]).await?.iter().map(schedule).collect()
}

/// Schedules not paused whose next fire time is at or before `now`, the
/// most overdue first.
pub(super) async fn due(tx: &Tx<'_>, now: Millis, limit: usize) -> Result<Vec<Schedule>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM schedules WHERE NOT paused AND next_at <= $1
         ORDER BY next_at LIMIT $2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    query(tx, &sql, &[&now, &limit])
        .await?
        .iter()
        .map(schedule)
        .collect()
}

/// The earliest next fire time of a schedule that is not paused.
pub(super) async fn next_at(tx: &Tx<'_>) -> Result<Option<Millis>> {
    let row = rows::query_one(
        tx,
        "SELECT min(next_at) FROM schedules WHERE NOT paused",
        &[],
    )
    .await?;
    rows::get(&row, 0)
}

/// Stores `schedule`: a new one, or with `replace` over the one of that
/// name (keeping when it was created and what it last fired).
pub(super) async fn put(tx: &Tx<'_>, schedule: &Schedule, replace: bool) -> Result<Schedule> {
    let template = encoding::encode_template(&schedule.job)?;
    let sql = if replace {
        "INSERT INTO schedules (name, cron, timezone, template, missed, paused, next_at,
                                created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         ON CONFLICT (name) DO UPDATE SET
             cron = excluded.cron, timezone = excluded.timezone,
             template = excluded.template, missed = excluded.missed,
             paused = excluded.paused, next_at = excluded.next_at,
             last_error = NULL, updated_at = excluded.updated_at"
    } else {
        "INSERT INTO schedules (name, cron, timezone, template, missed, paused, next_at,
                                created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         ON CONFLICT (name) DO NOTHING"
    };
    let stored = execute(
        tx,
        sql,
        &[
            &schedule.name,
            &schedule.cron,
            &schedule.timezone,
            &template,
            &schedule.missed.as_str(),
            &schedule.paused,
            &schedule.next_at,
            &schedule.updated_at,
        ],
    )
    .await?;
    if stored == 0 {
        return Err(Error::Conflict(format!(
            "a schedule named `{}` exists already (replace it with PUT)",
            schedule.name
        )));
    }
    get(tx, &schedule.name)
        .await?
        .ok_or_else(|| Error::Database(format!("schedule {} vanished", schedule.name)))
}

/// Pauses or resumes a schedule; a resume sets its next fire time.
pub(super) async fn set_paused(
    tx: &Tx<'_>,
    name: &str,
    paused: bool,
    next_at: Millis,
    now: Millis,
) -> Result<Schedule> {
    let changed = execute(
        tx,
        "UPDATE schedules SET paused = $2, updated_at = $4,
                next_at = CASE WHEN $2 THEN next_at ELSE $3 END
         WHERE name = $1",
        &[&name, &paused, &next_at, &now],
    )
    .await?;
    if changed == 0 {
        return Err(not_found(name));
    }
    get(tx, name).await?.ok_or_else(|| not_found(name))
}

/// Deletes a schedule (the jobs it created stay).
pub(super) async fn delete(tx: &Tx<'_>, name: &str) -> Result<()> {
    if execute(tx, "DELETE FROM schedules WHERE name = $1", &[&name]).await? == 0 {
        return Err(not_found(name));
    }
    Ok(())
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("schedule `{name}` not found"))
}

/// Fires one tick: nothing happens unless the schedule is still not
/// paused and still due at the `next_at` the scheduler read.
pub(super) async fn fire(tx: &Tx<'_>, tick: &Tick, now: Millis) -> Result<Fired> {
    let fired_at = tick.job.as_ref().map(|_| tick.fired_at);
    let moved = execute(
        tx,
        "UPDATE schedules
         SET next_at = $3, last_error = $4, last_fired_at = coalesce($5, last_fired_at)
         WHERE name = $1 AND next_at = $2 AND NOT paused",
        &[
            &tick.schedule,
            &tick.expected_next_at,
            &tick.next_at,
            &tick.error,
            &fired_at,
        ],
    )
    .await?;
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
    let submitted = jobs::insert(tx, std::slice::from_ref(job), now, origin)
        .await?
        .pop()
        .ok_or_else(|| Error::Database("a fired job was not stored".to_owned()))?;
    execute(
        tx,
        "UPDATE schedules SET last_job = $2 WHERE name = $1",
        &[&tick.schedule, &submitted.job.id],
    )
    .await?;
    Ok(Fired::Created(Box::new(submitted)))
}
