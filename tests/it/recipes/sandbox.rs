//! The test-callback sandbox (`POST /v1/endpoints/{id}/test`): what the partner's server
//! answered, and for a failure its `error_kind` with a hint in English and Portuguese.

use std::time::Duration;

use callbackd::model::hints::{Lang, hint};
use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app};
use crate::support::receiver::{Receiver, Reply};

async fn homologation_endpoint(app: &TestApp, url: &str) -> String {
    let partner = app.create_partner("Acme").await;
    let e = app
        .create_endpoint(
            partner,
            json!({"environment": "homologation", "url": url, "method": "POST", "timeout_ms": 2000}),
        )
        .await;
    e["id"].as_str().unwrap().to_string()
}

async fn test_callback(app: &TestApp, endpoint: &str) -> Value {
    let r = app
        .post(&format!("/v1/endpoints/{endpoint}/test"), &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn assert_hint(outcome: &Value, kind: &str) {
    assert_eq!(outcome["error_kind"], kind, "{outcome}");
    assert_eq!(
        outcome["hint"]["en"],
        hint(kind, Lang::En).unwrap(),
        "{outcome}"
    );
    assert_eq!(
        outcome["hint"]["pt"],
        hint(kind, Lang::Pt).unwrap(),
        "{outcome}"
    );
}

#[tokio::test]
async fn a_503_answer_comes_back_with_its_status_body_head_duration_and_hint() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let endpoint = homologation_endpoint(&app, &format!("{}/cb", rx.base)).await;

    // A success has no kind and no hint.
    let ok = test_callback(&app, &endpoint).await;
    assert_eq!(ok["delivered"], true, "{ok}");
    assert!(ok["error_kind"].is_null() && ok["hint"].is_null(), "{ok}");

    rx.script([Reply::status(503)
        .with_body("maintenance until 03:00 \u{0} ção")
        .after(Duration::from_millis(300))]);
    let outcome = test_callback(&app, &endpoint).await;
    assert_eq!(outcome["delivered"], false);
    assert_eq!(outcome["status_code"], 503);
    // The head as text: a NUL cannot be stored, so it is shown escaped (text_from_bytes).
    let head = outcome["response_body"].as_str().unwrap();
    assert!(head.starts_with("maintenance until 03:00 "), "{head}");
    assert!(head.ends_with(" ção") && !head.contains('\0'), "{head}");
    let ms = outcome["duration_ms"].as_i64().unwrap();
    // Measured, not made up: at least the partner's 300 ms (the upper bound leaves room for a
    // loaded machine).
    assert!((300..10_000).contains(&ms), "took {ms} ms");
    assert_hint(&outcome, "http_5xx");
    assert_eq!(
        outcome["hint"]["en"],
        "your endpoint failed (5xx); look at your server's logs for this X-Callback-Id"
    );

    // A 10 MB answer: only its head comes back.
    rx.script([Reply::status(500).with_body(&"x".repeat(10 << 20))]);
    let big = test_callback(&app, &endpoint).await;
    assert_eq!(big["status_code"], 500);
    let head = big["response_body"].as_str().unwrap();
    assert!(
        !head.is_empty() && head.len() <= 4096,
        "{} bytes",
        head.len()
    );
    assert_hint(&big, "http_5xx");

    // The recorded tests carry the same, newest first.
    let list: Value = app
        .get(&format!("/v1/endpoints/{endpoint}/tests"))
        .await
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_hint(&items[1], "http_5xx");
    assert!(items[2]["hint"].is_null() && items[2]["error_kind"].is_null());
}

#[tokio::test]
async fn a_closed_port_is_a_connect_failure_with_its_hint() {
    let app = spawn_app().await;
    // A port that was free a moment ago and that nothing listens on now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = homologation_endpoint(&app, &format!("http://127.0.0.1:{port}/cb")).await;
    let outcome = test_callback(&app, &endpoint).await;
    assert_eq!(outcome["delivered"], false, "{outcome}");
    assert!(outcome["status_code"].is_null(), "{outcome}");
    assert!(outcome["response_body"].is_null(), "{outcome}");
    assert_hint(&outcome, "connect");
    assert_eq!(
        outcome["hint"]["pt"],
        "nada aceitou a conexão nesse host e porta; confira se o servidor está no ar e se o firewall nos libera"
    );
}
