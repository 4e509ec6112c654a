//! Per-minute history of each queue: what finished, what failed, and how
//! long jobs waited and ran. Plain data and arithmetic: no SQL, no HTTP.
//!
//! The worker pool and the rescuer [`Tally::note`] every outcome they
//! apply into an in-memory [`Tally`]; a background service flushes it to
//! the store every few seconds (one write for all of them, never one per
//! job), where rows of the same minute and queue are **added** together.
//! So every figure is a count: the wait and run durations are
//! [`Histogram`]s of fixed log-scale buckets, which rows from several
//! flushes and several hosts merge by addition, and the percentiles are
//! derived from the buckets when read ([`HistoryMinute`]).

use crate::clock::Millis;
use crate::job::Job;
use crate::policy::Decision;
use crate::report::AttemptReport;
use crate::store::Outcome;
use std::collections::BTreeMap;

/// One minute, in ms: rows are per minute.
pub const MINUTE_MS: Millis = 60_000;

/// Buckets of a [`Histogram`]. Bucket 0 holds durations under 1 ms; bucket
/// `i >= 1` those from `2^((i-1)/2)` ms up to `2^(i/2)` ms (two buckets per
/// doubling, so a percentile is within about 20% of the true value); the
/// last one also holds everything longer than its lower bound (about 25
/// days).
pub const BUCKETS: usize = 64;

/// Durations counted in log-scale buckets (see [`BUCKETS`]). Merged by
/// adding the counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: [u64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKETS],
        }
    }
}

impl Histogram {
    /// The bucket of a duration in ms (a negative one counts as 0).
    pub fn bucket(ms: i64) -> usize {
        if ms < 1 {
            return 0;
        }
        // 2·log2(ms), floored, exactly for integers: the bucket's lower
        // bound 2^(k/2) is at most ms.
        let doubled = 2 * (63 - ms.leading_zeros() as usize);
        let k = if (ms as f64) >= 2f64.powf((doubled + 1) as f64 / 2.0) {
            doubled + 1
        } else {
            doubled
        };
        (k + 1).min(BUCKETS - 1)
    }

    /// The lower bound of bucket `i`, in ms.
    pub fn lower_ms(i: usize) -> f64 {
        if i == 0 {
            0.0
        } else {
            2f64.powf((i - 1) as f64 / 2.0)
        }
    }

    /// Counts one duration.
    pub fn record(&mut self, ms: i64) {
        self.counts[Self::bucket(ms)] += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
    }

    /// How many durations were counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Each bucket's count, by bucket.
    pub fn counts(&self) -> &[u64; BUCKETS] {
        &self.counts
    }

    /// Sets bucket `i`'s count (reading a stored row); an index out of
    /// range is ignored.
    pub fn set(&mut self, i: usize, count: u64) {
        if let Some(slot) = self.counts.get_mut(i) {
            *slot = count;
        }
    }

    /// The `q` quantile (0 to 1) in ms: the geometric middle of the bucket
    /// holding it (0 for the first bucket), rounded. `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        // The rank of the value wanted, from 1: the smallest value with at
        // least a fraction q of the values at or below it.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                if i == 0 {
                    return Some(0);
                }
                let middle = (Self::lower_ms(i) * Self::lower_ms(i + 1)).sqrt();
                return Some(middle.round() as u64);
            }
        }
        None
    }

    /// p50, p95 and p99.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            count: self.count(),
            p50_ms: self.quantile_ms(0.50),
            p95_ms: self.quantile_ms(0.95),
            p99_ms: self.quantile_ms(0.99),
        }
    }
}

/// Percentiles of a minute's durations, from its [`Histogram`] (each within
/// about 20%). `None` when nothing was counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// How many durations were counted.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: Option<u64>,
    /// 95th percentile, ms.
    pub p95_ms: Option<u64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<u64>,
}

