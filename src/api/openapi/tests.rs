use super::*;

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

/// Every operation of the hand-written document this one replaced, with its operationId
/// and the status codes it documented: none may go missing (more are welcome).
const BEFORE: &str = "\
GET /v1/me me 200 401
GET /v1/partners listPartners 200 401 403
POST /v1/partners createPartner 201 400 401 403 413 422
GET /v1/partners/{id} getPartner 200 401 404
PATCH /v1/partners/{id} changePartner 200 400 401 403 404 413 422
DELETE /v1/partners/{id} deletePartner 204 401 403 404
GET /v1/partners/{id}/tokens listTokens 200 401 403 404
POST /v1/partners/{id}/tokens createToken 201 401 403 404
DELETE /v1/partners/{id}/tokens/{token_id} revokeToken 200 401 403 404
GET /v1/partners/{id}/endpoints listEndpoints 200 401 404
POST /v1/partners/{id}/endpoints createEndpoint 201 400 401 404 413 422
GET /v1/endpoints/{id} getEndpoint 200 401 404
PATCH /v1/endpoints/{id} changeEndpoint 200 400 401 404 413 422
DELETE /v1/endpoints/{id} deleteEndpoint 204 401 404
POST /v1/endpoints/{id}/test testEndpoint 200 400 401 404 413 422
GET /v1/endpoints/{id}/tests listEndpointTests 200 401 404
POST /v1/notifications enqueue 200 202 400 401 403 409 413 422
POST /v1/notifications/batch enqueueBatch 202 400 401 403 413 422
GET /v1/notifications/{id} getNotification 200 401 404
GET /v1/deliveries listDeliveries 200 401 422
POST /v1/deliveries/replay replayMatching 202 400 401 403 413 422
GET /v1/deliveries/{id} getDelivery 200 401 404
POST /v1/deliveries/{id}/replay replayDelivery 202 401 404 409
POST /v1/deliveries/{id}/cancel cancelDelivery 200 401 404 409
GET /v1/audit listAudit 200 401 403 422
GET /v1/stats/timeline statsTimeline 200 401 403 422
GET /v1/openapi.json openapi 200
GET /healthz healthz 200
GET /readyz readyz 200 503
GET /metrics metrics 200
GET /console console 200
";

/// The schema names of the hand-written document (clients may have generated code from them).
const SCHEMAS_BEFORE: [&str; 24] = [
    "Error",
    "PartnerBody",
    "Partner",
    "Auth",
    "EndpointBody",
    "EndpointHealth",
    "Endpoint",
    "NewNotification",
    "DeliveryRef",
    "DeliveryState",
    "Enqueued",
    "Notification",
    "Delivery",
    "Attempt",
    "DeliveryDetail",
    "ReplayFilter",
    "PartnerPatch",
    "PartnerToken",
    "NewPartnerToken",
    "Me",
    "TestBody",
    "TestResult",
    "EndpointTest",
    "AuditRecord",
];

#[test]
fn the_document_is_openapi_3_1() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("an openapi field");
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(doc["info"]["title"], "callbackd");
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );
    assert_eq!(served().parse::<Value>().ok().as_ref(), Some(document()));
}

/// Generating the document lost nothing the hand-written one had: every path, method,
/// operationId, status code and schema name is still there.
#[test]
fn everything_the_hand_written_document_had_is_still_there() {
    let doc = document();
    let mut missing = Vec::new();
    for line in BEFORE.lines() {
        let mut words = line.split(' ');
        let (method, path, id) = (
            words.next().unwrap().to_lowercase(),
            words.next().unwrap(),
            words.next().unwrap(),
        );
        let op = &doc["paths"][path][&method];
        if op["operationId"] != id {
            missing.push(format!("{line}: operationId {}", op["operationId"]));
        }
        for status in words {
            if !op["responses"][status].is_object() {
                missing.push(format!("{method} {path} {status}"));
            }
        }
    }
    for name in SCHEMAS_BEFORE {
        if !doc["components"]["schemas"][name].is_object() {
            missing.push(format!("schema {name}"));
        }
    }
    assert!(missing.is_empty(), "missing: {missing:#?}");
    // And nothing new went undocumented in BEFORE's list without a decision.
    assert_eq!(operations(doc).len(), BEFORE.lines().count());
}

/// Every `$ref` points at a schema the document holds.
#[test]
fn every_reference_resolves() {
    fn walk(v: &Value, doc: &Value, bad: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    let name = r.trim_start_matches("#/components/schemas/");
                    if !doc["components"]["schemas"][name].is_object() {
                        bad.push(r.clone());
                    }
                }
                o.values().for_each(|v| walk(v, doc, bad));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, doc, bad)),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    walk(document(), document(), &mut bad);
    assert!(bad.is_empty(), "{bad:?}");
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
