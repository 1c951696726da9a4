//! Retries (CONTRACT §5): spacing, dead letter, replay, Retry-After.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::{TestApp, spawn_app, spawn_app_with};
use crate::support::receiver::{Receiver, Reply};
use crate::support::wait::wait_until;

const PROPOSAL: &str = "0b9c7a62-5d4e-4f3a-8b2c-1d0e9f8a7b6c";
const WAIT: Duration = Duration::from_secs(15);

async fn one_delivery(app: &TestApp, rx: &Receiver, extra: Value) -> String {
    let partner: Uuid = app.create_partner("Acme").await;
    let mut ep =
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"});
    ep.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.create_endpoint(partner, ep).await;
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": PROPOSAL, "status": 3}))
        .await;
    n["deliveries"][0]["id"].as_str().unwrap().to_string()
}

/// The delivery once its first attempt is in its log.
async fn first_attempt_logged(app: &TestApp, id: &str) -> Value {
    wait_until(&format!("the first attempt of {id}"), WAIT, async || {
        let d = app.delivery(id).await;
        if d["attempt_log"].as_array().unwrap().len() == 1 {
            Ok(d)
        } else {
            Err(d)
        }
    })
    .await
}

#[tokio::test]
async fn n_failures_then_success_means_n_plus_one_attempts_at_the_right_spacing() {
    // base 50 ms: the delays after attempts 1, 2, 3 are 50, 100, 200 ms, minus up to 20 %.
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    rx.script([Reply::status(500), Reply::status(503), Reply::status(404)]);
    let id = one_delivery(&app, &rx, json!({})).await;

    let d = app.wait_for_state(&id, "delivered", WAIT).await;
    let got = rx.requests();
    assert_eq!(got.len(), 4);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(
            r.header("x-callback-id"),
            Some(id.as_str()),
            "same id on every retry"
        );
        assert_eq!(
            r.header("x-callback-attempt"),
            Some((i + 1).to_string().as_str())
        );
    }
    // Late, not early, is what a loaded machine makes of a timer: a retry is found at the
    // latest by the next poll (200 ms), and a second more is allowed for the load; a delay
    // counted in the wrong unit would still be far out.
    const LATE_MS: u64 = 200 + 1000;
    for (i, nominal) in [50u64, 100, 200].iter().enumerate() {
        let gap = got[i + 1].at.duration_since(got[i].at).as_millis() as u64;
        let low = nominal * 8 / 10;
        assert!(
            gap + 5 >= low,
            "gap {i} was {gap} ms, expected at least {low}"
        );
        assert!(
            gap <= nominal + LATE_MS,
            "gap {i} was {gap} ms, expected about {nominal}"
        );
    }
    let log = d["attempt_log"].as_array().unwrap();
    let codes: Vec<i64> = log
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 503, 404, 200]);
    let numbers: Vec<i64> = log.iter().map(|a| a["attempt"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    assert_eq!(log[0]["error"], "http 500");
    assert!(log[3]["error"].is_null());
    assert_eq!(d["attempts"], 4);
    assert!(d["delivered_at"].is_string());
}

#[tokio::test]
async fn always_failing_ends_dead_after_max_attempts_and_replay_starts_a_new_series() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(500).with_body("down for maintenance"));
    let id = one_delivery(&app, &rx, json!({"max_attempts": 4})).await;

    let d = app.wait_for_state(&id, "dead", WAIT).await;
    app.barrier_elsewhere().await;
    assert_eq!(
        rx.requests().len(),
        4,
        "a dead delivery is never sent again"
    );
    assert_eq!(d["attempts"], 4);
    assert_eq!(d["last_status_code"], 500);
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 4);
    assert!(
        log.iter()
            .all(|a| a["series"] == 1 && a["response_body"] == "down for maintenance")
    );

    // Dead-lettered deliveries show up under their state.
    let dead: Value = app
        .get("/v1/deliveries?state=dead")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dead["items"].as_array().unwrap().len(), 1);
    assert_eq!(dead["items"][0]["id"], id);

    // A delivered or pending delivery cannot be replayed; a dead one can.
    rx.always(Reply::status(200));
    let r = app
        .post(&format!("/v1/deliveries/{id}/replay"), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    let d = app.wait_for_state(&id, "delivered", WAIT).await;
    let got = rx.requests();
    assert_eq!(got.len(), 5);
    assert_eq!(
        got[4].header("x-callback-attempt"),
        Some("1"),
        "attempts start again at 1"
    );
    assert_eq!(got[4].header("x-callback-id"), Some(id.as_str()));
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["series"], 2);
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 5, "the earlier series stays in the log");
    assert_eq!(
        (log[4]["series"].as_i64(), log[4]["attempt"].as_i64()),
        (Some(2), Some(1))
    );
    let again = app
        .post(&format!("/v1/deliveries/{id}/replay"), &json!({}))
        .await;
    assert_eq!(again.status(), 409);
}

