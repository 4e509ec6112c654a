//! `decide`: what happens to a job after an attempt ends, however it ended.
//!
//! One pure function for every way an attempt can end: a worker's report,
//! a host that could not run the job, a host that stopped it, a host that
//! went away (a rescued lease). The store applies a [`Decision`]; it never
//! makes one.

use super::Escalation;
use crate::clock::Millis;
use crate::job::Job;
use crate::limits::Limits;
use crate::report::{FailureKind, Report};

/// How an attempt ended, as far as the job's fate is concerned.
#[derive(Clone, Copy, Debug)]
pub enum Ending<'a> {
    /// The engine ran the attempt to a report: success, or a failure the
    /// report classifies. A `cancelled` failure means a client cancelled
    /// the job.
    Ran(&'a Report),
    /// The host stopped the attempt, or never started it, for reasons of
    /// its own (a graceful shutdown, no sandbox slot free): not the job's
    /// doing, so the attempt is given back.
    Interrupted,
    /// The host could not run the attempt, e.g. the job's module failed to
    /// load. `retryable` says whether another attempt could succeed (a
    /// compile that timed out under load, a module file that a re-upload
    /// can repair) or not (a module the engine now refuses).
    HostFailed {
        /// Whether another attempt could succeed.
        retryable: bool,
    },
    /// The attempt's host went away without a result: its lease expired,
    /// or the host restarted. Counts as a retryable failure.
    Lost,
}

/// What the store does with the job next.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// `completed`, with the attempt's output.
    Complete,
    /// `retrying` until `run_at`, then another attempt with `limits`.
    Retry {
        /// When it may run again.
        run_at: Millis,
        /// Limits of the next attempt (escalated after a limit was hit).
        limits: Limits,
    },
    /// `failed`: the dead letter.
    DeadLetter,
    /// `cancelled`: a client cancelled it while it ran.
    Cancelled,
    /// Back to waiting, due at once, the attempt not spent and no attempt
    /// recorded.
    Release,
}

impl Decision {
    /// Its name in logs: `complete`, `retry`, `dead_letter`, `cancelled`,
    /// `release`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Complete => "complete",
            Decision::Retry { .. } => "retry",
            Decision::DeadLetter => "dead_letter",
            Decision::Cancelled => "cancelled",
            Decision::Release => "release",
        }
    }
}

