//! Persistence: the only module with SQL.
//!
//! [`JobStore`] is the contract every backend implements, in the queue's
//! own verbs. The SQLite backend ([`SqliteStore`]) is the embedded default;
//! the PostgreSQL backend ([`PostgresStore`]), so that several hosts share
//! one queue, is a second implementation of the same trait and passes the
//! same conformance suite (`store/conformance`, run by every backend's
//! tests).
//!
//! ## What every backend guarantees
//!
//! - **Time is a parameter.** Every verb that depends on time takes `now`
//!   from the caller's clock; nothing reads a clock of its own.
//! - **Durable before answered.** A verb's future resolves only after its
//!   change is committed, and (except for claims and lease renewals, see
//!   [`JobStore::claim_due`]) made durable. A verb that fails changed
//!   nothing.
//! - **Atomic verbs.** Each verb is atomic on its own, and a verb taking a
//!   list applies it in one transaction, except `record_if_leased` and
//!   `rescue_if_expired`, which apply or refuse each outcome on its own
//!   merits: one outcome that cannot be written never costs the others.
//! - **Preconditions are in the names.** A verb changes a job only while
//!   the job is in the state its name says (`cancel_unless_final`,
//!   `requeue_if_failed`, `record_if_leased`…); otherwise it refuses
//!   ([`Error::Conflict`]) or reports the job as [`Recorded::Stale`].
//! - **Decisions come from outside.** The store applies a
//!   [`Decision`] made by [`crate::policy::decide`]; it never decides
//!   whether a job retries, escalates or goes to the dead letter.
//! - **Claim order.** Due jobs are claimed by effective priority (aging
//!   included), then `run_at`, then id.
//! - **Leases.** A claim gives each job a fresh random token; only an
//!   outcome carrying the current token is applied.

mod encoding;
mod postgres;
mod sqlite;

#[cfg(test)]
pub(crate) mod conformance;

pub use postgres::{PostgresConfig, PostgresStore, is_postgres_url};
pub use sqlite::{DurabilityMode, SYNC_INTERVAL, SqliteStore, StoreConfig};

use crate::clock::Millis;
use crate::history::MinuteRow;
use crate::job::{
    Job, JobDetail, JobId, JobState, NewJob, NewWorkflow, Resolved, Submitted, Workflow,
    WorkflowDetail, WorkflowId,
};
use crate::json::Json;
use crate::policy::Decision;
use crate::report::{AttemptReport, ModuleKind};
use crate::schedule::Schedule;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A store failure. What a client asked for that the store refuses has its
/// own variants, so the API can answer 404, 409 or 413.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such job or module; the message names it (`job 7 not found`).
    #[error("{0}")]
    NotFound(String),
    /// The action is not allowed in the current state; the message says
    /// why.
    #[error("{0}")]
    Conflict(String),
    /// The request refers to a job that does not exist (a prerequisite);
    /// the message names the reference.
    #[error("{0}")]
    BadReference(String),
    /// A value is larger than the store accepts.
    #[error("{0}")]
    TooLarge(String),
    /// Stored module bytes do not match their hash.
    #[error("module {0} is corrupt on disk: its bytes do not match its hash; upload it again")]
    Corrupt(String),
    /// A stored module's file is gone from the disk.
    #[error("module {0} is missing on disk; upload it again")]
    Missing(String),
    /// The disk (or the database's quota) is full: nothing was written.
    #[error("storage full: {0}")]
    Full(String),
    /// Another process held the database's lock for longer than the store
    /// waits: nothing was written.
    #[error("database busy: {0}")]
    Busy(String),
    /// The database cannot be reached or refuses connections for now (a
    /// server down or restarting, its connection slots full): nothing was
    /// written.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
    /// The filesystem failed.
    #[error("i/o error: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for Error {
    /// A full disk or quota is [`Error::Full`]; any other failure stays
    /// [`Error::Io`].
    fn from(error: std::io::Error) -> Self {
        if is_full(&error) {
            Error::Full(error.to_string())
        } else {
            Error::Io(error)
        }
    }
}

/// Whether `error` says the disk or the quota is full (`ENOSPC`,
/// `EDQUOT`).
pub(crate) fn is_full(error: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    error.kind() == std::io::ErrorKind::StorageFull
        || error.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(error.raw_os_error(), Some(ENOSPC | EDQUOT))
}

