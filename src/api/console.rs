//! The operator console: one static page and its script, compiled into the binary. It talks
//! to `/v1` with the token the operator types in, so it needs no session of its own.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiContext;

const PAGE: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/app.js");
/// Only our own script and fetches to our own origin; inline styles only.
const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `/console/` and the script are served but not documented: they are the page's own.
pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .route("/console/", get(page))
        .route("/console/app.js", get(script))
}

/// The console: one HTML page (its script is /console/app.js); it asks for a token itself
#[utoipa::path(get, path = "/console", tag = "service", operation_id = "console",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        PAGE,
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}