/// The next state of `job` after its current attempt ended as `ending` at
/// `now`.
///
/// - Success completes it; a client's cancel cancels it; a host
///   interruption releases it.
/// - A failure that is not retryable (`fatal_error`, a module the engine
///   refuses), or one on the job's last attempt, or under a policy that
///   never retries, dead-letters it.
/// - Any other failure retries it after the policy's backoff, counted from
///   `now` (`random` in `[0, 1)` spreads it when the policy has jitter),
///   with the exhausted limit escalated when a limit was hit.
pub fn decide(
    job: &Job,
    ending: Ending<'_>,
    now: Millis,
    escalation: &Escalation,
    random: f64,
) -> Decision {
    let (retryable, kind) = match ending {
        Ending::Interrupted => return Decision::Release,
        Ending::Ran(report) => match &report.failure {
            None => return Decision::Complete,
            Some(failure) if failure.kind == FailureKind::Cancelled => {
                return Decision::Cancelled;
            }
            Some(failure) => (failure.retryable, Some(failure.kind)),
        },
        Ending::HostFailed { retryable } => (retryable, None),
        Ending::Lost => (true, None),
    };
    if !retryable || job.attempt >= job.max_attempts {
        return Decision::DeadLetter;
    }
    let Some(delay) = job.retry.delay_ms(job.attempt, random) else {
        return Decision::DeadLetter;
    };
    Decision::Retry {
        run_at: now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX)),
        limits: kind.map_or(job.limits, |kind| escalation.next(job.limits, kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobState, ModuleRef};
    use crate::policy::{Backoff, RetryPolicy};
    use crate::report::{Failure, Report};

    const NOW: Millis = 1_700_000_000_000;

    fn job(attempt: u32, max_attempts: u32, retry: RetryPolicy) -> Job {
        Job {
            id: 7,
            queue: "default".to_owned(),
            module: ModuleRef {
                hash: "h".to_owned(),
                name: None,
            },
            state: JobState::Running,
            priority: 5,
            attempt,
            max_attempts,
            retry,
            limits: Limits::default(),
            run_at: NOW - 10,
            created_at: NOW - 10,
            started_at: None,
            finished_at: None,
            last_error: None,
            unique_key: None,
            workflow: None,
            node: None,
            parent: None,
            schedule: None,
            grants: None,
            trace: None,
        }
    }

    fn fixed(ms: u64) -> RetryPolicy {
        RetryPolicy {
            backoff: Backoff::Fixed,
            base_ms: ms,
            max_delay_ms: ms,
            jitter: false,
        }
    }

    fn failed(kind: FailureKind) -> Report {
        let mut report = Report::empty_for_tests();
        report.failure = Some(Failure::new(kind, format!("it failed: {kind}")));
        report
    }

    fn run(job: &Job, ending: Ending<'_>) -> Decision {
        decide(job, ending, NOW, &Escalation::default(), 0.0)
    }

    #[test]
    fn success_completes_and_a_cancel_cancels() {
        let job = job(1, 3, fixed(1_000));
        assert_eq!(
            run(&job, Ending::Ran(&Report::empty_for_tests())),
            Decision::Complete
        );
        let cancelled = failed(FailureKind::Cancelled);
        assert_eq!(run(&job, Ending::Ran(&cancelled)), Decision::Cancelled);
        assert_eq!(run(&job, Ending::Interrupted), Decision::Release);
    }

    #[test]
    fn a_fatal_error_dead_letters_on_the_first_attempt() {
        let job = job(1, 5, fixed(1_000));
        let fatal = failed(FailureKind::FatalError);
        assert_eq!(run(&job, Ending::Ran(&fatal)), Decision::DeadLetter);
        let refused = Ending::HostFailed { retryable: false };
        assert_eq!(run(&job, refused), Decision::DeadLetter);
    }

    #[test]
    fn retryable_failures_wait_for_the_backoff_until_the_last_attempt() {
        let first = job(1, 2, fixed(5_000));
        let expected = Decision::Retry {
            run_at: NOW + 5_000,
            limits: Limits::default(),
        };
        let trap = failed(FailureKind::Trap);
        assert_eq!(run(&first, Ending::Ran(&trap)), expected);
        assert_eq!(run(&first, Ending::Lost), expected);
        assert_eq!(
            run(&first, Ending::HostFailed { retryable: true }),
            expected
        );
        let last = job(2, 2, fixed(5_000));
        assert_eq!(run(&last, Ending::Ran(&trap)), Decision::DeadLetter);
        assert_eq!(run(&last, Ending::Lost), Decision::DeadLetter);
    }

    #[test]
    fn a_policy_that_never_retries_dead_letters() {
        let job = job(
            1,
            5,
            RetryPolicy {
                backoff: Backoff::None,
                ..RetryPolicy::default()
            },
        );
        assert_eq!(run(&job, Ending::Lost), Decision::DeadLetter);
    }

    #[test]
    fn the_exhausted_limit_escalates_for_the_next_attempt() {
        let job = job(1, 3, fixed(1));
        let Decision::Retry { limits, .. } =
            run(&job, Ending::Ran(&failed(FailureKind::OutOfFuel)))
        else {
            panic!("retried")
        };
        assert_eq!(limits.fuel, job.limits.fuel * 2);
        assert_eq!(limits.memory_bytes, job.limits.memory_bytes);
        // A lost attempt hit no limit: nothing grows.
        let Decision::Retry { limits, .. } = run(&job, Ending::Lost) else {
            panic!("retried")
        };
        assert_eq!(limits, job.limits);
    }

    #[test]
    fn a_huge_backoff_saturates_instead_of_wrapping_to_the_past() {
        let job = job(
            1,
            3,
            RetryPolicy {
                backoff: Backoff::Fixed,
                base_ms: u64::MAX,
                max_delay_ms: u64::MAX,
                jitter: false,
            },
        );
        let Decision::Retry { run_at, .. } = run(&job, Ending::Lost) else {
            panic!("retried")
        };
        assert_eq!(run_at, i64::MAX);
        let job = job_with_base(i64::MAX as u64 - 5);
        let Decision::Retry { run_at, .. } = run(&job, Ending::Lost) else {
            panic!("retried")
        };
        assert_eq!(run_at, i64::MAX, "no wrap to a negative run-at");
    }

    fn job_with_base(base_ms: u64) -> Job {
        job(
            1,
            3,
            RetryPolicy {
                backoff: Backoff::Fixed,
                base_ms,
                max_delay_ms: base_ms,
                jitter: false,
            },
        )
    }
}
