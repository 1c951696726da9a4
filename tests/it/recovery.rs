//! Issue 9, the rest: recovery after an outage, the trigger of every series, error_kind
//! everywhere, operator alerts. The real application on a fresh database per test, real
//! receivers on 127.0.0.1.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::{TestApp, spawn_app, spawn_app_with};
use crate::support::receiver::{Receiver, Reply};
use crate::support::wait::wait_until;

const WAIT: Duration = Duration::from_secs(20);

async fn endpoint(app: &TestApp, partner: Uuid, rx: &Receiver, extra: Value) -> Value {
    let mut ep =
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"});
    ep.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.create_endpoint(partner, ep).await
}

/// Enqueues one proposal.status (a proposal of its own) and returns its delivery id.
async fn enqueue(app: &TestApp, partner: Uuid) -> String {
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": Uuid::new_v4(), "status": 3}))
        .await;
    n["deliveries"][0]["id"].as_str().unwrap().to_string()
}

/// The trigger of each series in the attempt log, in order.
fn series_triggers(d: &Value) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    for a in d["attempt_log"].as_array().unwrap() {
        let s = (
            a["series"].as_i64().unwrap(),
            a["trigger"].as_str().unwrap().to_string(),
        );
        if out.last() != Some(&s) {
            out.push(s);
        }
    }
    out
}

