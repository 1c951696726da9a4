use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiContext;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process is alive
#[utoipa::path(get, path = "/healthz", tag = "service", operation_id = "healthz",
    responses((status = 200, description = "Alive", body = Value)))]
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The database answers
///
/// Ready when the database answers a query within two seconds.
#[utoipa::path(get, path = "/readyz", tag = "service", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = Value),
        (status = 503, description = "The database is unreachable", body = Value),
    ))]
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
