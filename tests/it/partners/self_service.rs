//! What a partner does with its own token: register endpoints, send test callbacks that its
//! receiver verifies, read its deliveries; and the guards on partner-made endpoints.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use super::{call, hmac_endpoint, partner_with_token};
use crate::support::app::{spawn_app, spawn_app_with};
use crate::support::receiver::{Receiver, Recorded, Reply};

/// The receiver's side of CONTRACT §4, written as a partner would (docs/auth.md).
fn hmac_valid(secret: &str, r: &Recorded) -> bool {
    let Some(sig) = r
        .header("authorization")
        .and_then(|a| a.strip_prefix("HMAC "))
    else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for part in [
        r.header("x-callback-id").unwrap(),
        r.header("x-callback-timestamp").unwrap(),
        r.method.as_str(),
        r.uri.as_str(),
    ] {
        mac.update(part.as_bytes());
        mac.update(b".");
    }
    mac.update(&r.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == sig
}

#[tokio::test]
async fn a_partner_registers_an_hmac_endpoint_and_its_receiver_verifies_a_test_callback() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (p, token) = partner_with_token(&app, "Acme").await;
    let secret = "whsec-acme-homologation";

    let (status, e) = call(
        &app,
        Some(&token),
        "POST",
        &format!("/v1/partners/{p}/endpoints"),
        Some(&hmac_endpoint(
            &format!("{}/cb?env=hml", receiver.base),
            secret,
        )),
    )
    .await;
    assert_eq!(status, 201, "{e}");
    assert_eq!(
        e["auth"],
        json!({"type": "hmac"}),
        "the secret is never shown"
    );
    let id = e["id"].as_str().unwrap();

    // The default sample: a proposal.status (9, Paid) with its body.
    let (status, outcome) = call(
        &app,
        Some(&token),
        "POST",
        &format!("/v1/endpoints/{id}/test"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["delivered"], true, "{outcome}");
    assert_eq!(outcome["status_code"], 200);
    assert!(outcome["error"].is_null());
    assert!(outcome["duration_ms"].is_number());
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    let r = &got[0];
    assert!(hmac_valid(secret, r), "the receiver verifies the signature");
    assert!(!hmac_valid("another secret", r));
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.uri,
        "/cb?env=hml&proposal=7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d&status=9&identifier=TEST-0001"
    );
    assert_eq!(r.header("x-callback-event"), Some("proposal.status"));
    assert_eq!(r.header("x-callback-test"), Some("true"));
    assert_eq!(r.header("x-callback-attempt"), Some("1"));
    assert_eq!(r.header("x-callback-id"), outcome["id"].as_str());
    assert_eq!(
        &r.body[..],
        include_bytes!("../../fixtures/synthetic_status_9.json")
    );

    // A chosen event type carries the seeds' example body; no body at all is fine too.
    let (status, outcome) = call(
        &app,
        Some(&token),
        "POST",
        &format!("/v1/endpoints/{id}/test"),
        Some(&json!({"event_type": "schedule.event"})),
    )
    .await;
    assert_eq!(status, 200, "{outcome}");
    let got = receiver.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got[1].header("x-callback-event"), Some("schedule.event"));
    assert_eq!(got[1].uri, "/cb?env=hml");
    assert_eq!(
        &got[1].body[..],
        include_bytes!("../../fixtures/seed001_schedule_5.json")
    );
    assert!(hmac_valid(secret, &got[1]));

    // A failing receiver: the outcome says so.
    receiver.script([Reply::status(500).with_body("not ready")]);
    let response = app
        .client
        .post(app.url(&format!("/v1/endpoints/{id}/test")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome["delivered"], false);
    assert_eq!(outcome["status_code"], 500);
    assert_eq!(outcome["error"], "http 500");
    assert_eq!(outcome["response_body"], "not ready");

    // Recorded as tests, newest first, apart from the delivery queue.
    let (status, tests) = call(
        &app,
        Some(&token),
        "GET",
        &format!("/v1/endpoints/{id}/tests"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let items = tests["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["delivered"], false);
    assert_eq!(items[1]["event_type"], "schedule.event");
    assert_eq!(items[2]["actor"], format!("partner:{p}"));
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(deliveries, 0);

    // An event type the endpoint does not take is refused, and nothing is sent.
    let (status, e2) = call(
        &app,
        Some(&token),
        "POST",
        &format!("/v1/partners/{p}/endpoints"),
        Some(
            &json!({"environment": "homologation", "url": format!("{}/get", receiver.base),
                     "method": "GET"}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    let (status, refusal) = call(
        &app,
        Some(&token),
        "POST",
        &format!("/v1/endpoints/{}/test", e2["id"].as_str().unwrap()),
        Some(&json!({"event_type": "banking.ted.sent"})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(refusal["error"]["field"], "event_type");
    assert_eq!(receiver.requests().len(), 3);
}

#[tokio::test]
async fn a_partner_manages_its_endpoints_in_both_environments_and_reads_its_deliveries() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (a, token_a) = partner_with_token(&app, "A").await;
    let (b, token_b) = partner_with_token(&app, "B").await;
    // Test receivers are plain http: the operator lifts A's https rule for production.
    let r = app
        .patch(
            &format!("/v1/partners/{a}"),
            &json!({"production_requires_https": false}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let mut ids = Vec::new();
    for env in ["homologation", "production"] {
        let (status, e) = call(
            &app,
            Some(&token_a),
            "POST",
            &format!("/v1/partners/{a}/endpoints"),
            Some(
                &json!({"environment": env, "url": format!("{}/{env}", receiver.base),
                         "method": "PUT", "event_types": ["proposal.status", "schedule.event"],
                         "auth": {"type": "basic", "username": "u", "password": "p"},
                         "timeout_ms": 5000, "max_attempts": 3}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{e}");
        assert_eq!(e["auth"], json!({"type": "basic", "username": "u"}));
        ids.push(e["id"].as_str().unwrap().to_string());
    }
    let (status, patched) = call(
        &app,
        Some(&token_a),
        "PATCH",
        &format!("/v1/endpoints/{}", ids[1]),
        Some(&json!({"enabled": true, "max_attempts": 1})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["max_attempts"], 1);
    let (_, list) = call(
        &app,
        Some(&token_a),
        "GET",
        &format!("/v1/partners/{a}/endpoints"),
        None,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // The platform enqueues for A and for B; each partner reads only its own.
    receiver.always(Reply::status(503));
    let na = app
        .enqueue(json!({"partner_id": a, "environment": "production",
                        "event_type": "proposal.status",
                        "proposal": "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d", "status": 2}))
        .await;
    let nb = app
        .enqueue(json!({"partner_id": b, "environment": "production",
                        "event_type": "proposal.status",
                        "proposal": "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d", "status": 2}))
        .await;
    assert_eq!(nb["deliveries"].as_array().unwrap().len(), 0);
    let d = na["deliveries"][0]["id"].as_str().unwrap();
    app.wait_for_state(d, "dead", Duration::from_secs(10)).await;

    let (status, mine) = call(&app, Some(&token_a), "GET", "/v1/deliveries", None).await;
    assert_eq!(status, 200);
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let (_, theirs) = call(&app, Some(&token_b), "GET", "/v1/deliveries", None).await;
    assert_eq!(theirs["items"], json!([]));
    let (status, detail) = call(
        &app,
        Some(&token_a),
        "GET",
        &format!("/v1/deliveries/{d}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(detail["attempt_log"][0]["status_code"], 503);
    let (status, n) = call(
        &app,
        Some(&token_a),
        "GET",
        &format!("/v1/notifications/{}", na["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{n}");
    assert_eq!(
        call(
            &app,
            Some(&token_b),
            "GET",
            &format!("/v1/notifications/{}", na["id"].as_str().unwrap()),
            None
        )
        .await
        .0,
        404
    );

    // A replays its dead delivery once its receiver is back.
    receiver.always(Reply::status(200));
    let (status, _) = call(
        &app,
        Some(&token_a),
        "POST",
        &format!("/v1/deliveries/{d}/replay"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    app.wait_for_state(d, "delivered", Duration::from_secs(10))
        .await;

    // A deletes its homologation endpoint.
    let (status, _) = call(
        &app,
        Some(&token_a),
        "DELETE",
        &format!("/v1/endpoints/{}", ids[0]),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, list) = call(
        &app,
        Some(&token_a),
        "GET",
        &format!("/v1/partners/{a}/endpoints"),
        None,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_partners_production_endpoint_must_be_https_unless_the_operator_lifts_it() {
    let app = spawn_app().await;
    let (p, token) = partner_with_token(&app, "Acme").await;
    let before = super::fingerprint(&app).await;
    let plain = json!({"environment": "production", "url": "http://127.0.0.1:9/cb",
                       "method": "GET"});
    let (status, refusal) = call(
        &app,
        Some(&token),
        "POST",
        &format!("/v1/partners/{p}/endpoints"),
        Some(&plain),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(refusal["error"]["field"], "url");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("https")
    );
    assert_eq!(super::fingerprint(&app).await, before);

    // Homologation may be http; moving it to production may not.
    let (status, e) = call(
        &app,
        Some(&token),
        "POST",
        &format!("/v1/partners/{p}/endpoints"),
        Some(
            &json!({"environment": "homologation", "url": "http://127.0.0.1:9/cb",
                     "method": "GET"}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    let id = e["id"].as_str().unwrap();
    let (status, _) = call(
        &app,
        Some(&token),
        "PATCH",
        &format!("/v1/endpoints/{id}"),
        Some(&json!({"environment": "production"})),
    )
    .await;
    assert_eq!(status, 422);
    // An https production endpoint is fine.
    let (status, e) = call(
        &app,
        Some(&token),
        "POST",
        &format!("/v1/partners/{p}/endpoints"),
        Some(
            &json!({"environment": "production", "url": "https://127.0.0.1:9/cb",
                     "method": "GET"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{e}");

    // The operator is not bound by it, and can lift it for the partner.
    let r = app
        .post(&format!("/v1/partners/{p}/endpoints"), &plain)
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .patch(
            &format!("/v1/partners/{p}"),
            &json!({"production_requires_https": false}),
        )
        .await;
    let partner: Value = r.json().await.unwrap();
    assert_eq!(partner["production_requires_https"], false);
    assert_eq!(partner["name"], "Acme");
    let (status, _) = call(
        &app,
        Some(&token),
        "POST",
        &format!("/v1/partners/{p}/endpoints"),
        Some(&plain),
    )
    .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn partner_made_endpoints_follow_the_ssrf_rules() {
    let app = spawn_app_with(|s| s.allow_private_targets = false).await;
    let (p, token) = partner_with_token(&app, "Acme").await;
    for url in [
        "http://127.0.0.1:8080/cb",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/cb",
        "http://[::1]/cb",
    ] {
        let (status, refusal) = call(
            &app,
            Some(&token),
            "POST",
            &format!("/v1/partners/{p}/endpoints"),
            Some(&json!({"environment": "homologation", "url": url, "method": "GET"})),
        )
        .await;
        assert_eq!(status, 422, "{url}: {refusal}");
        assert_eq!(refusal["error"]["field"], "url");
    }
    let (status, refusal) = call(
        &app,
        Some(&token),
        "POST",
        &format!("/v1/partners/{p}/endpoints"),
        Some(
            &json!({"environment": "homologation", "url": "https://hml.acme.example/cb",
                     "method": "POST",
                     "auth": {"type": "oauth2", "token_url": "http://127.0.0.1/token",
                              "client_id": "c", "client_secret": "s"}}),
        ),
    )
    .await;
    assert_eq!(status, 422, "{refusal}");
    assert_eq!(refusal["error"]["field"], "auth.token_url");
    let endpoints: i64 = sqlx::query_scalar("SELECT count(*) FROM endpoints")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(endpoints, 0);
}
