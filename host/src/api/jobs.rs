//! `/v1/jobs` and `/v1/dead-letter`: submit (one or a batch), get, list,
//! cancel, re-queue, purge.

use super::body::{Whole, object};
use super::error::ErrorBody;
use super::openapi::Unauthorized;
use super::views::{self, BackoffView, JobSummary, JobView};
use super::workflows::JobDependency;
use super::{ApiError, AppState};
use crate::job::{JobId, JobState, TraceParent};
use crate::policy::{Invalid, JobSpec, LimitsSpec, RetrySpec, UniqueSpec};
use crate::queue;
use crate::store::JobFilter;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};

/// Most jobs in one batch submission.
const MAX_BATCH: usize = 10_000;
/// Page size of a listing that does not say.
pub(super) const DEFAULT_PAGE: usize = 100;
/// Largest page of a listing.
pub(super) const MAX_PAGE: usize = 1_000;

/// A job as submitted. Unset fields take the server's defaults; each value
/// must lie within the server's bounds (a 400 names the field and the
/// bound otherwise).
#[derive(Debug, Default, ToSchema)]
#[schema(example = json!({"module": "hello", "input": {"name": "Ada"}, "priority": 2}))]
pub struct SubmitJob {
    /// The queue to wait in; `default` when absent.
    pub(super) queue: Option<String>,
    /// Module hash or name.
    pub(super) module: String,
    /// Any JSON; `null` when absent.
    #[schema(value_type = views::RawJson, required = false)]
    pub(super) input: Option<Box<RawValue>>,
    /// 0 (critical) to 10 (low); 5 when absent.
    #[schema(value_type = Option<u8>)]
    pub(super) priority: Whole<u8>,
    /// Attempts allowed in all, at least 1; the server's default when
    /// absent.
    #[schema(value_type = Option<u32>)]
    pub(super) max_attempts: Whole<u32>,
    /// How to retry; each field left out takes the server's default
    /// policy's.
    pub(super) retry: Option<RetryPatch>,
    /// Limits of the first attempt; each one left out takes the server's
    /// default.
    pub(super) limits: Option<LimitsPatch>,
    /// Run no earlier than this many milliseconds from now.
    #[schema(value_type = Option<u64>)]
    pub(super) delay_ms: Whole<u64>,
    /// At most one job with this key in the queue at a time: while one is
    /// not final (or finished less than `window_ms` ago), submitting
    /// another answers that job with a 200 instead of storing a new one.
    pub(super) unique: Option<UniquePatch>,
    /// Jobs it waits for, `blocked`, until each completes (by default it
    /// is cancelled if one fails or is cancelled).
    #[schema(max_items = 100000)]
    pub(super) depends_on: Vec<JobDependency>,
    /// Run no earlier than this time, an RFC 3339 date-time with an offset
    /// (`2026-12-01T08:00:00Z`). A time in the past means now; with
    /// `delay_ms` too, the later of the two holds.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(super) run_at: Option<String>,
    /// The grants of its module it runs with: some of them (a job may
    /// narrow its module's grants, never widen them); all when absent.
    #[schema(max_items = 32)]
    pub(super) grants: Option<Vec<String>>,
}

object!(SubmitJob {
    queue, module, input, priority, max_attempts, retry, limits, delay_ms, unique, depends_on,
    run_at, grants
} required { module });

/// A unique job's key.
#[derive(Debug, Default, ToSchema)]
pub struct UniquePatch {
    /// The key, 1 to 256 bytes.
    #[schema(min_length = 1, max_length = 256)]
    key: String,
    /// How long after the job with the key finished it still counts, in
    /// milliseconds; 0 when absent (only while it is not final).
    #[schema(value_type = Option<u64>)]
    window_ms: Whole<u64>,
}

object!(UniquePatch { key, window_ms } required { key });

impl SubmitJob {
    pub(super) fn into_spec(self) -> Result<JobSpec, Invalid> {
        let run_at = self.run_at.as_deref().map(parse_time).transpose()?;
        let depends_on = self
            .depends_on
            .into_iter()
            .map(JobDependency::into_dependency)
            .collect::<Result<_, _>>()?;
        Ok(JobSpec {
            queue: self.queue,
            module: self.module,
            input: views::input(self.input),
            priority: self.priority.0,
            max_attempts: self.max_attempts.0,
            retry: self.retry.map(RetryPatch::into_spec).unwrap_or_default(),
            limits: self.limits.map(LimitsPatch::into_spec).unwrap_or_default(),
            delay_ms: self.delay_ms.0,
            unique: self.unique.map(|unique| UniqueSpec {
                key: unique.key,
                window_ms: unique.window_ms.0,
            }),
            depends_on,
            node: None,
            grants: self.grants,
            run_at,
            // The request's `traceparent` header, set by the handler.
            trace: None,
        })
    }
}

