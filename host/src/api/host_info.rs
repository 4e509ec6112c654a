//! `/v1/stats` and `/v1/workers`: what the host is doing.

use super::openapi::Unauthorized;
use super::views::ProgressView;
use super::{ApiError, AppState};
use crate::clock::Millis;
use crate::job::{JobId, JobState};
use crate::store::StateCounts;
use crate::worker::{Phase, Slot};
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

/// Jobs per state and this host's worker occupancy.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// Jobs in each state, in the whole store.
    jobs: JobCounts,
    /// This host's pool.
    workers: Occupancy,
}

/// Number of jobs in each state (every state is present).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct JobCounts {
    /// Waiting for prerequisites.
    blocked: u64,
    /// Waiting to be claimed.
    pending: u64,
    /// Claimed by a worker under a lease.
    running: u64,
    /// Waiting for a retry's backoff.
    retrying: u64,
    /// Succeeded.
    completed: u64,
    /// In the dead letter.
    failed: u64,
    /// Cancelled by a client.
    cancelled: u64,
}

impl JobCounts {
    pub(super) fn from_counts(counts: &StateCounts) -> JobCounts {
        let mut jobs = JobCounts::default();
        for &(state, n) in counts {
            let slot = match state {
                JobState::Blocked => &mut jobs.blocked,
                JobState::Pending => &mut jobs.pending,
                JobState::Running => &mut jobs.running,
                JobState::Retrying => &mut jobs.retrying,
                JobState::Completed => &mut jobs.completed,
                JobState::Failed => &mut jobs.failed,
                JobState::Cancelled => &mut jobs.cancelled,
            };
            *slot = n;
        }
        jobs
    }
}

/// How busy this host's pool is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Occupancy {
    /// Jobs this host runs at once now (the pool's target size).
    concurrency: usize,
    /// Jobs running now.
    busy: usize,
}

/// Jobs per state and this host's worker occupancy.
#[utoipa::path(
    get,
    path = "/v1/stats",
    operation_id = "stats",
    tag = "host",
    responses(
        (status = 200, description = "Jobs per state and this host's worker occupancy.",
            body = Stats),
        (status = 401, response = Unauthorized),
    ),
    security((), ("bearer" = [])),
)]
pub async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    let counts = state.queue.counts().await?;
    let slots = state.queue.slots().counts();
    Ok(Json(Stats {
        jobs: JobCounts::from_counts(&counts),
        workers: Occupancy {
            concurrency: slots.target,
            busy: slots.busy,
        },
    }))
}

/// The pool: its slots, its size and how it changed, and the jobs it runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Workers {
    /// The name this host writes as the lease owner (its identity among
    /// hosts sharing a store).
    owner: String,
    /// Whether this host leads the hosts sharing its store (it alone
    /// rescues expired leases, ages jobs and prunes; always true for a
    /// store held alone, once its maintenance ran).
    leader: bool,
    /// The store's clock minus this host's, as last measured, in
    /// milliseconds: leases are judged on the store's clock (0 for a
    /// store held alone).
    clock_offset_ms: i64,
    /// Jobs this host runs at once now: the pool's target size.
    concurrency: usize,
    /// Fewest slots the pool scales down to.
    min_workers: usize,
    /// Most slots the pool scales up to.
    max_workers: usize,
    /// Slots running a job.
    busy: usize,
    /// Slots waiting for one.
    idle: usize,
    /// Slots declared stuck (abandoned and replaced; `/readyz` says
    /// `degraded` while there are any).
    stuck: usize,
    /// Jobs claimed ahead and waiting for a slot.
    buffered: usize,
    /// How long a lease lasts without renewal, in milliseconds.
    lease_ms: i64,
    /// Every slot.
    slots: Vec<SlotView>,
    /// The latest changes of the pool's size, oldest first.
    resizes: Vec<ResizeView>,
    /// The running jobs, by id, with their progress.
    running: Vec<RunningJob>,
}

