//! `/v1/jobs` and `/v1/dead-letter`: submit (one or a batch), get, list,
//! cancel, re-queue, purge.

use super::{ApiError, AppState};
use crate::clock::Millis;
use crate::job::{DEFAULT_PRIORITY, Job, JobId, JobState, NewJob, RetryPolicy};
use crate::limits::Limits;
use crate::report::{Output, Progress};
use crate::store::{Attempt, JobFilter};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// Most jobs in one batch submission.
const MAX_BATCH: usize = 10_000;
/// Default and largest page of a listing.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;

/// A job as submitted. Unset fields take the server's defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// Module hash or name.
    module: String,
    /// Any JSON; `null` when absent.
    #[serde(default)]
    input: serde_json::Value,
    priority: Option<u8>,
    max_attempts: Option<u32>,
    retry: Option<RetryPolicy>,
    limits: Option<LimitsPatch>,
    /// Run no earlier than this many milliseconds from now.
    delay_ms: Option<u64>,
}

/// Per-job overrides of the default limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    fuel: Option<u64>,
    memory_bytes: Option<u64>,
    timeout_ms: Option<u64>,
    output_bytes: Option<u64>,
    log_records: Option<u32>,
    log_bytes: Option<u64>,
    stdio_tail_bytes: Option<u64>,
}

impl LimitsPatch {
    fn apply(self, base: Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(base.fuel),
            memory_bytes: self.memory_bytes.unwrap_or(base.memory_bytes),
            timeout_ms: self.timeout_ms.unwrap_or(base.timeout_ms),
            output_bytes: self.output_bytes.unwrap_or(base.output_bytes),
            log_records: self.log_records.unwrap_or(base.log_records),
            log_bytes: self.log_bytes.unwrap_or(base.log_bytes),
            stdio_tail_bytes: self.stdio_tail_bytes.unwrap_or(base.stdio_tail_bytes),
        }
    }
}

/// A batch submission: all jobs commit together or none does.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    jobs: Vec<SubmitJob>,
}

/// `POST /v1/jobs`.
pub async fn submit(
    State(state): State<AppState>,
    body: Result<Json<SubmitJob>, JsonRejection>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let Json(request) = body?;
    let job = prepare(&state, request, "").await?;
    let mut jobs = state.queue.submit(vec![job]).await?;
    Ok((StatusCode::CREATED, Json(jobs.remove(0))))
}

/// `POST /v1/jobs/batch` with `{ "jobs": [...] }`: one durable commit.
pub async fn submit_batch(
    State(state): State<AppState>,
    body: Result<Json<SubmitBatch>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(batch) = body?;
    if batch.jobs.is_empty() {
        return Err(ApiError::invalid("jobs: the batch is empty"));
    }
    if batch.jobs.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "jobs: at most {MAX_BATCH} jobs per batch, got {}",
            batch.jobs.len()
        )));
    }
    let mut jobs = Vec::with_capacity(batch.jobs.len());
    for (i, request) in batch.jobs.into_iter().enumerate() {
        jobs.push(prepare(&state, request, &format!("jobs[{i}].")).await?);
    }
    let jobs = state.queue.submit(jobs).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "jobs": jobs })),
    ))
}