/// An RFC 3339 date-time with an offset, as milliseconds since the epoch.
fn parse_time(text: &str) -> Result<crate::clock::Millis, Invalid> {
    let at: jiff::Timestamp = text.parse().map_err(|e| {
        Invalid::new(
            "run_at",
            format!("`{text}` is not an RFC 3339 date-time with an offset: {e}"),
        )
    })?;
    Ok(at.as_millisecond())
}

/// Per-job overrides of the server's default retry policy.
#[derive(Debug, Default, ToSchema)]
pub struct RetryPatch {
    /// How the delay grows.
    backoff: Option<BackoffView>,
    /// The base delay in milliseconds, at least 1.
    #[schema(value_type = Option<u64>)]
    base_ms: Whole<u64>,
    /// The largest delay in milliseconds: every delay is capped at it (one
    /// below the base makes every delay this).
    #[schema(value_type = Option<u64>)]
    max_delay_ms: Whole<u64>,
    /// Spread delays randomly over `[delay/2, delay]`.
    jitter: Option<bool>,
}

object!(RetryPatch { backoff, base_ms, max_delay_ms, jitter } required {});

impl RetryPatch {
    fn into_spec(self) -> RetrySpec {
        RetrySpec {
            backoff: self.backoff.map(Into::into),
            base_ms: self.base_ms.0,
            max_delay_ms: self.max_delay_ms.0,
            jitter: self.jitter,
        }
    }
}

/// Per-job overrides of the default limits.
#[derive(Debug, Default, ToSchema)]
pub struct LimitsPatch {
    /// Fuel budget (roughly one unit per wasm instruction), at least 1.
    #[schema(value_type = Option<u64>)]
    fuel: Whole<u64>,
    /// Maximum linear memory in bytes, summed over all memories; at least
    /// one 64 KiB page.
    #[schema(value_type = Option<u64>)]
    memory_bytes: Whole<u64>,
    /// Wall-clock timeout in milliseconds, greater than 0.
    #[schema(value_type = Option<u64>)]
    timeout_ms: Whole<u64>,
    /// Maximum size of the job's output in bytes.
    #[schema(value_type = Option<u64>)]
    output_bytes: Whole<u64>,
    /// Maximum number of log records kept.
    #[schema(value_type = Option<u32>)]
    log_records: Whole<u32>,
    /// Maximum total bytes of log messages kept.
    #[schema(value_type = Option<u64>)]
    log_bytes: Whole<u64>,
    /// Bytes kept from the end of stdout and of stderr.
    #[schema(value_type = Option<u64>)]
    stdio_tail_bytes: Whole<u64>,
}

object!(LimitsPatch {
    fuel, memory_bytes, timeout_ms, output_bytes, log_records, log_bytes, stdio_tail_bytes
} required {});

impl LimitsPatch {
    fn into_spec(self) -> LimitsSpec {
        LimitsSpec {
            fuel: self.fuel.0,
            memory_bytes: self.memory_bytes.0,
            timeout_ms: self.timeout_ms.0,
            output_bytes: self.output_bytes.0,
            log_records: self.log_records.0,
            log_bytes: self.log_bytes.0,
            stdio_tail_bytes: self.stdio_tail_bytes.0,
        }
    }
}

/// A batch submission: all jobs commit together or none does.
#[derive(Debug, Default, ToSchema)]
pub struct SubmitBatch {
    /// 1 to 10000 jobs.
    #[schema(min_items = 1, max_items = 10000)]
    jobs: Vec<SubmitJob>,
}

object!(SubmitBatch { jobs } required { jobs });

/// Jobs created by a batch, in the order submitted.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobBatch {
    /// The jobs: each stored, or for a unique job whose key was held, the
    /// job holding it.
    jobs: Vec<JobSummary>,
    /// For each job, whether this batch stored it (`false`: an existing
    /// job with the same unique key).
    created: Vec<bool>,
}