/// Once every endpoint's next recovery pass may start (`auto_replay_next_at` has passed):
/// the next 2xx starts a pass.
async fn next_pass_may_start(app: &TestApp) {
    wait_until("the next recovery pass to be allowed", WAIT, async || {
        sqlx::query_scalar::<_, bool>(
            "SELECT coalesce(bool_and(auto_replay_next_at IS NULL OR auto_replay_next_at <= now()),
                             true) FROM endpoints",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    })
    .await;
}

/// A 2xx on `partner`'s endpoint once a recovery pass may start, twice: the first starts a
/// pass, the second is completed after it.
async fn pass_after_a_2xx(app: &TestApp, partner: Uuid) {
    next_pass_may_start(app).await;
    for _ in 0..2 {
        app.barrier(json!({"partner_id": partner, "environment": "production",
                           "event_type": "proposal.status", "proposal": Uuid::new_v4(),
                           "status": 3}))
            .await;
    }
}

#[tokio::test]
async fn every_series_says_who_started_it() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(503));
    let partner = app.create_partner("Acme").await;
    endpoint(&app, partner, &rx, json!({"max_attempts": 1})).await;
    let id = enqueue(&app, partner).await;
    let d = app.wait_for_state(&id, "dead", WAIT).await;
    assert_eq!(d["trigger"], "initial");
    assert_eq!(series_triggers(&d), vec![(1, "initial".to_string())]);

    // The operator replays it.
    let r = app
        .post(&format!("/v1/deliveries/{id}/replay"), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["trigger"], "operator");
    app.wait_for_state(&id, "dead", WAIT).await;

    // The partner replays it with its own token.
    let t: Value = app
        .post(&format!("/v1/partners/{partner}/tokens"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let token = t["token"].as_str().unwrap();
    let r = app
        .client
        .post(app.url(&format!("/v1/deliveries/{id}/replay")))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    app.wait_for_state(&id, "dead", WAIT).await;

    // A bulk replay is the operator's.
    let r = app
        .post(
            "/v1/deliveries/replay",
            &json!({"partner_id": partner, "state": "dead"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let d = app.wait_for_state(&id, "dead", WAIT).await;
    // Wait for the attempt of series 4 (dead is written with it, in one statement).
    assert_eq!(
        series_triggers(&d),
        vec![
            (1, "initial".to_string()),
            (2, "operator".to_string()),
            (3, "partner".to_string()),
            (4, "operator".to_string()),
        ]
    );
    for a in d["attempt_log"].as_array().unwrap() {
        assert_eq!(a["error_kind"], "http_5xx", "{a}");
    }
}

#[tokio::test]
async fn dead_deliveries_arrive_without_an_operator_once_the_endpoint_answers_again() {
    let app = spawn_app_with(|s| s.auto_replay_per_second = 2).await;
    let rx = Receiver::start().await;
    let other_rx = Receiver::start().await;
    rx.always(Reply::status(503));
    other_rx.always(Reply::status(503));
    let partner = app.create_partner("Acme").await;
    let ep = endpoint(
        &app,
        partner,
        &rx,
        json!({"max_attempts": 2, "auto_replay_dead_on_recovery": true}),
    )
    .await;
    assert_eq!(ep["auto_replay_dead_on_recovery"], true);
    assert_eq!(ep["auto_replay_window_s"], 86400);
    // Another partner's endpoint that did not opt in.
    let other = app.create_partner("Other").await;
    endpoint(&app, other, &other_rx, json!({"max_attempts": 2})).await;

    // The outage: everything dies.
    let mut dead = Vec::new();
    for _ in 0..5 {
        dead.push(enqueue(&app, partner).await);
    }
    let other_dead = enqueue(&app, other).await;
    for id in dead.iter().chain([&other_dead]) {
        app.wait_for_state(id, "dead", WAIT).await;
    }
    // One of them died long ago: outside the window, it stays dead.
    let old = dead.remove(0);
    sqlx::query(
        "UPDATE deliveries SET created_at = now() - interval '2 days' WHERE id = $1::text::uuid",
    )
    .bind(&old)
    .execute(&app.pool)
    .await
    .unwrap();

    // The partner is back; the next callback gets a 2xx.
    rx.always(Reply::status(200));
    other_rx.always(Reply::status(200));
    let fresh = enqueue(&app, partner).await;
    app.wait_for_state(&fresh, "delivered", WAIT).await;
    let other_fresh = enqueue(&app, other).await;
    app.wait_for_state(&other_fresh, "delivered", WAIT).await;

    let mut replayed_at = Vec::new();
    for id in &dead {
        let d = app.wait_for_state(id, "delivered", WAIT).await;
        assert_eq!(d["trigger"], "auto_recovery");
        let triggers = series_triggers(&d);
        assert_eq!(
            triggers.last().unwrap(),
            &(2, "auto_recovery".to_string()),
            "{d:#}"
        );
        let arrived = rx
            .requests()
            .iter()
            .rfind(|r| r.header("x-callback-id") == Some(id.as_str()))
            .map(|r| r.at)
            .unwrap();
        replayed_at.push(arrived);
    }
    // Oldest first, at most 2 per second: 4 replays take at least a second.
    for w in replayed_at.windows(2) {
        assert!(w[0] <= w[1], "replayed out of creation order");
    }
    let span = replayed_at[3].duration_since(replayed_at[0]);
    assert!(span >= Duration::from_millis(900), "too fast: {span:?}");

    // Outside the window, or not opted in: still dead, after a pass that would have replayed
    // them.
    for p in [partner, other] {
        pass_after_a_2xx(&app, p).await;
    }
    assert_eq!(app.delivery(&old).await["state"], "dead");
    assert_eq!(app.delivery(&other_dead).await["state"], "dead");
}

#[tokio::test]
async fn a_successful_test_callback_starts_the_recovery_too() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(502));
    let partner = app.create_partner("Acme").await;
    let ep = endpoint(
        &app,
        partner,
        &rx,
        json!({"max_attempts": 1, "auto_replay_dead_on_recovery": true, "auto_replay_window_s": 3600}),
    )
    .await;
    let id = enqueue(&app, partner).await;
    app.wait_for_state(&id, "dead", WAIT).await;

    rx.always(Reply::status(204));
    let r = app
        .post(
            &format!("/v1/endpoints/{}/test", ep["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let d = app.wait_for_state(&id, "delivered", WAIT).await;
    assert_eq!(d["trigger"], "auto_recovery");

    // A PATCH can switch it off again; the window is validated.
    let path = format!("/v1/endpoints/{}", ep["id"].as_str().unwrap());
    let r = app
        .patch(&path, &json!({"auto_replay_dead_on_recovery": false}))
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["auto_replay_dead_on_recovery"], false);
    assert_eq!(v["auto_replay_window_s"], 3600);
    let r = app.patch(&path, &json!({"auto_replay_window_s": 0})).await;
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn an_automatic_replay_that_dies_again_is_not_replayed_again() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    endpoint(
        &app,
        partner,
        &rx,
        json!({"max_attempts": 1, "auto_replay_dead_on_recovery": true}),
    )
    .await;
    // This one's proposal is poison: the partner always refuses it.
    rx.always(Reply::status(200));
    let poison = Uuid::new_v4();
    rx.script_for(&poison.to_string(), (0..20).map(|_| Reply::status(422)));
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": poison, "status": 3}))
        .await;
    let id = n["deliveries"][0]["id"].as_str().unwrap().to_string();
    app.wait_for_state(&id, "dead", WAIT).await;
    // Healthy traffic: the first 2xx replays it once; it dies again and stays dead.
    for _ in 0..3 {
        let ok = enqueue(&app, partner).await;
        app.wait_for_state(&ok, "delivered", WAIT).await;
        next_pass_may_start(&app).await;
    }
    let d = app.wait_for_state(&id, "dead", WAIT).await;
    assert_eq!(
        series_triggers(&d),
        vec![(1, "initial".to_string()), (2, "auto_recovery".to_string())]
    );
    assert_eq!(d["attempt_log"][1]["error_kind"], "http_4xx");
}

#[tokio::test]
async fn the_error_kind_is_stored_checked_and_counted_by_kind() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(413));
    let partner = app.create_partner("Acme").await;
    endpoint(&app, partner, &rx, json!({"max_attempts": 1})).await;
    let id = enqueue(&app, partner).await;
    let d = app.wait_for_state(&id, "dead", WAIT).await;
    assert_eq!(d["attempt_log"][0]["error_kind"], "body_too_large");

    // The kind is written with the attempt (migrations/0018_error_kind.sql): the database
    // refuses a failure without one, a success with one, and a name not in the contract.
    let cases: &[(Option<&str>, Option<&str>, bool)] = &[
        (None, None, true),
        (Some("http 503"), Some("http_5xx"), true),
        (Some("connect: connection refused"), None, false),
        (None, Some("timeout"), false),
        (Some("http 503"), Some("http_503"), false),
    ];
    for (n, (error, kind, accepted)) in cases.iter().enumerate() {
        let written = sqlx::query(
            "INSERT INTO delivery_attempts
                 (delivery_id, endpoint_id, series, attempt, started_at, duration_ms,
                  error, error_kind)
             SELECT id, endpoint_id, 9, $2, now(), 0, $3, $4 FROM deliveries
             WHERE id = $1::text::uuid",
        )
        .bind(&id)
        .bind(n as i32 + 1)
        .bind(error)
        .bind(kind)
        .execute(&app.pool)
        .await;
        assert_eq!(
            written.is_ok(),
            *accepted,
            "{error:?} {kind:?}: {written:?}"
        );
    }

    // The Rust type and the SQL CHECK name the same kinds: a kind added to one alone would
    // have every attempt of that kind refused by the completion (and stored as `internal`).
    for kind in callbackd::model::ErrorKind::ALL {
        let known: bool = sqlx::query_scalar("SELECT callbackd_is_error_kind($1)")
            .bind(kind.as_str())
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert!(known, "{kind:?} is not in callbackd_is_error_kind()");
    }
    let sql_kinds: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM regexp_matches(
             pg_get_functiondef('callbackd_is_error_kind'::regproc), '''[a-z_0-9]+''', 'g')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        sql_kinds as usize,
        callbackd::model::ErrorKind::ALL.len(),
        "callbackd_is_error_kind() names kinds the Rust type does not have"
    );

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    let line = format!(
        "callbackd_failed_attempts_total{{partner_id=\"{partner}\",error_kind=\"body_too_large\"}} 1"
    );
    assert!(
        text.lines().any(|l| l == line),
        "{line} not in:\n{}",
        text.lines()
            .filter(|l| l.contains("failed_attempts"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn the_cli_shows_the_kind_and_trigger_of_each_attempt() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(503));
    let partner = app.create_partner("Acme").await;
    endpoint(&app, partner, &rx, json!({"max_attempts": 1})).await;
    let id = enqueue(&app, partner).await;
    app.wait_for_state(&id, "dead", WAIT).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .args(["deliveries", "show", &id])
        .env("DATABASE_URL", app.database_url())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text
        .lines()
        .find(|l| l.contains("series") && l.contains("response"));
    let header = header.unwrap_or_else(|| panic!("no attempt table:\n{text}"));
    assert!(
        header.contains("kind") && header.contains("trigger"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("http_5xx") && l.contains("initial")),
        "{text}"
    );
}

/// The alerts a receiver got, by type.
fn alerts_of(rx: &Receiver, kind: &str) -> Vec<Value> {
    rx.requests()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|v| v["type"] == kind)
        .collect()
}

#[tokio::test]
async fn one_alert_per_dead_letter_burst_then_one_when_the_endpoint_recovers() {
    let alerts = Receiver::start().await;
    // A failing alert receiver: alerts are sent once, never retried, never queued.
    alerts.always(Reply::status(500));
    let alerts_url = format!("{}/alerts", alerts.base);
    let app = spawn_app_with(|s| {
        s.alerts_webhook_url = alerts_url;
        s.alerts_token = "alert-token".into();
        s.alerts_failure_streak = 3;
        s.alerts_min_interval_s = 300;
        s.alerts_burst_window_ms = 1500;
    })
    .await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(503));
    let partner = app.create_partner("Acme").await;
    let ep = endpoint(&app, partner, &rx, json!({"max_attempts": 2})).await;

    // A burst of 5 deaths: one alert, with the count.
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(enqueue(&app, partner).await);
    }
    for id in &ids {
        app.wait_for_state(id, "dead", WAIT).await;
    }
    wait_until("the dead-letter alert", WAIT, async || {
        !alerts_of(&alerts, "deliveries.dead").is_empty()
    })
    .await;
    let dead = alerts_of(&alerts, "deliveries.dead");
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["count"], 5);
    assert_eq!(dead[0]["endpoint_id"], ep["id"]);
    assert_eq!(dead[0]["partner_id"], partner.to_string());
    assert_eq!(dead[0]["last_error_kind"], "http_5xx");
    let failing = alerts_of(&alerts, "endpoint.failing");
    assert_eq!(failing.len(), 1, "{failing:#?}");
    assert_eq!(failing[0]["failure_streak"], 3);
    let first = alerts.requests()[0].clone();
    assert_eq!(first.header("authorization"), Some("Bearer alert-token"));
    assert_eq!(first.header("content-type"), Some("application/json"));

    // More deaths within the rate limit: no further alert.
    for _ in 0..2 {
        let id = enqueue(&app, partner).await;
        app.wait_for_state(&id, "dead", WAIT).await;
    }
    // Then another endpoint's burst, which begins later: once its alert is out, the burst
    // window of the held-back deaths has closed too (one alerter, in order).
    let rx2 = Receiver::start().await;
    rx2.always(Reply::status(503));
    let partner2 = app.create_partner("Second").await;
    let ep2 = endpoint(&app, partner2, &rx2, json!({"max_attempts": 1})).await;
    let id = enqueue(&app, partner2).await;
    app.wait_for_state(&id, "dead", WAIT).await;
    wait_until(
        "the second endpoint's dead-letter alert",
        WAIT,
        async || alerts_of(&alerts, "deliveries.dead").len() == 2,
    )
    .await;
    let dead = alerts_of(&alerts, "deliveries.dead");
    assert_eq!(dead[1]["endpoint_id"], ep2["id"], "{dead:#?}");
    assert_eq!(alerts_of(&alerts, "endpoint.failing").len(), 1);

    // Back up: the first 2xx after the alert says so, once.
    rx.always(Reply::status(200));
    for _ in 0..3 {
        let id = enqueue(&app, partner).await;
        app.wait_for_state(&id, "delivered", WAIT).await;
    }
    wait_until("the recovery alert", WAIT, async || {
        !alerts_of(&alerts, "endpoint.recovered").is_empty()
    })
    .await;
    // Then the second endpoint recovers too: once its alert is out, the alerter has long
    // considered the first endpoint's later 2xx.
    rx2.always(Reply::status(200));
    let id = enqueue(&app, partner2).await;
    app.wait_for_state(&id, "delivered", WAIT).await;
    wait_until("the second endpoint's recovery alert", WAIT, async || {
        alerts_of(&alerts, "endpoint.recovered").len() == 2
    })
    .await;
    let recovered = alerts_of(&alerts, "endpoint.recovered");
    assert_eq!(recovered.len(), 2, "{recovered:#?}");
    assert_eq!(recovered[0]["endpoint_id"], ep["id"]);
    assert_eq!(recovered[1]["endpoint_id"], ep2["id"]);
    assert_eq!(
        alerts.requests().len(),
        3 + 2,
        "one POST per alert (and the second endpoint's two), never retried"
    );

    // Alerts are not deliveries.
    let (deliveries, notifications): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM notifications)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (deliveries, notifications),
        (12, 12),
        "10, and the second endpoint's 2"
    );
}
