//! Persistence: the only module with SQL.
//!
//! [`JobStore`] is the queue's narrow interface, expressed in its own verbs
//! (submit, claim, renew, record, cancel, rescue, requeue, purge…). The
//! SQLite backend ([`SqliteStore`]) is the one in use; a PostgreSQL backend,
//! so that several hosts share one queue, implements the same trait without
//! touching the workers or the API.
//!
//! Every verb takes `now` from the caller's clock, so tests drive time.
//! Every write is durable (fsync'd commit) before its future resolves;
//! concurrent writes are committed together (group commit).

mod sqlite;

pub use sqlite::{SqliteStore, StoreConfig};

use crate::clock::Millis;
use crate::job::{Job, JobId, JobState, NewJob};
use crate::limits::Limits;
use crate::report::{ModuleKind, Report};
use serde::{Deserialize, Serialize};

/// A store failure. Client mistakes the store detects (unknown job, action
/// not allowed in the job's state) are their own variants so the API can
/// map them to 404 and 409.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such job or module.
    #[error("{0} not found")]
    NotFound(String),
    /// The action is not allowed in the current state.
    #[error("{0}")]
    Conflict(String),
    /// Stored module bytes do not match their hash.
    #[error("module {0} is corrupt on disk: its bytes do not match its hash")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
    /// The filesystem failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Result of a store verb.
pub type Result<T> = std::result::Result<T, Error>;

/// A module's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModuleRecord {
    /// blake3 hash of the bytes, hex.
    pub hash: String,
    /// Component or command module.
    pub kind: ModuleKind,
    /// Size in bytes.
    pub size: u64,
    /// Optional human name; submitting by name picks the newest module.
    #[schema(required = true)]
    pub name: Option<String>,
    /// When it was first uploaded.
    #[schema(value_type = i64)]
    pub created_at: Millis,
}

/// A claimed job: what a worker needs to run one attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// The job, with `attempt` already incremented for this attempt.
    pub job: Job,
    /// Its input bytes.
    pub input: Vec<u8>,
    /// The lease token; results reported with another token are discarded.
    pub token: String,
}

/// What to claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The claiming host or worker, recorded as the lease owner.
    pub owner: String,
    /// At most this many jobs.
    pub limit: usize,
    /// The lease lasts until `now + lease_ms` unless renewed.
    pub lease_ms: i64,
}

/// A lease held by a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub id: JobId,
    /// The token it was claimed with.
    pub token: String,
}

/// What to do with a job after an attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Succeeded: store the output, `completed`.
    Complete {
        /// The output bytes.
        output: Vec<u8>,
    },
    /// Failed, attempts left: `retrying` until `run_at`, with these limits.
    Retry {
        /// When it may run again.
        run_at: Millis,
        /// Limits for the next attempt (possibly escalated).
        limits: Limits,
    },
    /// Failed for good: `failed` (the dead letter).
    Fail,
    /// Stopped because it was cancelled: `cancelled`.
    Cancelled,
    /// Interrupted by the host (shutdown) or no sandbox capacity: back to
    /// waiting without spending the attempt, no report kept.
    Release,
}

/// The result of one attempt, reported by the worker that held the lease.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptResult {
    /// The lease the attempt ran under.
    pub lease: Lease,
    /// The engine's report (absent for [`Next::Release`]).
    pub report: Option<Report>,
    /// What happens to the job now.
    pub next: Next,
    /// When the attempt ended: the job's `finished_at` if it is final now,
    /// and the attempt's end in its history.
    pub finished_at: Millis,
}

/// Whether a reported result was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Applied.
    Applied,
    /// The lease was no longer held (rescued, re-claimed, or already
    /// reported): the result was discarded. (A job cancelled while it ran
    /// still takes its attempt's report, once: that is `Applied`.)
    Stale,
}

/// One stored attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// Its number, from 1.
    pub attempt: u32,
    /// When it started.
    #[schema(value_type = i64)]
    pub started_at: Millis,
    /// When its result was recorded.
    #[schema(value_type = i64)]
    pub finished_at: Millis,
    /// The engine's report, or a `lost` report made by the rescuer.
    pub report: AttemptReport,
}

/// An attempt's report: the engine's, or the rescuer's when the host died
/// mid-run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AttemptReport {
    /// The engine ran it to an outcome.
    Engine(Box<Report>),
    /// The lease expired before a result arrived.
    Lost {
        /// Always `"lost"`.
        #[schema(pattern = "^lost$", example = "lost")]
        status: String,
        /// Who held the lease.
        #[schema(required = true)]
        owner: Option<String>,
        /// One line.
        message: String,
    },
}

