//! Partners and endpoints: CRUD, defaults, secrets never shown, changes take effect.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::spawn_app;
use crate::support::receiver::{Receiver, Reply};

const PROPOSAL: &str = "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d";

#[tokio::test]
async fn partner_crud() {
    let app = spawn_app().await;
    let id = app.create_partner("  Acme  ").await;
    let p: Value = app
        .get(&format!("/v1/partners/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["name"], "Acme");
    let r = app
        .patch(&format!("/v1/partners/{id}"), &json!({"name": "Acme S.A."}))
        .await;
    assert_eq!(r.status(), 200);
    let list: Value = app.get("/v1/partners").await.json().await.unwrap();
    assert_eq!(list["items"][0]["name"], "Acme S.A.");
    assert_eq!(
        app.delete(&format!("/v1/partners/{id}")).await.status(),
        204
    );
    assert_eq!(app.get(&format!("/v1/partners/{id}")).await.status(), 404);
    assert_eq!(
        app.delete(&format!("/v1/partners/{id}")).await.status(),
        404
    );
    let list: Value = app.get("/v1/partners").await.json().await.unwrap();
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn endpoint_defaults_and_secrets_never_returned() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let get = app
        .create_endpoint(
            partner,
            json!({"environment": "homologation", "url": "http://127.0.0.1:9/cb", "method": "GET",
                   "auth": {"type": "bearer", "token": "very-secret-bearer"}}),
        )
        .await;
    assert_eq!(get["event_types"], json!(["proposal.status"]));
    assert_eq!(get["timeout_ms"], 2000, "the configured default");
    assert_eq!(get["max_attempts"], 10);
    assert_eq!(get["enabled"], true);
    assert_eq!(get["auth"], json!({"type": "bearer"}));
    let post = app
        .create_endpoint(
            partner,
            json!({"environment": "production", "url": "http://127.0.0.1:9/cb", "method": "POST"}),
        )
        .await;
    assert_eq!(
        post["event_types"].as_array().unwrap().len(),
        12,
        "every type POST can carry"
    );
    assert_eq!(post["auth"], json!({"type": "none"}));

    for path in [
        format!("/v1/endpoints/{}", get["id"].as_str().unwrap()),
        format!("/v1/partners/{partner}/endpoints"),
    ] {
        let text = app.get(&path).await.text().await.unwrap();
        assert!(!text.contains("very-secret-bearer"), "{text}");
    }
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT auth_sealed FROM endpoints WHERE auth_type = 'bearer'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains("very-secret-bearer"),
        "encrypted at rest"
    );
}

#[tokio::test]
async fn patch_changes_what_the_next_delivery_uses() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    let ep = app
        .create_endpoint(
            partner,
            json!({"environment": "production", "url": format!("{}/old", rx.base), "method": "POST",
                   "auth": {"type": "bearer", "token": "first"}}),
        )
        .await;
    let path = format!("/v1/endpoints/{}", ep["id"].as_str().unwrap());
    let notify = json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": PROPOSAL, "status": 4});
    app.enqueue(notify.clone()).await;
    rx.wait_for(1, Duration::from_secs(10)).await;

    // Only the URL changes: the stored token stays.
    let r = app
        .patch(&path, &json!({"url": format!("{}/new", rx.base)}))
        .await;
    assert_eq!(r.status(), 200);
    app.enqueue(notify.clone()).await;
    rx.wait_for(2, Duration::from_secs(10)).await;
    // Then the auth changes: the next delivery uses the new token.
    let r = app
        .patch(
            &path,
            &json!({"auth": {"type": "bearer", "token": "second"}, "method": "PUT"}),
        )
        .await;
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["method"], "PUT");
    assert_eq!(patched["url"], format!("{}/new", rx.base));
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    assert!(got[1].uri.starts_with("/new?"));
    assert_eq!(got[1].header("authorization"), Some("Bearer first"));
    app.enqueue(notify).await;
    let got = rx.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got[2].method, "PUT");
    assert_eq!(got[2].header("authorization"), Some("Bearer second"));
    assert_eq!(got[0].header("authorization"), Some("Bearer first"));
    assert!(got[0].uri.starts_with("/old?"));
}

