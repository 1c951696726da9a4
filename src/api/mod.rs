//! The HTTP API: one file per resource, one [`ApiContext`], one [`ApiError`]. Routes are
//! registered with their OpenAPI documentation (`utoipa_axum`); see [`openapi`].

mod audit;
mod caller;
mod console;
mod deliveries;
mod endpoint_body;
mod endpoint_tests;
mod endpoints;
mod enqueue_group;
mod error;
mod extract;
mod health;
mod me;
mod metrics;
mod notifications;
mod openapi;
mod partners;
mod schema;
mod stats;
mod tokens;

use std::sync::Arc;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::store::Db;
pub use caller::{Caller, ROUTE_ROLES, Role, RouteRoles};
pub use enqueue_group::EnqueueGroup;
pub use error::{ApiError, BatchItemError, ErrorBody};
pub use metrics::standalone as metrics_router;

/// Largest request body accepted (a batch of 1,000 notifications fits).
const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// What every handler shares, behind one `Arc`: axum clones the state for each request
/// (several times, through the middleware), and a clone of these fields copied the AES key
/// schedule and the operator's token onto the heap and zeroized them again on drop, per
/// request (4.6 % of the API process's CPU in `ingest`, perf). A clone is now one atomic
/// increment, and the secrets exist once.
#[derive(Clone)]
pub struct ApiContext(Arc<ApiState>);

impl ApiContext {
    pub fn new(state: ApiState) -> Self {
        Self(Arc::new(state))
    }
}

impl std::ops::Deref for ApiContext {
    type Target = ApiState;
    fn deref(&self) -> &ApiState {
        &self.0
    }
}

pub struct ApiState {
    pub pool: Db,
    pub settings: Arc<Settings>,
    pub secrets: SecretBox,
    /// The operator's token; a `SecretString` so it is zeroized on drop and never printed.
    pub api_token: secrecy::SecretString,
    /// Sends test callbacks (`POST /v1/endpoints/{id}/test`) from the API process.
    pub sender: crate::outbound::CallbackSender,
    /// The group committer of `POST /v1/notifications`.
    pub enqueuer: EnqueueGroup,
}

/// Every `/v1` route, each registered with its `#[utoipa::path]` documentation.
fn v1_routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .merge(partners::router())
        .merge(endpoints::router())
        .merge(notifications::router())
        .merge(deliveries::router())
        .merge(me::router())
        .merge(tokens::router())
        .merge(audit::router())
        .merge(stats::router())
}

/// The routes outside `/v1` that need no token (but `/metrics`, which may live elsewhere).
fn service_routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(openapi::router())
        .merge(console::router())
}

/// Every route the API may serve, over `base`: what the OpenAPI document is made of.
fn documented_routes(base: OpenApiRouter<ApiContext>) -> OpenApiRouter<ApiContext> {
    base.nest("/v1", v1_routes())
        .merge(service_routes())
        .merge(metrics::router())
}

pub fn router(ctx: ApiContext) -> Router {
    let (v1, _) = v1_routes().split_for_parts();
    let v1 = v1.route_layer(axum::middleware::from_fn_with_state(
        ctx.clone(),
        caller::require_token,
    ));
    // /metrics lives here unless it has an address of its own (`metrics_listen`).
    let metrics = match ctx.settings.metrics_address() {
        Ok(Some(_)) => Router::new(),
        _ => metrics::router().into(),
    };
    Router::new()
        .nest("/v1", v1)
        .merge(service_routes())
        .merge(metrics)
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        // Outside the limit: its bare 413 becomes the API's JSON error.
        .layer(axum::middleware::map_response(json_413))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(ctx)
}

/// Whatever answered 413 without a JSON body (the body limit layer, a raw `Bytes`
/// extractor), the client gets the API's error shape.
async fn json_413(response: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return ApiError::TooLarge(BODY_LIMIT).into_response();
    }
    response
}