impl Error {
    /// `job {id} not found`.
    pub fn job_not_found(id: JobId) -> Error {
        Error::NotFound(format!("job {id} not found"))
    }

    /// `module {reference} not found`.
    pub fn module_not_found(reference: &str) -> Error {
        Error::NotFound(format!("module `{reference}` not found"))
    }

    /// Whether trying again later could succeed (the database was busy,
    /// the disk full, a file unreadable), as opposed to a refusal that
    /// will stand.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Database(_)
                | Error::Io(_)
                | Error::Corrupt(_)
                | Error::Missing(_)
                | Error::Full(_)
                | Error::Busy(_)
                | Error::Unavailable(_)
        )
    }
}

/// Result of a store verb.
pub type Result<T> = std::result::Result<T, Error>;

/// A module's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleRecord {
    /// blake3 hash of the bytes, hex.
    pub hash: String,
    /// Component or command module.
    pub kind: ModuleKind,
    /// Size in bytes.
    pub size: u64,
    /// The name given to it last, if any; submitting by name picks the
    /// newest module with that name.
    pub name: Option<String>,
    /// When it was first uploaded.
    pub created_at: Millis,
    /// The names of the operator's grants it has: what its jobs may reach
    /// beyond the sandbox. None when uploaded.
    pub grants: Vec<String>,
}

/// A claimed job: what a worker needs to run one attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// The job, with `attempt` already counting this attempt.
    pub job: Job,
    /// Its input.
    pub input: Json,
    /// The lease token; outcomes carrying another token are stale.
    pub token: String,
    /// Its prerequisites, each resolved (with the output of those that
    /// completed); empty for a job without any.
    pub dependencies: Vec<Resolved>,
}

/// What to claim.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The claiming host, recorded as the lease owner.
    pub owner: String,
    /// At most this many jobs.
    pub limit: usize,
    /// The lease lasts until `now + lease_ms` unless renewed.
    pub lease_ms: i64,
    /// Queues with a concurrency cap: at most this many of their jobs run
    /// at once, on every host sharing the store together.
    pub caps: BTreeMap<String, usize>,
}

/// A queue and what waits in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueStats {
    /// Its name.
    pub name: String,
    /// Paused: it accepts jobs and starts none.
    pub paused: bool,
    /// When it was first used (or paused before any job).
    pub created_at: Millis,
    /// Jobs waiting for their prerequisites.
    pub blocked: u64,
    /// Jobs waiting to run for the first time.
    pub pending: u64,
    /// Jobs waiting for a retry's backoff.
    pub retrying: u64,
    /// Jobs claimed and running.
    pub running: u64,
    /// The `run_at` of its oldest due waiting job: how long the queue's
    /// head has waited.
    pub oldest_due: Option<Millis>,
}

/// A lease held on a job.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job.
    pub id: JobId,
    /// The token it was claimed with.
    pub token: String,
}

/// A job held under a lease, as the rescuer sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct LeasedJob {
    /// The job (its `attempt` counts the leased attempt).
    pub job: Job,
    /// The lease.
    pub lease: Lease,
    /// Who holds it.
    pub owner: Option<String>,
    /// When it was claimed.
    pub claimed_at: Millis,
    /// When it expires unless renewed.
    pub expires_at: Millis,
}

/// Which leased jobs to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseFilter {
    /// Those whose lease expired before this time: their host stopped
    /// renewing them.
    ExpiredBefore(Millis),
    /// Those held by this owner (a host's identity), expired or not: a
    /// restarted host takes back what its previous process left running.
    OwnedBy(String),
    /// All of them.
    All,
}

/// A finished attempt to keep in the job's history.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    /// When the attempt started running.
    pub started_at: Millis,
    /// What happened.
    pub report: AttemptReport,
}

