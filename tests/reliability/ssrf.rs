//! SSRF: private targets refused at registration, and again at send time (DNS may change
//! between the two, or the endpoint was registered while private targets were allowed).

use std::time::Duration;

use callbackd::startup::Role;
use serde_json::json;

use crate::helpers::{TestDb, spawn_app_with, spawn_on};
use crate::receiver::Receiver;

#[tokio::test]
async fn private_targets_are_refused_at_registration() {
    let app = spawn_app_with(|s| s.allow_private_targets = false).await;
    let partner = app.create_partner("Acme").await;
    for url in [
        "http://127.0.0.1/cb",
        "http://localhost:8080/cb",
        "http://10.0.0.1/cb",
        "http://172.16.5.4/cb",
        "http://192.168.0.10/cb",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/cb",
        "http://0.0.0.0/cb",
        "http://[::1]/cb",
        "http://[fd00::1]/cb",
        "http://[fe80::1]/cb",
        "http://[::ffff:169.254.169.254]/cb",
        "http://[64:ff9b::a9fe:a9fe]/cb",
    ] {
        let r = app
            .post(
                &format!("/v1/partners/{partner}/endpoints"),
                &json!({"environment": "production", "url": url, "method": "POST"}),
            )
            .await;
        assert_eq!(r.status(), 422, "{url}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["field"], "url", "{url}: {v}");
    }
    for url in [
        "ftp://partner.example/cb",
        "file:///etc/passwd",
        "gopher://x.example/",
    ] {
        let r = app
            .post(
                &format!("/v1/partners/{partner}/endpoints"),
                &json!({"environment": "production", "url": url, "method": "POST"}),
            )
            .await;
        assert_eq!(r.status(), 422, "{url}");
    }
    assert_eq!(app.row_counts().await[1], ("endpoints".to_string(), 0));
}

/// An endpoint registered while private targets were allowed (or whose name resolved to a
/// public address then) is refused by a worker that does not allow them: the check happens
/// again at send time, on the addresses the connection would use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_again_at_send_time() {
    let db = TestDb::create().await;
    let api = spawn_on(db.share(), Role::Api, |s| s.allow_private_targets = true).await;
    let _worker = spawn_on(db, Role::Worker, |s| s.allow_private_targets = false).await;
    let rx = Receiver::start().await;
    let port = rx.base.rsplit(':').next().unwrap().to_string();
    let partner = api.create_partner("Acme").await;
    // An IP literal, and a name (localhost) that resolves to loopback.
    for url in [
        format!("{}/cb", rx.base),
        format!("http://localhost:{port}/cb"),
    ] {
        api.create_endpoint(
            partner,
            json!({"environment": "production", "url": url, "method": "POST",
                   "max_attempts": 2}),
        )
        .await;
    }
    let n = api
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status",
                        "proposal": "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d", "status": 3}))
        .await;
    let deliveries = n["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    for d in deliveries {
        let d = api
            .wait_for_state(d["id"].as_str().unwrap(), "dead", Duration::from_secs(20))
            .await;
        for attempt in d["attempt_log"].as_array().unwrap() {
            assert_eq!(attempt["error_kind"], "forbidden_target", "{attempt:#}");
            assert!(
                attempt["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("forbidden target: "),
                "{attempt:#}"
            );
        }
    }
    assert!(
        rx.requests().is_empty(),
        "nothing reached the private address"
    );
}

#[tokio::test]
async fn production_endpoints_can_be_required_to_use_https() {
    let app = spawn_app_with(|s| s.production_requires_https = true).await;
    let partner = app.create_partner("Acme").await;
    let path = format!("/v1/partners/{partner}/endpoints");
    let r = app
        .post(
            &path,
            &json!({"environment": "production", "url": "http://partner.example/cb", "method": "POST"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["field"], "url");
    assert!(v["error"]["message"].as_str().unwrap().contains("https"));
    let hml = app
        .create_endpoint(
            partner,
            json!({"environment": "homologation", "url": "http://partner.example/cb", "method": "POST"}),
        )
        .await;
    // Moving the http endpoint to production is refused too.
    let r = app
        .patch(
            &format!("/v1/endpoints/{}", hml["id"].as_str().unwrap()),
            &json!({"environment": "production"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": "https://partner.example/cb", "method": "POST"}),
    )
    .await;
    // Off by default.
    let app = spawn_app_with(|_| {}).await;
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": "http://partner.example/cb", "method": "POST"}),
    )
    .await;
}
