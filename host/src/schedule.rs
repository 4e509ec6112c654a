//! Cron schedules: when a schedule fires, and what one pass of the
//! scheduler does with a schedule that is due. Plain data and pure
//! functions; the store keeps schedules and fires them, the scheduler
//! task calls [`plan`] and the store.
//!
//! Expressions are Vixie cron with an optional seconds field (5 or 6
//! fields, `@daily` and friends, `L`, `W`, `#`), parsed and evaluated by
//! `croner` in an IANA time zone from `jiff`'s bundled database. In a time
//! zone with daylight saving time a fire time in the skipped hour fires
//! once, right after the gap, and a fire time in the repeated hour fires
//! once, in its first pass; an expression that matches every minute or
//! so fires in both passes, in real-time order.

use crate::clock::Millis;
use crate::policy::{Invalid, JobSpec};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The time zone of a schedule that names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";
/// How late a fire time may be and still count as on time: a tick the
/// scheduler reaches later than this (the host was down) is missed, and
/// the schedule's [`Missed`] policy decides.
pub const LATE_TOLERANCE_MS: Millis = 60_000;
/// The longest cron expression taken.
pub const CRON_MAX: usize = 256;

/// Checks a schedule's name: 1 to 64 of `A-Z a-z 0-9 _ . -`, as a queue's
/// (the same pattern in the OpenAPI document).
pub fn validate_name(name: &str) -> Result<(), Invalid> {
    crate::policy::validate_queue_name(name).map_err(|_| {
        Invalid::new(
            "name",
            format!(
                "invalid schedule name `{name}`: use 1-{} characters from A-Z a-z 0-9 _ . -",
                crate::policy::QUEUE_NAME_MAX
            ),
        )
    })
}

/// When a schedule fires: a cron expression in a time zone.
#[derive(Clone, Debug)]
pub struct Cadence {
    cron: Cron,
    zone: TimeZone,
}

impl Cadence {
    /// Parses `expression` (5 fields, or 6 with seconds first) in the IANA
    /// time zone `zone`. Errors name the field (`cron`, `timezone`) and
    /// the problem.
    pub fn parse(expression: &str, zone: &str) -> Result<Cadence, Invalid> {
        if expression.len() > CRON_MAX {
            return Err(Invalid::new(
                "cron",
                format!("longer than {CRON_MAX} bytes"),
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| {
                Invalid::new(
                    "cron",
                    format!("`{expression}` is not a cron expression: {e}"),
                )
            })?;
        let zone = TimeZone::get(zone).map_err(|_| {
            Invalid::new(
                "timezone",
                format!("`{zone}` is not an IANA time zone (such as `UTC` or `Europe/Paris`)"),
            )
        })?;
        let cadence = Cadence { cron, zone };
        // An expression that can never match (`0 0 31 2 *`) is refused now,
        // not when the scheduler first looks.
        if cadence.next_after(0).is_none() {
            return Err(Invalid::new("cron", format!("`{expression}` never fires")));
        }
        Ok(cadence)
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: Millis) -> Option<Millis> {
        let start = Timestamp::from_millisecond(after)
            .ok()?
            .to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|at| at.timestamp().as_millisecond())
    }

    /// The latest fire time at or before `at`.
    pub fn latest_at_or_before(&self, at: Millis) -> Option<Millis> {
        let start = Timestamp::from_millisecond(at)
            .ok()?
            .to_zoned(self.zone.clone());
        self.cron
            .find_previous_occurrence(&start, true)
            .ok()
            .map(|at| at.timestamp().as_millisecond())
    }

    /// The next `n` fire times after `after`.
    pub fn upcoming(&self, after: Millis, n: usize) -> Vec<Millis> {
        let mut times = Vec::with_capacity(n);
        let mut at = after;
        while times.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    times.push(next);
                    at = next;
                }
                None => break,
            }
        }
        times
    }

    /// `at` as an RFC 3339 date-time in the schedule's zone
    /// (`2026-03-08T03:00:00-04:00`).
    pub fn local(&self, at: Millis) -> String {
        match Timestamp::from_millisecond(at) {
            Ok(at) => at
                .to_zoned(self.zone.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
            Err(_) => at.to_string(),
        }
    }
}