/// A refused job of a submission, named as the request names it: the field
/// alone for one job, `jobs[3].field` in a batch.
pub(super) fn refused(error: queue::Error, batch: bool) -> ApiError {
    match error {
        queue::Error::InvalidJob { index, invalid } if batch => {
            ApiError::invalid(invalid.within("jobs", index).to_string())
        }
        queue::Error::InvalidJob { invalid, .. } => ApiError::invalid(invalid.to_string()),
        queue::Error::UnknownModule { index, reference } => {
            let field = if batch {
                format!("jobs[{index}].module")
            } else {
                "module".to_owned()
            };
            ApiError::not_found(format!("{field}: no module `{reference}`: upload it first"))
        }
        other => other.into(),
    }
}

/// The trace header a submission may carry.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct TraceHeader {
    /// The caller's W3C Trace Context (`00-<trace id>-<span id>-<flags>`):
    /// the jobs' attempts join that trace (their spans descend from it,
    /// and their log lines carry its `trace_id`). A malformed value is
    /// ignored, as the Trace Context specification says.
    #[allow(dead_code)]
    traceparent: Option<String>,
}

/// Runs `submit`, a submission of jobs, in a `submit` span that descends
/// from the request's `traceparent`, giving it the trace context its jobs
/// carry.
pub(super) async fn traced<F: Future>(
    headers: &HeaderMap,
    submit: impl FnOnce(Option<TraceParent>) -> F,
) -> F::Output {
    let incoming = headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .and_then(TraceParent::parse);
    let span = crate::telemetry::submit_span(incoming);
    let trace = crate::telemetry::carried(&span, incoming);
    submit(trace).instrument(span).await
}

/// Submit a job; with `wait_ms`, also wait for it to finish.
///
/// Unset fields take the server's defaults; the job is stored durably
/// before the answer. With `wait_ms` the answer is the job with its
/// output and attempts (as `GET /v1/jobs/{id}?wait_ms=` gives it) once it
/// is final or `wait_ms` has passed: one request instead of a submission
/// and a long poll, and one fsync for both the submission and the
/// outcome.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    operation_id = "submit_job",
    tag = "jobs",
    request_body = SubmitJob,
    params(TraceHeader, SubmitQuery),
    responses(
        (status = 201, description = "Stored, durably: the job as stored, or with `wait_ms` \
            the job with input, output, live progress and every attempt's report once it is \
            final and that is durable, or when `wait_ms` has passed.", body = SubmitAnswer),
        (status = 200, description = "Not stored: a job with the same unique key in the \
            queue is not final (or finished within the key's window); this is that job \
            (with `wait_ms`, once it is final or `wait_ms` has passed).",
            body = SubmitAnswer),
        (status = 400, description = "`invalid_json`: malformed, an unknown field or a wrong \
            type; `invalid_request`: a field outside its bounds (the message names the field \
            and the bound), or `wait_ms` over the maximum; `invalid_query`: an unknown \
            parameter or a wrong type. Nothing is stored.", body = ErrorBody),
        (status = 404, description = "`not_found`: no module with that hash or name.",
            body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 413, description = "`payload_too_large`: larger than the server's \
            `server.max_body_bytes`.", body = ErrorBody),
        (status = 503, description = "`store_busy`: the database stayed locked by another \
            process; `store_unavailable`: the database cannot be reached (PostgreSQL), or the \
            host refuses writes since an fsync of its WAL failed (SQLite; until a restart). \
            Nothing is stored. `Retry-After` says when to try again.", body = ErrorBody),
        (status = 507, description = "`storage_full`: the host's disk is full; nothing is \
            stored. `Retry-After` says when to try again.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the request does not say \
            `Content-Type: application/json`.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    body: Result<Json<SubmitJob>, JsonRejection>,
) -> Result<(StatusCode, Json<SubmitAnswer>), ApiError> {
    let Query(query) = query?;
    let Json(request) = body?;
    let wait = match query.wait_ms {
        None | Some(0) => None,
        Some(ms) if ms > state.config.max_wait_ms => {
            return Err(ApiError::invalid(format!(
                "wait_ms: {ms} is over the maximum of {}",
                state.config.max_wait_ms
            )));
        }
        Some(ms) => Some(std::time::Duration::from_millis(ms)),
    };
    let mut spec = request
        .into_spec()
        .map_err(|invalid| ApiError::invalid(invalid.to_string()))?;
    let status = |created: bool| match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    let Some(wait) = wait else {
        let mut jobs = traced(&headers, |trace| {
            spec.trace = trace;
            state.queue.submit(vec![spec])
        })
        .await
        .map_err(|e| refused(e, false))?;
        let submitted = jobs.remove(0);
        let answer = SubmitAnswer::Stored(Box::new(submitted.job.into()));
        return Ok((status(submitted.created), Json(answer)));
    };
    let (submitted, detail, live) = traced(&headers, |trace| {
        spec.trace = trace;
        state.queue.submit_and_wait(spec, wait)
    })
    .await
    .map_err(|e| refused(e, false))?;
    let answer = SubmitAnswer::Waited(Box::new(JobView::new(detail, live)));
    Ok((status(submitted.created), Json(answer)))
}

/// Options of a submission.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubmitQuery {
    /// Wait up to this many ms for the job to be final before answering,
    /// and answer with its detail (output, attempts): a submission and a
    /// long poll in one request. At most `server.max_wait_ms`.
    wait_ms: Option<u64>,
}

