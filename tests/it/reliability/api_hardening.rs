//! The API refuses what a buggy or hostile client sends, cleanly: body size, JSON depth,
//! values the database cannot store; errors never show internals; CORS is closed; the
//! OpenAPI document is served.

use serde_json::{Value, json};

use callbackd::api::{ROUTE_ROLES, Role};

use crate::support::app::spawn_app;

/// Words that would betray internals in an error message.
const INTERNALS: [&str; 10] = [
    "sqlx",
    "SELECT",
    "INSERT",
    "postgres",
    "panicked",
    "src/",
    "stack backtrace",
    "SQLSTATE",
    "error returned from database",
    "RUST_BACKTRACE",
];

fn assert_clean(status: u16, text: &str) {
    assert!(status < 500, "{status}: {text}");
    let v: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("JSON error: {text}"));
    assert!(v["error"]["code"].is_string(), "{text}");
    assert!(v["error"]["message"].is_string(), "{text}");
    for word in INTERNALS {
        assert!(!text.contains(word), "{word:?} leaked: {text}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_in_json() {
    let app = spawn_app().await;
    let big = format!("[{}]", vec!["1"; 5 * 1024 * 1024].join(","));
    assert!(big.len() > 8 * 1024 * 1024);
    let r = app
        .client
        .post(app.url("/v1/notifications/batch"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let text = r.text().await.unwrap();
    assert_clean(413, &text);
    // Without a Content-Length (chunked), the limit holds as the body streams in.
    let stream = futures::stream::iter(
        big.into_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = app
        .client
        .post(app.url("/v1/notifications/batch"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_clean(413, &r.text().await.unwrap());
    assert!(app.row_counts().await.iter().all(|(_, n)| *n == 0));
}

#[tokio::test]
async fn deeply_nested_json_is_refused_cleanly() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let deep_obj = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    let bodies = [
        ("/v1/partners", deep(100_000)),
        ("/v1/partners", format!("{{\"name\": {}}}", deep_obj(5000))),
        ("/v1/notifications/batch", deep(100_000)),
        (
            "/v1/notifications",
            format!(
                r#"{{"partner_id":"{partner}","environment":"production","event_type":"proposal.status",
                    "proposal":"7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d","status":9,"body":{{"x":{}}}}}"#,
                deep_obj(100_000)
            ),
        ),
        (
            "/v1/notifications",
            format!(
                r#"{{"partner_id":"{partner}","environment":"production","event_type":"proposal.status",
                    "proposal":"7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d","status":9,"body":{{"x":{}}}}}"#,
                deep(200)
            ),
        ),
    ];
    for (path, body) in bodies {
        let r = app
            .client
            .post(app.url(path))
            .bearer_auth(&app.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(status == 400 || status == 422, "{path}: {status}");
        assert_clean(status, &r.text().await.unwrap());
    }
    let counts = app.row_counts().await;
    assert_eq!(counts[2], ("notifications".to_string(), 0));
}

#[tokio::test]
async fn errors_never_show_sql_or_stack_traces() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let raw = |method: reqwest::Method, path: &str, body: &str| {
        app.client
            .request(method, app.url(path))
            .bearer_auth(&app.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let cases = [
        (reqwest::Method::POST, "/v1/partners".to_string(), "{\"name\": \"a\u{0000}b\"}".to_string()),
        (reqwest::Method::POST, "/v1/partners".to_string(), r#"{"name": "nul \u0000 escaped"}"#.to_string()),
        (reqwest::Method::POST, "/v1/partners".to_string(), "{\"name\": ".to_string()),
        (reqwest::Method::POST, "/v1/partners".to_string(), r#"{"name": "x", "extra": 1}"#.to_string()),
        (reqwest::Method::POST, "/v1/partners".to_string(), format!(r#"{{"name": "{}"}}"#, "x".repeat(10_000))),
        (reqwest::Method::GET, "/v1/partners/not-a-uuid".to_string(), String::new()),
        (reqwest::Method::GET, "/v1/deliveries?limit=99999999999999999999".to_string(), String::new()),
        (reqwest::Method::GET, "/v1/deliveries?since=yesterday".to_string(), String::new()),
        (reqwest::Method::GET, "/v1/deliveries?cursor=%00%ff".to_string(), String::new()),
        (
            reqwest::Method::POST,
            "/v1/notifications".to_string(),
            format!(
                r#"{{"partner_id":"{partner}","environment":"production","event_type":"proposal.status",
                    "proposal":"7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d","status":9,
                    "identifier":"nul\u0000","body":{{"k":"v\u0000"}}}}"#
            ),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/partners/{partner}/endpoints"),
            r#"{"environment":"production","url":"http://x.example/","method":"POST","auth":{"type":"bearer","token":"a\u0000"}}"#.to_string(),
        ),
        (reqwest::Method::DELETE, "/v1/partners/00000000-0000-0000-0000-000000000000".to_string(), String::new()),
    ];
    for (method, path, body) in cases {
        let r = raw(method.clone(), &path, &body).await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(
            (400..500).contains(&status),
            "{method} {path}: {status} {text}"
        );
        assert_clean(status, &text);
    }
}

#[tokio::test]
async fn cors_is_closed() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/v1/partners"))
        .bearer_auth(&app.token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/partners"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(
        !preflight.status().is_success(),
        "preflight refused: {}",
        preflight.status()
    );
    for h in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-allow-credentials",
    ] {
        assert!(preflight.headers().get(h).is_none(), "{h}");
    }
}

#[tokio::test]
async fn the_token_is_required_and_compared_whole() {
    let app = spawn_app().await;
    for auth in [
        None,
        Some("Bearer "),
        Some("Bearer test-operator-toke"),
        Some("Bearer test-operator-tokenX"),
        Some("bearer test-operator-token"),
        Some("Basic dGVzdA=="),
    ] {
        let mut req = app.client.get(app.url("/v1/partners"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "no token needed");
    let doc: Value = r.json().await.unwrap();
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    let paths = doc["paths"].as_object().unwrap();

    // Every route of the table the middleware enforces, with the table's roles.
    for route in ROUTE_ROLES {
        let op = &doc["paths"][route.path][route.method.to_lowercase()];
        assert!(
            op.is_object(),
            "{} {} is documented",
            route.method,
            route.path
        );
        assert_eq!(
            op["x-roles"],
            json!(route.roles),
            "{} {}",
            route.method,
            route.path
        );
        if route.roles.contains(&Role::Partner) {
            assert_eq!(op["x-partner-scope"], route.scope);
        }
    }

    // Every documented operation: a /v1 one is in the table; the others need no token.
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let public = !path.starts_with("/v1/") || path == "/v1/openapi.json";
            if public {
                assert_eq!(op["x-roles"], json!(["anyone"]), "{method} {path}");
                assert_eq!(op["security"], json!([]), "{method} {path}");
            } else {
                assert!(
                    ROUTE_ROLES
                        .iter()
                        .any(|r| r.path == path && r.method.eq_ignore_ascii_case(method)),
                    "{method} {path} is documented but not in ROUTE_ROLES"
                );
            }
            // And the server routes it: without a token a /v1 route is a 401 (an unknown
            // route would be the fallback's 404), a public one answers.
            let concrete = path
                .replace("{id}", &uuid::Uuid::now_v7().to_string())
                .replace("{token_id}", &uuid::Uuid::now_v7().to_string());
            let r = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            let expected = if public { 200 } else { 401 };
            assert_eq!(r.status(), expected, "{method} {path}");
        }
    }
    assert_eq!(
        operations,
        ROUTE_ROLES.len() + 5,
        "the table and five public routes"
    );

    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Error"].is_object());
}
