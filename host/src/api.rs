//! The HTTP API (axum, JSON, under `/v1`): the only module that knows HTTP.
//!
//! [`router`] builds the whole app so tests can drive it with
//! `tower::ServiceExt::oneshot`, no socket. Every client mistake is a 4xx
//! with `{ "error": { "code", "message" } }`; server errors are logged and
//! answered with a generic body.
//!
//! The routes are one table ([`routes`] lists it) and every handler carries
//! its OpenAPI description ([`openapi`]), served at `GET /v1/openapi.json`.

mod body;
mod error;
mod history;
mod host_info;
mod jobs;
mod metrics;
mod modules;
pub mod openapi;
mod queues;
mod schedules;
pub mod server;
pub mod views;
mod workflows;

pub use error::ApiError;
pub use server::{ServerLimits, serve};

use error::ErrorBody;

use crate::queue::Queue;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// What the HTTP layer itself bounds and checks. (What a job may ask for
/// is the queue's policy, not the API's.)
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Largest JSON body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest module upload accepted, in bytes.
    pub max_module_bytes: usize,
    /// Bearer token required on `/v1` when set.
    pub token: Option<String>,
    /// Longest a `GET /v1/jobs/{id}?wait_ms=` may wait, in ms: keep it
    /// under the idle timeout of any proxy in front of the host.
    pub max_wait_ms: u64,
    /// Serve `/metrics` without the token (for a scraper on a trusted
    /// network).
    pub metrics_public: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 16 * 1024 * 1024,
            max_module_bytes: 64 * 1024 * 1024,
            token: None,
            max_wait_ms: jobs::MAX_WAIT_MS,
            metrics_public: false,
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
    /// This host's OpenAPI document (its ceilings are the policy's).
    openapi: Arc<str>,
    /// The dashboard's session and CSRF keys.
    pub(crate) sessions: Arc<crate::dashboard::Sessions>,
}

/// Which part of the app a route belongs to: decides where it is mounted,
/// its body limit and whether it needs the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    /// `/v1/modules…`: module uploads, bounded by `max_module_bytes`.
    Modules,
    /// The rest of `/v1`: JSON bodies, bounded by `max_body_bytes`.
    Jobs,
    /// Under `/v1` but public: the OpenAPI document.
    Docs,
    /// Outside `/v1`, public: health probes.
    Health,
    /// Outside `/v1`: `/metrics`, with the token unless made public.
    Metrics,
}

/// One row of the route table.
struct RouteEntry {
    group: Group,
    method: Method,
    /// The full path, in axum's (and OpenAPI's) `{param}` syntax.
    path: &'static str,
    handler: MethodRouter<AppState>,
}

fn entry<H, T>(group: Group, method: Method, path: &'static str, handler: H) -> RouteEntry
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a routable method");
    RouteEntry {
        group,
        method,
        path,
        handler: on(filter, handler),
    }
}

