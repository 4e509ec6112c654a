//! `/v1/schedules`: cron schedules. Create, replace, list, get, pause,
//! resume, delete; each shows its next five fire times.

use super::body::{Whole, object};
use super::error::ErrorBody;
use super::jobs::{LimitsPatch, RetryPatch, SubmitJob, UniquePatch};
use super::openapi::Unauthorized;
use super::views::{self, ScheduleView};
use super::{ApiError, AppState};
use crate::policy::Invalid;
use crate::schedule::{Missed, ScheduleSpec};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

/// What a schedule does with fire times reached late (the host was down).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Missed)]
pub enum MissedView {
    /// Missed fire times create no job; the next one on time does.
    Skip,
    /// Missed fire times create one job between them when the host is
    /// back.
    RunOnce,
}

impl From<MissedView> for Missed {
    fn from(missed: MissedView) -> Self {
        match missed {
            MissedView::Skip => Missed::Skip,
            MissedView::RunOnce => Missed::RunOnce,
        }
    }
}

impl From<Missed> for MissedView {
    fn from(missed: Missed) -> Self {
        match missed {
            Missed::Skip => MissedView::Skip,
            Missed::RunOnce => MissedView::RunOnce,
        }
    }
}

/// The job a schedule creates at each fire time: a job as `POST /v1/jobs`
/// takes it, without `depends_on`, `delay_ms` or `run_at`. A `unique` key
/// keeps runs from overlapping: a fire time whose key is still held
/// creates nothing new.
#[derive(Debug, Default, ToSchema)]
pub struct ScheduleJob {
    /// The queue to wait in; `default` when absent.
    queue: Option<String>,
    /// Module hash or name.
    module: String,
    /// Any JSON; `null` when absent.
    #[schema(value_type = views::RawJson, required = false)]
    input: Option<Box<RawValue>>,
    /// 0 (critical) to 10 (low); 5 when absent.
    #[schema(value_type = Option<u8>)]
    priority: Whole<u8>,
    /// Attempts allowed in all, at least 1.
    #[schema(value_type = Option<u32>)]
    max_attempts: Whole<u32>,
    /// How to retry.
    retry: Option<RetryPatch>,
    /// Limits of the first attempt.
    limits: Option<LimitsPatch>,
    /// At most one job with this key in the queue at a time.
    unique: Option<UniquePatch>,
}

object!(ScheduleJob {
    queue, module, input, priority, max_attempts, retry, limits, unique
} required { module });

/// A schedule as created: a name, when it fires, and the job it creates.
#[derive(Debug, Default, ToSchema)]
#[schema(example = json!({
    "name": "nightly-report",
    "cron": "30 2 * * *",
    "timezone": "America/New_York",
    "job": {"module": "hello", "input": {"name": "night"}},
    "missed": "run_once"
}))]
pub struct CreateSchedule {
    /// Its name: 1 to 64 of `A-Z a-z 0-9 _ . -`, unique on the host.
    name: String,
    /// Cron expression: 5 fields (minute hour day-of-month month
    /// day-of-week), or 6 with seconds first; `@daily` and friends, `L`,
    /// `W`, `#`.
    #[schema(min_length = 1, max_length = 256)]
    cron: String,
    /// The IANA time zone the expression is read in; `UTC` when absent. In
    /// a zone with daylight saving time, a fire time in the skipped hour
    /// fires once after the gap, and one in the repeated hour fires once.
    timezone: Option<String>,
    /// The job each fire time creates.
    job: ScheduleJob,
    /// Fire times reached late: `skip` (when absent) or `run_once`.
    missed: Option<MissedView>,
    /// Created paused: it fires nothing until resumed.
    paused: Option<bool>,
}

object!(CreateSchedule { name, cron, timezone, job, missed, paused } required { name, cron, job });

/// A schedule as replaced: everything but the name, which is in the path.
#[derive(Debug, Default, ToSchema)]
pub struct ReplaceSchedule {
    /// Cron expression (see `CreateSchedule`).
    #[schema(min_length = 1, max_length = 256)]
    cron: String,
    /// The IANA time zone; `UTC` when absent.
    timezone: Option<String>,
    /// The job each fire time creates.
    job: ScheduleJob,
    /// Fire times reached late: `skip` (when absent) or `run_once`.
    missed: Option<MissedView>,
    /// Paused: it fires nothing until resumed.
    paused: Option<bool>,
}

object!(ReplaceSchedule { cron, timezone, job, missed, paused } required { cron, job });

impl ScheduleJob {
    fn into_spec(self) -> Result<crate::policy::JobSpec, Invalid> {
        SubmitJob {
            queue: self.queue,
            module: self.module,
            input: self.input,
            priority: self.priority,
            max_attempts: self.max_attempts,
            retry: self.retry,
            limits: self.limits,
            unique: self.unique,
            ..SubmitJob::default()
        }
        .into_spec()
        .map_err(|invalid| invalid.under("job"))
    }
}

fn spec(
    name: String,
    cron: String,
    timezone: Option<String>,
    job: ScheduleJob,
    missed: Option<MissedView>,
    paused: Option<bool>,
) -> Result<ScheduleSpec, ApiError> {
    Ok(ScheduleSpec {
        name,
        cron,
        timezone,
        job: job
            .into_spec()
            .map_err(|invalid| ApiError::invalid(invalid.to_string()))?,
        missed: missed.map_or(Missed::Skip, Into::into),
        paused: paused.unwrap_or(false),
    })
}