#[tokio::test]
async fn several_endpoints_per_environment_each_get_a_delivery_and_disabled_ones_none() {
    let app = spawn_app().await;
    let a = Receiver::start().await;
    let b = Receiver::start().await;
    let c = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    for rx in [&a, &b] {
        app.create_endpoint(partner, json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"}))
            .await;
    }
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", c.base), "method": "POST", "enabled": false}),
    )
    .await;
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": PROPOSAL, "status": 6}))
        .await;
    assert_eq!(n["deliveries"].as_array().unwrap().len(), 2);
    a.wait_for(1, Duration::from_secs(10)).await;
    b.wait_for(1, Duration::from_secs(10)).await;
    assert!(c.requests().is_empty());
}

#[tokio::test]
async fn deleting_an_endpoint_cancels_its_pending_deliveries() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(500));
    let partner = app.create_partner("Acme").await;
    let ep = app
        .create_endpoint(partner, json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"}))
        .await;
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": PROPOSAL, "status": 6}))
        .await;
    rx.wait_for(1, Duration::from_secs(10)).await;
    let r = app
        .delete(&format!("/v1/endpoints/{}", ep["id"].as_str().unwrap()))
        .await;
    assert_eq!(r.status(), 204);
    let d = app
        .wait_for_state(
            n["deliveries"][0]["id"].as_str().unwrap(),
            "canceled",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(d["last_error"], "endpoint deleted");
    let seen = rx.requests().len();
    app.barrier_elsewhere().await;
    assert_eq!(rx.requests().len(), seen, "never called again");
}

#[tokio::test]
async fn delivery_listing_filters_and_pages_newest_first() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let other = app.create_partner("Other").await;
    for p in [partner, other] {
        app.create_endpoint(
            p,
            json!({"environment": "production", "url": "http://127.0.0.1:9/cb",
                                      "method": "POST", "enabled": true, "max_attempts": 1}),
        )
        .await;
    }
    let mut ids = Vec::new();
    for i in 0..7 {
        let n = app
            .enqueue(json!({"partner_id": partner, "environment": "production",
                            "event_type": "proposal.status", "proposal": PROPOSAL, "status": i}))
            .await;
        ids.push(n["deliveries"][0]["id"].as_str().unwrap().to_string());
    }
    app.enqueue(json!({"partner_id": other, "environment": "production",
                       "event_type": "proposal.status", "proposal": PROPOSAL, "status": 1}))
        .await;
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/deliveries?partner_id={partner}&limit=3");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Value = app.get(&path).await.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["partner_id"], partner.to_string());
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        // Rows added while paging do not disturb the pages not yet read.
        app.enqueue(json!({"partner_id": partner, "environment": "production",
                           "event_type": "proposal.status", "proposal": PROPOSAL, "status": 0}))
            .await;
    }
    assert_eq!(seen, ids);
    let by_proposal: Value = app
        .get(&format!("/v1/deliveries?proposal={PROPOSAL}&environment=production&event_type=proposal.status&limit=100"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_proposal["items"].as_array().unwrap().len(), 7 + 1 + 2);
    let future: Value = app
        .get("/v1/deliveries?since=2999-01-01T00:00:00Z")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(future["items"], json!([]));
}

/// `propagate_trace_context`: off unless asked for, shown in every view, kept by a PATCH
/// that does not name it, and a boolean (a string, a number, a list or an object is refused).
#[tokio::test]
async fn propagate_trace_context_is_an_opt_in_boolean() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let off = app
        .create_endpoint(
            partner,
            json!({"environment": "production", "url": "https://a.example/cb", "method": "POST"}),
        )
        .await;
    assert_eq!(off["propagate_trace_context"], false);
    let on = app
        .create_endpoint(
            partner,
            json!({"environment": "production", "url": "https://b.example/cb", "method": "POST",
                   "propagate_trace_context": true}),
        )
        .await;
    assert_eq!(on["propagate_trace_context"], true);
    let path = format!("/v1/endpoints/{}", on["id"].as_str().unwrap());
    let kept: Value = app
        .patch(&path, &json!({"enabled": true}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["propagate_trace_context"], true);
    for bad in [json!("true"), json!(1), json!([true]), json!({})] {
        let r = app
            .patch(&path, &json!({"propagate_trace_context": bad}))
            .await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(
            body["error"]["field"], "propagate_trace_context",
            "{bad}: {body}"
        );
    }
    let r = app
        .patch(&path, &json!({"propagate_trace_context": false}))
        .await;
    assert_eq!(r.status(), 200);
    let shown: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(shown["propagate_trace_context"], false);
    let listed: Value = app
        .get(&format!("/v1/partners/{partner}/endpoints"))
        .await
        .json()
        .await
        .unwrap();
    let flags: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["propagate_trace_context"])
        .collect();
    assert_eq!(flags, [&json!(false), &json!(false)]);
}
