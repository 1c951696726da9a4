//! The callback request of CONTRACT §3, byte for byte.

use std::time::Duration;

use serde_json::json;

use crate::support::app::spawn_app;
use crate::support::receiver::{Receiver, Reply};

const PROPOSAL: &str = "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d";
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn each_environment_gets_its_own_request_with_the_exact_wire_format() {
    let app = spawn_app().await;
    let homolog = Receiver::start().await;
    let prod = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "homologation", "url": format!("{}/hml/cb?src=cbd", homolog.base), "method": "GET"}),
    )
    .await;
    let prod_ep = app
        .create_endpoint(
            partner,
            json!({"environment": "production", "url": format!("{}/prd/callback", prod.base), "method": "POST",
                   "auth": {"type": "bearer", "token": "prod-secret-token"}}),
        )
        .await;

    // Production, with a body whose keys are not in alphabetical order.
    let body =
        r#"{"zeta":1,"DescricaoOcorrencia":"Credit or debit executed","alpha":{"b":2,"a":1}}"#;
    let raw = format!(
        r#"{{"partner_id":"{partner}","environment":"production","event_type":"proposal.status",
            "proposal":"{PROPOSAL}","status":9,"identifier":"OP 77/A","body":{body}}}"#
    );
    let before = chrono::Utc::now().timestamp();
    let r = app
        .client
        .post(app.url("/v1/notifications"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let answer: serde_json::Value = r.json().await.unwrap();
    let deliveries = answer["deliveries"].as_array().unwrap();
    assert_eq!(
        deliveries.len(),
        1,
        "only the production endpoint matches: {answer}"
    );
    assert_eq!(deliveries[0]["endpoint_id"], prod_ep["id"]);
    assert_eq!(deliveries[0]["state"], "pending");
    let delivery_id = deliveries[0]["id"].as_str().unwrap().to_string();

    let got = prod.wait_for(1, WAIT).await;
    let req = &got[0];
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.uri,
        format!("/prd/callback?proposal={PROPOSAL}&status=9&identifier=OP%2077%2FA")
    );
    assert_eq!(
        std::str::from_utf8(&req.body).unwrap(),
        body,
        "body byte for byte, key order kept"
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("authorization"),
        Some("Bearer prod-secret-token")
    );
    assert_eq!(req.header("x-callback-id"), Some(delivery_id.as_str()));
    assert_eq!(req.header("x-callback-attempt"), Some("1"));
    assert_eq!(req.header("x-callback-event"), Some("proposal.status"));
    assert_eq!(
        req.header("user-agent"),
        Some(concat!("callbackd/", env!("CARGO_PKG_VERSION")))
    );
    let ts: i64 = req.header("x-callback-timestamp").unwrap().parse().unwrap();
    assert!(ts >= before && ts <= chrono::Utc::now().timestamp(), "{ts}");
    assert!(
        homolog.requests().is_empty(),
        "homologation must not get production events"
    );

    let d = app.wait_for_state(&delivery_id, "delivered", WAIT).await;
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_status_code"], 200);
    assert_eq!(d["status_name"], "Paid");
    assert_eq!(d["attempt_log"][0]["status_code"], 200);

    // Homologation: GET, no identifier, existing query kept, no body at all.
    app.enqueue(json!({"partner_id": partner, "environment": "homologation",
                       "event_type": "proposal.status", "proposal": PROPOSAL, "status": 2}))
        .await;
    let got = homolog.wait_for(1, WAIT).await;
    let req = &got[0];
    assert_eq!(req.method, "GET");
    assert_eq!(
        req.uri,
        format!("/hml/cb?src=cbd&proposal={PROPOSAL}&status=2&identifier=")
    );
    assert!(req.body.is_empty());
    assert_eq!(req.header("content-type"), None);
    assert_eq!(req.header("authorization"), None);
    assert_eq!(prod.requests().len(), 1);
}

#[tokio::test]
async fn put_without_a_body_sends_content_length_zero() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "PUT"}),
    )
    .await;
    app.enqueue(json!({"partner_id": partner, "environment": "production",
                       "event_type": "proposal.status", "proposal": PROPOSAL, "status": 8}))
        .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].method, "PUT");
    assert_eq!(got[0].header("content-length"), Some("0"));
    assert_eq!(got[0].header("content-type"), None);
    assert!(got[0].body.is_empty());
}

#[tokio::test]
async fn redirects_are_not_followed_and_slow_answers_time_out() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let elsewhere = Receiver::start().await;
    rx.script([
        Reply::status(302).with_header("location", &format!("{}/moved", elsewhere.base)),
        Reply::status(200).after(Duration::from_secs(5)),
    ]);
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST",
               "timeout_ms": 300, "max_attempts": 2}),
    )
    .await;
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": PROPOSAL, "status": 1}))
        .await;
    let id = n["deliveries"][0]["id"].as_str().unwrap();
    let d = app.wait_for_state(id, "dead", WAIT).await;
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2, "{d:#}");
    assert_eq!(log[0]["status_code"], 302);
    assert!(
        log[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("redirect: 302"),
        "{d:#}"
    );
    assert!(log[1]["status_code"].is_null());
    assert!(
        log[1]["error"].as_str().unwrap().starts_with("timeout"),
        "{d:#}"
    );
    // Cut by the 300 ms timeout, well before the partner's answer at 5 s.
    assert!(
        log[1]["duration_ms"].as_i64().unwrap() < 4000,
        "the timeout cut the attempt short"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect target was never called"
    );
}

#[tokio::test]
async fn only_the_first_4_kib_of_an_answer_are_kept() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(500).with_body(&"x".repeat(100_000)));
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST", "max_attempts": 1}),
    )
    .await;
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": PROPOSAL, "status": 1}))
        .await;
    let d = app
        .wait_for_state(n["deliveries"][0]["id"].as_str().unwrap(), "dead", WAIT)
        .await;
    assert_eq!(
        d["attempt_log"][0]["response_body"].as_str().unwrap().len(),
        4096
    );
    assert_eq!(d["last_error"], "http 500");
}

#[tokio::test]
async fn a_notification_without_a_matching_endpoint_is_stored_with_no_deliveries() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": PROPOSAL, "status": 11}))
        .await;
    assert_eq!(n["deliveries"], json!([]));
    let shown: serde_json::Value = app
        .get(&format!("/v1/notifications/{}", n["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], 11);
    assert_eq!(shown["status_name"], "Payment Pending");
    assert_eq!(shown["deliveries"], json!([]));
}