/// A refused schedule: a job's missing module is `job.module`.
fn refused(error: crate::queue::Error) -> ApiError {
    match error {
        crate::queue::Error::UnknownModule { reference, .. } => ApiError::not_found(format!(
            "job.module: no module `{reference}`: upload it first"
        )),
        other => other.into(),
    }
}

fn view(state: &AppState, schedule: crate::schedule::Schedule) -> ScheduleView {
    ScheduleView::new(schedule, state.queue.now())
}

/// Create a schedule.
#[utoipa::path(
    post,
    path = "/v1/schedules",
    operation_id = "create_schedule",
    tag = "schedules",
    request_body = CreateSchedule,
    responses(
        (status = 201, description = "Stored; its next five fire times are shown.",
            body = ScheduleView),
        (status = 400, description = "`invalid_json`: malformed, an unknown field or a wrong \
            type; `invalid_request`: a bad name, a cron expression that does not parse or \
            never fires (`cron: ...`), an unknown time zone (`timezone: ...`), or a job field \
            outside its bounds (`job.priority: ...`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: the job's module does not exist.",
            body = ErrorBody),
        (status = 409, description = "`conflict`: a schedule has that name (replace it with \
            PUT).", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the request does not say \
            `Content-Type: application/json`.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateSchedule>, JsonRejection>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    let Json(body) = body?;
    let spec = spec(
        body.name,
        body.cron,
        body.timezone,
        body.job,
        body.missed,
        body.paused,
    )?;
    let schedule = state
        .queue
        .put_schedule(spec, false)
        .await
        .map_err(refused)?;
    Ok((StatusCode::CREATED, Json(view(&state, schedule))))
}

/// The `{name}` of a schedule's path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ScheduleName {
    /// The schedule's name.
    #[allow(dead_code)] // Read as a string by the handlers.
    name: String,
}

fn checked(name: &str) -> Result<(), ApiError> {
    crate::schedule::validate_name(name).map_err(|invalid| ApiError::invalid(invalid.to_string()))
}

/// Create or replace a schedule by name.
///
/// A replaced schedule keeps its name, its creation time and what it last
/// fired; its next fire time is computed again from now.
#[utoipa::path(
    put,
    path = "/v1/schedules/{name}",
    operation_id = "replace_schedule",
    tag = "schedules",
    params(ScheduleName),
    request_body = ReplaceSchedule,
    responses(
        (status = 200, description = "Replaced.", body = ScheduleView),
        (status = 201, description = "Created.", body = ScheduleView),
        (status = 400, description = "`invalid_json` or `invalid_request`, as for \
            `POST /v1/schedules`.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: the job's module does not exist.",
            body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the request does not say \
            `Content-Type: application/json`.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn replace(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<ReplaceSchedule>, JsonRejection>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    checked(&name)?;
    let Json(body) = body?;
    let existed = state.queue.schedule(&name).await.is_ok();
    let spec = spec(
        name,
        body.cron,
        body.timezone,
        body.job,
        body.missed,
        body.paused,
    )?;
    let schedule = state
        .queue
        .put_schedule(spec, true)
        .await
        .map_err(refused)?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view(&state, schedule))))
}

/// Every schedule, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// The schedules.
    schedules: Vec<ScheduleView>,
}

/// List every schedule, by name.
#[utoipa::path(
    get,
    path = "/v1/schedules",
    operation_id = "list_schedules",
    tag = "schedules",
    responses(
        (status = 200, description = "Every schedule, by name, with its next fire times.",
            body = ScheduleList),
        (status = 401, response = Unauthorized),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    let schedules = state.queue.schedules().await?;
    Ok(Json(ScheduleList {
        schedules: schedules.into_iter().map(|s| view(&state, s)).collect(),
    }))
}

/// Get a schedule, with its next five fire times.
#[utoipa::path(
    get,
    path = "/v1/schedules/{name}",
    operation_id = "get_schedule",
    tag = "schedules",
    params(ScheduleName),
    responses(
        (status = 200, description = "The schedule.", body = ScheduleView),
        (status = 400, description = "`invalid_request`: not a schedule name.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such schedule.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    checked(&name)?;
    let schedule = state.queue.schedule(&name).await?;
    Ok(Json(view(&state, schedule)))
}

/// Pause a schedule: it fires nothing until resumed.
#[utoipa::path(
    post,
    path = "/v1/schedules/{name}/pause",
    operation_id = "pause_schedule",
    tag = "schedules",
    params(ScheduleName),
    responses(
        (status = 200, description = "Paused (pausing a paused schedule changes nothing).",
            body = ScheduleView),
        (status = 400, description = "`invalid_request`: not a schedule name.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such schedule.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    checked(&name)?;
    let schedule = state.queue.set_schedule_paused(&name, true).await?;
    Ok(Json(view(&state, schedule)))
}

/// Resume a schedule: it fires next at its first fire time after now (the
/// ones it was paused through are not made up).
#[utoipa::path(
    post,
    path = "/v1/schedules/{name}/resume",
    operation_id = "resume_schedule",
    tag = "schedules",
    params(ScheduleName),
    responses(
        (status = 200, description = "Resumed.", body = ScheduleView),
        (status = 400, description = "`invalid_request`: not a schedule name.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such schedule.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    checked(&name)?;
    let schedule = state.queue.set_schedule_paused(&name, false).await?;
    Ok(Json(view(&state, schedule)))
}

/// Delete a schedule; the jobs it created stay.
#[utoipa::path(
    delete,
    path = "/v1/schedules/{name}",
    operation_id = "delete_schedule",
    tag = "schedules",
    params(ScheduleName),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "`invalid_request`: not a schedule name.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such schedule.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    checked(&name)?;
    state.queue.delete_schedule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
