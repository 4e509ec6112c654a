//! `GET /metrics`: this host's metrics in the Prometheus text format.

use super::openapi::Unauthorized;
use super::{ApiError, AppState};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::ToSchema;

/// The Prometheus text exposition (format 0.0.4).
#[derive(ToSchema)]
#[schema(value_type = String)]
#[allow(dead_code)] // Never built: it only describes the body.
pub struct Exposition(String);

/// This host's metrics, for Prometheus to scrape.
///
/// Jobs by queue and state and each queue's oldest wait are read from the
/// store at the scrape; counters and histograms (submissions, outcomes by
/// failure kind, queue wait, run time, fuel, peak memory, lease rescues,
/// store commits) count what this host did since it started. Needs the
/// token like `/v1`, unless the operator set `metrics.public`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "host",
    responses(
        (status = 200, description = "The metrics.",
            content_type = "text/plain; version=0.0.4; charset=utf-8", body = inline(Exposition)),
        (status = 401, response = Unauthorized),
    ),
    security((), ("bearer" = [])),
)]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = state.queue.render_metrics().await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text))
}
