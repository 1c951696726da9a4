//! Operators: bulk replay, disable/enable, endpoint health, metrics.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::{TestApp, spawn_app};
use crate::support::receiver::{Receiver, Reply};
use crate::support::wait::wait_until;

const WAIT: Duration = Duration::from_secs(15);

async fn endpoint_to(app: &TestApp, partner: Uuid, rx: &Receiver, extra: Value) -> String {
    let mut body =
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.create_endpoint(partner, body).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn notify(app: &TestApp, partner: Uuid, status: i64) -> String {
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": Uuid::new_v4(), "status": status}))
        .await;
    n["deliveries"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn bulk_replay_by_filter_replays_only_what_matches() {
    let app = spawn_app().await;
    let down = Receiver::start().await;
    down.always(Reply::status(500));
    let acme = app.create_partner("Acme").await;
    let other = app.create_partner("Other").await;
    endpoint_to(&app, acme, &down, json!({"max_attempts": 1})).await;
    endpoint_to(&app, other, &down, json!({"max_attempts": 1})).await;
    let mut acme_ids = Vec::new();
    for s in 0..5 {
        acme_ids.push(notify(&app, acme, s).await);
    }
    let other_id = notify(&app, other, 1).await;
    for id in acme_ids.iter().chain([&other_id]) {
        app.wait_for_state(id, "dead", WAIT).await;
    }

    down.always(Reply::status(200));
    let r = app
        .post(
            "/v1/deliveries/replay",
            &json!({"state": "dead", "partner_id": acme}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["replayed"], 5);
    for id in &acme_ids {
        let d = app.wait_for_state(id, "delivered", WAIT).await;
        assert_eq!(d["series"], 2);
    }
    assert_eq!(
        app.delivery(&other_id).await["state"],
        "dead",
        "another partner's stay dead"
    );
    let bad = app
        .post("/v1/deliveries/replay", &json!({"state": "delivered"}))
        .await;
    assert_eq!(bad.status(), 422);
    let nothing: Value = app
        .post("/v1/deliveries/replay", &json!({"partner_id": acme}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(nothing["replayed"], 0, "nothing dead is left for acme");
}

#[tokio::test]
async fn a_disabled_endpoint_holds_its_deliveries_and_enabling_sends_them() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    rx.script([Reply::status(500)]);
    let partner = app.create_partner("Acme").await;
    let ep = endpoint_to(&app, partner, &rx, json!({})).await;
    let id = notify(&app, partner, 9).await;
    rx.wait_for(1, WAIT).await;
    // Disable while the retry is scheduled.
    let r = app
        .patch(&format!("/v1/endpoints/{ep}"), &json!({"enabled": false}))
        .await;
    assert_eq!(r.status(), 200);
    // A disabled endpoint takes no new deliveries.
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": Uuid::new_v4(), "status": 10}))
        .await;
    assert_eq!(n["deliveries"], json!([]));
    // Its retry comes due; then another partner's delivery, enqueued later, is sent: the
    // worker has claimed past the held one, which it would have sent first if it could.
    let due = wait_until("the first attempt's outcome", WAIT, async || {
        let d = app.delivery(&id).await;
        if d["attempts"] == 1 {
            Ok(d["next_attempt_at"].clone())
        } else {
            Err(d)
        }
    })
    .await;
    let due = chrono::DateTime::parse_from_rfc3339(due.as_str().unwrap()).unwrap();
    wait_until("the held retry to come due", WAIT, async || {
        chrono::Utc::now() > due
    })
    .await;
    app.barrier_elsewhere().await;
    let d = app.delivery(&id).await;
    assert_eq!(d["state"], "pending");
    assert_eq!(
        d["attempts"], 1,
        "not burned through its attempts while disabled"
    );
    assert_eq!(rx.requests().len(), 1);

    let health: Value = app
        .get(&format!("/v1/endpoints/{ep}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health["enabled"], false);
    assert_eq!(health["health"]["failure_streak"], 1);
    assert_eq!(health["health"]["pending"], 1);
    assert!(health["health"]["last_success_at"].is_null());

    app.patch(&format!("/v1/endpoints/{ep}"), &json!({"enabled": true}))
        .await;
    let d = app.wait_for_state(&id, "delivered", WAIT).await;
    assert_eq!(d["attempts"], 2);
    let health: Value = app
        .get(&format!("/v1/endpoints/{ep}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health["health"]["failure_streak"], 0);
    assert_eq!(health["health"]["pending"], 0);
    assert!(health["health"]["last_success_at"].is_string());
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let (metric_name, rest) = key.split_once('{').unwrap_or((key, ""));
            if metric_name != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse().ok()).flatten()
        })
}

#[tokio::test]
async fn metrics_count_outcomes_and_show_the_queue() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    rx.script([Reply::status(500), Reply::status(500)]);
    let partner = app.create_partner("Acme").await;
    endpoint_to(&app, partner, &rx, json!({"max_attempts": 2})).await;
    let dead = notify(&app, partner, 1).await;
    app.wait_for_state(&dead, "dead", WAIT).await;
    let ok = notify(&app, partner, 2).await;
    app.wait_for_state(&ok, "delivered", WAIT).await;

    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200, "no token needed");
    let text = r.text().await.unwrap();
    let p = partner.to_string();
    let outcome = |o| {
        metric(
            &text,
            "callbackd_delivery_outcomes_total",
            &[("partner_id", &p), ("outcome", o)],
        )
    };
    assert_eq!(outcome("failed_attempt"), Some(1.0), "{text}");
    assert_eq!(outcome("dead"), Some(1.0));
    assert_eq!(outcome("delivered"), Some(1.0));
    assert_eq!(
        metric(
            &text,
            "callbackd_attempt_duration_seconds_count",
            &[("partner_id", &p)]
        ),
        Some(3.0)
    );
    // The queue gauges read O(1) probes, not table counts: nothing is due now.
    assert_eq!(metric(&text, "callbackd_endpoints_due", &[]), Some(0.0));
    assert_eq!(
        metric(&text, "callbackd_oldest_due_age_seconds", &[]),
        Some(0.0)
    );
    assert!(metric(&text, "callbackd_db_pool_max_connections", &[]).is_some());
    assert!(!text.contains(&dead), "no delivery id in any label");
}