/// What a schedule does with fire times the scheduler reached late (the
/// host was down).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Missed {
    /// Missed fire times create no job; the next one on time does.
    #[default]
    Skip,
    /// Missed fire times create one job between them, when the host is
    /// back.
    RunOnce,
}

impl Missed {
    /// The snake_case name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::RunOnce => "run_once",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(text: &str) -> Option<Missed> {
        [Missed::Skip, Missed::RunOnce]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

/// A schedule as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Its name, unique on the host.
    pub name: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    /// The job each fire time creates (admitted by the policy when it
    /// fires, so the operator's current defaults apply).
    pub job: JobSpec,
    /// What to do with fire times reached late.
    pub missed: Missed,
    /// Paused: it fires nothing until resumed.
    pub paused: bool,
    /// Its next fire time (kept while paused; recomputed from the time of
    /// a resume).
    pub next_at: Millis,
    /// When it last created a job.
    pub last_fired_at: Option<Millis>,
    /// The job it created last.
    pub last_job: Option<crate::job::JobId>,
    /// Why its last fire time created no job, if it did not.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: Millis,
    /// When it was last changed (created, replaced, paused, resumed).
    pub updated_at: Millis,
}

/// A schedule as requested: everything but what the store keeps about
/// its history.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleSpec {
    /// Its name: 1 to 64 of `A-Z a-z 0-9 _ . -`.
    pub name: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone; [`DEFAULT_TIMEZONE`] when absent.
    pub timezone: Option<String>,
    /// The job each fire time creates.
    pub job: JobSpec,
    /// What to do with fire times reached late.
    pub missed: Missed,
    /// Created (or replaced) paused.
    pub paused: bool,
}

/// One pass over a due schedule: whether to create a job now, and when
/// the schedule is due again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The fire time a job is created for, if one is.
    pub fire: Option<Fire>,
    /// The schedule's next fire time, strictly after `now`.
    pub next_at: Millis,
}

/// A job to create for a fire time (due at once: a job cannot have
/// waited before it existed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fire {
    /// The fire time.
    pub tick: Millis,
    /// It makes up for fire times the scheduler reached late.
    pub catch_up: bool,
}

