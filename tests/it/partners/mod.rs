//! Partner self-service (CONTRACT §8): partner tokens, the role matrix over every route, a
//! partner's own endpoints and test callbacks, the HTTPS guard, and the audit log.

mod audit;
mod matrix;
mod self_service;
mod tokens;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::TestApp;

/// One request with `token` (none: no Authorization header); the status and the JSON body
/// (Null when there is none).
pub async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut r = app.client.request(
        Method::from_bytes(method.as_bytes()).unwrap(),
        app.url(path),
    );
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let response = r.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// A new token for `partner`, made by the operator: (token id, token).
pub async fn make_token(app: &TestApp, partner: Uuid) -> (Uuid, String) {
    let (status, v) = call(
        app,
        Some(&app.token),
        "POST",
        &format!("/v1/partners/{partner}/tokens"),
        None,
    )
    .await;
    assert_eq!(status, 201, "{v}");
    (
        v["id"].as_str().unwrap().parse().unwrap(),
        v["token"].as_str().unwrap().to_string(),
    )
}

/// A partner with a token: (partner id, token).
pub async fn partner_with_token(app: &TestApp, name: &str) -> (Uuid, String) {
    let p = app.create_partner(name).await;
    let (_, token) = make_token(app, p).await;
    (p, token)
}

/// A homologation POST endpoint at `url` with HMAC auth, created by `token`'s partner.
pub fn hmac_endpoint(url: &str, secret: &str) -> Value {
    json!({
        "environment": "homologation",
        "url": url,
        "method": "POST",
        "auth": {"type": "hmac", "secret": secret},
    })
}

/// Everything a refused request must leave unchanged, as one fingerprint: every row of the
/// configuration tables, every delivery's state, and the counts of the append-only ones.
pub async fn fingerprint(app: &TestApp) -> (Vec<(String, i64)>, String) {
    let digest: String = sqlx::query_scalar(
        "SELECT md5(concat_ws('|',
            (SELECT string_agg(p::text, ',' ORDER BY id) FROM partners p),
            (SELECT string_agg(e::text, ',' ORDER BY id) FROM endpoints e),
            (SELECT string_agg(concat_ws(':', id, state, series, attempts, updated_at), ','
                               ORDER BY id) FROM deliveries),
            (SELECT string_agg(concat_ws(':', id, revoked_at), ',' ORDER BY id)
               FROM partner_tokens),
            (SELECT count(*)::text FROM audit_log),
            (SELECT count(*)::text FROM endpoint_tests)))",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    (app.row_counts().await, digest)
}

pub async fn audit_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}
