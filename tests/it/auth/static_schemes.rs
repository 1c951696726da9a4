//! bearer, api_key, x_api_key, basic and hmac: the receiver checks the header the way a
//! partner would (HMAC by recomputing CONTRACT §4 itself) and answers 401 otherwise.

use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::common::{FnServer, deliver, endpoint, header, only_attempt, verdict};
use crate::support::app::spawn_app;
use crate::support::receiver::Recorded;

/// Delivers once with `auth` to a receiver running `check`: must be delivered in one
/// attempt; then once with `wrong` auth: must be refused (401, dead after one attempt).
async fn accepted_and_refused(
    auth: Value,
    wrong: Value,
    check: impl Fn(&Recorded) -> Result<(), String> + Send + Sync + 'static,
) {
    let app = spawn_app().await;
    let server = FnServer::start(move |r| verdict(check(r))).await;
    let url = format!("{}/cb", server.base);

    let (partner, _) = endpoint(&app, &url, auth, 1).await;
    let d = deliver(&app, partner, "delivered").await;
    assert_eq!(only_attempt(&d)["status_code"], 200, "{d:#}");

    let (partner, _) = endpoint(&app, &url, wrong, 1).await;
    let d = deliver(&app, partner, "dead").await;
    let a = only_attempt(&d);
    assert_eq!(a["status_code"], 401, "{d:#}");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].1, 200);
    assert_eq!(seen[1].1, 401);
}

#[tokio::test]
async fn bearer() {
    accepted_and_refused(
        json!({"type": "bearer", "token": "tok-123"}),
        json!({"type": "bearer", "token": "tok-999"}),
        |r| match header(r, "authorization")? {
            "Bearer tok-123" => Ok(()),
            other => Err(format!("bad bearer {other}")),
        },
    )
    .await;
}

#[tokio::test]
async fn api_key() {
    accepted_and_refused(
        json!({"type": "api_key", "key": "key-abc"}),
        json!({"type": "x_api_key", "key": "key-abc"}),
        |r| {
            if r.header("authorization").is_some() {
                return Err("unexpected Authorization".into());
            }
            match header(r, "api-key")? {
                "key-abc" => Ok(()),
                other => Err(format!("bad key {other}")),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn x_api_key() {
    accepted_and_refused(
        json!({"type": "x_api_key", "key": "xkey-abc"}),
        json!({"type": "api_key", "key": "xkey-abc"}),
        |r| match header(r, "x-api-key")? {
            "xkey-abc" => Ok(()),
            other => Err(format!("bad key {other}")),
        },
    )
    .await;
}

#[tokio::test]
async fn basic() {
    accepted_and_refused(
        json!({"type": "basic", "username": "acme", "password": "pa:ss wörd"}),
        json!({"type": "basic", "username": "acme", "password": "nope"}),
        |r| {
            let v = header(r, "authorization")?;
            let b64 = v.strip_prefix("Basic ").ok_or("not Basic")?;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8(raw).map_err(|e| e.to_string())?;
            let (user, pass) = text.split_once(':').ok_or("no colon")?;
            if (user, pass) == ("acme", "pa:ss wörd") {
                Ok(())
            } else {
                Err("wrong user or password".into())
            }
        },
    )
    .await;
}

/// The partner's side of CONTRACT §4, written from the contract alone.
pub fn verify_hmac(r: &Recorded, secret: &[u8]) -> Result<(), String> {
    let got = header(r, "authorization")?
        .strip_prefix("HMAC ")
        .ok_or("not HMAC")?
        .to_string();
    let signed = [
        header(r, "x-callback-id")?.as_bytes(),
        header(r, "x-callback-timestamp")?.as_bytes(),
        r.method.as_str().as_bytes(),
        r.uri.as_bytes(),
        &r.body,
    ]
    .join(&b"."[..]);
    let mut mac = <hmac::Hmac<Sha256>>::new_from_slice(secret).unwrap();
    mac.update(&signed);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got == want {
        Ok(())
    } else {
        Err(format!("bad signature {got}"))
    }
}

#[tokio::test]
async fn hmac() {
    accepted_and_refused(
        json!({"type": "hmac", "secret": "hmac-secret-1"}),
        json!({"type": "hmac", "secret": "hmac-secret-2"}),
        |r| {
            // The request really has a query and a body, so both are covered.
            assert!(r.uri.contains("?proposal="), "{}", r.uri);
            assert!(!r.body.is_empty());
            verify_hmac(r, b"hmac-secret-1")
        },
    )
    .await;
}

#[tokio::test]
async fn hmac_get_without_body() {
    let app = spawn_app().await;
    let server = FnServer::start(|r| verdict(verify_hmac(r, b"s3"))).await;
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "homologation", "url": format!("{}/cb?env=hml", server.base),
               "method": "GET", "auth": {"type": "hmac", "secret": "s3"}}),
    )
    .await;
    let d = deliver(&app, partner, "delivered").await;
    only_attempt(&d);
    let seen = server.seen();
    assert!(seen[0].0.body.is_empty());
    assert!(seen[0].0.uri.starts_with("/cb?env=hml&proposal="));
}
