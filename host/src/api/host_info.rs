//! `/v1/stats` and `/v1/workers`: what the host is doing.

use super::openapi::Unauthorized;
use super::views::ProgressView;
use super::{ApiError, AppState};
use crate::clock::Millis;
use crate::job::{JobId, JobState};
use crate::store::StateCounts;
use crate::worker::Phase;
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
    /// Jobs this host runs at once.
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
    let config = state.queue.config();
    Ok(Json(Stats {
        jobs: JobCounts::from_counts(&counts),
        workers: Occupancy {
            concurrency: config.concurrency,
            busy: running_jobs(&state).len(),
        },
    }))
}

/// The pool and the jobs it is running.
#[derive(Debug, Serialize, ToSchema)]
pub struct Workers {
    /// The name this host writes as the lease owner.
    owner: String,
    /// Jobs this host runs at once.
    concurrency: usize,
    /// Jobs running now.
    busy: usize,
    /// How long a lease lasts without renewal, in milliseconds.
    lease_ms: i64,
    /// The running jobs, by id.
    running: Vec<RunningJob>,
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
    let running = running_jobs(&state);
    Json(Workers {
        owner: config.owner.clone(),
        concurrency: config.concurrency,
        busy: running.len(),
        lease_ms: config.lease_ms,
        running,
    })
}
