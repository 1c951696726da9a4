use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::ApiContext;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
}

/// Ready when the database answers a query within two seconds.
async fn readyz(State(ctx): State<ApiContext>) -> (StatusCode, Json<Value>) {
    let ping = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        crate::store::ping(&ctx.pool),
    )
    .await;
    match ping {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": "ok" })),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": "unreachable" })),
        ),
    }
}