/// What to write after an attempt: the decision about the job, the
/// attempt's record, and the output when it completed.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The lease the attempt ran under.
    pub lease: Lease,
    /// What happens to the job (from [`crate::policy::decide`]).
    pub decision: Decision,
    /// The attempt for the history; `None` only for
    /// [`Decision::Release`], which gives the attempt back.
    pub attempt: Option<AttemptRecord>,
    /// The output, with [`Decision::Complete`].
    pub output: Option<Json>,
    /// The jobs the attempt submitted, created with [`Decision::Complete`]
    /// in the same transaction (and never otherwise: not for a stale
    /// lease, nor for a job cancelled while it ran). They join the job's
    /// workflow, or a new one the job joins too, with the job as their
    /// parent; each [`Prereq::Earlier`](crate::job::Prereq::Earlier) is a
    /// position among them.
    pub follow_ups: Vec<NewJob>,
    /// When the attempt ended: its `finished_at`, the job's if it is
    /// final now, and where a retry's backoff counts from.
    pub at: Millis,
}

/// Whether an outcome was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Applied.
    Applied,
    /// Applied, and the job's end changed jobs waiting for it (released
    /// them, perhaps due now, or cancelled them): idle workers may have
    /// work.
    Released,
    /// The lease was no longer held (rescued, re-claimed, or already
    /// reported), or for a rescue no longer expired: nothing changed. A
    /// job cancelled while it ran still takes its attempt's record, once:
    /// that is `Applied`.
    Stale,
}

impl Recorded {
    /// Whether the outcome was applied ([`Applied`](Self::Applied) or
    /// [`Released`](Self::Released)).
    pub fn is_applied(self) -> bool {
        self != Recorded::Stale
    }
}

/// Filters for listing jobs. Results are ordered by id, newest first;
/// `before` is the cursor (the last id of the previous page).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
    /// Only jobs of this module (hash).
    pub module: Option<String>,
    /// Only jobs of this priority.
    pub priority: Option<u8>,
    /// Only jobs this cron schedule created.
    pub schedule: Option<String>,
    /// Only jobs with an id below this.
    pub before: Option<JobId>,
    /// At most this many (a backend may cap it; 0 means its default).
    pub limit: usize,
}

/// Which workflows to list: newest first, `before` is the cursor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkflowFilter {
    /// Only workflows with an id below this.
    pub before: Option<WorkflowId>,
    /// At most this many (a backend may cap it; 0 means its default).
    pub limit: usize,
}

/// One fire time of a schedule, as the scheduler decided it.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    /// The schedule.
    pub schedule: String,
    /// The `next_at` the scheduler read: the tick applies only if the
    /// schedule is still due at it (and not paused).
    pub expected_next_at: Millis,
    /// The schedule's next fire time after this one.
    pub next_at: Millis,
    /// The fire time, kept as the schedule's last when a job is created.
    pub fired_at: Millis,
    /// The job to create, if any (none for a missed tick skipped, or a
    /// template the policy refused).
    pub job: Option<NewJob>,
    /// Why no job was created, kept on the schedule (`None` clears it).
    pub error: Option<String>,
}

/// What firing a tick did.
#[derive(Clone, Debug, PartialEq)]
pub enum Fired {
    /// The schedule advanced and the job was stored (or, for a unique
    /// template whose key is held, the holder returned).
    Created(Box<Submitted>),
    /// The schedule advanced; no job was to be created.
    Advanced,
    /// The schedule was no longer due at the `next_at` read (another
    /// scheduler fired it, or it was paused or replaced): nothing changed.
    Lost,
}

/// What retention deletes: finished jobs older than their state's age.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Completed jobs this long after they finished, ms; never when `None`.
    pub completed_ms: Option<i64>,
    /// Cancelled jobs this long after they ended, ms; never when `None`.
    pub cancelled_ms: Option<i64>,
    /// Dead-lettered (`failed`) jobs this long after they failed, ms;
    /// never when `None`.
    pub dead_letter_ms: Option<i64>,
    /// A job with a unique key is kept at least this long after it
    /// finished, ms, whatever its age: a new submission's window may reach
    /// back this far (the operator's longest window).
    pub unique_window_ms: i64,
    /// At most this many jobs per call: one short write.
    pub batch: usize,
}

/// What one retention call deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Jobs deleted, with their attempts, outputs, logs and edges.
    pub jobs: u64,
    /// Workflows deleted because none of their jobs was left.
    pub workflows: u64,
}

/// Counts of jobs by state, every state present, in lifecycle order.
pub type StateCounts = Vec<(JobState, u64)>;