/// What a pass at `now` does with `schedule` (due: `next_at <= now`). The
/// latest fire time at or before `now` is on time if it is the one the
/// schedule waited for, or any later one, no more than
/// [`LATE_TOLERANCE_MS`] ago: it creates a job due at that time. Anything
/// else was missed: `skip` creates none, `run_once` one job. So
/// one pass creates at most one job, however long the host was down.
/// `None` when the expression no longer fires after `now`.
pub fn plan(schedule: &Schedule, cadence: &Cadence, now: Millis) -> Option<Plan> {
    let next_at = cadence.next_after(now)?;
    let latest = cadence
        .latest_at_or_before(now)
        .filter(|latest| *latest >= schedule.next_at);
    let fire = latest.and_then(|tick| {
        let on_time = now - tick <= LATE_TOLERANCE_MS;
        match (on_time, schedule.missed) {
            (true, _) => Some(Fire {
                tick,
                catch_up: tick > schedule.next_at,
            }),
            (false, Missed::Skip) => None,
            (false, Missed::RunOnce) => Some(Fire {
                tick,
                catch_up: true,
            }),
        }
    });
    Some(Plan { fire, next_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Json;

    /// Milliseconds of an RFC 3339 time.
    fn at(text: &str) -> Millis {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn fires(cadence: &Cadence, from: &str, to: &str) -> Vec<String> {
        let (mut now, end) = (at(from), at(to));
        let mut out = Vec::new();
        while let Some(next) = cadence.next_after(now) {
            if next > end {
                break;
            }
            out.push(cadence.local(next));
            now = next;
        }
        out
    }

    #[test]
    fn a_fire_time_in_the_skipped_hour_fires_once_after_the_gap() {
        // 2025-03-09: New York skips from 02:00 to 03:00.
        let daily = Cadence::parse("30 2 * * *", "America/New_York").unwrap();
        assert_eq!(
            fires(&daily, "2025-03-08T00:00:00Z", "2025-03-11T00:00:00Z"),
            [
                "2025-03-08T02:30:00-05:00",
                "2025-03-09T03:00:00-04:00",
                "2025-03-10T02:30:00-04:00",
            ]
        );
        let half_hourly = Cadence::parse("*/30 * * * *", "America/New_York").unwrap();
        assert_eq!(
            fires(&half_hourly, "2025-03-09T06:15:00Z", "2025-03-09T07:45:00Z"),
            [
                "2025-03-09T01:30:00-05:00",
                "2025-03-09T03:00:00-04:00",
                "2025-03-09T03:30:00-04:00"
            ]
        );
    }

    #[test]
    fn a_fire_time_in_the_repeated_hour_fires_once_for_a_daily_job() {
        // 2025-11-02: New York repeats 01:00 to 02:00.
        let daily = Cadence::parse("30 1 * * *", "America/New_York").unwrap();
        assert_eq!(
            fires(&daily, "2025-11-01T12:00:00Z", "2025-11-03T12:00:00Z"),
            ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]
        );
        // Every half hour fires in both passes, in real-time order.
        let half_hourly = Cadence::parse("*/30 * * * *", "America/New_York").unwrap();
        assert_eq!(
            fires(&half_hourly, "2025-11-02T04:45:00Z", "2025-11-02T07:15:00Z"),
            [
                "2025-11-02T01:00:00-04:00",
                "2025-11-02T01:30:00-04:00",
                "2025-11-02T01:00:00-05:00",
                "2025-11-02T01:30:00-05:00",
                "2025-11-02T02:00:00-05:00",
            ]
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_named() {
        let error = |cron: &str, zone: &str| Cadence::parse(cron, zone).unwrap_err().to_string();
        assert!(error("* * *", "UTC").starts_with("cron: `* * *` is not a cron expression"));
        assert!(error("61 * * * *", "UTC").starts_with("cron: `61 * * * *`"));
        assert_eq!(error("0 0 31 2 *", "UTC"), "cron: `0 0 31 2 *` never fires");
        assert_eq!(
            error("* * * * *", "Mars/Olympus"),
            "timezone: `Mars/Olympus` is not an IANA time zone (such as `UTC` or `Europe/Paris`)"
        );
        // Seconds are optional; years are not taken.
        assert!(Cadence::parse("*/10 * * * * *", "UTC").is_ok());
        assert!(Cadence::parse("@daily", "UTC").is_ok());
        assert!(error("0 0 0 1 1 * 2030", "UTC").starts_with("cron:"));
    }

    fn schedule(next_at: Millis, missed: Missed) -> Schedule {
        Schedule {
            name: "s".to_owned(),
            cron: "0 * * * *".to_owned(),
            timezone: "UTC".to_owned(),
            job: JobSpec::new("m", Json::null()),
            missed,
            paused: false,
            next_at,
            last_fired_at: None,
            last_job: None,
            last_error: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_pass_creates_at_most_one_job_and_the_missed_policy_decides_late_ones() {
        let hourly = Cadence::parse("0 * * * *", "UTC").unwrap();
        let ten = at("2026-01-01T10:00:00Z");
        let hour = 3_600_000;
        // On time (a little late is still on time).
        let plan = plan(&schedule(ten, Missed::Skip), &hourly, ten + 5_000).unwrap();
        assert_eq!(
            plan.fire,
            Some(Fire {
                tick: ten,
                catch_up: false
            })
        );
        assert_eq!(plan.next_at, ten + hour);
        // Down from 09:59 to 13:00:30: the 13:00 tick is on time and the
        // others are not made up, whatever the policy... for skip.
        let back = ten + 3 * hour + 30_000;
        let skip = super::plan(&schedule(ten, Missed::Skip), &hourly, back).unwrap();
        assert_eq!(skip.fire.unwrap().tick, ten + 3 * hour);
        assert_eq!(skip.next_at, ten + 4 * hour);
        // Back at 13:20: every tick was missed. Skip creates none...
        let late = ten + 3 * hour + 20 * 60_000;
        let skip = super::plan(&schedule(ten, Missed::Skip), &hourly, late).unwrap();
        assert_eq!(skip.fire, None);
        assert_eq!(skip.next_at, ten + 4 * hour);
        // ...run_once one, due now.
        let once = super::plan(&schedule(ten, Missed::RunOnce), &hourly, late).unwrap();
        assert_eq!(
            once.fire,
            Some(Fire {
                tick: ten + 3 * hour,
                catch_up: true
            })
        );
    }
}
