//! `/v1/modules`: upload, list, get, delete.

use super::error::ErrorBody;
use super::openapi::Unauthorized;
use super::views::ModuleView;
use super::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Query of an upload.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// A name for the module; submitting jobs by name picks the newest
    /// module with that name.
    name: Option<String>,
    /// Grants of this host's config to give it, comma-separated
    /// (`payments,email`): what its jobs may reach beyond the sandbox. It
    /// replaces what the module had; absent, it keeps them.
    grants: Option<String>,
}

// Documentation only: the upload handler reads its body as `Bytes`.
/// A module's raw wasm bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // Never built: it only describes the body.
pub struct WasmBytes(Vec<u8>);

/// Upload a module.
///
/// The body is the raw wasm bytes; the engine validates them. The same
/// bytes again return the existing record (a new `name` is added to it).
#[utoipa::path(
    post,
    path = "/v1/modules",
    operation_id = "upload_module",
    tag = "modules",
    params(UploadQuery),
    request_body(
        description = "The module's raw bytes: a `wasmjob:job` component or a WASI preview 1 \
                       command module. Any content type is accepted.",
        content(
            (inline(WasmBytes) = "application/wasm"),
            (inline(WasmBytes) = "application/octet-stream"),
        ),
    ),
    responses(
        (status = 201, description = "Stored (or already stored: uploads are idempotent by \
            hash, and a new name is added).", body = ModuleView),
        (status = 400, description = "`invalid_module`: the engine refused the bytes; \
            `invalid_request`: empty body, or a grant this host does not have \
            (`grants: ...`); `invalid_query`: unknown query parameter.",
            body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 413, description = "`payload_too_large`: larger than the server's \
            `engine.max_module_bytes`.", body = ErrorBody),
        (status = 503, description = "`busy`: the host already compiles as many modules as \
            `engine.max_concurrent_compiles` allows, or this compile ran past \
            `engine.compile_timeout_ms`; nothing is stored. Retry after the `Retry-After` \
            header's seconds.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    ),
    security((), ("bearer" = [])),
)]
pub async fn upload(
    State(state): State<AppState>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModuleView>), ApiError> {
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
    let grants = query.grants.as_deref().map(grant_list);
    if let Some(grants) = &grants {
        state
            .queue
            .grants()
            .check(grants)
            .map_err(|why| ApiError::invalid(format!("grants: {why}")))?;
    }
    let mut record = state.queue.upload(body.to_vec(), query.name).await?;
    if let Some(grants) = grants {
        record = state.queue.set_module_grants(&record.hash, grants).await?;
    }
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// `a,b, c` → the names.
fn grant_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A module's grants, as set.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetGrants {
    /// Names of grants in this host's config; `[]` takes every grant away.
    grants: Vec<String>,
}

/// Set a module's grants: what its jobs may reach beyond the sandbox.
///
/// Replaces the module's grants; attempts that start afterwards get them.
#[utoipa::path(
    put,
    path = "/v1/modules/{module}/grants",
    operation_id = "set_module_grants",
    tag = "modules",
    params(("module" = String, Path,
        description = "The module's blake3 hash (hex) or name (the newest with that name).")),
    request_body = SetGrants,
    responses(
        (status = 200, description = "The module, with its grants.", body = ModuleView),
        (status = 400, description = "`invalid_json`: malformed or unknown field; \
            `invalid_request`: a grant this host does not have (`grants: ...`).",
            body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no module with that hash or name.",
            body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the request does not say \
            `Content-Type: application/json`.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn set_grants(
    State(state): State<AppState>,
    Path(module): Path<String>,
    body: Result<Json<SetGrants>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ModuleView>, ApiError> {
    let Json(body) = body?;
    let record = state.queue.set_module_grants(&module, body.grants).await?;
    Ok(Json(record.into()))
}

/// A grant of this host, without any secret's value.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    /// Its name.
    name: String,
    /// Origins its modules' jobs may send HTTP requests to (names resolving
    /// to public addresses only).
    http: Vec<String>,
    /// Origins whose names may resolve to internal addresses.
    http_internal: Vec<String>,
    /// Names of the secrets it gives.
    secrets: Vec<String>,
    /// Names of the configuration values it gives.
    config: Vec<String>,
}

/// This host's grants.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    /// The grants, by name.
    grants: Vec<GrantView>,
}

/// List this host's grants (secrets by name only).
#[utoipa::path(
    get,
    path = "/v1/grants",
    operation_id = "list_grants",
    tag = "modules",
    responses(
        (status = 200, description = "Every grant of this host's config, by name.",
            body = GrantList),
        (status = 401, response = Unauthorized),
    ),
    security((), ("bearer" = [])),
)]
pub async fn grants(State(state): State<AppState>) -> Json<GrantList> {
    let grants = state
        .queue
        .grants()
        .iter()
        .map(|(name, grant)| {
            let origins = |internal: bool| {
                grant
                    .http
                    .iter()
                    .filter(|(_, i)| *i == internal)
                    .map(|(origin, _)| origin.to_string())
                    .collect()
            };
            GrantView {
                name: name.clone(),
                http: origins(false),
                http_internal: origins(true),
                secrets: grant.secrets.clone(),
                config: grant.config.clone(),
            }
        })
        .collect();
    Json(GrantList { grants })
}

/// Every module, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModuleList {
    /// The modules.
    modules: Vec<ModuleView>,
}

/// List every module, newest first.
#[utoipa::path(
    get,
    path = "/v1/modules",
    operation_id = "list_modules",
    tag = "modules",
    responses(
        (status = 200, description = "Every module, newest first.", body = ModuleList),
        (status = 401, response = Unauthorized),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<ModuleList>, ApiError> {
    let modules = state.queue.modules().await?;
    Ok(Json(ModuleList {
        modules: modules.into_iter().map(ModuleView::from).collect(),
    }))
}

/// Get a module by hash or name.
#[utoipa::path(
    get,
    path = "/v1/modules/{module}",
    operation_id = "get_module",
    tag = "modules",
    params(("module" = String, Path,
        description = "The module's blake3 hash (hex) or name (the newest with that name).")),
    responses(
        (status = 200, description = "The module.", body = ModuleView),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no module with that hash or name.",
            body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    Path(module): Path<String>,
) -> Result<Json<ModuleView>, ApiError> {
    Ok(Json(state.queue.module(&module).await?.into()))
}

/// Download a module's wasm bytes (to run it locally: `wasmjob replay`).
#[utoipa::path(
    get,
    path = "/v1/modules/{module}/wasm",
    operation_id = "get_module_wasm",
    tag = "modules",
    params(("module" = String, Path,
        description = "The module's blake3 hash (hex) or name (the newest with that name).")),
    responses(
        (status = 200, description = "The bytes, as uploaded.",
            content_type = "application/wasm", body = inline(WasmBytes)),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no module with that hash or name.",
            body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn wasm(
    State(state): State<AppState>,
    Path(module): Path<String>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let bytes = state.queue.module_wasm(&module).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/wasm")],
        bytes,
    ))
}

/// Delete a module.
///
/// Refused (409) while jobs that are not final still need it.
#[utoipa::path(
    delete,
    path = "/v1/modules/{module}",
    operation_id = "delete_module",
    tag = "modules",
    params(("module" = String, Path,
        description = "The module's blake3 hash (hex) or name (the newest with that name).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no module with that hash or name.",
            body = ErrorBody),
        (status = 409, description = "`conflict`: jobs that are not final still need it.",
            body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(module): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.queue.delete_module(&module).await?;
    Ok(StatusCode::NO_CONTENT)
}
