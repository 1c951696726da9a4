//! The audit log: each change to partners, endpoints and tokens, by whom, with the target
//! before and after, and never a secret.

use serde_json::{Value, json};

use super::{call, hmac_endpoint, make_token};
use crate::support::app::spawn_app;

#[tokio::test]
async fn the_audit_log_holds_each_change_with_secrets_masked() {
    let app = spawn_app().await;
    let op = Some(app.token.as_str());
    let p = app.create_partner("Acme").await;
    let (token_id, token) = make_token(&app, p).await;
    let other = app.create_partner("Other").await;

    // The partner: create (HMAC secret), change the secret, change the URL, delete.
    let (status, e) = call(
        &app,
        Some(&token),
        "POST",
        &format!("/v1/partners/{p}/endpoints"),
        Some(&hmac_endpoint("http://127.0.0.1:9/cb", "first-hmac-secret")),
    )
    .await;
    assert_eq!(status, 201);
    let id = e["id"].as_str().unwrap().to_string();
    for change in [
        json!({"auth": {"type": "basic", "username": "acme", "password": "second-password"}}),
        json!({"url": "http://127.0.0.1:9/v2"}),
    ] {
        let (status, _) = call(
            &app,
            Some(&token),
            "PATCH",
            &format!("/v1/endpoints/{id}"),
            Some(&change),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _) = call(
        &app,
        Some(&token),
        "DELETE",
        &format!("/v1/endpoints/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    // The operator: the partner's https rule, then revokes the token.
    let (status, _) = call(
        &app,
        op,
        "PATCH",
        &format!("/v1/partners/{p}"),
        Some(&json!({"production_requires_https": false})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        op,
        "DELETE",
        &format!("/v1/partners/{p}/tokens/{token_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // Refused requests write nothing.
    let count = super::audit_count(&app).await;
    let (status, _) = call(
        &app,
        Some(&token),
        "POST",
        &format!("/v1/partners/{p}/endpoints"),
        Some(&hmac_endpoint("http://127.0.0.1:9/cb", "x")),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &app,
        op,
        "PATCH",
        &format!("/v1/partners/{p}"),
        Some(&json!({"name": ""})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(super::audit_count(&app).await, count);

    let (status, log) = call(&app, op, "GET", &format!("/v1/audit?partner_id={p}"), None).await;
    assert_eq!(status, 200, "{log}");
    let items = log["items"].as_array().unwrap();
    let actions: Vec<(&str, &str)> = items
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    let partner = format!("partner:{p}");
    assert_eq!(
        actions,
        vec![
            ("token.revoke", "operator"),
            ("partner.update", "operator"),
            ("endpoint.delete", partner.as_str()),
            ("endpoint.update", partner.as_str()),
            ("endpoint.update", partner.as_str()),
            ("endpoint.create", partner.as_str()),
            ("token.create", "operator"),
            ("partner.create", "operator"),
        ],
        "newest first"
    );
    for e in items {
        assert_eq!(e["partner_id"], p.to_string());
        assert!(e["at"].is_string() && e["target_id"].is_string());
        if e["actor"] == partner {
            assert_eq!(e["token_id"], token_id.to_string(), "the token that did it");
        } else {
            assert!(e["token_id"].is_null());
        }
    }
    // Before and after: the auth change shows the types, never the secrets.
    let auth_change = &items[4];
    assert_eq!(auth_change["before"]["auth"], json!({"type": "hmac"}));
    assert_eq!(
        auth_change["after"]["auth"],
        json!({"type": "basic", "username": "acme"})
    );
    assert_eq!(items[3]["before"]["url"], "http://127.0.0.1:9/cb");
    assert_eq!(items[3]["after"]["url"], "http://127.0.0.1:9/v2");
    assert!(items[2]["after"].is_null() && items[2]["before"]["id"] == json!(id));
    assert_eq!(items[1]["before"]["production_requires_https"], true);
    assert_eq!(items[1]["after"]["production_requires_https"], false);
    assert!(items[0]["before"]["revoked_at"].is_null());
    assert!(items[0]["after"]["revoked_at"].is_string());

    let everything: String = sqlx::query_scalar("SELECT string_agg(a::text, ' ') FROM audit_log a")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for secret in ["first-hmac-secret", "second-password", &token[16..]] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked into the audit log"
        );
    }

    // Filters: another partner's log, since, limit with a cursor.
    let (_, log) = call(
        &app,
        op,
        "GET",
        &format!("/v1/audit?partner_id={other}"),
        None,
    )
    .await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1);
    let (_, all) = call(&app, op, "GET", "/v1/audit", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 9);
    let (_, future) = call(
        &app,
        op,
        "GET",
        "/v1/audit?since=2999-01-01T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(future["items"], json!([]));
    let (_, page) = call(&app, op, "GET", "/v1/audit?limit=5", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = call(
        &app,
        op,
        "GET",
        &format!("/v1/audit?limit=5&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 4);
    let (status, bad) = call(&app, op, "GET", "/v1/audit?partner=x", None).await;
    assert_eq!(status, 422);
    assert_eq!(bad["error"]["field"], Value::String("partner".into()));
}
