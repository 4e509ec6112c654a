//! `/v1/modules`: upload, list, get, delete.

use super::{ApiError, AppState};
use crate::store::ModuleRecord;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

/// Query of an upload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    name: Option<String>,
}

/// `POST /v1/modules[?name=]` with the raw wasm bytes as the body.
pub async fn upload(
    State(state): State<AppState>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModuleRecord>), ApiError> {
    let Query(query) = query?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "module is larger than the limit of {} bytes",
                    state.config.max_module_bytes
                ),
            )
        } else {
            ApiError::invalid(rejection.body_text())
        }
    })?;
    if body.is_empty() {
        return Err(ApiError::invalid(
            "empty body: send the module's wasm bytes",
        ));
    }
    let record = state.queue.upload(body.to_vec(), query.name).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// `GET /v1/modules`.
pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let modules = state.queue.store().modules().await?;
    Ok(Json(serde_json::json!({ "modules": modules })))
}

/// `GET /v1/modules/{hash or name}`.
pub async fn get(
    State(state): State<AppState>,
    Path(module): Path<String>,
) -> Result<Json<ModuleRecord>, ApiError> {
    let record = state
        .queue
        .store()
        .module(&module)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("module `{module}` not found")))?;
    Ok(Json(record))
}

/// `DELETE /v1/modules/{hash or name}`: refused (409) while jobs need it.
pub async fn delete(
    State(state): State<AppState>,
    Path(module): Path<String>,
) -> Result<StatusCode, ApiError> {
    let record = state
        .queue
        .store()
        .module(&module)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("module `{module}` not found")))?;
    state.queue.store().delete_module(&record.hash).await?;
    if let Ok(hash) = blake3::Hash::from_hex(&record.hash) {
        state.queue.engine().unload(&hash);
    }
    Ok(StatusCode::NO_CONTENT)
}