/// The raw figures of one queue in one minute: all counts, so merged by
/// addition. What the store keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MinuteCounts {
    /// Jobs completed.
    pub completed: u64,
    /// Attempts that failed (whatever followed: a retry or the dead
    /// letter).
    pub failed: u64,
    /// Attempts followed by a retry.
    pub retried: u64,
    /// Jobs moved to the dead letter.
    pub dead_lettered: u64,
    /// Jobs cancelled while they ran.
    pub cancelled: u64,
    /// Failed attempts by kind (`timeout`, `trap`… as
    /// [`FailureKind::as_str`](crate::report::FailureKind::as_str), or
    /// `lost`, `host_failed`).
    pub failures: BTreeMap<String, u64>,
    /// From when each attempt was due (submitted, or its `run_at`) to when
    /// it started.
    pub wait: Histogram,
    /// How long each attempt ran.
    pub run: Histogram,
}

impl MinuteCounts {
    /// Adds another minute's counts.
    pub fn merge(&mut self, other: &MinuteCounts) {
        self.completed += other.completed;
        self.failed += other.failed;
        self.retried += other.retried;
        self.dead_lettered += other.dead_lettered;
        self.cancelled += other.cancelled;
        for (kind, n) in &other.failures {
            *self.failures.entry(kind.clone()).or_default() += n;
        }
        self.wait.merge(&other.wait);
        self.run.merge(&other.run);
    }
}

/// One stored row: a queue's counts in the minute starting at `at`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MinuteRow {
    /// The minute's start, ms since the epoch (a multiple of
    /// [`MINUTE_MS`]).
    pub at: Millis,
    /// The queue.
    pub queue: String,
    /// What happened in it.
    pub counts: MinuteCounts,
}

/// One minute of one queue's history, as read: counts, and the wait and
/// run percentiles derived from the stored buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryMinute {
    /// The minute's start, ms since the epoch.
    pub at: Millis,
    /// The queue.
    pub queue: String,
    /// Jobs completed.
    pub completed: u64,
    /// Attempts that failed (then retried or dead-lettered).
    pub failed: u64,
    /// Attempts followed by a retry.
    pub retried: u64,
    /// Jobs moved to the dead letter.
    pub dead_lettered: u64,
    /// Jobs cancelled while they ran.
    pub cancelled: u64,
    /// Failed attempts by kind.
    pub failures: BTreeMap<String, u64>,
    /// From due to started, per attempt.
    pub wait: Percentiles,
    /// From started to ended, per attempt.
    pub run: Percentiles,
}

impl From<MinuteRow> for HistoryMinute {
    fn from(row: MinuteRow) -> Self {
        let c = row.counts;
        HistoryMinute {
            at: row.at,
            queue: row.queue,
            completed: c.completed,
            failed: c.failed,
            retried: c.retried,
            dead_lettered: c.dead_lettered,
            cancelled: c.cancelled,
            failures: c.failures,
            wait: c.wait.percentiles(),
            run: c.run.percentiles(),
        }
    }
}

/// The minute `at` falls in.
pub fn minute_of(at: Millis) -> Millis {
    // Saturating: the earliest representable minute starts before the
    // earliest representable millisecond.
    at.div_euclid(MINUTE_MS).saturating_mul(MINUTE_MS)
}

/// What one host counted since its last flush, by minute and queue.
#[derive(Debug, Default)]
pub struct Tally {
    minutes: BTreeMap<(Millis, String), MinuteCounts>,
}

impl Tally {
    /// Counts an applied outcome of `job` (the job as claimed: its
    /// `run_at` is when the attempt became due). A released attempt
    /// counts nothing.
    pub fn note(&mut self, job: &Job, outcome: &Outcome) {
        let Some(attempt) = &outcome.attempt else {
            return;
        };
        let counts = self
            .minutes
            .entry((minute_of(outcome.at), job.queue.clone()))
            .or_default();
        match &outcome.decision {
            Decision::Complete => counts.completed += 1,
            Decision::Retry { .. } => counts.retried += 1,
            Decision::DeadLetter => counts.dead_lettered += 1,
            Decision::Cancelled => counts.cancelled += 1,
            Decision::Release => return,
        }
        if matches!(
            outcome.decision,
            Decision::Retry { .. } | Decision::DeadLetter
        ) {
            counts.failed += 1;
            let kind = match &attempt.report {
                AttemptReport::Ran(_) => attempt
                    .report
                    .failure_kind()
                    .map_or("unknown", |kind| kind.as_str()),
                AttemptReport::HostFailed { .. } => "host_failed",
                AttemptReport::Lost { .. } => "lost",
            };
            *counts.failures.entry(kind.to_owned()).or_default() += 1;
        }
        counts.wait.record(attempt.started_at - job.run_at);
        let run_ms = match &attempt.report {
            AttemptReport::Ran(report) => (report.duration_us / 1_000) as i64,
            _ => outcome.at - attempt.started_at,
        };
        counts.run.record(run_ms);
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty()
    }

