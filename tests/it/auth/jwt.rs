//! JWT: the receiver verifies signature and claims with the public key (or the shared
//! secret) using jsonwebtoken's own validation, as a partner would.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use super::common::{FnServer, deliver, endpoint, header, only_attempt, verdict};
use crate::support::app::spawn_app;

const RSA_PKCS1: &str = include_str!("keys/rsa_pkcs1.pem");
const RSA_PKCS8: &str = include_str!("keys/rsa_pkcs8.pem");
const RSA_PUBLIC: &str = include_str!("keys/rsa_public.pem");
const EC_SEC1: &str = include_str!("keys/ec_sec1.pem");
const EC_PKCS8: &str = include_str!("keys/ec_pkcs8.pem");
const EC_PUBLIC: &str = include_str!("keys/ec_public.pem");
const EC_P384: &str = include_str!("keys/ec_p384_pkcs8.pem");

/// Delivers twice with `auth`; the receiver checks every token with `key`/`alg` and
/// refuses a replayed `jti`.
async fn verified(auth: Value, key: DecodingKey, alg: Algorithm) {
    let app = spawn_app().await;
    let jtis: Arc<Mutex<HashSet<String>>> = Arc::default();
    let seen_claims: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (j, c) = (jtis.clone(), seen_claims.clone());
    let server = FnServer::start(move |r| {
        verdict((|| {
            let token = header(r, "authorization")?
                .strip_prefix("Bearer ")
                .ok_or("not Bearer")?;
            let mut v = Validation::new(alg);
            v.set_issuer(&["callbackd"]);
            v.set_audience(&["acme-callbacks"]);
            v.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
            v.leeway = 0;
            let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| e.to_string())?;
            let claims = data.claims;
            let jti = claims["jti"].as_str().ok_or("no jti")?.to_string();
            if !j.lock().unwrap().insert(jti) {
                return Err("replayed jti".into());
            }
            let (iat, exp) = (
                claims["iat"].as_i64().ok_or("iat")?,
                claims["exp"].as_i64().ok_or("exp")?,
            );
            if exp - iat != 120 {
                return Err(format!("ttl {}", exp - iat));
            }
            c.lock().unwrap().push(claims);
            Ok(())
        })())
    })
    .await;
    let (partner, _) = endpoint(&app, &format!("{}/cb", server.base), auth, 1).await;
    for _ in 0..2 {
        let d = deliver(&app, partner, "delivered").await;
        assert_eq!(only_attempt(&d)["status_code"], 200, "{d:#}");
    }
    let claims = seen_claims.lock().unwrap().clone();
    assert_eq!(claims.len(), 2);
    assert_eq!(
        claims[0]["partner_ref"], "acme-42",
        "extra claims are carried"
    );
    assert_ne!(
        claims[0]["jti"], claims[1]["jti"],
        "a fresh token per request"
    );
}

fn auth(alg: &str, key: &str) -> Value {
    json!({"type": "jwt", "algorithm": alg, "key": key, "issuer": "callbackd",
           "audience": "acme-callbacks", "ttl_seconds": 120,
           "claims": {"partner_ref": "acme-42", "iss": "overridden"}})
}

#[tokio::test]
async fn hs256() {
    let secret = "jwt-shared-secret-0123456789abcdef";
    verified(
        auth("HS256", secret),
        DecodingKey::from_secret(secret.as_bytes()),
        Algorithm::HS256,
    )
    .await;
}

#[tokio::test]
async fn rs256_pkcs1_key() {
    verified(
        auth("RS256", RSA_PKCS1),
        DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap(),
        Algorithm::RS256,
    )
    .await;
}

#[tokio::test]
async fn rs256_pkcs8_key() {
    verified(
        auth("RS256", RSA_PKCS8),
        DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap(),
        Algorithm::RS256,
    )
    .await;
}

#[tokio::test]
async fn es256_sec1_key() {
    verified(
        auth("ES256", EC_SEC1),
        DecodingKey::from_ec_pem(EC_PUBLIC.as_bytes()).unwrap(),
        Algorithm::ES256,
    )
    .await;
}

#[tokio::test]
async fn es256_pkcs8_key() {
    verified(
        auth("ES256", EC_PKCS8),
        DecodingKey::from_ec_pem(EC_PUBLIC.as_bytes()).unwrap(),
        Algorithm::ES256,
    )
    .await;
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_refused() {
    let app = spawn_app().await;
    let key = DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap();
    let server = FnServer::start(move |r| {
        let token = r
            .header("authorization")
            .unwrap_or("")
            .trim_start_matches("Bearer ");
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_aud = false;
        verdict(
            jsonwebtoken::decode::<Value>(token, &key, &v)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        )
    })
    .await;
    // An HS256 token is not an RS256 token of the partner's key.
    let (partner, _) = endpoint(
        &app,
        &format!("{}/cb", server.base),
        json!({"type": "jwt", "algorithm": "HS256", "key": "some-other-secret"}),
        1,
    )
    .await;
    let d = deliver(&app, partner, "dead").await;
    assert_eq!(only_attempt(&d)["status_code"], 401);
}

#[tokio::test]
async fn bad_keys_are_refused_at_registration() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let cases = [
        (
            json!({"type": "jwt", "algorithm": "RS256", "key": "not a pem"}),
            "auth.key",
        ),
        (
            json!({"type": "jwt", "algorithm": "RS256", "key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
            "auth.key",
        ),
        (
            json!({"type": "jwt", "algorithm": "RS256", "key": EC_PKCS8}),
            "auth.algorithm",
        ),
        (
            json!({"type": "jwt", "algorithm": "ES256", "key": RSA_PKCS1}),
            "auth.algorithm",
        ),
        (
            json!({"type": "jwt", "algorithm": "ES256", "key": EC_P384}),
            "auth.key",
        ),
        (
            json!({"type": "jwt", "algorithm": "HS256", "key": RSA_PKCS8}),
            "auth.algorithm",
        ),
        (
            json!({"type": "jwt", "algorithm": "PS512", "key": "x"}),
            "auth.algorithm",
        ),
        (json!({"type": "jwt", "algorithm": "HS256"}), "auth.key"),
        (
            json!({"type": "jwt", "algorithm": "HS256", "key": "k", "ttl_seconds": 0}),
            "auth.ttl_seconds",
        ),
        (
            json!({"type": "jwt", "algorithm": "HS256", "key": "k", "claims": [1]}),
            "auth.claims",
        ),
    ];
    for (auth, field) in cases {
        let r = app
            .post(
                &format!("/v1/partners/{partner}/endpoints"),
                &json!({"environment": "homologation", "url": "http://127.0.0.1:9/cb",
                        "method": "POST", "auth": auth}),
            )
            .await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 422, "{auth}: {body}");
        assert_eq!(body["error"]["field"], field, "{auth}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains("BEGIN"),
            "no key material in the error: {text}"
        );
    }
}
