//! Group commit of `POST /v1/notifications`: concurrent single calls share transactions,
//! each caller still gets its own answer, refusals stay with their item, Idempotency-Key
//! stays race-safe, a 202 is durable, and a lone call is not held back.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use callbackd::startup::Role;
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

use super::{PROPOSAL, expect_refusal, partner_with_receiver};
use crate::support::app::{TestApp, TestDb, spawn_app, spawn_on};
use crate::support::receiver::Receiver;

fn status_change(partner: Uuid, status: u8, identifier: &str) -> Value {
    json!({"partner_id": partner, "environment": "production", "event_type": "proposal.status",
           "proposal": Uuid::new_v4(), "status": status, "identifier": identifier,
           "body": {"DescricaoOcorrencia": identifier}})
}

async fn post(app: &TestApp, key: Option<&str>, body: &Value) -> (u16, String) {
    let mut r = app
        .client
        .post(app.url("/v1/notifications"))
        .bearer_auth(&app.token);
    if let Some(key) = key {
        r = r.header("idempotency-key", key);
    }
    let r = r.json(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// How many transactions inserted the notifications: each row's xmin is its transaction.
async fn inserting_transactions(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM notifications")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// An API-only app (no worker) with a partner and two production endpoints, so every
/// notification fans out to two deliveries.
async fn api_with_two_endpoints() -> (TestApp, Uuid, HashSet<String>) {
    let app = spawn_on(TestDb::create().await, Role::Api, |_| {}).await;
    let partner = app.create_partner("Acme").await;
    let mut endpoints = HashSet::new();
    for path in ["a", "b"] {
        let e = app
            .create_endpoint(
                partner,
                json!({"environment": "production", "method": "POST",
                       "url": format!("http://127.0.0.1:9/{path}")}),
            )
            .await;
        endpoints.insert(e["id"].as_str().unwrap().to_string());
    }
    (app, partner, endpoints)
}

#[tokio::test]
async fn concurrent_single_calls_share_transactions_and_get_their_own_answers() {
    let (app, partner, endpoints) = api_with_two_endpoints().await;
    // What the workers hear: one wake-up per group that committed.
    let mut wakes = sqlx::postgres::PgListener::connect_with(&app.pool)
        .await
        .unwrap();
    wakes.listen(callbackd::store::WAKE_CHANNEL).await.unwrap();
    let calls = 200;
    let bodies: Vec<Value> = (0..calls)
        .map(|i| status_change(partner, 2, &format!("OP-{i}")))
        .collect();
    let answers = futures::future::join_all(bodies.iter().map(|b| post(&app, None, b))).await;
    let mut ids = HashSet::new();
    for (status, text) in &answers {
        assert_eq!(*status, 202, "{text}");
        let v: Value = serde_json::from_str(text).unwrap();
        let deliveries = v["deliveries"].as_array().unwrap();
        let got: HashSet<String> = deliveries
            .iter()
            .map(|d| d["endpoint_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, endpoints, "{v}");
        assert!(deliveries.iter().all(|d| d["state"] == "pending"), "{v}");
        // The answer is exactly what GET shows for this notification.
        let id = v["id"].as_str().unwrap();
        let shown: Value = app
            .get(&format!("/v1/notifications/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(shown["deliveries"], v["deliveries"]);
        assert!(ids.insert(id.to_string()), "two callers got the same id");
    }
    // Each caller's notification carries its own request.
    let identifiers: HashMap<String, String> =
        sqlx::query_as::<_, (Uuid, String)>("SELECT id, identifier FROM notifications")
            .fetch_all(&app.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, i)| (id.to_string(), i))
            .collect();
    assert_eq!(identifiers.len(), calls);
    for (_, text) in &answers {
        let v: Value = serde_json::from_str(text).unwrap();
        let body: Value = app
            .get(&format!("/v1/notifications/{}", v["id"].as_str().unwrap()))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            identifiers[v["id"].as_str().unwrap()],
            body["identifier"].as_str().unwrap()
        );
    }
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(deliveries, 2 * calls as i64);
    let transactions = inserting_transactions(&app).await;
    eprintln!("{calls} calls committed in {transactions} transactions");
    assert!(
        transactions < calls as i64,
        "{calls} calls used {transactions} transactions"
    );
    // One NOTIFY per group, not per call: the count ends when a second passes without one.
    let mut notified = 0;
    while let Ok(wake) = tokio::time::timeout(Duration::from_secs(1), wakes.recv()).await {
        wake.unwrap();
        notified += 1;
    }
    assert_eq!(notified, transactions, "NOTIFYs against committed groups");
}

#[tokio::test]
async fn a_refused_call_is_refused_alone_among_concurrent_valid_ones() {
    let (app, partner, _) = api_with_two_endpoints().await;
    let before = app.row_counts().await;
    let mut bodies: Vec<(Option<(u16, &str)>, Value)> = (0..60)
        .map(|i| (None, status_change(partner, 3, &format!("OK-{i}"))))
        .collect();
    // Refused in the database, inside the group: a partner that does not exist, and a NUL
    // character PostgreSQL cannot store (the group's statement fails and is split).
    for i in [5, 25, 45] {
        bodies[i] = (
            Some((422, "partner_id")),
            status_change(Uuid::new_v4(), 3, "unknown"),
        );
        bodies[i + 10] = (
            Some((422, "body")),
            status_change(partner, 3, "nul \u{0} in it"),
        );
    }
    // Refused by validation before any group.
    bodies[59] = (Some((422, "status")), {
        let mut b = status_change(partner, 3, "bad");
        b["status"] = json!(12);
        b
    });
    let answers = futures::future::join_all(bodies.iter().map(|(_, b)| post(&app, None, b))).await;
    let mut created = 0;
    for ((expected, _), (status, text)) in bodies.iter().zip(&answers) {
        match expected {
            None => {
                assert_eq!(*status, 202, "{text}");
                created += 1;
            }
            Some((want, field)) => {
                assert_eq!(status, want, "{text}");
                let v: Value = serde_json::from_str(text).unwrap();
                assert_eq!(v["error"]["field"], *field, "{v}");
                assert_eq!(v["error"]["code"], "validation_failed", "{v}");
            }
        }
    }
    let after = app.row_counts().await;
    let count = |rows: &[(String, i64)], t: &str| rows.iter().find(|(n, _)| n == t).unwrap().1;
    assert_eq!(
        count(&after, "notifications") - count(&before, "notifications"),
        created
    );
    assert_eq!(
        count(&after, "deliveries") - count(&before, "deliveries"),
        2 * created
    );
    let refused: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE identifier NOT LIKE 'OK-%'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(refused, 0, "a refused call wrote something");
}

#[tokio::test]
async fn idempotency_key_races_inside_and_across_groups() {
    let (app, partner, _) = api_with_two_endpoints().await;
    for round in 0..3 {
        let key = format!("race-{round}");
        let body = status_change(partner, 9, &format!("R-{round}"));
        // Repeats of one key among unkeyed calls, all at once: some share a group.
        let answers = futures::future::join_all((0..60).map(|i| {
            let (key, body) = (key.clone(), body.clone());
            let filler = status_change(partner, 1, "filler");
            let app = &app;
            async move {
                if i % 2 == 0 {
                    Some(post(app, Some(&key), &body).await)
                } else {
                    post(app, None, &filler).await;
                    None
                }
            }
        }))
        .await;
        let keyed: Vec<(u16, String)> = answers.into_iter().flatten().collect();
        assert_eq!(
            keyed.iter().filter(|(s, _)| *s == 202).count(),
            1,
            "{keyed:?}"
        );
        assert!(
            keyed.iter().all(|(s, _)| *s == 202 || *s == 200),
            "{keyed:?}"
        );
        assert!(keyed.iter().all(|(_, t)| *t == keyed[0].1), "{keyed:?}");
        let with_key: i64 =
            sqlx::query_scalar("SELECT count(*) FROM notifications WHERE identifier = $1")
                .bind(format!("R-{round}"))
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert_eq!(with_key, 1);
    }

    // One key, two different requests racing: one wins, its twins get its answer, the
    // other request gets 409 and writes nothing.
    let a = status_change(partner, 4, "A");
    let b = status_change(partner, 5, "B");
    let app = &app;
    let answers = futures::future::join_all((0..20).map(|i| {
        let body = if i % 2 == 0 { &a } else { &b };
        async move { (i % 2, post(app, Some("contested"), body).await) }
    }))
    .await;
    let winner = answers.iter().find(|(_, (s, _))| *s == 202).unwrap();
    for (side, (status, text)) in &answers {
        if *side == winner.0 {
            assert!(*status == 202 || *status == 200, "{text}");
            assert_eq!(*text, winner.1.1);
        } else {
            assert_eq!(*status, 409, "{text}");
        }
    }
    let contested: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE identifier IN ('A', 'B')")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(contested, 1);
}

#[tokio::test]
async fn a_202_is_durable_and_a_lone_call_is_not_held_back() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let body = json!({"partner_id": partner, "environment": "production",
                      "event_type": "proposal.status", "proposal": PROPOSAL, "status": 9});
    app.enqueue(body.clone()).await; // warm the pool's connections

    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let answer = app.enqueue(body.clone()).await;
        fastest = fastest.min(started.elapsed());
        // Committed before the answer: another connection sees the row and its delivery.
        let mut other = sqlx::PgConnection::connect(app.database_url())
            .await
            .unwrap();
        let id: Uuid = answer["id"].as_str().unwrap().parse().unwrap();
        let deliveries: Vec<Uuid> = sqlx::query_scalar(
            "SELECT d.id FROM notifications n JOIN deliveries d ON d.notification_id = n.id
             WHERE n.id = $1",
        )
        .bind(id)
        .fetch_all(&mut other)
        .await
        .unwrap();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(answer["deliveries"][0]["id"], deliveries[0].to_string());
        other.close().await.unwrap();
    }
    // No timer waits for company: an idle committer writes a lone call at once.
    assert!(
        fastest < Duration::from_millis(200),
        "a lone call took {fastest:?}"
    );
    // A lone refusal is answered at once too, and names its field.
    let r = app
        .client
        .post(app.url("/v1/notifications"))
        .bearer_auth(&app.token)
        .json(
            &json!({"partner_id": Uuid::new_v4(), "environment": "production",
                      "event_type": "proposal.status", "proposal": PROPOSAL, "status": 1}),
        )
        .send()
        .await
        .unwrap();
    expect_refusal(r, 422, Some("partner_id")).await;
}