    /// Takes what was counted, leaving the tally empty.
    pub fn take(&mut self) -> Vec<MinuteRow> {
        std::mem::take(&mut self.minutes)
            .into_iter()
            .map(|((at, queue), counts)| MinuteRow { at, queue, counts })
            .collect()
    }

    /// Puts back rows a flush could not write, to go with the next.
    pub fn restore(&mut self, rows: Vec<MinuteRow>) {
        for row in rows {
            self.minutes
                .entry((row.at, row.queue))
                .or_default()
                .merge(&row.counts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_two_per_doubling() {
        assert_eq!(Histogram::bucket(-5), 0);
        assert_eq!(Histogram::bucket(0), 0);
        assert_eq!(Histogram::bucket(1), 1);
        assert_eq!(Histogram::bucket(2), 3);
        assert_eq!(Histogram::bucket(3), 4, "3 ≥ 2^1.5 ≈ 2.83");
        assert_eq!(Histogram::bucket(4), 5);
        assert_eq!(Histogram::bucket(1_000), 20, "2^9.5 ≈ 724 ≤ 1000 < 1024");
        assert_eq!(Histogram::bucket(i64::MAX), BUCKETS - 1);
        for ms in [1, 2, 3, 7, 100, 999, 1_000, 1_448, 60_000, 86_400_000] {
            let i = Histogram::bucket(ms);
            assert!(Histogram::lower_ms(i) <= ms as f64, "{ms} in {i}");
            assert!((ms as f64) < Histogram::lower_ms(i + 1), "{ms} in {i}");
        }
    }

    #[test]
    fn percentiles_come_from_the_buckets() {
        let mut h = Histogram::default();
        assert_eq!(h.percentiles(), Percentiles::default(), "empty");
        for _ in 0..90 {
            h.record(100);
        }
        for _ in 0..9 {
            h.record(1_000);
        }
        h.record(30_000);
        let p = h.percentiles();
        assert_eq!(p.count, 100);
        let within = |got: Option<u64>, want: f64| {
            let got = got.unwrap() as f64;
            assert!((got / want - 1.0).abs() < 0.21, "{got} vs {want}");
        };
        within(p.p50_ms, 100.0);
        within(p.p95_ms, 1_000.0);
        within(p.p99_ms, 1_000.0);
        within(h.quantile_ms(1.0), 30_000.0);
        within(h.quantile_ms(0.0), 100.0);
    }

    #[test]
    fn a_sub_millisecond_duration_is_zero() {
        let mut h = Histogram::default();
        h.record(0);
        assert_eq!(h.quantile_ms(0.5), Some(0));
    }

    #[test]
    fn merging_adds_the_counts() {
        let mut a = MinuteCounts {
            completed: 2,
            ..MinuteCounts::default()
        };
        a.failures.insert("timeout".to_owned(), 1);
        a.wait.record(10);
        let mut b = a.clone();
        b.failures.insert("trap".to_owned(), 3);
        b.run.record(5);
        a.merge(&b);
        assert_eq!(a.completed, 4);
        assert_eq!(a.failures["timeout"], 2);
        assert_eq!(a.failures["trap"], 3);
        assert_eq!(a.wait.count(), 2);
        assert_eq!(a.run.count(), 1);
        // Merged percentiles equal those of all the values recorded at once.
        let mut once = Histogram::default();
        let mut parts = (Histogram::default(), Histogram::default());
        for ms in 0..1_000 {
            once.record(ms);
            if ms % 3 == 0 {
                parts.0.record(ms);
            } else {
                parts.1.record(ms);
            }
        }
        parts.0.merge(&parts.1);
        assert_eq!(parts.0.percentiles(), once.percentiles());
    }

    #[test]
    fn minutes_start_on_the_minute() {
        assert_eq!(minute_of(0), 0);
        assert_eq!(minute_of(59_999), 0);
        assert_eq!(minute_of(60_000), 60_000);
        assert_eq!(minute_of(-1), -60_000);
    }
}