/// What a submission answers: the job as stored, or with `wait_ms` the
/// job's detail once it is final or the wait is over.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SubmitAnswer {
    /// With `wait_ms`: the job with input, output, progress and attempts.
    Waited(Box<JobView>),
    /// Without `wait_ms`: the job as stored.
    Stored(Box<JobSummary>),
}

/// Submit a batch of jobs.
///
/// All jobs are checked, then stored in one durable commit: all or none.
#[utoipa::path(
    post,
    path = "/v1/jobs/batch",
    operation_id = "submit_batch",
    tag = "jobs",
    request_body = SubmitBatch,
    params(TraceHeader),
    responses(
        (status = 201, description = "Every job stored in one durable commit.",
            body = JobBatch),
        (status = 400, description = "`invalid_json` or `invalid_request`, naming the job \
            (`jobs[3].priority: ...`); nothing is stored.", body = ErrorBody),
        (status = 404, description = "`not_found`: a job names no module that exists \
            (`jobs[3].module: ...`); nothing is stored.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 413, description = "`payload_too_large`: larger than the server's \
            `server.max_body_bytes`.", body = ErrorBody),
        (status = 503, description = "`store_busy`: the database stayed locked by another \
            process; `store_unavailable`: the database cannot be reached (PostgreSQL), or the \
            host refuses writes since an fsync of its WAL failed (SQLite; until a restart). \
            Nothing is stored. `Retry-After` says when to try again.", body = ErrorBody),
        (status = 507, description = "`storage_full`: the host's disk is full; nothing is \
            stored. `Retry-After` says when to try again.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the request does not say \
            `Content-Type: application/json`.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn submit_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SubmitBatch>, JsonRejection>,
) -> Result<(StatusCode, Json<JobBatch>), ApiError> {
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
    let mut specs: Vec<JobSpec> = batch
        .jobs
        .into_iter()
        .enumerate()
        .map(|(index, job)| {
            job.into_spec()
                .map_err(|invalid| ApiError::invalid(invalid.within("jobs", index).to_string()))
        })
        .collect::<Result<_, _>>()?;
    let jobs = traced(&headers, |trace| {
        for spec in &mut specs {
            spec.trace = trace;
        }
        state.queue.submit(specs)
    })
    .await
    .map_err(|e| refused(e, true))?;
    Ok((
        StatusCode::CREATED,
        Json(JobBatch {
            created: jobs.iter().map(|s| s.created).collect(),
            jobs: jobs.into_iter().map(|s| s.job.into()).collect(),
        }),
    ))
}

/// Get a job with its input, output, live progress and attempts; with
/// `wait_ms`, first wait for it to finish.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    params(JobIdParam, GetQuery),
    responses(
        (status = 200, description = "The job with input, output, live progress and every \
            attempt's report: as soon as it is final (completed, failed or cancelled) and \
            that is on disk as durably as `store.durability` promises, or when `wait_ms` has \
            passed, whichever is first. Without `wait_ms` the job as stored now: its result \
            may be read up to a millisecond before it is fsync'd.", body = JobView),
        (status = 400, description = "`invalid_request`: not a job id, or `wait_ms` over \
            the maximum; `invalid_query`: an unknown parameter or a wrong type.",
            body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such job.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id(&id)?;
    let Query(query) = query?;
    let (detail, live) = match query.wait_ms {
        None | Some(0) => state.queue.job(id).await?,
        Some(ms) if ms > state.config.max_wait_ms => {
            return Err(ApiError::invalid(format!(
                "wait_ms: {ms} is over the maximum of {}",
                state.config.max_wait_ms
            )));
        }
        Some(ms) => {
            let wait = std::time::Duration::from_millis(ms);
            state.queue.wait(id, wait).await?
        }
    };
    Ok(Json(JobView::new(detail, live)))
}

/// Longest a `GET /v1/jobs/{id}` may wait for the job to finish, unless
/// the operator sets `server.max_wait_ms`.
pub const MAX_WAIT_MS: u64 = 60_000;

/// Options of getting one job.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetQuery {
    /// Wait up to this many ms for the job to be final before answering:
    /// a long poll instead of polling.
    wait_ms: Option<u64>,
}

/// The `{id}` of a job's path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobIdParam {
    /// The job's id, a positive integer.
    #[param(value_type = i64, minimum = 1)]
    #[allow(dead_code)] // Read as a string by the handlers, to name a bad id.
    id: JobId,
}

/// Filters of a listing.
/// Paging of the dead-letter listing: no filters (it is one state).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    before: Option<JobId>,
    limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this state.
    #[param(inline, value_type = Option<super::views::StateView>)]
    state: Option<String>,
    /// Only jobs of this queue.
    queue: Option<String>,
    /// Only jobs of this module (hash or name).
    module: Option<String>,
    /// Only jobs of this priority, as submitted (0 to 10).
    priority: Option<u8>,
    /// Only jobs this cron schedule created.
    schedule: Option<String>,
    /// The cursor: only jobs with an id below this (`next_cursor` of the
    /// previous page).
    #[param(value_type = Option<i64>)]
    before: Option<JobId>,
    /// Page size: 100 when absent, 1 to 1000.
    limit: Option<usize>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// The jobs.
    jobs: Vec<JobSummary>,
    /// Pass as `before` for the next page; `null` on the last page.
    #[schema(value_type = Option<i64>, required = true)]
    next_cursor: Option<JobId>,
}