/// A job with everything stored about it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobDetail {
    /// The job.
    pub job: Job,
    /// Its input.
    pub input: Vec<u8>,
    /// Its output, once completed.
    pub output: Option<Vec<u8>>,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
}

/// Filters for listing jobs. Results are ordered by id, newest first;
/// `before` is the cursor (the last id of the previous page).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this module (hash).
    pub module: Option<String>,
    /// Only jobs of this priority.
    pub priority: Option<u8>,
    /// Only jobs with an id below this.
    pub before: Option<JobId>,
    /// At most this many.
    pub limit: usize,
}

/// Counts of jobs by state.
pub type StateCounts = Vec<(JobState, u64)>;

/// The queue's storage, in the queue's verbs. See the module docs.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores a module's bytes (content-addressed) and metadata.
    /// Idempotent: the same bytes again return the existing record (a new
    /// name is added to it).
    async fn put_module(
        &self,
        hash: &str,
        kind: ModuleKind,
        bytes: &[u8],
        name: Option<&str>,
        now: Millis,
    ) -> Result<ModuleRecord>;

    /// Looks a module up by hash, or by name (the newest with that name).
    async fn module(&self, hash_or_name: &str) -> Result<Option<ModuleRecord>>;

    /// Reads a module's bytes, verified against the hash.
    async fn module_bytes(&self, hash: &str) -> Result<Vec<u8>>;

    /// Every module, newest first.
    async fn modules(&self) -> Result<Vec<ModuleRecord>>;

    /// Deletes a module; refused ([`Error::Conflict`]) while a job that is
    /// not final still needs it.
    async fn delete_module(&self, hash: &str) -> Result<()>;

    /// Stores new jobs in one durable commit, `pending` (or waiting for
    /// `run_at`).
    async fn submit(&self, jobs: Vec<NewJob>, now: Millis) -> Result<Vec<Job>>;

    /// Claims up to `limit` due jobs, most urgent first (effective
    /// priority, then oldest `run_at`, then id): each goes `running`, its
    /// attempt counter grows by one and it gets a fresh lease token.
    async fn claim(&self, request: ClaimRequest, now: Millis) -> Result<Vec<Claimed>>;

    /// Extends leases to `until`; returns the ids still held (a job that
    /// was cancelled or rescued is not).
    async fn renew(&self, leases: Vec<Lease>, until: Millis) -> Result<Vec<JobId>>;

    /// Applies attempt results in one commit; results whose lease is no
    /// longer held are [`Recorded::Stale`].
    async fn record(&self, results: Vec<AttemptResult>) -> Result<Vec<Recorded>>;

    /// Cancels a job that is pending, retrying or running. A final job is
    /// a [`Error::Conflict`].
    async fn cancel(&self, id: JobId, now: Millis) -> Result<Job>;

    /// Jobs whose lease expired (their host died mid-run) go back to
    /// `retrying` with a `lost` attempt, or to `failed` when that was their
    /// last attempt. Returns the ids rescued.
    async fn rescue(&self, now: Millis) -> Result<Vec<JobId>>;

    /// Every running job, expired or not, is rescued as [`rescue`] would:
    /// a `lost` attempt, then its backoff or the dead letter. For a store
    /// that one host holds exclusively, at that host's start-up: every
    /// lease then belongs to its previous process, which is gone. Returns
    /// the ids rescued.
    ///
    /// [`rescue`]: JobStore::rescue
    async fn rescue_all(&self, now: Millis) -> Result<Vec<JobId>>;

    /// Moves a dead-lettered (`failed`) job back to `pending` with a fresh
    /// attempt budget; its old attempts are kept.
    async fn requeue(&self, id: JobId, now: Millis) -> Result<Job>;

    /// Deletes dead-lettered jobs: these ids, or all of them when `ids` is
    /// empty. Returns how many.
    async fn purge(&self, ids: Vec<JobId>) -> Result<u64>;

    /// Aging: jobs waiting longer than `after_ms` since they became due or
    /// last aged get their effective priority raised by one step (towards
    /// 0). Returns how many moved.
    async fn age(&self, after_ms: i64, now: Millis) -> Result<u64>;

    /// One job with input, output and attempts.
    async fn job(&self, id: JobId) -> Result<Option<JobDetail>>;

    /// Jobs matching `filter`, newest first.
    async fn list(&self, filter: JobFilter) -> Result<Vec<Job>>;

    /// Number of jobs in each state.
    async fn counts(&self) -> Result<StateCounts>;

    /// The earliest `run_at` of a job waiting for its time, so an idle
    /// worker knows when to look again.
    async fn next_due(&self) -> Result<Option<Millis>>;

    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<()>;
}
