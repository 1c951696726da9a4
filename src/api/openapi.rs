//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the whole API (no token needed),
//! generated from the code: every route is registered through `utoipa_axum`, so a route
//! and its `#[utoipa::path]` are one thing, and the schemas are derived from the types the
//! handlers take and answer (`#[derive(ToSchema)]`, doc comments as descriptions).
//!
//! What every route shares is added here once, from the same sources the server uses:
//! - who may call each operation, from [`ROUTE_ROLES`] (the table the middleware
//!   enforces), as `x-roles` (and `x-partner-scope` for partner routes);
//! - the errors the shared layers answer: 401 on every route that needs a token (the
//!   middleware), 403 on operator-only routes, 404 on routes with an id in the path,
//!   400/413/422 on routes that take a JSON body (the body extractor and the size limit)
//!   and 422 on routes that take query parameters (`QueryPairs` refuses unknown or
//!   malformed ones).
//!
//! Tests check that the document names every route of the table, and that it still has
//! every operation and status code the hand-written document of before had; CI runs
//! schemathesis against it (responses must match their schemas).

use std::sync::OnceLock;

use axum::http::header;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiContext;
use super::caller::{ROUTE_ROLES, Role, RouteRoles};

/// The methods an OpenAPI path item may hold; its other keys (`parameters`, `summary`, …)
/// are not operations.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// What `x-roles` says of a route that needs no token.
pub const ANYONE: &str = "anyone";

const DESCRIPTION: &str = "Webhook (callback) sender: partners, endpoints, notifications and deliveries. Every /v1 route but this document needs `Authorization: Bearer <token>`: the operator token (`CALLBACKD_API_TOKEN`, every route) or a partner token (`cbk_…`, only the routes whose `x-roles` name `partner`, and only that partner's things; anything else of another partner is a 404). Each operation states who may call it in `x-roles` (and, for partner routes, what the partner reaches in `x-partner-scope`), filled in from the route table the server enforces. Errors are `{\"error\": {\"code\", \"message\", \"field\"?}}`.";

/// The parts of the document no route states: its info, tags and security scheme.
#[derive(OpenApi)]
#[openapi(
    info(title = "callbackd"),
    servers((url = "/")),
    security(("bearer" = [])),
    modifiers(&BearerScheme),
    components(schemas(super::ErrorBody)),
    tags(
        (name = "partners"),
        (name = "tokens", description = "partner tokens and who a token is"),
        (name = "endpoints"),
        (name = "notifications"),
        (name = "deliveries"),
        (name = "audit"),
        (name = "stats", description = "What the console's charts draw"),
        (name = "service", description = "no token needed"),
    )
)]
struct ApiDoc;

/// The `bearer` security scheme every `/v1` operation names.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(openapi))
}

/// This document
#[utoipa::path(get, path = "/v1/openapi.json", tag = "service", operation_id = "openapi",
    responses((status = 200, description = "OpenAPI 3.1", body = Value)))]
async fn openapi() -> impl axum::response::IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], served())
}

/// The document as served: generated from the routes, with the roles of every operation
/// and the errors the shared layers answer.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut api =
            super::documented_routes(OpenApiRouter::with_openapi(ApiDoc::openapi())).into_openapi();
        api.info.description = Some(DESCRIPTION.into());
        let mut doc = serde_json::to_value(&api).expect("the OpenAPI document serializes");
        add_roles(&mut doc);
        doc
    })
}

fn served() -> &'static str {
    static SERVED: OnceLock<String> = OnceLock::new();
    SERVED.get_or_init(|| document().to_string())
}

/// Whether `path` is served without a token: everything outside `/v1`, and this document.
pub fn is_public(path: &str) -> bool {
    !path.starts_with("/v1/") || path == "/v1/openapi.json"
}

/// The [`ROUTE_ROLES`] entry of an operation (`method` in any case).
pub fn route_roles(method: &str, path: &str) -> Option<&'static RouteRoles> {
    ROUTE_ROLES
        .iter()
        .find(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
}

/// Sets `x-roles` on every operation: from [`ROUTE_ROLES`] for `/v1`, with the partner's
/// scope as `x-partner-scope`; `["anyone"]` and no security for the routes that need no
/// token. A `/v1` route missing from the table is operator-only, as the middleware has it.
/// Adds the errors of the shared layers (see the module's documentation).
fn add_roles(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            if is_public(path) {
                op.insert("x-roles".into(), json!([ANYONE]));
                op.insert("security".into(), json!([]));
                continue;
            }
            let roles = route_roles(method, path).map_or(&[Role::Operator][..], |r| r.roles);
            op.insert("x-roles".into(), json!(roles));
            if let Some(r) = route_roles(method, path)
                && !r.scope.is_empty()
            {
                op.insert("x-partner-scope".into(), json!(r.scope));
            }
            let takes_body = op.contains_key("requestBody");
            let takes_query = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses is an object");
            add_error(responses, "401", "Missing or invalid bearer token");
            if !roles.contains(&Role::Partner) {
                add_error(
                    responses,
                    "403",
                    "A partner token on a route for operators only",
                );
            }
            if path.contains('{') {
                add_error(
                    responses,
                    "404",
                    "Not found (for a partner token: or not its own)",
                );
            }
            if takes_body {
                add_error(responses, "400", "Malformed JSON or request");
                add_error(responses, "413", "Request body larger than 8 MiB");
                add_error(responses, "422", "A field is invalid (named in `field`)");
            }
            if takes_query {
                add_error(
                    responses,
                    "422",
                    "A query parameter is invalid (named in `field`)",
                );
            }
        }
    }
}

/// Documents an error answer with the one error shape, unless the route states its own.
fn add_error(responses: &mut Map<String, Value>, status: &str, description: &str) {
    responses.entry(status).or_insert_with(|| {
        serde_json::to_value(super::schema::error_response(description))
            .expect("a response serializes")
    });
}

#[cfg(test)]
mod tests;
