//! A known secret never shows up in the logs (at debug level) or anywhere in the database.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::TestDb;
use crate::support::process::{self, TOKEN};
use crate::support::receiver::{Receiver, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_secret_is_in_no_log_line_and_nowhere_in_the_database() {
    let canary = format!("canary-{}", Uuid::new_v4().simple());
    let db = TestDb::create().await;
    let rx = Receiver::start().await;
    // A failed attempt first (its error and the answer are logged and stored), then a 2xx.
    rx.script([Reply::status(500).with_body("nope")]);
    let app = process::start(&db.url, "all", &[("RUST_LOG", "debug")]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: String, body: Value| {
        client
            .post(app.api(&path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let p: Value = post("/v1/partners".into(), json!({"name": "Acme"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let partner = p["id"].as_str().unwrap().to_string();
    let mut endpoint_answers = String::new();
    for (method, auth) in [
        ("POST", json!({"type": "bearer", "token": canary})),
        (
            "PUT",
            json!({"type": "basic", "username": "u", "password": canary}),
        ),
        ("POST", json!({"type": "hmac", "secret": canary})),
    ] {
        let r = post(
            format!("/v1/partners/{partner}/endpoints"),
            json!({"environment": "production", "url": format!("{}/cb", rx.base),
                   "method": method, "auth": auth}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
        endpoint_answers.push_str(&r.text().await.unwrap());
    }
    assert!(!endpoint_answers.contains(&canary), "API answers hide it");
    let r = post(
        "/v1/notifications".into(),
        json!({"partner_id": partner, "environment": "production",
               "event_type": "proposal.status", "proposal": Uuid::new_v4(), "status": 9}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    // 3 deliveries; the first request fails, so 4 requests in all.
    rx.wait_for(4, Duration::from_secs(20)).await;
    // The receiver did get the bearer token: the canary is real.
    assert!(
        rx.requests()
            .iter()
            .any(|r| { r.header("authorization") == Some(&format!("Bearer {canary}")) })
    );
    let listing = client
        .get(app.api(&format!("/v1/partners/{partner}/endpoints")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listing.contains(&canary));
    // Stopped the way an operator stops it: once it logged its last line, its log is whole.
    app.signal("TERM");
    app.wait_for_output("callbackd stopped", Duration::from_secs(30))
        .await;

    // Logs, at debug level.
    let log = app.output();
    assert!(log.contains("DEBUG"), "the log ran at debug level");
    assert!(!log.contains(&canary), "the secret leaked into the log");
    assert!(!log.contains(TOKEN), "the API token leaked into the log");

    // The whole database, as pg_dump writes it.
    let dump = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", &db.url])
        .output()
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains(&partner), "the dump has the data");
    assert!(!dump.contains(&canary), "the secret is stored in clear");
    // Nor hex-encoded (bytea columns are dumped as hex).
    let hex: String = canary.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!dump.contains(&hex));
}
