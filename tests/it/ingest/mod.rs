//! Issue 5, the platform's side: the event catalog with every seed example, idempotent and
//! batch enqueue, and `callbackd_enqueue()` inside the platform's own transaction.

mod batch;
mod catalog;
mod group_commit;
mod idempotency;
mod sql;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::TestApp;
use crate::support::receiver::Receiver;

pub const PROPOSAL: &str = "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d";

/// Posts `text` as it stands (the body's bytes and key order are the test's subject).
pub async fn post_raw(app: &TestApp, path: &str, text: String) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .unwrap()
}

/// A notification request whose `body` is the exact text `body`.
pub fn request_text(partner: Uuid, event_type: &str, extra: &str, body: &str) -> String {
    format!(
        r#"{{"partner_id":"{partner}","environment":"production","event_type":"{event_type}"{extra},"body":{body}}}"#
    )
}

/// A partner with one POST endpoint on `rx` that takes every event type.
pub async fn partner_with_receiver(app: &TestApp, rx: &Receiver) -> Uuid {
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"}),
    )
    .await;
    partner
}

/// Checks a refusal: status, `error.code`, `error.field`.
pub async fn expect_refusal(r: reqwest::Response, status: u16, field: Option<&str>) -> Value {
    let got = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(got, status, "{v}");
    assert!(v["error"]["code"].is_string(), "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    if let Some(field) = field {
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    v
}
