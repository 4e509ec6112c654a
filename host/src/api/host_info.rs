//! `/v1/stats` and `/v1/workers`: what the host is doing.

use super::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

/// `GET /v1/stats`: jobs per state and this host's worker occupancy.
pub async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let counts = state.queue.store().counts().await?;
    let mut jobs = Map::new();
    for job_state in crate::job::JobState::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| *s == job_state)
            .map_or(0, |(_, n)| *n);
        jobs.insert(job_state.as_str().to_owned(), json!(n));
    }
    let config = state.queue.config();
    Ok(Json(json!({
        "jobs": jobs,
        "workers": {
            "concurrency": config.concurrency,
            "busy": state.queue.running().len(),
        },
    })))
}

/// `GET /v1/workers`: the pool and the jobs it is running, with progress.
pub async fn workers(State(state): State<AppState>) -> Json<Value> {
    let config = state.queue.config();
    let running: Vec<Value> = state
        .queue
        .running()
        .into_iter()
        .map(|id| json!({ "job_id": id, "progress": state.queue.progress(id) }))
        .collect();
    Json(json!({
        "owner": config.owner,
        "concurrency": config.concurrency,
        "busy": running.len(),
        "lease_ms": config.lease_ms,
        "running": running,
    }))
}
