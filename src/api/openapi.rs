//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the whole API, hand-written in
//! `openapi.json` next to this file (no token needed). Tests check it names every route;
//! CI runs schemathesis against it.

use axum::Router;
use axum::http::header;
use axum::routing::get;

use super::ApiContext;

const DOCUMENT: &str = include_str!("openapi.json");

pub fn router() -> Router<ApiContext> {
    Router::new().route(
        "/v1/openapi.json",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], DOCUMENT) }),
    )
}
