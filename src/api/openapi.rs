//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the whole API, hand-written in
//! `openapi.json` next to this file (no token needed). Who may call each operation is not
//! written there: it is filled in from [`ROUTE_ROLES`] (the table the middleware enforces)
//! when the document is first served, as `x-roles` (and `x-partner-scope` for partner
//! routes), so the document and the enforcement cannot drift. Tests check it names every
//! route; CI runs schemathesis against it.

use std::sync::OnceLock;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use serde_json::{Value, json};

use super::ApiContext;
use super::caller::{ROUTE_ROLES, RouteRoles};

const SOURCE: &str = include_str!("openapi.json");

/// The methods an OpenAPI path item may hold; its other keys (`parameters`, `summary`, …)
/// are not operations.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// What `x-roles` says of a route that needs no token.
pub const ANYONE: &str = "anyone";

pub fn router() -> Router<ApiContext> {
    Router::new().route(
        "/v1/openapi.json",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], served()) }),
    )
}

/// The document as served: `openapi.json` with the roles of every operation.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc: Value =
            serde_json::from_str(SOURCE).expect("src/api/openapi.json is valid JSON");
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
            if let Some(r) = route_roles(method, path) {
                op.insert("x-roles".into(), json!(r.roles));
                if !r.scope.is_empty() {
                    op.insert("x-partner-scope".into(), json!(r.scope));
                }
            } else if is_public(path) {
                op.insert("x-roles".into(), json!([ANYONE]));
                op.insert("security".into(), json!([]));
            } else {
                op.insert("x-roles".into(), json!(["operator"]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Role;

    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                if METHODS.contains(&method.as_str()) {
                    out.push((method.to_uppercase(), path.clone(), op));
                }
            }
        }
        out
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        let raw: Value = serde_json::from_str(SOURCE).expect("openapi.json is JSON");
        let version = raw["openapi"].as_str().expect("an openapi field");
        assert!(version.starts_with("3.1."), "{version}");
        assert!(raw["paths"].is_object());
        assert!(raw["components"]["schemas"]["Error"].is_object());
        // The roles are the table's, never hand-written.
        for (method, path, op) in operations(&raw) {
            assert!(
                op.get("x-roles").is_none(),
                "{method} {path}: from ROUTE_ROLES"
            );
            assert!(op.get("x-partner-scope").is_none(), "{method} {path}");
        }
        assert_eq!(served().parse::<Value>().ok().as_ref(), Some(document()));
    }

    #[test]
    fn every_route_of_the_table_is_documented_with_its_roles() {
        let doc = document();
        for r in ROUTE_ROLES {
            let op = &doc["paths"][r.path][r.method.to_lowercase()];
            assert!(op.is_object(), "{} {} is not documented", r.method, r.path);
            assert_eq!(op["x-roles"], json!(r.roles), "{} {}", r.method, r.path);
            if r.roles.contains(&Role::Partner) {
                assert_eq!(op["x-partner-scope"], r.scope, "{} {}", r.method, r.path);
            } else {
                assert!(op.get("x-partner-scope").is_none());
                assert!(
                    op["responses"]["403"].is_object(),
                    "an operator route documents the 403 of a partner token: {} {}",
                    r.method,
                    r.path
                );
            }
            assert!(
                op["responses"]["401"].is_object(),
                "{} {}",
                r.method,
                r.path
            );
            if r.path.contains('{') {
                assert!(
                    op["responses"]["404"].is_object(),
                    "{} {}",
                    r.method,
                    r.path
                );
            }
            assert!(op.get("security").is_none(), "{} {}", r.method, r.path);
        }
    }

    #[test]
    fn every_documented_v1_operation_is_in_the_table() {
        for (method, path, op) in operations(document()) {
            if is_public(&path) {
                assert_eq!(op["x-roles"], json!([ANYONE]), "{method} {path}");
                assert_eq!(op["security"], json!([]), "{method} {path}");
            } else {
                assert!(
                    route_roles(&method, &path).is_some(),
                    "{method} {path} is documented but not in ROUTE_ROLES"
                );
            }
        }
    }

    #[test]
    fn the_routes_without_a_token_say_so() {
        let doc = document();
        for path in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/v1/openapi.json",
            "/console",
        ] {
            let op = &doc["paths"][path]["get"];
            assert_eq!(op["x-roles"], json!([ANYONE]), "{path}");
            assert_eq!(op["security"], json!([]), "{path}");
        }
    }

    /// Every operation has an id, and every error it documents has the one error shape.
    #[test]
    fn operations_are_well_formed() {
        let mut ids = Vec::new();
        for (method, path, op) in operations(document()) {
            let id = op["operationId"].as_str().expect("an operationId");
            assert!(!ids.contains(&id), "operationId {id} twice");
            ids.push(id);
            for (code, response) in op["responses"].as_object().expect("responses") {
                if code.starts_with('4') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{method} {path} {code}"
                    );
                }
            }
            for name in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
                let declared = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["in"] == "path" && p["name"] == name);
                assert!(declared, "{method} {path}: path parameter {name}");
            }
        }
    }
}