/// The route table: every route the router serves, and only these.
/// [`router`] is built from it and [`routes`] lists it, so the OpenAPI
/// document can be checked against it.
fn table() -> Vec<RouteEntry> {
    use Group::{Docs, Health, Jobs, Metrics, Modules};
    vec![
        entry(Modules, Method::POST, "/v1/modules", modules::upload),
        entry(Modules, Method::GET, "/v1/modules", modules::list),
        entry(Modules, Method::GET, "/v1/modules/{module}", modules::get),
        entry(
            Modules,
            Method::PUT,
            "/v1/modules/{module}/grants",
            modules::set_grants,
        ),
        entry(Modules, Method::GET, "/v1/grants", modules::grants),
        entry(
            Modules,
            Method::GET,
            "/v1/modules/{module}/wasm",
            modules::wasm,
        ),
        entry(
            Modules,
            Method::DELETE,
            "/v1/modules/{module}",
            modules::delete,
        ),
        entry(Jobs, Method::POST, "/v1/jobs", jobs::submit),
        entry(Jobs, Method::GET, "/v1/jobs", jobs::list),
        entry(Jobs, Method::POST, "/v1/jobs/batch", jobs::submit_batch),
        entry(Jobs, Method::GET, "/v1/jobs/{id}", jobs::get),
        entry(Jobs, Method::POST, "/v1/jobs/{id}/cancel", jobs::cancel),
        entry(Jobs, Method::POST, "/v1/jobs/{id}/requeue", jobs::requeue),
        entry(Jobs, Method::GET, "/v1/dead-letter", jobs::dead_letter),
        entry(Jobs, Method::DELETE, "/v1/dead-letter", jobs::purge),
        entry(
            Jobs,
            Method::DELETE,
            "/v1/dead-letter/{id}",
            jobs::purge_one,
        ),
        entry(Jobs, Method::GET, "/v1/history", history::get),
        entry(Jobs, Method::GET, "/v1/queues", queues::list),
        entry(Jobs, Method::GET, "/v1/queues/{queue}", queues::get),
        entry(
            Jobs,
            Method::POST,
            "/v1/queues/{queue}/pause",
            queues::pause,
        ),
        entry(
            Jobs,
            Method::POST,
            "/v1/queues/{queue}/resume",
            queues::resume,
        ),
        entry(Jobs, Method::POST, "/v1/workflows", workflows::submit),
        entry(Jobs, Method::GET, "/v1/workflows", workflows::list),
        entry(Jobs, Method::GET, "/v1/workflows/{id}", workflows::get),
        entry(
            Jobs,
            Method::POST,
            "/v1/workflows/{id}/cancel",
            workflows::cancel,
        ),
        entry(Jobs, Method::POST, "/v1/schedules", schedules::create),
        entry(Jobs, Method::GET, "/v1/schedules", schedules::list),
        entry(Jobs, Method::GET, "/v1/schedules/{name}", schedules::get),
        entry(
            Jobs,
            Method::PUT,
            "/v1/schedules/{name}",
            schedules::replace,
        ),
        entry(
            Jobs,
            Method::DELETE,
            "/v1/schedules/{name}",
            schedules::delete,
        ),
        entry(
            Jobs,
            Method::POST,
            "/v1/schedules/{name}/pause",
            schedules::pause,
        ),
        entry(
            Jobs,
            Method::POST,
            "/v1/schedules/{name}/resume",
            schedules::resume,
        ),
        entry(Jobs, Method::GET, "/v1/stats", host_info::stats),
        entry(Jobs, Method::GET, "/v1/workers", host_info::workers),
        entry(Docs, Method::GET, "/v1/openapi.json", openapi::serve),
        entry(Metrics, Method::GET, "/metrics", metrics::metrics),
        entry(Health, Method::GET, "/healthz", healthz),
        entry(Health, Method::GET, "/readyz", readyz),
    ]
}

/// Every route the router serves, as (method, path) with path parameters
/// in `{name}` form, exactly as they appear in the OpenAPI document.
pub fn routes() -> Vec<(Method, &'static str)> {
    table()
        .into_iter()
        .map(|route| (route.method, route.path))
        .collect()
}

