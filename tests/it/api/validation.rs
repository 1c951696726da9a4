//! Bad input: a clear 4xx in the JSON error shape, and nothing written.

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app, spawn_app_with};

const PROPOSAL: &str = "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d";

async fn expect_error(r: reqwest::Response, status: u16, field: Option<&str>) -> Value {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["code"].is_string(), "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    if let Some(field) = field {
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    v
}

async fn setup() -> (TestApp, uuid::Uuid) {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": "http://127.0.0.1:9/cb", "method": "POST"}),
    )
    .await;
    (app, partner)
}

#[tokio::test]
async fn bad_notifications_are_refused_and_write_nothing() {
    let (app, partner) = setup().await;
    let before = app.row_counts().await;
    let good = json!({"partner_id": partner, "environment": "production",
                      "event_type": "proposal.status", "proposal": PROPOSAL, "status": 2});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let cases = [
        (
            with("partner_id", json!(uuid::Uuid::new_v4())),
            "partner_id",
        ),
        (with("partner_id", json!("nope")), "partner_id"),
        (with("environment", json!("staging")), "environment"),
        (with("status", json!(12)), "status"),
        (with("status", json!(-1)), "status"),
        (with("proposal", json!("not-a-guid")), "proposal"),
        (with("event_type", json!("proposal.unknown")), "event_type"),
        (with("body", json!([1, 2])), "body"),
        (with("surprise", json!(1)), "surprise"),
    ];
    for (body, field) in cases {
        let v = expect_error(app.post("/v1/notifications", &body).await, 422, Some(field)).await;
        assert_eq!(v["error"]["code"], "validation_failed");
    }
    let mut no_status = good.clone();
    no_status.as_object_mut().unwrap().remove("status");
    expect_error(
        app.post("/v1/notifications", &no_status).await,
        422,
        Some("status"),
    )
    .await;

    let malformed = app
        .client
        .post(app.url("/v1/notifications"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body("{\"partner_id\": ")
        .send()
        .await
        .unwrap();
    expect_error(malformed, 400, None).await;
    assert_eq!(app.row_counts().await, before);
}

#[tokio::test]
async fn bad_endpoints_are_refused_and_write_nothing() {
    let (app, partner) = setup().await;
    let before = app.row_counts().await;
    let path = format!("/v1/partners/{partner}/endpoints");
    let good =
        json!({"environment": "production", "url": "https://partner.example/cb", "method": "POST"});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("url", json!("not a url")), "url"),
        (with("url", json!("ftp://partner.example/")), "url"),
        (
            with("url", json!("https://user:pw@partner.example/")),
            "url",
        ),
        (with("method", json!("DELETE")), "method"),
        (with("environment", json!("staging")), "environment"),
        (
            with("event_types", json!(["proposal.unknown"])),
            "event_types[0]",
        ),
        (with("event_types", json!([])), "event_types"),
        (with("timeout_ms", json!(0)), "timeout_ms"),
        (with("max_attempts", json!(0)), "max_attempts"),
        (with("auth", json!({"type": "bearer"})), "auth"),
        (
            with("auth", json!({"type": "bearer", "token": ""})),
            "auth.token",
        ),
    ];
    for (body, field) in cases {
        let v = expect_error(app.post(&path, &body).await, 422, None).await;
        let got = v["error"]["field"].as_str().unwrap();
        assert!(got.starts_with(field), "expected field {field}, got {v}");
    }
    // A GET endpoint can carry proposal.status only.
    let mut get = with("method", json!("GET"));
    get["event_types"] = json!(["proposal.status", "schedule.event"]);
    expect_error(app.post(&path, &get).await, 422, Some("event_types")).await;
    // Unknown partner in the path: 404.
    let missing = format!("/v1/partners/{}/endpoints", uuid::Uuid::new_v4());
    expect_error(app.post(&missing, &good).await, 404, None).await;
    expect_error(app.get("/v1/partners/not-a-uuid").await, 404, None).await;
    assert_eq!(app.row_counts().await, before);
}

#[tokio::test]
async fn the_api_needs_the_operator_token() {
    let (app, _) = setup().await;
    let before = app.row_counts().await;
    let no_token = app
        .client
        .post(app.url("/v1/partners"))
        .json(&json!({"name": "Evil"}))
        .send()
        .await
        .unwrap();
    expect_error(no_token, 401, None).await;
    let wrong = app
        .client
        .post(app.url("/v1/partners"))
        .bearer_auth("test-operator-tokeN")
        .json(&json!({"name": "Evil"}))
        .send()
        .await
        .unwrap();
    let v = expect_error(wrong, 401, None).await;
    assert_eq!(v["error"]["code"], "unauthorized");
    let list = app
        .client
        .get(app.url("/v1/deliveries"))
        .send()
        .await
        .unwrap();
    expect_error(list, 401, None).await;
    assert_eq!(app.row_counts().await, before);
    // Health needs no token.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let app = spawn_app_with(|s| s.allow_private_targets = false).await;
    let partner = app.create_partner("Acme").await;
    let before = app.row_counts().await;
    for url in [
        "http://127.0.0.1:8080/cb",
        "http://localhost/cb",
        "http://10.0.0.5/cb",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/cb",
    ] {
        let r = app
            .post(
                &format!("/v1/partners/{partner}/endpoints"),
                &json!({"environment": "production", "url": url, "method": "POST"}),
            )
            .await;
        expect_error(r, 422, Some("url")).await;
    }
    assert_eq!(app.row_counts().await, before);
    // A name that does not resolve is accepted now and fails at send time.
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": "https://callbackd-test.invalid/cb", "method": "POST"}),
    )
    .await;
}

#[tokio::test]
async fn delivery_list_filters_are_checked() {
    let (app, _) = setup().await;
    for (q, field) in [
        ("state=lost", "state"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("since=yesterday", "since"),
        ("cursor=garbage", "cursor"),
        ("partner_id=x", "partner_id"),
        ("colour=blue", "colour"),
    ] {
        expect_error(
            app.get(&format!("/v1/deliveries?{q}")).await,
            422,
            Some(field),
        )
        .await;
    }
}
