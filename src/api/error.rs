//! One error type for the HTTP layer; each variant is one status code and one JSON shape:
//! `{"error": {"code", "message", "field"?}}`. Internal details (SQL, stack) never leave.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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
    /// The database is down, restarting or out of connections: 503, worth retrying.
    #[error("{}", UNAVAILABLE)]
    Unavailable(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

const UNAVAILABLE: &str = "the database is unavailable; retry shortly";

/// How long a client is told to wait before retrying a 503 (`Retry-After`, seconds).
const RETRY_AFTER_S: &str = "1";

/// Every error: 400 malformed JSON or request, 401 no/wrong/revoked token, 403 a partner
/// token on an operator route, 404 unknown (or, for a partner, not its own), 409 state
/// conflict, 413 body too large, 422 invalid field (named in `field`; a refused batch lists
/// its refused items in `items`), 503 the database is unavailable (retry after
/// `Retry-After`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    #[schema(value_type = String, example = "validation_failed", pattern = "^[a-z_]+$")]
    pub code: &'static str,
    pub message: String,
    /// The field at fault (a JSON path such as `auth.token`), on a 422.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The refused items of a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<BatchItemError>>,
}

/// One refused item of a batch: `{"index", "code", "message", "field"}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BatchItemError {
    pub index: usize,
    #[schema(value_type = String)]
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
            StoreError::Database(e) if crate::store::is_transient(&e) => ApiError::Unavailable(e),
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
            ApiError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            // A handler that wrapped a transient database error itself still answers 503.
            ApiError::Internal(e) if transient_cause(e) => {
                tracing::warn!(error = %format!("{e:#}"), "database unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        // Never the underlying error's text: it may name hosts or SQL.
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            UNAVAILABLE.to_string()
        } else {
            self.to_string()
        };
        let (field, items) = match self {
            ApiError::Invalid(v) => (Some(v.field), None),
            ApiError::BatchInvalid { items, .. } => (None, Some(items)),
            _ => (None, None),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                field,
                items,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_S),
            );
        }
        response
    }
}

/// True when an internal error was caused by a transient database error somewhere down
/// its chain (a `sqlx::Error` or a `StoreError` wrapping one).
fn transient_cause(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .or_else(|| match cause.downcast_ref::<StoreError>() {
                Some(StoreError::Database(db)) => Some(db),
                _ => None,
            })
            .is_some_and(crate::store::is_transient)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn answer(e: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, retry_after, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn an_unreachable_database_is_a_503_with_the_api_error_shape() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for e in [
            ApiError::from(sqlx::Error::PoolTimedOut),
            ApiError::from(StoreError::Database(sqlx::Error::Io(io))),
            // A handler that wrapped the database error into an internal one itself.
            ApiError::Internal(anyhow::Error::from(sqlx::Error::PoolTimedOut).context("saving")),
        ] {
            let (status, retry_after, body) = answer(e).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(retry_after.as_deref(), Some("1"));
            assert_eq!(
                body,
                json!({"error": {"code": "database_unavailable",
                                  "message": "the database is unavailable; retry shortly"}})
            );
        }
    }

    #[tokio::test]
    async fn other_database_errors_stay_internal_and_say_nothing_of_their_cause() {
        let (status, retry_after, body) = answer(ApiError::from(sqlx::Error::Protocol(
            "secret detail".into(),
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after, None);
        assert_eq!(
            body,
            json!({"error": {"code": "internal", "message": "internal error"}})
        );
    }
}
