//! Standard Webhooks signatures, verified as the specification's reference libraries do.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::support::app::spawn_app;
use crate::support::receiver::{Receiver, Recorded};

/// The specification's verification: the key is the base64 after `whsec_`, the signed content
/// `msg_id.timestamp.payload`, the header a space-separated list of `v1,<base64>`; any match
/// verifies, and the timestamp must be within five minutes.
fn verify(secret: &str, r: &Recorded) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = r.header("webhook-id").unwrap();
    let ts = r.header("webhook-timestamp").unwrap();
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    if age.abs() > 300 {
        return false;
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    r.header("webhook-signature")
        .unwrap()
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

#[tokio::test]
async fn signed_requests_verify_and_rotation_signs_with_both_secrets_for_the_grace_period() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    let ep = app
        .create_endpoint(
            partner,
            json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST",
                   "signing": "standard_webhooks"}),
        )
        .await;
    let first_secret = ep["signing_secret"]
        .as_str()
        .expect("shown once at creation")
        .to_string();
    assert!(first_secret.starts_with("whsec_"));
    assert_eq!(ep["signing"], "standard_webhooks");
    let path = format!("/v1/endpoints/{}", ep["id"].as_str().unwrap());
    let shown = app.get(&path).await.text().await.unwrap();
    assert!(
        !shown.contains(&first_secret) && !shown.contains("signing_secret"),
        "{shown}"
    );

    let notify = json!({"partner_id": partner, "environment": "production", "event_type": "proposal.status",
                        "proposal": uuid::Uuid::new_v4(), "status": 9, "body": {"b": 1, "a": "x"}});
    app.enqueue(notify.clone()).await;
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    let r = &got[0];
    assert_eq!(r.header("webhook-id"), r.header("x-callback-id"));
    assert_eq!(
        r.header("webhook-timestamp"),
        r.header("x-callback-timestamp")
    );
    assert_eq!(r.header("webhook-signature").unwrap().split(' ').count(), 1);
    assert!(verify(&first_secret, r), "verifies with the secret");
    assert!(
        !verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", r),
        "and not with another"
    );

    // Rotate with a one-second grace: both sign, then only the new one.
    let second_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let r = app
        .patch(
            &path,
            &json!({"signing_secret": second_secret, "signing_grace_s": 1}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let patched: Value = r.json().await.unwrap();
    assert!(
        patched.get("signing_secret").is_none(),
        "a secret the operator chose is not echoed"
    );
    app.enqueue(notify.clone()).await;
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        got[1]
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    assert!(verify(second_secret, &got[1]) && verify(&first_secret, &got[1]));

    // The grace period (1 s) is the subject: a clock that must run out, not an event.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.enqueue(notify).await;
    let got = rx.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(
        got[2]
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    assert!(verify(second_secret, &got[2]) && !verify(&first_secret, &got[2]));

    // Signing off: no more webhook-* headers.
    app.patch(&path, &json!({"signing": "none"})).await;
    app.enqueue(
        json!({"partner_id": partner, "environment": "production", "event_type": "proposal.status",
                       "proposal": uuid::Uuid::new_v4(), "status": 1}),
    )
    .await;
    let got = rx.wait_for(4, Duration::from_secs(10)).await;
    assert!(got[3].header("webhook-signature").is_none());

    let sealed: Vec<Vec<u8>> = sqlx::query_scalar("SELECT auth_sealed FROM endpoints")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(
        sealed
            .iter()
            .all(|b| !String::from_utf8_lossy(b).contains("whsec_"))
    );
}

#[tokio::test]
async fn a_get_endpoint_signs_the_empty_payload_and_bad_secrets_are_refused() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    app.create_endpoint(
        partner,
        json!({"environment": "homologation", "url": format!("{}/cb", rx.base), "method": "GET",
               "signing_secret": secret}),
    )
    .await;
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "homologation", "event_type": "proposal.status",
                        "proposal": uuid::Uuid::new_v4(), "status": 2}))
        .await;
    let id = n["deliveries"][0]["id"].as_str().unwrap();
    app.wait_for_state(id, "delivered", Duration::from_secs(10))
        .await;
    let got = rx.requests();
    assert!(got[0].body.is_empty());
    assert!(verify(secret, &got[0]));

    let before = app.row_counts().await;
    for bad in [
        json!({"signing_secret": "nope"}),
        json!({"signing_secret": "whsec_AAAA"}),
        json!({"signing": "none", "signing_secret": secret}),
        json!({"signing": "pgp"}),
    ] {
        let mut body =
            json!({"environment": "production", "url": format!("{}/x", rx.base), "method": "POST"});
        body.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let r = app
            .post(&format!("/v1/partners/{partner}/endpoints"), &body)
            .await;
        assert_eq!(r.status(), 422, "{bad}");
    }
    assert_eq!(app.row_counts().await, before);
}
