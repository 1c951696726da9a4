//! Secrets at rest (sealed in the database), never in API answers, attempt logs or logs;
//! invalid configurations refused with the field named; PATCH switches the auth used.

use std::time::Duration;

use serde_json::{Value, json};

use super::common::{FnServer, deliver, endpoint, notify, only_attempt};
use crate::support::app::spawn_app;
use crate::support::logs::capture_logs;
use crate::support::receiver::Reply;

const RSA_PKCS8: &str = include_str!("keys/rsa_pkcs8.pem");

/// A distinctive line of the RSA key (its first base64 line).
fn key_line() -> String {
    RSA_PKCS8.lines().nth(1).unwrap().to_string()
}

fn hexed(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn secrets_are_sealed_and_never_shown_or_logged() {
    let logs = capture_logs();
    let app = spawn_app().await;
    let server = FnServer::start(|r| {
        if r.uri.starts_with("/token") {
            Reply::status(200)
                .with_body(r#"{"access_token": "zz-access-token-9", "token_type": "bearer"}"#)
        } else {
            Reply::status(401).with_header(
                "www-authenticate",
                r#"Digest realm="r", nonce="n", qop="auth""#,
            )
        }
    })
    .await;
    let url = format!("{}/cb", server.base);
    let configs = [
        (
            json!({"type": "bearer", "token": "zz-bearer-1"}),
            vec!["zz-bearer-1"],
        ),
        (
            json!({"type": "api_key", "key": "zz-apikey-2"}),
            vec!["zz-apikey-2"],
        ),
        (
            json!({"type": "x_api_key", "key": "zz-xapikey-3"}),
            vec!["zz-xapikey-3"],
        ),
        (
            json!({"type": "basic", "username": "u", "password": "zz-basic-4"}),
            vec!["zz-basic-4"],
        ),
        (
            json!({"type": "digest", "username": "u", "password": "zz-digest-5"}),
            vec!["zz-digest-5"],
        ),
        (
            json!({"type": "jwt", "algorithm": "HS256", "key": "zz-jwt-6-0123456789abcdef0123456789"}),
            vec!["zz-jwt-6"],
        ),
        (
            json!({"type": "jwt", "algorithm": "RS256", "key": RSA_PKCS8}),
            vec![],
        ),
        (
            json!({"type": "hmac", "secret": "zz-hmac-7"}),
            vec!["zz-hmac-7"],
        ),
        (
            json!({"type": "oauth2", "token_url": format!("{}/token", server.base), "client_id": "cid", "client_secret": "zz-oauth-8"}),
            vec!["zz-oauth-8", "zz-access-token-9"],
        ),
        (
            json!({"type": "aws_sigv4", "access_key_id": "AKID", "secret_access_key": "zz-aws-10", "region": "us-east-1", "service": "execute-api", "session_token": "zz-awstoken-11"}),
            vec!["zz-aws-10", "zz-awstoken-11"],
        ),
    ];
    let mut secrets: Vec<String> = vec![key_line()];
    let mut api_texts = Vec::new();
    let mut endpoints = Vec::new();
    for (auth, s) in &configs {
        secrets.extend(s.iter().map(|s| s.to_string()));
        let partner = app.create_partner("Acme").await;
        let r = app
            .post(
                &format!("/v1/partners/{partner}/endpoints"),
                &json!({"environment": "homologation", "url": url, "method": "POST",
                        "auth": auth, "max_attempts": 1}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let created: Value = r.json().await.unwrap();
        assert_eq!(created["auth"]["type"], auth["type"], "{created}");
        api_texts.push(created.to_string());
        let id = created["id"].as_str().unwrap().to_string();
        api_texts.push(
            app.get(&format!("/v1/endpoints/{id}"))
                .await
                .text()
                .await
                .unwrap(),
        );
        api_texts.push(
            app.get(&format!("/v1/partners/{partner}/endpoints"))
                .await
                .text()
                .await
                .unwrap(),
        );
        let d = deliver(&app, partner, "dead").await;
        api_texts.push(d.to_string());
        endpoints.push(id);
    }
    // The public view keeps what helps an operator.
    assert!(
        api_texts
            .iter()
            .any(|t| t.contains("\"client_id\":\"cid\""))
    );
    assert!(
        api_texts
            .iter()
            .any(|t| t.contains("\"access_key_id\":\"AKID\""))
    );

    // The database: every table, as text (bytea as hex), holds no secret in clear.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut dump = String::new();
    for t in &tables {
        let rows: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT t::text FROM {t} t")))
                .fetch_all(&app.pool)
                .await
                .unwrap();
        dump.push_str(&rows.join("\n"));
    }
    let sealed: Vec<Vec<u8>> = sqlx::query_scalar("SELECT auth_sealed FROM endpoints")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(sealed.len(), configs.len());
    assert!(sealed.iter().all(|s| s.len() > 28), "every auth is sealed");

    // Stopped: whatever it would log about these endpoints is in the buffer now.
    app.stop().await;
    let logged = logs.text();
    assert!(
        logged.contains("attempt failed"),
        "logs were captured: {} bytes: {}",
        logged.len(),
        &logged[..logged.len().min(3000)]
    );
    for s in &secrets {
        assert!(
            !dump.contains(s.as_str()) && !dump.contains(&hexed(s)),
            "{s} in the database"
        );
        for t in &api_texts {
            assert!(!t.contains(s.as_str()), "{s} in an API answer: {t}");
        }
        assert!(!logged.contains(s.as_str()), "{s} in the logs");
    }
}

#[tokio::test]
async fn invalid_auth_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let cases = [
        (json!({"type": "kerberos"}), "auth.type"),
        (json!({"token": "x"}), "auth.type"),
        (json!({"type": "api_key"}), "auth.key"),
        (json!({"type": "x_api_key", "key": "a b"}), "auth.key"),
        (json!({"type": "basic", "password": "p"}), "auth.username"),
        (
            json!({"type": "basic", "username": "a:b", "password": "p"}),
            "auth.username",
        ),
        (json!({"type": "digest", "username": "u"}), "auth.password"),
        (json!({"type": "hmac", "secret": ""}), "auth.secret"),
        (
            json!({"type": "oauth2", "token_url": "ftp://x", "client_id": "c", "client_secret": "s"}),
            "auth.token_url",
        ),
        (
            json!({"type": "oauth2", "token_url": "https://a.example/t", "client_secret": "s"}),
            "auth.client_id",
        ),
        (
            json!({"type": "aws_sigv4", "access_key_id": "A", "secret_access_key": "s", "region": "us east", "service": "x"}),
            "auth.region",
        ),
        (
            json!({"type": "aws_sigv4", "access_key_id": "A", "secret_access_key": "s", "region": "r"}),
            "auth.service",
        ),
        (
            json!({"type": "bearer", "token": "t", "extra": 1}),
            "auth.extra",
        ),
        (json!({"type": "none", "token": "t"}), "auth.token"),
        (json!({"type": 7}), "auth.type"),
    ];
    let before = app.row_counts().await;
    for (auth, field) in cases {
        let r = app
            .post(
                &format!("/v1/partners/{partner}/endpoints"),
                &json!({"environment": "homologation", "url": "http://127.0.0.1:9/cb", "method": "POST", "auth": auth}),
            )
            .await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 422, "{auth}: {body}");
        let got = body["error"]["field"].as_str().unwrap_or_default();
        assert!(got.starts_with(field), "{auth}: want {field}, got {body}");
    }
    assert_eq!(app.row_counts().await, before, "nothing written");
}

#[tokio::test]
async fn patch_switches_the_auth_of_the_next_delivery() {
    let app = spawn_app().await;
    let server = FnServer::start(|r| match r.header("authorization") {
        Some("Basic dTpuZXctcGFzcw==") => Reply::status(200), // u:new-pass
        _ => Reply::status(401),
    })
    .await;
    let (partner, id) = endpoint(
        &app,
        &format!("{}/cb", server.base),
        json!({"type": "bearer", "token": "old-token"}),
        1,
    )
    .await;
    let d = deliver(&app, partner, "dead").await;
    assert_eq!(only_attempt(&d)["status_code"], 401);

    // An invalid auth is refused and changes nothing.
    let r = app
        .patch(
            &format!("/v1/endpoints/{id}"),
            &json!({"auth": {"type": "basic"}}),
        )
        .await;
    assert_eq!(r.status(), 422);

    let r = app
        .patch(
            &format!("/v1/endpoints/{id}"),
            &json!({"auth": {"type": "basic", "username": "u", "password": "new-pass"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["auth"], json!({"type": "basic", "username": "u"}));
    let d = deliver(&app, partner, "delivered").await;
    only_attempt(&d);

    // A PATCH of something else keeps the auth.
    let r = app
        .patch(&format!("/v1/endpoints/{id}"), &json!({"timeout_ms": 3000}))
        .await;
    assert_eq!(r.status(), 200);
    let id2 = notify(&app, partner).await;
    app.wait_for_state(&id2, "delivered", Duration::from_secs(15))
        .await;
    let last = server.seen().last().unwrap().0.clone();
    assert_eq!(last.header("authorization"), Some("Basic dTpuZXctcGFzcw=="));
}

#[tokio::test]
async fn a_wrong_or_malformed_key_stops_the_start() {
    use callbackd::startup::{Application, Role};

    let db = crate::support::app::TestDb::create().await;
    let app = crate::support::app::spawn_on(db.share(), Role::All, |_| {}).await;
    let (_, _) = endpoint(
        &app,
        "http://127.0.0.1:9/cb",
        json!({"type": "hmac", "secret": "sealed-with-key-one"}),
        1,
    )
    .await;
    app.stop().await;

    let mut other = crate::support::app::test_settings(&db.url);
    other.secret_key = "ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=".into();
    let error = Application::build(other, Role::All)
        .await
        .err()
        .expect("another key must not start")
        .to_string();
    assert!(error.contains("CALLBACKD_SECRET_KEY"), "{error}");

    let mut malformed = crate::support::app::test_settings(&db.url);
    malformed.secret_key = "not base64!".into();
    let error = Application::build(malformed, Role::All)
        .await
        .err()
        .expect("a malformed key must not start")
        .to_string();
    assert!(error.contains("CALLBACKD_SECRET_KEY"), "{error}");
}

#[tokio::test]
async fn an_oauth2_token_url_follows_the_ssrf_rules() {
    let app = crate::support::app::spawn_app_with(|s| s.allow_private_targets = false).await;
    let partner = app.create_partner("Acme").await;
    let r = app
        .post(
            &format!("/v1/partners/{partner}/endpoints"),
            &json!({"environment": "homologation", "url": "https://1.1.1.1/cb", "method": "POST",
                    "auth": {"type": "oauth2", "token_url": "http://127.0.0.1:8080/token",
                             "client_id": "c", "client_secret": "s"}}),
        )
        .await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "auth.token_url", "{body}");
}
