//! The queue's vocabulary: job states, priorities, retry policies and limit
//! escalation. Plain data and pure functions, no I/O.

use crate::clock::Millis;
use crate::limits::Limits;
use crate::report::FailureKind;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Most urgent priority.
pub const PRIORITY_CRITICAL: u8 = 0;
/// Least urgent priority.
pub const PRIORITY_LOW: u8 = 10;
/// Priority of a job that does not say.
pub const DEFAULT_PRIORITY: u8 = 5;
/// Attempts a job gets unless it says otherwise: one try and two retries.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// A job's identifier: assigned by the store, increasing with submission.
pub type JobId = i64;

/// Where a job is in its life. See `docs/state_machine.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to be claimed (moved out by a worker's claim, or cancel).
    Pending,
    /// Claimed by a worker under a lease (moved out by the worker's result,
    /// by cancel, or by the rescuer when the lease expires).
    Running,
    /// Failed an attempt and waiting for its backoff (moved out by a
    /// worker's claim once due, or by cancel).
    Retrying,
    /// Succeeded. Final.
    Completed,
    /// Out of attempts or failed fatally: the dead-letter queue (moved out
    /// only by re-queue or purge).
    Failed,
    /// Cancelled by a client. Final.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 6] = [
        JobState::Pending,
        JobState::Running,
        JobState::Retrying,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The snake_case name used in the API, the CLI and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the job will never run again on its own.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the delay before a retry grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// `base × 2^(n−1)` after the n-th failed attempt: 1s, 2s, 4s, 8s…
    Exponential,
    /// `base × n`: 1s, 2s, 3s…
    Linear,
    /// `base` every time.
    Fixed,
    /// No retries at all: the first failure is final.
    None,
}

/// Default backoff base: one second.
pub const DEFAULT_RETRY_BASE_MS: u64 = 1_000;
/// Default ceiling on one backoff delay: one hour, so an exponential policy
/// never parks a job for days.
pub const DEFAULT_RETRY_MAX_DELAY_MS: u64 = 3_600_000;

/// A job's retry policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
#[schema(default)]
pub struct RetryPolicy {
    /// How the delay grows.
    pub backoff: Backoff,
    /// The base delay in milliseconds.
    pub base_ms: u64,
    /// The largest delay in milliseconds.
    pub max_delay_ms: u64,
    /// Spread delays randomly over `[delay/2, delay]` so that jobs failing
    /// together do not retry together.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            backoff: Backoff::Exponential,
            base_ms: DEFAULT_RETRY_BASE_MS,
            max_delay_ms: DEFAULT_RETRY_MAX_DELAY_MS,
            jitter: false,
        }
    }
}

impl RetryPolicy {
    /// The delay in milliseconds after failed attempt number `attempt`
    /// (from 1), or `None` when the policy never retries. `random` is a
    /// number in `[0, 1)` used only with jitter.
    pub fn delay_ms(&self, attempt: u32, random: f64) -> Option<u64> {
        let n = u64::from(attempt.max(1));
        let delay = match self.backoff {
            Backoff::None => return None,
            Backoff::Fixed => self.base_ms,
            Backoff::Linear => self.base_ms.saturating_mul(n),
            Backoff::Exponential => {
                let shift = (n - 1).min(62) as u32;
                self.base_ms.saturating_mul(1u64 << shift)
            }
        };
        let delay = delay.min(self.max_delay_ms);
        Some(if self.jitter {
            let random = random.clamp(0.0, 1.0);
            delay / 2 + ((delay - delay / 2) as f64 * random) as u64
        } else {
            delay
        })
    }

    /// Checks the policy, naming the first problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.backoff != Backoff::None && self.base_ms == 0 {
            return Err("retry.base_ms must be greater than 0".to_owned());
        }
        if self.max_delay_ms < self.base_ms {
            return Err("retry.max_delay_ms must be at least retry.base_ms".to_owned());
        }
        Ok(())
    }
}

/// How limits grow after an attempt fails by hitting one: the same input
/// with the same budget would fail the same way.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Escalation {
    /// Multiply the exhausted limit by this (1.0 turns escalation off).
    pub factor: f64,
    /// Fuel never grows past this.
    pub max_fuel: u64,
    /// Memory never grows past this (bytes).
    pub max_memory_bytes: u64,
    /// The timeout never grows past this (milliseconds).
    pub max_timeout_ms: u64,
}

