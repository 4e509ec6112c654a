//! `/v1/queues`: list, get, pause, resume.

use super::error::ErrorBody;
use super::openapi::Unauthorized;
use super::views::QueueView;
use super::{ApiError, AppState};
use crate::policy::validate_queue_name;
use crate::store::QueueStats;
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

/// Every queue, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    /// The queues: in use, or declared in the host's configuration.
    queues: Vec<QueueView>,
}

/// The `{queue}` of a queue's path.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct QueueName {
    /// The queue's name.
    #[allow(dead_code)] // Read as a string by the handlers.
    queue: String,
}

fn view(state: &AppState, stats: QueueStats) -> QueueView {
    let cap = state.queue.cap(&stats.name);
    QueueView::new(stats, cap, state.queue.now())
}

fn checked(name: &str) -> Result<(), ApiError> {
    validate_queue_name(name).map_err(|invalid| ApiError::invalid(invalid.to_string()))
}

/// List every queue, by name.
#[utoipa::path(
    get,
    path = "/v1/queues",
    operation_id = "list_queues",
    tag = "queues",
    responses(
        (status = 200, description = "Every queue in use or declared, by name, with its \
            waiting and running jobs and how long its head has waited.", body = QueueList),
        (status = 401, response = Unauthorized),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    let queues = state.queue.queues().await?;
    Ok(Json(QueueList {
        queues: queues.into_iter().map(|q| view(&state, q)).collect(),
    }))
}

/// Get a queue.
#[utoipa::path(
    get,
    path = "/v1/queues/{queue}",
    operation_id = "get_queue",
    tag = "queues",
    params(QueueName),
    responses(
        (status = 200, description = "The queue.", body = QueueView),
        (status = 400, description = "`invalid_request`: not a queue name.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no queue in use or declared by that name.",
            body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<QueueView>, ApiError> {
    checked(&name)?;
    let stats = state.queue.queue(&name).await?;
    Ok(Json(view(&state, stats)))
}

/// Pause a queue: it accepts jobs and starts none.
///
/// Jobs already running finish.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/pause",
    operation_id = "pause_queue",
    tag = "queues",
    params(QueueName),
    responses(
        (status = 200, description = "Paused.", body = QueueView),
        (status = 400, description = "`invalid_request`: not a queue name.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no queue in use or declared by that name.",
            body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<QueueView>, ApiError> {
    checked(&name)?;
    let stats = state.queue.set_paused(&name, true).await?;
    Ok(Json(view(&state, stats)))
}

/// Resume a paused queue.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/resume",
    operation_id = "resume_queue",
    tag = "queues",
    params(QueueName),
    responses(
        (status = 200, description = "Resumed: its due jobs start again.", body = QueueView),
        (status = 400, description = "`invalid_request`: not a queue name.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no queue in use or declared by that name.",
            body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<QueueView>, ApiError> {
    checked(&name)?;
    let stats = state.queue.set_paused(&name, false).await?;
    Ok(Json(view(&state, stats)))
}