/// List jobs, newest first.
///
/// Filters combine; pages follow `next_cursor` through `before`.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of jobs, newest first.", body = JobPage),
        (status = 400, description = "`invalid_query`: an unknown parameter or a wrong type; \
            `invalid_request`: an unknown state, or a priority or page size out of range.",
            body = ErrorBody),
        (status = 404, description = "`not_found`: `module` names no module (a hash is \
            taken as it is: a deleted module's jobs are listed by its hash).", body = ErrorBody),
        (status = 401, response = Unauthorized),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(query) = query?;
    let filter_state = match query.state.as_deref() {
        None => None,
        Some(text) => Some(JobState::parse(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "state: unknown state `{text}`, use one of blocked, pending, running, retrying, completed, failed, cancelled"
            ))
        })?),
    };
    // A hash filters as it is (a deleted module's final jobs keep it); a
    // name must name a module.
    let module = match query.module {
        None => None,
        Some(hash) if crate::queue::is_hash(&hash) => Some(hash),
        Some(name) => Some(
            state
                .queue
                .resolve(&name)
                .await
                .map_err(|e| match e {
                    crate::queue::Error::Store(crate::store::Error::NotFound(_)) => {
                        ApiError::not_found(format!("module: no module `{name}`"))
                    }
                    other => other.into(),
                })?
                .hash,
        ),
    };
    if let Some(queue) = &query.queue {
        crate::policy::validate_queue_name(queue)
            .map_err(|invalid| ApiError::invalid(invalid.to_string()))?;
    }
    if let Some(schedule) = &query.schedule {
        crate::schedule::validate_name(schedule)
            .map_err(|invalid| ApiError::invalid(format!("schedule: {}", invalid.message)))?;
    }
    if let Some(priority) = query.priority.filter(|p| *p > crate::job::PRIORITY_LOW) {
        return Err(ApiError::invalid(format!(
            "priority: {priority} is out of range, use 0 (critical) to 10 (low)"
        )));
    }
    page(
        &state,
        JobFilter {
            state: filter_state,
            queue: query.queue,
            module,
            priority: query.priority,
            schedule: query.schedule,
            before: query.before,
            limit: page_size(query.limit)?,
        },
    )
    .await
}

/// A listing's page size: [`DEFAULT_PAGE`] when absent, refused outside
/// 1 to [`MAX_PAGE`].
pub(super) fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(limit @ 1..=MAX_PAGE) => Ok(limit),
        Some(other) => Err(ApiError::invalid(format!(
            "limit: {other} is out of range, use 1 to {MAX_PAGE}"
        ))),
    }
}