/// One worker slot.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotView {
    /// Its number on this host.
    id: u64,
    /// `idle`, `busy`, `stopping` (removed when its job ends: the pool
    /// shrank) or `stuck`.
    #[schema(value_type = String, examples("idle", "busy", "stopping", "stuck"))]
    state: &'static str,
    /// The job it runs; `null` when idle.
    #[schema(required = true)]
    job: Option<SlotJobView>,
    /// In this state since.
    #[schema(value_type = i64)]
    since: Millis,
    /// Jobs it ran to an end.
    jobs_done: u64,
    /// Of those, how many failed.
    failures: u64,
    /// When it last showed life (took or ended a job, or its running
    /// job's task was polled; it beats every second while a job runs).
    #[schema(value_type = i64)]
    last_heartbeat: Millis,
}

/// The job in a slot.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotJobView {
    /// The job's id.
    #[schema(value_type = i64)]
    id: JobId,
    /// Its queue.
    queue: String,
    /// Its module's name, or short hash.
    module: String,
    /// Its attempt.
    attempt: u32,
    /// When the attempt must end.
    #[schema(value_type = i64)]
    deadline: Millis,
}

/// A change of the pool's size.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResizeView {
    /// When.
    #[schema(value_type = i64)]
    at: Millis,
    /// Slots before.
    from: usize,
    /// Slots after.
    to: usize,
    /// Why: `jobs_waiting` (every slot busy, jobs due, CPU to spare),
    /// `idle` (slots sat idle), `bounds`.
    #[schema(value_type = String, examples("jobs_waiting", "idle"))]
    reason: &'static str,
}

impl From<Slot> for SlotView {
    fn from(slot: Slot) -> Self {
        SlotView {
            id: slot.id,
            state: slot.state.as_str(),
            job: slot.job.map(|job| SlotJobView {
                id: job.id,
                queue: job.queue,
                module: match job.module.name {
                    Some(name) => name,
                    None => job.module.short_hash().to_owned(),
                },
                attempt: job.attempt,
                deadline: job.deadline,
            }),
            since: slot.since,
            jobs_done: slot.jobs_done,
            failures: slot.failures,
            last_heartbeat: slot.last_heartbeat,
        }
    }
}

/// A job running on this host.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunningJob {
    /// The job's id.
    #[schema(value_type = i64)]
    job_id: JobId,
    /// When its attempt started.
    #[schema(value_type = i64)]
    since: Millis,
    /// Its latest progress; `null` until it reports some.
    #[schema(required = true)]
    progress: Option<ProgressView>,
}

/// The jobs running on this host (not those claimed ahead and waiting).
fn running_jobs(state: &AppState) -> Vec<RunningJob> {
    state
        .queue
        .registry()
        .snapshot()
        .into_iter()
        .filter_map(|held| match held.phase {
            Phase::Running { since } => Some(RunningJob {
                job_id: held.id,
                since,
                progress: held.progress.as_ref().map(ProgressView::from),
            }),
            _ => None,
        })
        .collect()
}

/// This host's pool and the jobs it runs, with live progress.
#[utoipa::path(
    get,
    path = "/v1/workers",
    operation_id = "workers",
    tag = "host",
    responses(
        (status = 200, description = "The pool and the jobs it runs, with live progress.",
            body = Workers),
        (status = 401, response = Unauthorized),
    ),
    security((), ("bearer" = [])),
)]
pub async fn workers(State(state): State<AppState>) -> Json<Workers> {
    let config = state.queue.config();
    let slots = state.queue.slots();
    let counts = slots.counts();
    Json(Workers {
        owner: config.owner.clone(),
        leader: state.queue.metrics().leads(),
        clock_offset_ms: state.queue.metrics().clock_offset_ms(),
        concurrency: counts.target,
        min_workers: config.scaling().min,
        max_workers: config.scaling().max,
        busy: counts.busy,
        idle: counts.idle,
        stuck: counts.stuck,
        buffered: slots.buffered(),
        lease_ms: config.lease_ms,
        slots: slots.snapshot().into_iter().map(SlotView::from).collect(),
        resizes: slots
            .changes()
            .into_iter()
            .map(|r| ResizeView {
                at: r.at,
                from: r.from,
                to: r.to,
                reason: r.reason,
            })
            .collect(),
        running: running_jobs(&state),
    })
}
