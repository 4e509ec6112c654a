//! The API's one error type and its JSON body:
//! `{ "error": { "code": "...", "message": "..." } }`.

use crate::queue;
use crate::store;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header (a 503 the client should retry).
    retry_after: Option<u32>,
}

/// When to retry an upload refused because the host compiles as many
/// modules as it may.
const RETRY_COMPILE_SECS: u32 = 1;

/// When to retry a write refused because the disk was full or the database
/// locked by another process.
const RETRY_STORE_SECS: u32 = 5;

impl ApiError {
    /// A client error with a status, a stable code and a message naming the
    /// problem.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// With a `Retry-After` header of `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Status, code and message.
    pub fn parts(self) -> (StatusCode, &'static str, String) {
        (self.status, self.code, self.message)
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn internal(message: impl std::fmt::Display) -> Self {
        // Server errors are logged in full and answered generically.
        tracing::error!(error = %message, "internal error answering a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "job 42 not found"}}))]
pub struct ErrorBody {
    /// What went wrong.
    error: ErrorDetail,
}

/// A stable code and a message naming the problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_json`, `invalid_request`,
    /// `invalid_module`, `invalid_query`, `not_found`, `conflict`,
    /// `payload_too_large`, `unsupported_media_type`, `unauthorized`,
    /// `busy`, `storage_full` (507), `store_busy`, `store_unavailable`, `not_ready`,
    /// `internal`.
    #[schema(value_type = String, example = "not_found")]
    code: &'static str,
    /// For people: names the field or the problem.
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<store::Error> for ApiError {
    fn from(error: store::Error) -> Self {
        match error {
            store::Error::NotFound(_) => ApiError::not_found(error.to_string()),
            store::Error::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            store::Error::BadReference(_) => ApiError::invalid(error.to_string()),
            store::Error::TooLarge(_) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                error.to_string(),
            ),
            // Nothing was written; the same request succeeds once the
            // operator frees space. The message names no path.
            store::Error::Full(_) => {
                tracing::warn!(%error, "a write was refused: storage full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    "the host's storage is full: nothing was stored; retry once space is freed",
                )
                .retry_after(RETRY_STORE_SECS)
            }
            store::Error::Busy(_) => {
                tracing::warn!(%error, "a write was refused: the database stayed locked");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_busy",
                    "the database is locked by another process: nothing was stored; retry later",
                )
                .retry_after(RETRY_STORE_SECS)
            }
            store::Error::Unavailable(_) => {
                tracing::warn!(%error, "a request was refused: the database is unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the database cannot be reached: nothing was stored; retry later",
                )
                .retry_after(RETRY_STORE_SECS)
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<queue::Error> for ApiError {
    fn from(error: queue::Error) -> Self {
        match error {
            // Refused for the host's load, not for the bytes: come back.
            queue::Error::InvalidModule(e) if e.is_transient() => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string())
                    .retry_after(RETRY_COMPILE_SECS)
            }
            queue::Error::InvalidModule(e) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_module", e.to_string())
            }
            queue::Error::Invalid(invalid) => ApiError::invalid(invalid.to_string()),
            queue::Error::InvalidJob { invalid, .. } => ApiError::invalid(invalid.to_string()),
            queue::Error::UnknownModule { reference, .. } => {
                ApiError::not_found(format!("module: no module `{reference}`: upload it first"))
            }
            queue::Error::Store(e) => e.into(),
            queue::Error::Internal(message) => ApiError::internal(message),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            return ApiError::new(
                status,
                "unsupported_media_type",
                "the body must be JSON, sent with the header `Content-Type: application/json` \
                 (with curl: -H 'Content-Type: application/json')",
            );
        }
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "invalid_json",
        };
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            rejection.body_text(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a retry later can cure is a 503 or 507 with `Retry-After`,
    /// never a 500.
    #[test]
    fn store_errors_a_retry_can_cure_are_not_internal() {
        let cases = [
            (store::Error::Full("disk".into()), 507, "storage_full"),
            (store::Error::Busy("lock".into()), 503, "store_busy"),
            (
                store::Error::Unavailable("gone".into()),
                503,
                "store_unavailable",
            ),
            (store::Error::Database("bug".into()), 500, "internal"),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status.as_u16(), api.code), (status, code));
            assert_eq!(api.retry_after.is_some(), status != 500, "{code}");
        }
    }
}
