//! One error type for the HTTP layer; each variant is one status code and one JSON shape:
//! `{"error": {"code", "message", "field"?}}`. Internal details (SQL, stack) never leave.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::model::ValidationError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A partner token on an operator-only route.
    #[error("this route is for operators; a partner token cannot use it")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A refused batch: 422 with one entry per refused item, nothing written.
    #[error("{} of {total} notifications refused; nothing was enqueued", .items.len())]
    BatchInvalid {
        total: usize,
        items: Vec<BatchItemError>,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// One refused item of a batch: `{"index", "code", "message", "field"}`.
#[derive(Debug, serde::Serialize)]
pub struct BatchItemError {
    pub index: usize,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl BatchItemError {
    /// Any refusal of one item, as the batch reports it.
    pub fn new(index: usize, e: ApiError) -> Self {
        let (code, message, field) = match e {
            ApiError::Invalid(v) => ("validation_failed", v.message, Some(v.field)),
            ApiError::NotFound(what) => ("not_found", format!("{what} not found"), None),
            ApiError::BadRequest(m) => ("bad_request", m, None),
            ApiError::Conflict(m) => ("conflict", m, None),
            other => ("internal", other.to_string(), None),
        };
        Self {
            index,
            code,
            message,
            field,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Invalid(v) => ApiError::Invalid(v),
            // SQLSTATE class 22 (data exception): a value PostgreSQL cannot store, such as a
            // NUL character in text or JSON. The client's input, so a 422, not a 500.
            StoreError::Database(sqlx::Error::Database(db))
                if db.code().is_some_and(|c| c.starts_with("22")) =>
            {
                ApiError::Invalid(ValidationError::new(
                    "body",
                    "contains a value that cannot be stored (for example a NUL character \\u0000)",
                ))
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Invalid(_) | ApiError::BatchInvalid { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let mut error = json!({ "code": code, "message": self.to_string() });
        match &self {
            ApiError::Invalid(v) => error["field"] = json!(v.field),
            ApiError::BatchInvalid { items, .. } => error["items"] = json!(items),
            _ => {}
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
