//! The API's error type: every failure becomes a status code and a JSON body
//! `{"error": {"code", "message", "details"}}` whose message says what to do.
//!
//! Handlers return `Result<_, ApiError>`; nothing here may panic or leak internals beyond the
//! message of a storage error.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sightline_core::{HttpError, IngestError, LineError};
use sightline_schema::ValidationError;
use sightline_store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    InvalidEvents(Vec<LineError>),
    NotFound(String),
    PayloadTooLarge(usize),
    QueueFull,
    Unauthorized,
    Forbidden(String),
    Unavailable(String),
    Internal(String),
    /// An endpoint source refused the request (400, 413, 415, with its own code).
    Source(HttpError),
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::BadRequest(e.0)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::QueueFull { .. } => ApiError::QueueFull,
            StoreError::Closed => ApiError::Unavailable("the hub is shutting down".into()),
            StoreError::BadCursor(_) => ApiError::BadRequest(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::QueueFull { .. } => ApiError::QueueFull,
            IngestError::Closed => ApiError::Unavailable("the hub is shutting down".into()),
            IngestError::Invalid(lines) => ApiError::InvalidEvents(lines),
            IngestError::Store(e) => e.into(),
        }
    }
}

impl From<HttpError> for ApiError {
    fn from(e: HttpError) -> Self {
        ApiError::Source(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m, None),
            ApiError::InvalidEvents(lines) => {
                // One wording for every batch refused whole, whichever path it came by.
                let e = HttpError::invalid(lines);
                (
                    StatusCode::BAD_REQUEST,
                    e.code,
                    e.message,
                    Some(json!(e.lines)),
                )
            }
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m, None),
            ApiError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is over the {limit}-byte limit; send smaller batches"),
                None,
            ),
            ApiError::QueueFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                "the write queue is full; nothing was stored, retry after the Retry-After delay"
                    .into(),
                None,
            ),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid token is required: send `Authorization: Bearer <token>`".into(),
                None,
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m, None),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m, None),
            ApiError::Internal(m) => {
                tracing::error!("answered 500: {m}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", m, None)
            }
            ApiError::Source(e) => (
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
                e.code,
                e.message,
                (!e.lines.is_empty()).then(|| json!(e.lines)),
            ),
        };
        if status.is_client_error() {
            tracing::debug!(status = status.as_u16(), code, "refused: {message}");
        }
        let body = json!({"error": {"code": code, "message": message, "details": details}});
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
