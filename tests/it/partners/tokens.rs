//! Partner tokens: shown once, stored as a hash, listed without the secret, revoked at once.

use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{call, make_token};
use crate::support::app::spawn_app;

#[tokio::test]
async fn a_token_is_shown_once_stored_hashed_and_identifies_its_partner() {
    let app = spawn_app().await;
    let p = app.create_partner("Acme").await;
    let (status, made) = call(
        &app,
        Some(&app.token),
        "POST",
        &format!("/v1/partners/{p}/tokens"),
        None,
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let token = made["token"].as_str().unwrap();
    let prefix = made["prefix"].as_str().unwrap();
    assert!(
        token.starts_with("cbk_") && token.starts_with(prefix),
        "{made}"
    );
    assert!(made["created_at"].is_string() && made["id"].is_string());

    // Only the SHA-256 is stored.
    let (hash, stored_prefix): (Vec<u8>, String) =
        sqlx::query_as("SELECT token_hash, prefix FROM partner_tokens WHERE id = $1")
            .bind(made["id"].as_str().unwrap().parse::<Uuid>().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(hash, Sha256::digest(token.as_bytes()).to_vec());
    assert_eq!(stored_prefix, prefix);
    let everything: String =
        sqlx::query_scalar("SELECT string_agg(t::text, ',') FROM partner_tokens t")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!everything.contains(&token[prefix.len()..]));

    // The list never shows it again.
    let (status, list) = call(
        &app,
        Some(&app.token),
        "GET",
        &format!("/v1/partners/{p}/tokens"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let item = &list["items"][0];
    assert_eq!(item["prefix"], prefix);
    assert!(item.get("token").is_none() && item.get("token_hash").is_none());
    assert!(item["last_used_at"].is_null() && item["revoked_at"].is_null());

    // It identifies its partner, and its use is recorded.
    let (status, me) = call(&app, Some(token), "GET", "/v1/me", None).await;
    assert_eq!(status, 200);
    assert_eq!(me["role"], "partner");
    assert_eq!(me["partner_id"], p.to_string());
    assert_eq!(me["partner"]["name"], "Acme");
    let (_, list) = call(
        &app,
        Some(&app.token),
        "GET",
        &format!("/v1/partners/{p}/tokens"),
        None,
    )
    .await;
    assert!(list["items"][0]["last_used_at"].is_string(), "{list}");
    let (_, me) = call(&app, Some(&app.token), "GET", "/v1/me", None).await;
    assert_eq!(me, json!({"role": "operator"}));

    // Tokens of an unknown partner: 404, nothing written.
    let (status, _) = call(
        &app,
        Some(&app.token),
        "POST",
        &format!("/v1/partners/{}/tokens", Uuid::now_v7()),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn revocation_takes_effect_on_the_next_request() {
    let app = spawn_app().await;
    let p = app.create_partner("Acme").await;
    let (id, token) = make_token(&app, p).await;
    let (_, other) = make_token(&app, p).await;
    assert_eq!(call(&app, Some(&token), "GET", "/v1/me", None).await.0, 200);

    let (status, revoked) = call(
        &app,
        Some(&app.token),
        "DELETE",
        &format!("/v1/partners/{p}/tokens/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (status, body) = call(&app, Some(&token), "GET", "/v1/me", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = call(
        &app,
        Some(&token),
        "GET",
        &format!("/v1/partners/{p}/endpoints"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    // The partner's other token still works.
    assert_eq!(call(&app, Some(&other), "GET", "/v1/me", None).await.0, 200);

    // Revoking again changes nothing; another partner's token id is a 404.
    let audits = super::audit_count(&app).await;
    let (status, _) = call(
        &app,
        Some(&app.token),
        "DELETE",
        &format!("/v1/partners/{p}/tokens/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(super::audit_count(&app).await, audits);
    let q = app.create_partner("Other").await;
    let (status, _) = call(
        &app,
        Some(&app.token),
        "DELETE",
        &format!("/v1/partners/{q}/tokens/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Deleting the partner ends every token it had.
    assert_eq!(app.delete(&format!("/v1/partners/{p}")).await.status(), 204);
    assert_eq!(call(&app, Some(&other), "GET", "/v1/me", None).await.0, 401);
}

#[tokio::test]
async fn wrong_and_malformed_tokens_are_401() {
    let app = spawn_app().await;
    for token in [
        "cbk_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "cbk_",
        "test-operator-token-but-longer",
        "nonsense",
    ] {
        let (status, _) = call(&app, Some(token), "GET", "/v1/me", None).await;
        assert_eq!(status, 401, "{token}");
    }
    assert_eq!(call(&app, None, "GET", "/v1/me", None).await.0, 401);
}