impl Default for Escalation {
    fn default() -> Self {
        Escalation {
            factor: 2.0,
            max_fuel: 50_000_000_000,
            max_memory_bytes: 512 * 1024 * 1024,
            max_timeout_ms: 300_000,
        }
    }
}

impl Escalation {
    /// The limits for the next attempt after one that failed with `kind`.
    pub fn next(&self, limits: Limits, kind: FailureKind) -> Limits {
        let grow = |value: u64, ceiling: u64| -> u64 {
            if value >= ceiling {
                return value;
            }
            ((value as f64 * self.factor) as u64).clamp(value, ceiling)
        };
        let mut next = limits;
        match kind {
            FailureKind::OutOfFuel => next.fuel = grow(limits.fuel, self.max_fuel),
            FailureKind::MemoryLimit => {
                next.memory_bytes = grow(limits.memory_bytes, self.max_memory_bytes)
            }
            FailureKind::Timeout => next.timeout_ms = grow(limits.timeout_ms, self.max_timeout_ms),
            _ => {}
        }
        next
    }
}

/// A job to submit.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// The module's blake3 hash (hex), already resolved from a name.
    pub module: String,
    /// The input bytes.
    pub input: Vec<u8>,
    /// 0 (critical) to 10 (low).
    pub priority: u8,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// How to retry.
    pub retry: RetryPolicy,
    /// Limits for the first attempt.
    pub limits: Limits,
    /// Not before this time.
    pub run_at: Millis,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    /// Its id.
    #[schema(value_type = i64)]
    pub id: JobId,
    /// The module's hash.
    pub module: String,
    /// Where it is in its life.
    pub state: JobState,
    /// 0 (critical) to 10 (low), as submitted.
    pub priority: u8,
    /// Attempts started so far.
    pub attempt: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// How to retry.
    pub retry: RetryPolicy,
    /// Limits for the next (or current) attempt.
    pub limits: Limits,
    /// Not run before this time.
    #[schema(value_type = i64)]
    pub run_at: Millis,
    /// When it was submitted.
    #[schema(value_type = i64)]
    pub created_at: Millis,
    /// When its latest attempt started.
    #[schema(value_type = Option<i64>, required = true)]
    pub started_at: Option<Millis>,
    /// When it reached a final state.
    #[schema(value_type = Option<i64>, required = true)]
    pub finished_at: Option<Millis>,
    /// The last failure message.
    #[schema(required = true)]
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff) -> RetryPolicy {
        RetryPolicy {
            backoff,
            base_ms: 1_000,
            max_delay_ms: 5_000,
            jitter: false,
        }
    }

    #[test]
    fn backoff_strategies() {
        let exp = policy(Backoff::Exponential);
        let delays: Vec<_> = (1..=4).map(|n| exp.delay_ms(n, 0.0).unwrap()).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 5_000]);
        assert_eq!(policy(Backoff::Linear).delay_ms(3, 0.0), Some(3_000));
        assert_eq!(policy(Backoff::Fixed).delay_ms(4, 0.0), Some(1_000));
        assert_eq!(policy(Backoff::None).delay_ms(1, 0.0), None);
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay() {
        let p = RetryPolicy {
            jitter: true,
            ..policy(Backoff::Fixed)
        };
        assert_eq!(p.delay_ms(1, 0.0), Some(500));
        assert_eq!(p.delay_ms(1, 0.999_999), Some(999));
    }

    #[test]
    fn escalation_multiplies_only_the_exhausted_limit_up_to_its_ceiling() {
        let esc = Escalation {
            factor: 2.0,
            max_fuel: 300,
            ..Escalation::default()
        };
        let limits = Limits {
            fuel: 100,
            ..Limits::default()
        };
        let next = esc.next(limits, FailureKind::OutOfFuel);
        assert_eq!(next.fuel, 200);
        assert_eq!(next.memory_bytes, limits.memory_bytes);
        assert_eq!(esc.next(next, FailureKind::OutOfFuel).fuel, 300);
        assert_eq!(esc.next(limits, FailureKind::Trap), limits);
    }

    #[test]
    fn states_round_trip_their_names() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
    }
}