/// List the dead letter: failed jobs, newest first.
#[utoipa::path(
    get,
    path = "/v1/dead-letter",
    operation_id = "list_dead_letter",
    tag = "dead-letter",
    params(
        ("before" = Option<i64>, Query, description = "The cursor: only jobs with an id \
            below this (`next_cursor` of the previous page)."),
        ("limit" = Option<usize>, Query, description = "Page size: 100 when absent, 1 to \
            1000."),
    ),
    responses(
        (status = 200, description = "A page of failed jobs, newest first.", body = JobPage),
        (status = 400, description = "`invalid_query`: an unknown parameter or a wrong type; \
            `invalid_request`: a page size out of range.", body = ErrorBody),
        (status = 401, response = Unauthorized),
    ),
    security((), ("bearer" = [])),
)]
pub async fn dead_letter(
    State(state): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(query) = query?;
    page(
        &state,
        JobFilter {
            state: Some(JobState::Failed),
            queue: None,
            module: None,
            priority: None,
            schedule: None,
            before: query.before,
            limit: page_size(query.limit)?,
        },
    )
    .await
}

async fn page(state: &AppState, filter: JobFilter) -> Result<Json<JobPage>, ApiError> {
    let limit = filter.limit;
    let jobs = state.queue.list(filter).await?;
    let next = if jobs.len() == limit {
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    Ok(Json(JobPage {
        jobs: jobs.into_iter().map(JobSummary::from).collect(),
        next_cursor: next,
    }))
}

/// Cancel a job.
///
/// A pending or retrying job is cancelled at once; a running one is
/// stopped, and the interrupted attempt's report joins its history. A
/// final job is a conflict.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    operation_id = "cancel_job",
    tag = "jobs",
    params(JobIdParam),
    responses(
        (status = 200, description = "Cancelled: a pending or retrying job at once, a running \
            one is stopped (its interrupted attempt's report is filed when the worker \
            reports).", body = JobSummary),
        (status = 400, description = "`invalid_request`: not a job id.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such job.", body = ErrorBody),
        (status = 409, description = "`conflict`: the job is final.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobSummary>, ApiError> {
    Ok(Json(state.queue.cancel(parse_id(&id)?).await?.into()))
}

/// Re-queue a job from the dead letter, with fresh attempts.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/requeue",
    operation_id = "requeue_job",
    tag = "dead-letter",
    params(JobIdParam),
    responses(
        (status = 200, description = "Back to `pending` with a fresh attempt budget; its old \
            attempts are kept.", body = JobSummary),
        (status = 400, description = "`invalid_request`: not a job id.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such job.", body = ErrorBody),
        (status = 409, description = "`conflict`: the job is not in the dead letter, or its \
            module was deleted since (upload it again first).", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn requeue(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobSummary>, ApiError> {
    Ok(Json(state.queue.requeue(parse_id(&id)?).await?.into()))
}

/// How many jobs a purge deleted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Purged {
    /// Jobs deleted.
    purged: u64,
}

/// Purge the dead letter: delete every failed job.
#[utoipa::path(
    delete,
    path = "/v1/dead-letter",
    operation_id = "purge_dead_letter",
    tag = "dead-letter",
    responses(
        (status = 200, description = "Every failed job deleted.", body = Purged),
        (status = 401, response = Unauthorized),
    ),
    security((), ("bearer" = [])),
)]
pub async fn purge(State(state): State<AppState>) -> Result<Json<Purged>, ApiError> {
    let purged = state.queue.purge(Vec::new()).await?;
    Ok(Json(Purged { purged }))
}

/// Purge one job from the dead letter.
#[utoipa::path(
    delete,
    path = "/v1/dead-letter/{id}",
    operation_id = "purge_dead_letter_job",
    tag = "dead-letter",
    params(JobIdParam),
    responses(
        (status = 200, description = "Deleted (`purged` is 1).", body = Purged),
        (status = 400, description = "`invalid_request`: not a job id.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: the job is not in the dead letter.",
            body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn purge_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Purged>, ApiError> {
    let id = parse_id(&id)?;
    let purged = state.queue.purge(vec![id]).await?;
    if purged == 0 {
        return Err(ApiError::not_found(format!(
            "job {id} is not in the dead letter"
        )));
    }
    Ok(Json(Purged { purged }))
}

fn parse_id(text: &str) -> Result<JobId, ApiError> {
    text.parse::<JobId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::invalid(format!("job id: `{text}` is not a job id")))
}