#[tokio::test]
async fn retry_after_on_503_lengthens_the_delay() {
    let app = spawn_app_with(|s| s.retry_max_ms = 5000).await;
    let rx = Receiver::start().await;
    rx.script([Reply::status(503).with_header("retry-after", "1")]);
    let id = one_delivery(&app, &rx, json!({})).await;
    app.wait_for_state(&id, "delivered", WAIT).await;
    let got = rx.requests();
    let gap = got[1].at.duration_since(got[0].at);
    assert!(
        gap >= Duration::from_millis(990),
        "Retry-After: 1 honoured, gap {gap:?}"
    );
    // The 1 s asked for, not the 5 s cap (the bound leaves room for a loaded machine).
    assert!(gap < Duration::from_secs(3), "gap {gap:?}");
}

#[tokio::test]
async fn retry_after_is_capped() {
    let app = spawn_app().await; // cap 400 ms
    let rx = Receiver::start().await;
    rx.script([Reply::status(429).with_header("retry-after", "3600")]);
    let id = one_delivery(&app, &rx, json!({})).await;
    app.wait_for_state(&id, "delivered", WAIT).await;
    let got = rx.requests();
    let gap = got[1].at.duration_since(got[0].at);
    // The 400 ms cap, nowhere near the hour asked for (room for a loaded machine).
    assert!(
        gap >= Duration::from_millis(390) && gap < Duration::from_secs(10),
        "{gap:?}"
    );
}

#[tokio::test]
async fn cancel_stops_a_pending_delivery() {
    let app = spawn_app_with(|s| {
        s.retry_base_ms = 60_000;
        s.retry_max_ms = 60_000;
    })
    .await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(500));
    let id = one_delivery(&app, &rx, json!({})).await;
    rx.wait_for(1, WAIT).await;
    // Now waiting a minute for its second attempt.
    let d = first_attempt_logged(&app, &id).await;
    assert_eq!(d["state"], "pending");
    let r = app
        .post(&format!("/v1/deliveries/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let d = app.delivery(&id).await;
    assert_eq!(d["state"], "canceled");
    let r = app
        .post(&format!("/v1/deliveries/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 409);
}

/// A `Retry-After` out of every range (delta-seconds beyond a u64, a date in year 9999)
/// schedules the next attempt exactly `retry_max_ms` ahead: it is neither ignored (the
/// shortest backoff) nor a panic (a delivery without outcome).
#[tokio::test]
async fn retry_after_out_of_range_is_clamped_to_the_retry_cap() {
    const CAP_MS: i64 = 3000;
    let app = spawn_app_with(|s| s.retry_max_ms = CAP_MS as u64).await;
    let cases = ["99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"];
    let mut started = Vec::new();
    for value in cases {
        let rx = Receiver::start().await;
        rx.script([Reply::status(503).with_header("retry-after", value)]);
        let id = one_delivery(&app, &rx, json!({})).await;
        started.push((value, rx, id));
    }
    // Both first attempts before either retry (which comes CAP_MS later).
    for (value, _, id) in &started {
        let d = first_attempt_logged(&app, id).await;
        assert_eq!(d["state"], "pending", "{value}: {d:#}");
        let at = |v: &Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        };
        let first = &d["attempt_log"][0];
        assert_eq!(first["status_code"], 503);
        // The delay counts from the attempt's completion, a few ms after it ended.
        let ended = at(&first["started_at"]) + first["duration_ms"].as_i64().unwrap();
        let ahead = at(&d["next_attempt_at"]) - ended;
        assert!(
            (CAP_MS..CAP_MS + 1000).contains(&ahead),
            "{value}: next attempt {ahead} ms after the first ended: {d:#}"
        );
    }
    for (value, rx, id) in &started {
        let d = app.wait_for_state(id, "delivered", WAIT).await;
        assert_eq!(d["attempts"], 2);
        let got = rx.requests();
        let gap = got[1].at.duration_since(got[0].at);
        assert!(
            gap >= Duration::from_millis(CAP_MS as u64 - 10),
            "{value}: {gap:?}"
        );
    }
}