/// How [`JobStore::insert_jobs_then`] stores a submission.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Insert {
    /// Claim due jobs for the caller's idle workers in the same
    /// transaction, if the store does ([`JobStore::claims_with_insert`]).
    pub claim: Option<ClaimRequest>,
    /// Answer at the commit, before the fsync that makes it durable: the
    /// caller waits for [`JobStore::durable`] itself before it
    /// acknowledges anything (a submission that also waits for its job,
    /// whose outcome one fsync then covers with it).
    pub at_commit: bool,
}

/// What [`JobStore::insert_jobs_then`] calls once the jobs it stored can
/// be claimed: with what it stored, and the jobs its transaction claimed.
pub type OnInsert = Box<dyn FnOnce(&[Submitted], Vec<Claimed>) + Send>;

/// The queue's storage, in the queue's verbs. See the module docs for what
/// every backend guarantees; `store/conformance` checks it.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores a module's bytes (content-addressed, verified against
    /// `hash`) and metadata. Idempotent: the same bytes again return the
    /// existing record, and a new `name` is added to it (making it the
    /// newest module with that name).
    async fn put_module(
        &self,
        hash: &str,
        kind: ModuleKind,
        bytes: &[u8],
        name: Option<&str>,
        now: Millis,
    ) -> Result<ModuleRecord>;

    /// A module by hash, or else by name (the newest with that name).
    async fn module(&self, hash_or_name: &str) -> Result<Option<ModuleRecord>>;

    /// A module's bytes, verified against its hash ([`Error::Corrupt`]
    /// otherwise, [`Error::NotFound`] for an unknown hash).
    async fn module_bytes(&self, hash: &str) -> Result<Vec<u8>>;

    /// Every module, newest first.
    async fn modules(&self) -> Result<Vec<ModuleRecord>>;

    /// Deletes a module unless a job that is not final still needs it
    /// ([`Error::Conflict`] naming the job).
    async fn delete_module_unless_needed(&self, hash: &str) -> Result<()>;

    /// Gives the module `hash_or_name` resolves to exactly these grants
    /// (replacing what it had); returns its record.
    async fn set_module_grants(
        &self,
        hash_or_name: &str,
        grants: Vec<String>,
    ) -> Result<ModuleRecord>;

    /// Stores new jobs, all or none, `pending` (due at their `run_at`), or
    /// `blocked` while a prerequisite is not resolved. Every module must be
    /// stored and every prerequisite exist ([`Error::NotFound`]
    /// otherwise); a prerequisite that already failed or was cancelled,
    /// behind an `on_failure: cancel` edge, is an [`Error::Conflict`]. A
    /// unique job whose key is held (a job of its queue with that key is
    /// not final, or finished within the new job's window) is not stored:
    /// the holder is returned, `created: false`. Concurrent submissions of
    /// one key store one job.
    ///
    /// When a prerequisite ends, in the same transaction: a completed one
    /// (or one that failed behind an `on_failure: continue` edge) is
    /// resolved, and the dependent is `pending` once all are (due at its
    /// `run_at` or then, whichever is later); one that failed or was
    /// cancelled behind a `cancel` edge cancels the dependent, its
    /// `last_error` naming the prerequisite and the root cause, and so on
    /// transitively.
    async fn insert_jobs(&self, jobs: Vec<NewJob>, now: Millis) -> Result<Vec<Submitted>>;

    /// [`insert_jobs`](Self::insert_jobs), calling `committed` with what
    /// it stored once the jobs can be claimed and before answering: a
    /// store that acknowledges after an fsync calls it at the commit, so
    /// the caller's workers (and its log of the submission) can start
    /// while the fsync runs. Not called when the insert fails.
    ///
    /// With `how.claim`, the store may also claim due jobs in the same
    /// transaction, as [`claim_due`](Self::claim_due) would after it (the
    /// new jobs or others due before them, in claim order, at most
    /// `claim.limit`), and passes them to `committed`: a submission that
    /// finds the caller's workers idle hands them its jobs without a
    /// claim of their own. With `how.at_commit` it may answer before the
    /// fsync. The default claims none, answers once durable, and calls
    /// `committed` once `insert_jobs` answered.
    async fn insert_jobs_then(
        &self,
        jobs: Vec<NewJob>,
        now: Millis,
        how: Insert,
        committed: OnInsert,
    ) -> Result<Vec<Submitted>> {
        let _ = how;
        let submitted = self.insert_jobs(jobs, now).await?;
        committed(&submitted, Vec::new());
        Ok(submitted)
    }

    /// Whether [`insert_jobs_then`](Self::insert_jobs_then) claims when
    /// asked to: a caller need not offer its idle workers to a store that
    /// never does. The default: no.
    fn claims_with_insert(&self) -> bool {
        false
    }

    /// Stores a workflow and its jobs, all or none, as
    /// [`insert_jobs`](Self::insert_jobs) would (each job's
    /// [`Prereq::Earlier`](crate::job::Prereq) naming one before it).
    async fn insert_workflow(
        &self,
        workflow: NewWorkflow,
        now: Millis,
    ) -> Result<(WorkflowId, Vec<Job>)>;

    /// One workflow with its jobs and edges, from one snapshot.
    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowDetail>>;

    /// Workflows matching `filter`, newest first, with their jobs counted.
    async fn workflows(&self, filter: WorkflowFilter) -> Result<Vec<Workflow>>;

    /// Cancels every job of the workflow that is not final, as
    /// [`cancel_unless_final`](Self::cancel_unless_final) would, with
    /// `reason` as each one's `last_error`; returns their ids (none when
    /// all were final). An unknown workflow is [`Error::NotFound`].
    async fn cancel_workflow(
        &self,
        id: WorkflowId,
        reason: String,
        now: Millis,
    ) -> Result<Vec<JobId>>;

    /// Claims up to `limit` due (`run_at <= now`) `pending` or `retrying`
    /// jobs in claim order, across every queue that is not paused and, if
    /// capped, below its cap: each goes `running`, its attempt counter
    /// grows by one and it gets a fresh lease token until `now + lease_ms`.
    /// A paused or full queue's backlog costs the claim nothing.
    ///
    /// The only verb, with [`renew_held_leases`](Self::renew_held_leases),
    /// that may be answered before its change is durable against a power
    /// loss (a lost claim only makes the job run again); it is always
    /// durable against a process crash.
    async fn claim_due(&self, request: ClaimRequest, now: Millis) -> Result<Vec<Claimed>>;

    /// Extends to `until` each lease that is still held (the job `running`
    /// with that token); returns the ids extended.
    async fn renew_held_leases(&self, leases: Vec<Lease>, until: Millis) -> Result<Vec<JobId>>;

    /// Applies each outcome whose lease is still held: the job is
    /// `running` with that token (or was cancelled while it ran: then only
    /// the attempt's record is filed). Others are [`Recorded::Stale`].
    /// Each outcome stands alone: the inner result is that outcome's (an
    /// outcome too large to store is [`Error::TooLarge`] and changes
    /// nothing), the outer error means nothing was written.
    ///
    /// A store may answer before the outcomes are durable (see
    /// [`durable`](Self::durable)): the caller need not wait for an fsync
    /// to go on, and a power loss in that moment only runs the job again.
    async fn record_if_leased(&self, outcomes: Vec<Outcome>) -> Result<Vec<Result<Recorded>>>;

    /// Resolves once every write this store has answered, or that a read
    /// may have seen, is as durable as the store's durability setting
    /// promises. Writes a client made are durable before they are
    /// answered; a store may answer claims and outcomes earlier (durable
    /// within milliseconds anyway), so whoever *reports* an outcome (a
    /// long poll) awaits this first. The default: nothing is answered
    /// early.
    async fn durable(&self) -> Result<()> {
        Ok(())
    }

    /// Leased (`running`) jobs matching `filter`, by id, at most `limit`.
    async fn leased_jobs(&self, filter: LeaseFilter, limit: usize) -> Result<Vec<LeasedJob>>;

    /// Like [`record_if_leased`](Self::record_if_leased), but each outcome
    /// is applied only if its lease is also still expired at `now`: a
    /// lease renewed since it was listed is left alone.
    async fn rescue_if_expired(
        &self,
        outcomes: Vec<Outcome>,
        now: Millis,
    ) -> Result<Vec<Result<Recorded>>>;

    /// Cancels a job that is `blocked`, `pending`, `retrying` or
    /// `running`. A running job keeps its token (so its worker's record of
    /// the interrupted attempt is filed) but its lease no longer counts. A
    /// final job is an [`Error::Conflict`]. The jobs waiting for it follow
    /// (see [`insert_jobs`](Self::insert_jobs)).
    async fn cancel_unless_final(&self, id: JobId, now: Millis) -> Result<Job>;

    /// Moves a `failed` job back to `pending` with a fresh attempt budget,
    /// due at `now`; its attempts are kept. Another state, or a module
    /// deleted since, is an [`Error::Conflict`] saying so.
    async fn requeue_if_failed(&self, id: JobId, now: Millis) -> Result<Job>;

    /// Deletes `failed` jobs with their attempts: these ids (others are
    /// skipped), or all of them when `ids` is empty. Returns how many.
    async fn purge_failed(&self, ids: Vec<JobId>) -> Result<u64>;

    /// Aging: each due waiting job that has waited `after_ms` since it
    /// became due or last aged gains one step of effective priority
    /// (towards 0). Returns how many moved. `after_ms <= 0` does nothing.
    async fn age_waiting(&self, after_ms: i64, now: Millis) -> Result<u64>;

    /// One job with input, output and attempts, from one snapshot.
    async fn job(&self, id: JobId) -> Result<Option<JobDetail>>;

    /// Jobs matching `filter`, newest first.
    async fn list(&self, filter: JobFilter) -> Result<Vec<Job>>;

    /// Number of jobs in each state.
    async fn counts(&self) -> Result<StateCounts>;

    /// The earliest `run_at` of a waiting job, so an idle worker knows
    /// when to look again.
    async fn next_due(&self) -> Result<Option<Millis>>;

    /// Every queue in use, by name, with what waits in it.
    async fn queues(&self, now: Millis) -> Result<Vec<QueueStats>>;

    /// Pauses or resumes `queue` (creating it if it was never used).
    async fn set_queue_paused(&self, queue: &str, paused: bool, now: Millis) -> Result<()>;

    /// Stores a schedule: a new one ([`Error::Conflict`] when its name is
    /// taken) or, with `replace`, over the one of that name (keeping when
    /// it was created and what it last fired).
    async fn put_schedule(&self, schedule: Schedule, replace: bool) -> Result<Schedule>;

    /// One schedule by name.
    async fn schedule(&self, name: &str) -> Result<Option<Schedule>>;

    /// Every schedule, by name.
    async fn schedules(&self) -> Result<Vec<Schedule>>;

    /// Pauses a schedule, or resumes it with `next_at` as its next fire
    /// time ([`Error::NotFound`] for an unknown name).
    async fn set_schedule_paused(
        &self,
        name: &str,
        paused: bool,
        next_at: Millis,
        now: Millis,
    ) -> Result<Schedule>;

    /// Deletes a schedule; the jobs it created stay.
    async fn delete_schedule(&self, name: &str) -> Result<()>;

    /// Schedules not paused that are due at `now`, most overdue first, at
    /// most `limit`.
    async fn due_schedules(&self, now: Millis, limit: usize) -> Result<Vec<Schedule>>;

    /// The earliest next fire time of a schedule that is not paused.
    async fn next_schedule_at(&self) -> Result<Option<Millis>>;

    /// Fires a tick in one transaction: the schedule moves on to
    /// `next_at` only if it is still not paused and due at
    /// `expected_next_at` (otherwise [`Fired::Lost`], nothing changed),
    /// and the job, if any, is inserted in the same transaction as
    /// [`insert_jobs`](Self::insert_jobs) would, naming the schedule. So
    /// each fire time creates one job, however many schedulers race.
    async fn fire_schedule(&self, tick: Tick, now: Millis) -> Result<Fired>;

    /// Deletes up to `retention.batch` final jobs past their state's age
    /// at `now` (by when they finished), with their attempts, outputs,
    /// logs and dependency edges, in one short transaction; the caller
    /// calls again while a full batch was deleted. Never deletes a job
    /// that a dependent which is not final still needs (its output is
    /// given to the dependent), nor one whose unique key may still be held
    /// (see [`Retention::unique_window_ms`]), nor a job of a workflow in
    /// which any job is not final or not yet past its age: a workflow is
    /// deleted whole, its own row once no job is left. May be answered
    /// before it is durable against a power loss (rows a power loss brings
    /// back are deleted again).
    async fn prune_finished(&self, retention: Retention, now: Millis) -> Result<Pruned>;

    /// Adds each row's counts to the stored row of its minute and queue
    /// (creating it): rows of several flushes and several hosts merge by
    /// addition. May be answered before it is durable against a power
    /// loss (like [`claim_due`](Self::claim_due)): losing a flush loses
    /// only a few seconds of statistics.
    async fn add_history(&self, rows: Vec<MinuteRow>) -> Result<()>;

    /// History rows of the minutes from `since` (inclusive) to `until`
    /// (exclusive), of `queue` or of every queue, by minute then queue.
    async fn history(
        &self,
        since: Millis,
        until: Millis,
        queue: Option<String>,
    ) -> Result<Vec<MinuteRow>>;

    /// Deletes the history rows of minutes before `before`; returns how
    /// many.
    async fn prune_history(&self, before: Millis) -> Result<u64>;

    /// Succeeds when the store answers.
    async fn ping(&self) -> Result<()>;

    /// Why writes are failing for now (the disk full, the database locked
    /// by another process), or `None` while the last write went through.
    /// Cleared by the next write that commits. The default: never.
    fn write_trouble(&self) -> Option<String> {
        None
    }

    /// Calls `wake` whenever another host sharing the store may have made
    /// jobs due (a submission, a requeue, a fire time, a retry, a
    /// release), so its idle workers look at once instead of at their next
    /// poll. A hint only: it may come late, twice, for nothing, or not at
    /// all, so callers keep polling. A backend no other host shares may
    /// ignore it (the default).
    fn watch_jobs(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        let _ = wake;
    }

    /// Calls `observer` with what another host sharing the store did that
    /// this host must act on: jobs cancelled (stop them if they run here),
    /// jobs changed (answer long polls), modules changed (forget cached
    /// names). Like [`watch_jobs`](Self::watch_jobs) a hint that may come
    /// late or twice; this host's own changes are not echoed. A backend no
    /// other host shares may ignore it (the default).
    fn watch_signals(&self, observer: Arc<dyn Fn(Signal) + Send + Sync>) {
        let _ = observer;
    }

    /// Whether this host leads the hosts sharing the store, taking the
    /// lead when nobody holds it: the leader alone does cluster-wide
    /// maintenance (rescuing expired leases, aging, retention, history
    /// pruning, queue-wait alerts). Cheap enough to ask before each such
    /// pass. Leadership can be lost (a dropped connection) and two hosts
    /// may both believe they lead for a moment, so the work it guards must
    /// be safe to repeat; it only saves doing it once per host. A backend
    /// no other host shares always leads (the default).
    async fn lead(&self) -> Result<bool> {
        Ok(true)
    }

    /// The store's own clock now, when hosts sharing it should judge
    /// leases by it rather than by their own (see
    /// [`crate::clock::FollowedClock`]); `None` for a backend no other
    /// host shares (the default).
    async fn clock(&self) -> Result<Option<Millis>> {
        Ok(None)
    }

    /// Tells `observer` of every commit of this store's writes from now
    /// on (for metrics). A backend without a notion of batches may ignore
    /// it.
    fn observe_writes(&self, observer: Arc<dyn WriteObserver>) {
        let _ = observer;
    }
}

/// What another host sharing the store did, as [`JobStore::watch_signals`]
/// hears of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// These jobs were cancelled: a host running one stops it now.
    Cancelled(Vec<JobId>),
    /// These jobs changed state (an outcome, a rescue, a cancel, a
    /// requeue); long polls on them look again.
    Changed(Vec<JobId>),
    /// Jobs changed, too many to list: every long poll looks again.
    ChangedMany,
    /// Modules were uploaded, renamed, deleted or given grants: names
    /// resolve afresh; these hashes were deleted.
    ModulesChanged(Vec<String>),
    /// Schedules were created, changed, paused, resumed or deleted: the
    /// cron loop reads them again.
    SchedulesChanged,
}

/// Told of each commit of a store's writes (how many writes it held and
/// how long it took: the writer is held for that long) and of each fsync
/// that made commits durable.
pub trait WriteObserver: Send + Sync {
    /// One commit of `writes` writes took `took` (without an fsync).
    fn committed(&self, writes: usize, took: std::time::Duration);

    /// One fsync of the store's log took `took`; the durable writes
    /// committed before it are answered after it.
    fn synced(&self, took: std::time::Duration);
}
