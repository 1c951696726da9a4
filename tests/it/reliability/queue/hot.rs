//! The completion's update of the wide `deliveries` row is HOT: it changes no indexed column
//! and finds room on its page, so it writes no index entry (migrations/0020_hot_completion.sql).
//! What the indexes it lost served (listing by state, the health counts) still answers, from
//! `delivery_stopped` and the queue.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use super::wait_until;
use crate::reliability::queue_speed::staging::{enqueue_batched, partner_at, wait_delivered};
use crate::support::app::{TestApp, spawn_app, spawn_app_with};
use crate::support::receiver::{Receiver, Reply};

const WAIT: Duration = Duration::from_secs(30);

/// `(n_tup_upd, n_tup_hot_upd)` of `deliveries`, once PostgreSQL's statistics show at least
/// `n` updates (each backend sends its counts within ~10 s of going idle).
async fn updates(app: &TestApp, n: i64) -> (i64, i64) {
    wait_until(
        &format!("{n} updates of deliveries counted"),
        WAIT,
        async || {
            let (upd, hot): (i64, i64) = sqlx::query_as(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
             WHERE relid = 'deliveries'::regclass",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
            if upd >= n {
                Ok((upd, hot))
            } else {
                Err((upd, hot))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_update_the_delivery_row_hot_and_write_no_side_row() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    // Ordered (the default for proposal.status): numbered, and the sequence written by the
    // completion, which an index named until migration 0020.
    let (partner, endpoint) = partner_at(&app, "Acme", &format!("{}/cb", rx.base), json!({})).await;
    let proposals: Vec<Uuid> = (0..600).map(|_| Uuid::new_v4()).collect();
    let ids = enqueue_batched(&app, partner, &proposals).await;
    assert_eq!(ids.len(), 600);
    wait_delivered(&app, &endpoint, 600, Instant::now() + WAIT).await;

    // One update per delivery (its only attempt), and nothing else updates the table. Before
    // migration 0020 none was HOT (0 of 600, checked). Bound: 95 %, room for a few new
    // versions that find no room on their page (rows longer than measured); measured 600
    // of 600 here, 100,000 of 100,000 in `callbackd-bench burst` and `one-endpoint`.
    let (upd, hot) = updates(&app, 600).await;
    eprintln!("deliveries: {hot} HOT updates of {upd}");
    assert_eq!(upd, 600, "one update per delivered delivery");
    assert!(
        hot * 100 >= upd * 95,
        "{hot} of {upd} updates of deliveries were HOT; every non-HOT one wrote an entry into \
         each of the table's indexes"
    );
    let side: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_stopped")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        side, 0,
        "a delivered delivery writes no delivery_stopped row"
    );
}

/// The ids `GET /v1/deliveries?<query>` lists, following every cursor, pages of `limit`.
async fn listed(app: &TestApp, query: &str, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/deliveries?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = app.get(&path).await;
        assert_eq!(r.status(), 200, "{path}");
        let v: Value = r.json().await.unwrap();
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= limit as usize, "{v:#}");
        ids.extend(items.iter().map(|d| d["id"].as_str().unwrap().to_string()));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

async fn health(app: &TestApp, endpoint: &str) -> (i64, i64) {
    let v: Value = app
        .get(&format!("/v1/endpoints/{endpoint}"))
        .await
        .json()
        .await
        .unwrap();
    let h = &v["health"];
    (h["pending"].as_i64().unwrap(), h["dead"].as_i64().unwrap())
}

/// `delivery_stopped` holds exactly the dead and canceled deliveries, with their state.
async fn assert_stopped_consistent(app: &TestApp) {
    let (missing, extra): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM deliveries d WHERE d.state IN ('dead', 'canceled')
                 AND NOT EXISTS (SELECT 1 FROM delivery_stopped s
                                 WHERE s.delivery_id = d.id AND s.state = d.state
                                   AND s.endpoint_id = d.endpoint_id
                                   AND s.created_at = d.created_at)),
                (SELECT count(*) FROM delivery_stopped s WHERE NOT EXISTS (
                     SELECT 1 FROM deliveries d WHERE d.id = s.delivery_id AND d.state = s.state))",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (missing, extra),
        (0, 0),
        "dead/canceled deliveries without their delivery_stopped row, and rows without theirs"
    );
}

fn set(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

fn status(partner: Uuid, n: i16) -> Value {
    json!({"partner_id": partner, "environment": "production", "event_type": "proposal.status",
           "proposal": Uuid::new_v4(), "status": n})
}

async fn enqueue_to(app: &TestApp, partner: Uuid, endpoint: &str, n: i16) -> String {
    let v = app.enqueue(status(partner, n)).await;
    v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["endpoint_id"] == endpoint)
        .unwrap_or_else(|| panic!("no delivery to {endpoint}: {v}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_canceled_and_pending_are_listed_and_counted_without_a_state_index() {
    // A failed attempt is retried only after 10 minutes: a failing delivery stays pending.
    let app = spawn_app_with(|s| {
        s.retry_base_ms = 600_000;
        s.retry_max_ms = 600_000;
    })
    .await;
    let rx = Receiver::start().await;
    rx.script_for("/dead", (0..20).map(|_| Reply::status(500)));
    rx.script_for("/waits", (0..20).map(|_| Reply::status(503)));
    rx.script_for("/slow", [Reply::status(200).after(Duration::from_secs(4))]);
    let partner = app.create_partner("Acme").await;
    let mut endpoints = Vec::new();
    for (path, extra) in [
        ("dead", json!({"max_attempts": 1})),
        ("ok", json!({})),
        ("waits", json!({"max_attempts": 5})),
    ] {
        let mut body = json!({"environment": "production", "method": "POST", "ordering": "none",
                              "url": format!("{}/{path}", rx.base)});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let e = app.create_endpoint(partner, body).await;
        endpoints.push(e["id"].as_str().unwrap().to_string());
    }
    let [dead_e, ok_e, waits_e] = <[String; 3]>::try_from(endpoints).unwrap();
    // The slow endpoint belongs to a partner of its own, which gets one notification.
    let (slow_partner, slow_e) = partner_at(
        &app,
        "Slow",
        &format!("{}/slow", rx.base),
        json!({"timeout_ms": 8000}),
    )
    .await;

    // Each notification of the partner reaches its three endpoints.
    let mut dead = Vec::new();
    let mut delivered = Vec::new();
    let mut pending = Vec::new();
    for n in 0..3 {
        let v = app.enqueue(status(partner, n)).await;
        for d in v["deliveries"].as_array().unwrap() {
            let id = d["id"].as_str().unwrap().to_string();
            let e = d["endpoint_id"].as_str().unwrap();
            if e == dead_e {
                dead.push(id);
            } else if e == ok_e {
                delivered.push(id);
            } else {
                pending.push(id);
            }
        }
    }
    let running = enqueue_to(&app, slow_partner, &slow_e, 4).await;
    for id in &dead {
        app.wait_for_state(id, "dead", WAIT).await;
    }
    for id in &pending {
        wait_until("a failed attempt", WAIT, async || {
            app.delivery(id).await["attempt_log"]
                .as_array()
                .unwrap()
                .len()
                == 1
        })
        .await;
    }
    // Canceled while its request is on the wire: canceled, but its queue row stays running
    // until the request ends.
    wait_until("the slow request on the wire", WAIT, async || {
        rx.requests().iter().any(|r| r.uri.contains("/slow"))
    })
    .await;
    let r = app
        .post(&format!("/v1/deliveries/{running}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let queued: Option<String> =
        sqlx::query_scalar("SELECT queue FROM delivery_queue WHERE delivery_id = $1::uuid")
            .bind(&running)
            .fetch_optional(&app.pool)
            .await
            .unwrap();
    assert_eq!(queued.as_deref(), Some("running"));
    // And one canceled while it waits for its retry.
    let canceled_waiting = pending.pop().unwrap();
    let r = app
        .post(
            &format!("/v1/deliveries/{canceled_waiting}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let canceled = vec![running.clone(), canceled_waiting];
    for id in &delivered {
        app.wait_for_state(id, "delivered", WAIT).await;
    }
    assert_stopped_consistent(&app).await;

    for limit in [1, 2, 50] {
        assert_eq!(set(&listed(&app, "state=dead", limit).await), set(&dead));
        assert_eq!(
            set(&listed(&app, "state=canceled", limit).await),
            set(&canceled)
        );
        assert_eq!(
            set(&listed(&app, "state=pending", limit).await),
            set(&pending)
        );
        assert_eq!(
            set(&listed(&app, "state=delivered", limit).await),
            set(&delivered)
        );
    }
    // Newest first, as without a state filter.
    let all = listed(&app, "", 50).await;
    let dead_order: Vec<String> = all.iter().filter(|id| dead.contains(id)).cloned().collect();
    assert_eq!(listed(&app, "state=dead", 2).await, dead_order);
    assert_eq!(
        listed(&app, &format!("state=dead&endpoint_id={dead_e}"), 2).await,
        dead_order
    );
    assert!(
        listed(&app, &format!("state=dead&endpoint_id={ok_e}"), 2)
            .await
            .is_empty()
    );

    assert_eq!(health(&app, &dead_e).await, (0, 3));
    assert_eq!(health(&app, &ok_e).await, (0, 0));
    assert_eq!(health(&app, &waits_e).await, (2, 0));
    assert_eq!(
        health(&app, &slow_e).await,
        (0, 0),
        "canceled while running is not pending"
    );

    // A replay takes it off the dead list (its endpoint disabled, it waits as pending);
    // dying again puts it back.
    let again = &dead[0];
    let r = app
        .patch(
            &format!("/v1/endpoints/{dead_e}"),
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post(&format!("/v1/deliveries/{again}/replay"), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    assert_stopped_consistent(&app).await;
    let listed_dead = set(&listed(&app, "state=dead", 2).await);
    assert_eq!(listed_dead, set(&dead[1..]));
    let mut now_pending = pending.clone();
    now_pending.push(again.clone());
    assert_eq!(
        set(&listed(&app, "state=pending", 2).await),
        set(&now_pending)
    );
    assert_eq!(health(&app, &dead_e).await, (1, 2));
    let r = app
        .patch(
            &format!("/v1/endpoints/{dead_e}"),
            &json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    wait_until("the replay died again", WAIT, async || {
        app.delivery(again).await["attempt_log"]
            .as_array()
            .unwrap()
            .len()
            == 2
    })
    .await;
    app.wait_for_state(again, "dead", WAIT).await;
    assert_eq!(set(&listed(&app, "state=dead", 2).await), set(&dead));
    assert_eq!(health(&app, &dead_e).await, (0, 3));
    // The slow request ends: its attempt is logged, the delivery stays canceled.
    wait_until("the canceled request's queue row gone", WAIT, async || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM delivery_queue WHERE delivery_id = $1::uuid",
        )
        .bind(&running)
        .fetch_one(&app.pool)
        .await
        .unwrap()
            == 0
    })
    .await;
    assert_eq!(app.delivery(&running).await["state"], "canceled");
    assert_eq!(
        set(&listed(&app, "state=canceled", 1).await),
        set(&canceled)
    );
    assert_stopped_consistent(&app).await;
}
