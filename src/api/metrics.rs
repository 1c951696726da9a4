//! `GET /metrics`: with the API, or alone on `metrics_listen` so it need not be exposed
//! where the API is.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiContext;
use crate::store::Db;

/// The route on the API's router (when `metrics_listen` is empty).
pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus metrics
#[utoipa::path(get, path = "/metrics", tag = "service", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
async fn metrics(State(ctx): State<ApiContext>) -> impl IntoResponse {
    exposition(&ctx.pool).await
}

/// The whole router of the separate metrics address: `/metrics` and nothing else.
pub fn standalone(pool: Db) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(pool): State<Db>| async move { exposition(&pool).await }),
        )
        .with_state(pool)
}

async fn exposition(pool: &Db) -> impl IntoResponse + use<> {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::prometheus::render(pool).await,
    )
}