/// Applies defaults, resolves the module and checks every field; errors
/// name the field, prefixed with `at` in a batch.
async fn prepare(state: &AppState, request: SubmitJob, at: &str) -> Result<NewJob, ApiError> {
    let config = &state.config;
    let module = state
        .queue
        .resolve(&request.module)
        .await
        .map_err(|e| prefix(e.into(), at, "module"))?;
    let priority = request.priority.unwrap_or(DEFAULT_PRIORITY);
    if priority > crate::job::PRIORITY_LOW {
        return Err(ApiError::invalid(format!(
            "{at}priority: {priority} is out of range, use 0 (critical) to 10 (low)"
        )));
    }
    let retry = request.retry.unwrap_or(config.default_retry);
    retry
        .validate()
        .map_err(|message| ApiError::invalid(format!("{at}{message}")))?;
    let max_attempts = request.max_attempts.unwrap_or(config.default_max_attempts);
    if max_attempts == 0 {
        return Err(ApiError::invalid(format!(
            "{at}max_attempts: must be at least 1"
        )));
    }
    let limits = request
        .limits
        .unwrap_or_default()
        .apply(config.default_limits);
    if limits.memory_bytes > state.queue.engine().config().max_memory_bytes {
        return Err(ApiError::invalid(format!(
            "{at}limits.memory_bytes: {} is above the host's ceiling of {} bytes",
            limits.memory_bytes,
            state.queue.engine().config().max_memory_bytes
        )));
    }
    if limits.timeout_ms == 0 {
        return Err(ApiError::invalid(format!(
            "{at}limits.timeout_ms: must be greater than 0"
        )));
    }
    let input = serde_json::to_vec(&request.input).expect("JSON values serialize");
    let delay = request.delay_ms.unwrap_or(0).min(i64::MAX as u64) as Millis;
    Ok(NewJob {
        module: module.hash,
        input,
        priority,
        max_attempts,
        retry,
        limits,
        run_at: state.queue.now().saturating_add(delay),
    })
}

fn prefix(error: ApiError, at: &str, field: &str) -> ApiError {
    if at.is_empty() {
        error
    } else {
        let (status, code, message) = error.parts();
        ApiError::new(status, code, format!("{at}{field}: {message}"))
    }
}

/// A job with what is stored about it, as the API shows it.
#[derive(Debug, Serialize)]
pub struct JobView {
    #[serde(flatten)]
    job: Job,
    input: Output,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<Output>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<Progress>,
    attempts: Vec<Attempt>,
}

/// `GET /v1/jobs/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id(&id)?;
    let (detail, progress) = state.queue.job(id).await?;
    Ok(Json(JobView {
        job: detail.job,
        input: Output(detail.input),
        output: detail.output.map(Output),
        progress,
        attempts: detail.attempts,
    }))
}

/// Filters of a listing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    module: Option<String>,
    priority: Option<u8>,
    before: Option<JobId>,
    limit: Option<usize>,
}

/// `GET /v1/jobs?state=&module=&priority=&before=&limit=`.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query?;
    let filter_state = match query.state.as_deref() {
        None => None,
        Some(text) => Some(JobState::parse(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "state: unknown state `{text}`, use one of pending, running, retrying, completed, failed, cancelled"
            ))
        })?),
    };
    let module = match query.module {
        None => None,
        Some(module) => Some(state.queue.resolve(&module).await?.hash),
    };
    page(
        &state,
        JobFilter {
            state: filter_state,
            module,
            priority: query.priority,
            before: query.before,
            limit: query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
        },
    )
    .await
}

/// `GET /v1/dead-letter`: failed jobs, newest first.
pub async fn dead_letter(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query?;
    page(
        &state,
        JobFilter {
            state: Some(JobState::Failed),
            module: None,
            priority: None,
            before: query.before,
            limit: query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
        },
    )
    .await
}

async fn page(state: &AppState, filter: JobFilter) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = filter.limit;
    let jobs = state.queue.list(filter).await?;
    let next = if jobs.len() == limit {
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    Ok(Json(
        serde_json::json!({ "jobs": jobs, "next_cursor": next }),
    ))
}

/// `POST /v1/jobs/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(state.queue.cancel(parse_id(&id)?).await?))
}

/// `POST /v1/jobs/{id}/requeue`: from the dead letter, fresh attempts.
pub async fn requeue(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(state.queue.requeue(parse_id(&id)?).await?))
}

/// `DELETE /v1/dead-letter`: purges every failed job.
pub async fn purge(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let purged = state.queue.store().purge(Vec::new()).await?;
    Ok(Json(serde_json::json!({ "purged": purged })))
}

/// `DELETE /v1/dead-letter/{id}`: purges one failed job.
pub async fn purge_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let purged = state.queue.store().purge(vec![id]).await?;
    if purged == 0 {
        return Err(ApiError::not_found(format!(
            "job {id} is not in the dead letter"
        )));
    }
    Ok(Json(serde_json::json!({ "purged": purged })))
}

fn parse_id(text: &str) -> Result<JobId, ApiError> {
    text.parse::<JobId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::invalid(format!("job id: `{text}` is not a job id")))
}
