//! The queue's vocabulary: job ids, states, priorities, and the job as the
//! rest of the host sees it. Plain data, no I/O, and no wire format: the
//! store keeps its own encoding (`store`), the API its own views (`api`).

use crate::clock::Millis;
use crate::json::Json;
use crate::limits::Limits;
use crate::policy::RetryPolicy;
use crate::report::AttemptReport;
use std::fmt;

mod trace;
pub use trace::TraceParent;

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

/// A workflow's identifier: assigned by the store.
pub type WorkflowId = i64;

/// Where a job is in its life. See `docs/state_machine.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for its prerequisites (moved out when the last of them is
    /// resolved: to `pending`, or `cancelled` when one it needs failed).
    Blocked,
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
    pub const ALL: [JobState; 7] = [
        JobState::Blocked,
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
            JobState::Blocked => "blocked",
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
    /// Its prerequisites: it is `blocked` until each is resolved.
    pub depends_on: Vec<Dependency>,
    /// Its name in its workflow, when it is a workflow's node.
    pub node: Option<String>,
    /// The grants of its module it runs with; all of them when `None`.
    pub grants: Option<Vec<String>>,
    /// The trace its attempts join: the submitting request's
    /// `traceparent`, or its parent job's span.
    pub trace: Option<TraceParent>,
}

/// What a dependent does when a prerequisite ends without completing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnFailure {
    /// It is cancelled, and its own dependents after it (the default).
    #[default]
    Cancel,
    /// It runs anyway once its other prerequisites are resolved (a
    /// clean-up or alert step); it sees how the prerequisite ended.
    Continue,
}

impl OnFailure {
    /// The snake_case name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Cancel => "cancel",
            OnFailure::Continue => "continue",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(text: &str) -> Option<OnFailure> {
        [OnFailure::Cancel, OnFailure::Continue]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// The job a new job depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prereq {
    /// A stored job.
    Job(JobId),
    /// A job stored earlier in the same insert, by its position there.
    Earlier(usize),
}

/// One prerequisite of a new job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// The job it waits for.
    pub on: Prereq,
    /// The name the dependent knows its output by.
    pub name: String,
    /// What happens when that job fails or is cancelled.
    pub on_failure: OnFailure,
}

/// A stored edge: job `job` waits for `prereq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    /// The dependent.
    pub job: JobId,
    /// The prerequisite.
    pub prereq: JobId,
    /// The name the dependent knows the prerequisite's output by.
    pub name: String,
    /// What happens when the prerequisite fails or is cancelled.
    pub on_failure: OnFailure,
}

/// A resolved prerequisite, as the dependent's attempt sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The edge's name.
    pub name: String,
    /// The prerequisite.
    pub job: JobId,
    /// How it ended: completed, or (through an `on_failure: continue`
    /// edge) failed or cancelled.
    pub state: JobState,
    /// Its output, when it completed.
    pub output: Option<Json>,
    /// Why it failed or was cancelled, when it did not complete (its last
    /// failure message).
    pub error: Option<String>,
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
    /// The workflow it belongs to, if any.
    pub workflow: Option<WorkflowId>,
    /// Its name in that workflow.
    pub node: Option<String>,
    /// The job whose attempt submitted it, if one did.
    pub parent: Option<JobId>,
    /// The schedule that created it, if one did.
    pub schedule: Option<String>,
    /// The grants of its module it runs with; all of them when `None`.
    pub grants: Option<Vec<String>>,
    /// The trace its attempts join, if its submission carried one.
    pub trace: Option<TraceParent>,
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
    /// Its prerequisites.
    pub depends_on: Vec<Edge>,
}

/// A workflow to store: jobs in an order where each job's prerequisites
/// come before it ([`Prereq::Earlier`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NewWorkflow {
    /// A name to show for it.
    pub name: Option<String>,
    /// Its jobs, each a node with a name.
    pub jobs: Vec<NewJob>,
}

/// A stored workflow, without its jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workflow {
    /// Its id.
    pub id: WorkflowId,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// When it was submitted.
    pub created_at: Millis,
    /// How many of its jobs are in each state, every state present.
    pub counts: Vec<(JobState, u64)>,
}

impl Workflow {
    /// Its state: `completed` once every job completed, `failed` once
    /// every job is final and one failed, `cancelled` once every job is
    /// final and one was cancelled (none failed), `running` otherwise.
    pub fn state(&self) -> WorkflowState {
        let count = |state: JobState| {
            self.counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n)
        };
        let unfinished: u64 = JobState::ALL
            .into_iter()
            .filter(|s| !s.is_final())
            .map(count)
            .sum();
        if unfinished > 0 {
            WorkflowState::Running
        } else if count(JobState::Failed) > 0 {
            WorkflowState::Failed
        } else if count(JobState::Cancelled) > 0 {
            WorkflowState::Cancelled
        } else {
            WorkflowState::Completed
        }
    }
}

/// Where a workflow is, from its jobs' states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkflowState {
    /// A job is not final yet.
    Running,
    /// Every job completed.
    Completed,
    /// Every job is final and one failed.
    Failed,
    /// Every job is final, one was cancelled and none failed.
    Cancelled,
}

impl WorkflowState {
    /// The snake_case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Running => "running",
            WorkflowState::Completed => "completed",
            WorkflowState::Failed => "failed",
            WorkflowState::Cancelled => "cancelled",
        }
    }
}

/// A workflow with every job and edge.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowDetail {
    /// The workflow.
    pub workflow: Workflow,
    /// Its jobs, by id.
    pub jobs: Vec<Job>,
    /// Every edge into one of its jobs.
    pub edges: Vec<Edge>,
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