/// The whole HTTP app.
///
/// `/v1` needs the bearer token when one is configured, except
/// `/v1/openapi.json`; so does `/metrics` unless `metrics_public`;
/// `/healthz` and `/readyz` are public. Module uploads
/// are bounded by `max_module_bytes`, every other body by `max_body_bytes`.
/// Unknown paths are a JSON 404. The dashboard's HTML pages
/// ([`crate::dashboard`]) are merged in at `/` and beside it; they are not
/// part of the route table nor of the OpenAPI document.
pub fn router(queue: Queue, config: ApiConfig) -> Router {
    let openapi = openapi::json_for(queue.policy(), &config).into();
    let sessions = Arc::new(crate::dashboard::Sessions::new(config.token.as_deref()));
    let state = AppState {
        queue,
        config: Arc::new(config),
        openapi,
        sessions,
    };
    let mut modules = Router::new();
    let mut jobs = Router::new();
    let mut docs = Router::new();
    let mut root = Router::new();
    let mut scraped = Router::new();
    for route in table() {
        let nested = route.path.strip_prefix("/v1");
        match (route.group, nested) {
            (Group::Modules, Some(path)) => modules = modules.route(path, route.handler),
            (Group::Jobs, Some(path)) => jobs = jobs.route(path, route.handler),
            (Group::Docs, Some(path)) => docs = docs.route(path, route.handler),
            (Group::Health, None) => root = root.route(route.path, route.handler),
            (Group::Metrics, None) => scraped = scraped.route(route.path, route.handler),
            (group, _) => panic!("route {} does not belong in {group:?}", route.path),
        }
    }
    let modules = modules.layer(DefaultBodyLimit::max(state.config.max_module_bytes));
    let jobs = jobs.layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    let docs = docs.layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    let v1 = modules
        .merge(jobs)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .merge(docs)
        .fallback(not_found);
    if !state.config.metrics_public {
        scraped = scraped.route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    }
    root.merge(scraped)
        .merge(crate::dashboard::router(state.clone()))
        .nest("/v1", v1)
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// Liveness: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "The process is up.", body = HealthStatus,
        example = json!({"status": "ok"}))),
)]
async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok",
        problems: Vec::new(),
    })
}

/// Readiness: the store answers. `degraded` while a worker slot is stuck
/// (abandoned and replaced: the host still runs jobs), or while the
/// store's writes fail for a full disk or wait for another process's lock.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "The store answers: `ready`, or `degraded` with the \
            problems (a stuck worker slot, a full disk, a database locked by another process).", body = HealthStatus,
            example = json!({"status": "ready"})),
        (status = 503, description = "`not_ready`: the store is unreachable, or refuses \
            writes since an fsync of its WAL failed (until a restart).", body = ErrorBody),
    ),
)]
async fn readyz(State(state): State<AppState>) -> Response {
    match state.queue.ready().await {
        Ok(()) => {
            let mut problems = Vec::new();
            let stuck = state.queue.slots().counts().stuck;
            if stuck > 0 {
                problems.push(format!(
                    "{stuck} worker slot(s) stuck past their job's deadline (abandoned and replaced)"
                ));
            }
            problems.extend(state.queue.write_trouble());
            if !problems.is_empty() {
                return Json(HealthStatus {
                    status: "degraded",
                    problems,
                })
                .into_response();
            }
            Json(HealthStatus {
                status: "ready",
                problems: Vec::new(),
            })
            .into_response()
        }
        Err(error) => {
            // `/readyz` is public: the store's own words (paths, SQL) go
            // to the log, the answer says only what is wrong.
            tracing::error!(%error, "readiness check: the store does not answer");
            // The writer's trouble, when it has one, is what `degraded`
            // says too (a failed fsync makes the store refuse writes).
            let message = state
                .queue
                .write_trouble()
                .unwrap_or_else(|| "store unreachable (the host's log says why)".to_owned());
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message).into_response()
        }
    }
}

/// The body of `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` (healthz), `ready` or `degraded` (readyz).
    #[schema(value_type = String, examples("ok", "ready", "degraded"))]
    status: &'static str,
    /// What is wrong, when `degraded`; absent otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
}

async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.config.token {
        let given = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_credentials);
        // blake3's `Hash` compares in constant time: how much of a guess
        // matches does not show in the answer's timing.
        let matches = given
            .is_some_and(|given| blake3::hash(given.as_bytes()) == blake3::hash(token.as_bytes()));
        if !matches {
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

/// The credentials of an `Authorization` header of the `Bearer` scheme.
/// The scheme's name is case-insensitive (RFC 9110, section 11.1); one or
/// more spaces separate it from the token.
fn bearer_credentials(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start_matches(' '))
}

#[cfg(test)]
mod tests {
    use super::bearer_credentials;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR   t0k"] {
            assert_eq!(bearer_credentials(header), Some("t0k"), "{header}");
        }
        for header in ["Basic t0k", "Bearert0k", "Bearer", "t0k"] {
            assert_eq!(bearer_credentials(header), None, "{header}");
        }
    }
}
