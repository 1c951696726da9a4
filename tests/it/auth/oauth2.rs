//! OAuth2 client credentials: a token server on loopback that checks the client's HTTP
//! Basic credentials and the form, and counts token requests; the callback receiver only
//! accepts tokens the token server issued and has not revoked.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::common::{FnServer, endpoint, notify, only_attempt};
use crate::support::app::spawn_app;
use crate::support::receiver::{Recorded, Reply};

const CLIENT_ID: &str = "acme client";
const CLIENT_SECRET: &str = "oauth-secret-&=1";

#[derive(Default)]
struct Auth {
    token_requests: AtomicU32,
    valid: Mutex<HashSet<String>>,
    /// When set, the token endpoint answers this status with an OAuth2 error.
    failing: Mutex<Option<u16>>,
    /// When set, the receiver refuses every token.
    reject_all: AtomicBool,
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn token_endpoint(a: &Auth, r: &Recorded) -> Reply {
    let n = a.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(status) = *a.failing.lock().unwrap() {
        return Reply::status(status)
            .with_header("content-type", "application/json")
            .with_body(r#"{"error": "invalid_client", "error_description": "client disabled"}"#);
    }
    let refuse = |why: &str| {
        Reply::status(400)
            .with_header("content-type", "application/json")
            .with_body(&json!({"error": "invalid_request", "error_description": why}).to_string())
    };
    if r.method != "POST" {
        return refuse("POST only");
    }
    if r.header("content-type") != Some("application/x-www-form-urlencoded") {
        return refuse("form only");
    }
    // RFC 6749 §2.3.1: Basic over the form-urlencoded id and secret.
    let Some(b64) = r
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return refuse("no basic");
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default();
    let raw = String::from_utf8(raw).unwrap_or_default();
    let (id, secret) = raw.split_once(':').unwrap_or_default();
    if form_decode(id) != CLIENT_ID || form_decode(secret) != CLIENT_SECRET {
        return Reply::status(401).with_body(r#"{"error": "invalid_client"}"#);
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&r.body).into_owned().collect();
    let want = [
        ("grant_type".to_string(), "client_credentials".to_string()),
        ("scope".to_string(), "callbacks:write".to_string()),
        (
            "audience".to_string(),
            "https://partner.example".to_string(),
        ),
    ];
    if form != want {
        return refuse(&format!("bad form {form:?}"));
    }
    let token = format!("access-{n}");
    a.valid.lock().unwrap().insert(token.clone());
    Reply::status(200)
        .with_header("content-type", "application/json")
        .with_body(
            &json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600}).to_string(),
        )
        // Slow enough that concurrent deliveries overlap with the token request.
        .after(Duration::from_millis(800))
}

async fn start() -> (FnServer, Arc<Auth>) {
    let a: Arc<Auth> = Arc::default();
    let shared = a.clone();
    let server = FnServer::start(move |r| {
        if r.uri.starts_with("/token") {
            return token_endpoint(&shared, r);
        }
        let token = r
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "));
        match token {
            Some(t)
                if !shared.reject_all.load(Ordering::SeqCst)
                    && shared.valid.lock().unwrap().contains(t) =>
            {
                Reply::status(200)
            }
            _ => Reply::status(401)
                .with_header("www-authenticate", r#"Bearer error="invalid_token""#),
        }
    })
    .await;
    (server, a)
}

fn auth(server: &FnServer) -> Value {
    json!({"type": "oauth2", "token_url": format!("{}/token", server.base),
           "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
           "scope": "callbacks:write", "audience": "https://partner.example"})
}

#[tokio::test]
async fn one_token_shared_by_concurrent_deliveries_then_refreshed_on_401() {
    let app = spawn_app().await;
    let (server, a) = start().await;
    let (partner, _) = endpoint(&app, &format!("{}/cb", server.base), auth(&server), 1).await;

    // Six deliveries at once: they must share one token request.
    let ids = futures::future::join_all((0..6).map(|_| notify(&app, partner))).await;
    for id in &ids {
        let d = app
            .wait_for_state(id, "delivered", Duration::from_secs(15))
            .await;
        assert_eq!(only_attempt(&d)["status_code"], 200, "{d:#}");
    }
    assert_eq!(
        a.token_requests.load(Ordering::SeqCst),
        1,
        "one token for all"
    );
    let cb = server.seen_on("/cb");
    assert_eq!(cb.len(), 6);
    assert!(
        cb.iter()
            .all(|(r, s)| *s == 200 && r.header("authorization") == Some("Bearer access-1"))
    );
    // None went out before the one (slow, 800 ms) token request was answered: those claimed
    // while it was in flight waited for it instead of asking for their own. (No bound on the
    // spread between them: under a parallel test load some are claimed after the token is
    // cached, and those use it at once.)
    let token_asked = server.seen_on("/token")[0].0.at;
    let first = cb.iter().map(|(r, _)| r.at).min().unwrap();
    assert!(
        first >= token_asked + Duration::from_millis(800),
        "a callback went out {:?} after the token request",
        first - token_asked
    );

    // The partner revokes the token: one 401, one fresh token, one resend, one attempt.
    a.valid.lock().unwrap().clear();
    let id = notify(&app, partner).await;
    let d = app
        .wait_for_state(&id, "delivered", Duration::from_secs(15))
        .await;
    assert_eq!(only_attempt(&d)["status_code"], 200, "{d:#}");
    assert_eq!(a.token_requests.load(Ordering::SeqCst), 2);
    let cb = server.seen_on("/cb");
    assert_eq!(cb.len(), 8);
    assert_eq!(cb[6].1, 401);
    assert_eq!(cb[7].0.header("authorization"), Some("Bearer access-2"));

    // Revoked again and the fresh one refused too: one resend only, then a failed attempt.
    let (server2, a2) = start().await;
    let (partner2, _) = endpoint(&app, &format!("{}/cb", server2.base), auth(&server2), 1).await;
    // Tokens are issued but never accepted.
    a2.reject_all.store(true, Ordering::SeqCst);
    let id = notify(&app, partner2).await;
    let d = app
        .wait_for_state(&id, "dead", Duration::from_secs(15))
        .await;
    assert_eq!(only_attempt(&d)["status_code"], 401, "{d:#}");
    assert_eq!(a2.token_requests.load(Ordering::SeqCst), 2);
    assert_eq!(server2.seen_on("/cb").len(), 2);
}

#[tokio::test]
async fn a_failing_token_endpoint_is_a_failed_attempt_with_a_clear_error() {
    let app = spawn_app().await;
    let (server, a) = start().await;
    *a.failing.lock().unwrap() = Some(401);
    let (partner, _) = endpoint(&app, &format!("{}/cb", server.base), auth(&server), 1).await;
    let id = notify(&app, partner).await;
    let d = app
        .wait_for_state(&id, "dead", Duration::from_secs(15))
        .await;
    let attempt = only_attempt(&d);
    let error = attempt["error"].as_str().unwrap();
    assert!(error.starts_with("auth: oauth2 token endpoint"), "{error}");
    assert!(
        error.contains("401") && error.contains("invalid_client"),
        "{error}"
    );
    assert!(
        attempt["status_code"].is_null(),
        "no callback was sent: {d:#}"
    );
    assert!(!d.to_string().contains(CLIENT_SECRET));
    assert!(server.seen_on("/cb").is_empty());

    // Wrong client secret: refused by the token server itself.
    let mut bad = auth(&server);
    bad["client_secret"] = json!("wrong");
    *a.failing.lock().unwrap() = None;
    let (partner, _) = endpoint(&app, &format!("{}/cb", server.base), bad, 1).await;
    let id = notify(&app, partner).await;
    let d = app
        .wait_for_state(&id, "dead", Duration::from_secs(15))
        .await;
    let error = only_attempt(&d)["error"].as_str().unwrap().to_string();
    assert!(error.contains("invalid_client"), "{error}");

    // Unreachable token endpoint.
    let mut gone = auth(&server);
    gone["token_url"] = json!("http://127.0.0.1:9/token");
    let (partner, _) = endpoint(&app, &format!("{}/cb", server.base), gone, 1).await;
    let id = notify(&app, partner).await;
    let d = app
        .wait_for_state(&id, "dead", Duration::from_secs(15))
        .await;
    let error = only_attempt(&d)["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("auth: oauth2 token endpoint: connect"),
        "{error}"
    );
}
