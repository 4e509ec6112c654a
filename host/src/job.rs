//! The queue's vocabulary: job ids, states, priorities, and the job as the
//! rest of the host sees it. Plain data, no I/O, and no wire format: the
//! store keeps its own encoding (`store`), the API its own views (`api`).

use crate::clock::Millis;
use crate::json::Json;
use crate::limits::Limits;
use crate::policy::RetryPolicy;
use crate::report::AttemptReport;
use std::fmt;

/// Most urgent priority.
pub const PRIORITY_CRITICAL: u8 = 0;
/// Least urgent priority.
pub const PRIORITY_LOW: u8 = 10;
/// Priority of a job that does not say.
pub const DEFAULT_PRIORITY: u8 = 5;
/// Attempts a job gets unless it says otherwise: one try and two retries.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The queue of a job that does not name one.
pub const DEFAULT_QUEUE: &str = "default";

/// A job's identifier: assigned by the store, increasing with submission.
pub type JobId = i64;

/// Where a job is in its life. See `docs/state_machine.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// The module a job runs: its hash, and the name to show for it (the name
/// it was submitted by, or the module's name at submission).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleRef {
    /// blake3 hash of the module's bytes, hex.
    pub hash: String,
    /// A human name, when it has one.
    pub name: Option<String>,
}

impl ModuleRef {
    /// The first 12 hex digits of the hash.
    pub fn short_hash(&self) -> &str {
        &self.hash[..self.hash.len().min(12)]
    }
}

impl fmt::Display for ModuleRef {
    /// `name (0123456789ab)`, or the short hash alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} ({})", self.short_hash()),
            None => f.write_str(self.short_hash()),
        }
    }
}

/// A job to store, every field decided (see
/// [`Policy::admit`](crate::policy::Policy::admit)).
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// The queue it waits in.
    pub queue: String,
    /// The module it runs.
    pub module: ModuleRef,
    /// The input.
    pub input: Json,
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
    /// At most one job with this key in the queue at a time.
    pub unique: Option<Unique>,
}

/// A unique job's key: while a job with the same key in the same queue is
/// not final, or finished less than `window_ms` ago, submitting another
/// returns that job instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unique {
    /// The key.
    pub key: String,
    /// How long after the job with the key finished it still counts.
    pub window_ms: u64,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// The queue it waits in.
    pub queue: String,
    /// The module it runs.
    pub module: ModuleRef,
    /// Where it is in its life.
    pub state: JobState,
    /// 0 (critical) to 10 (low), as submitted.
    pub priority: u8,
    /// Attempts started so far against its budget.
    pub attempt: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// How to retry.
    pub retry: RetryPolicy,
    /// Limits for the next (or current) attempt.
    pub limits: Limits,
    /// Not run before this time.
    pub run_at: Millis,
    /// When it was submitted.
    pub created_at: Millis,
    /// When its latest finished attempt started running (not when it was
    /// claimed: a worker may hold a claimed job briefly before it starts).
    pub started_at: Option<Millis>,
    /// When it reached a final state.
    pub finished_at: Option<Millis>,
    /// The last failure message.
    pub last_error: Option<String>,
    /// Its unique key, if it has one.
    pub unique_key: Option<String>,
}

/// A submitted job: stored now, or an existing job with the same unique
/// key.
#[derive(Clone, Debug, PartialEq)]
pub struct Submitted {
    /// The job.
    pub job: Job,
    /// Whether this submission stored it (`false`: an existing job with
    /// the same unique key).
    pub created: bool,
}

/// One finished attempt of a job.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    /// Its number, from 1, never reused for the job (not even after a
    /// requeue).
    pub number: u32,
    /// When it started running.
    pub started_at: Millis,
    /// When its result was recorded.
    pub finished_at: Millis,
    /// What happened.
    pub report: AttemptReport,
}

/// A job with everything stored about it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobDetail {
    /// The job.
    pub job: Job,
    /// Its input.
    pub input: Json,
    /// Its output, once completed.
    pub output: Option<Json>,
    /// Every finished attempt, oldest first.
    pub attempts: Vec<Attempt>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_their_names() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
    }

    #[test]
    fn a_module_shows_its_name_and_short_hash() {
        let hash = "0123456789abcdef".repeat(4);
        let named = ModuleRef {
            hash: hash.clone(),
            name: Some("hello".to_owned()),
        };
        assert_eq!(named.to_string(), "hello (0123456789ab)");
        let anonymous = ModuleRef { hash, name: None };
        assert_eq!(anonymous.to_string(), "0123456789ab");
    }
}
