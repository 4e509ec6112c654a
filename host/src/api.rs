//! The HTTP API (axum, JSON, under `/v1`): the only module that knows HTTP.
//!
//! [`router`] builds the whole app so tests can drive it with
//! `tower::ServiceExt::oneshot`, no socket. Every client mistake is a 4xx
//! with `{ "error": { "code", "message" } }`; server errors are logged and
//! answered with a generic body.

mod error;
mod host_info;
mod jobs;
mod modules;

pub use error::ApiError;

use crate::job::RetryPolicy;
use crate::limits::Limits;
use crate::queue::Queue;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use std::sync::Arc;

/// Defaults applied to submitted jobs and request bounds.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Limits of a job that does not set them.
    pub default_limits: Limits,
    /// Retry policy of a job that does not set one.
    pub default_retry: RetryPolicy,
    /// Attempts of a job that does not say.
    pub default_max_attempts: u32,
    /// Largest JSON body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest module upload accepted, in bytes.
    pub max_module_bytes: usize,
    /// Bearer token required on `/v1` when set.
    pub token: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            default_limits: Limits::default(),
            default_retry: RetryPolicy::default(),
            default_max_attempts: crate::job::DEFAULT_MAX_ATTEMPTS,
            max_body_bytes: 16 * 1024 * 1024,
            max_module_bytes: 64 * 1024 * 1024,
            token: None,
        }
    }
}

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    /// The queue.
    pub queue: Queue,
    /// API configuration.
    pub config: Arc<ApiConfig>,
}

/// The whole HTTP app.
pub fn router(queue: Queue, config: ApiConfig) -> Router {
    let state = AppState {
        queue,
        config: Arc::new(config),
    };
    let modules = Router::new()
        .route("/modules", post(modules::upload).get(modules::list))
        .route(
            "/modules/{module}",
            get(modules::get).delete(modules::delete),
        )
        .layer(DefaultBodyLimit::max(state.config.max_module_bytes));
    let jobs = Router::new()
        .route("/jobs", post(jobs::submit).get(jobs::list))
        .route("/jobs/batch", post(jobs::submit_batch))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/requeue", post(jobs::requeue))
        .route("/dead-letter", get(jobs::dead_letter).delete(jobs::purge))
        .route("/dead-letter/{id}", delete(jobs::purge_one))
        .route("/stats", get(host_info::stats))
        .route("/workers", get(host_info::workers))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    let v1 = modules
        .merge(jobs)
        .fallback(not_found)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.queue.store().ping().await {
        Ok(()) => axum::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(error) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("store unreachable: {error}"),
        )
        .into_response(),
    }
}

async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.config.token {
        let given = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
            )
            .into_response();
        }
    }
    next.run(request).await
}
