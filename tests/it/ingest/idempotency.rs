//! `Idempotency-Key` on `POST /v1/notifications`.

use std::time::Duration;

use callbackd::model::NewNotification;
use callbackd::startup::Role;
use callbackd::store::{Db, GroupItem, Written, write_group};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use super::{PROPOSAL, expect_refusal, partner_with_receiver};
use crate::support::app::{TestApp, TestDb, spawn_app, spawn_on};
use crate::support::receiver::Receiver;
use crate::support::wait::wait_until;

async fn post_keyed(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/notifications"))
        .bearer_auth(&app.token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn status_change(partner: Uuid, status: u8) -> Value {
    json!({"partner_id": partner, "environment": "production", "event_type": "proposal.status",
           "proposal": PROPOSAL, "status": status, "identifier": "OP-1",
           "body": {"z": 1, "a": 2}})
}

async fn count(app: &TestApp, table: &str) -> i64 {
    app.row_counts()
        .await
        .into_iter()
        .find(|(t, _)| t == table)
        .unwrap()
        .1
}

#[tokio::test]
async fn a_repeat_returns_the_first_answer_and_creates_nothing() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let body = status_change(partner, 9);

    let first = post_keyed(&app, "order-42/paid", &body).await;
    assert_eq!(first.status(), 202);
    let first_text = first.text().await.unwrap();
    let first_json: Value = serde_json::from_str(&first_text).unwrap();
    assert_eq!(first_json["deliveries"].as_array().unwrap().len(), 1);
    let delivery = first_json["deliveries"][0]["id"].as_str().unwrap();
    app.wait_for_state(delivery, "delivered", Duration::from_secs(5))
        .await;

    let before = app.row_counts().await;
    let again = post_keyed(&app, "order-42/paid", &body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.text().await.unwrap(), first_text);
    assert_eq!(app.row_counts().await, before);
    app.barrier_elsewhere().await;
    assert_eq!(rx.requests().len(), 1, "the repeat sent nothing");
    let before = app.row_counts().await; // with the barrier's rows

    // The same key with another request: 409, nothing written.
    for changed in [
        status_change(partner, 11),
        json!({"partner_id": partner, "environment": "production", "event_type": "proposal.status",
               "proposal": PROPOSAL, "status": 9, "identifier": "OP-1", "body": {"a": 2, "z": 1}}),
    ] {
        let r = post_keyed(&app, "order-42/paid", &changed).await;
        let v = expect_refusal(r, 409, None).await;
        assert_eq!(v["error"]["code"], "conflict");
    }
    assert_eq!(app.row_counts().await, before);

    // Keys are per partner: another partner may use the same key.
    let other = app.create_partner("Other").await;
    let r = post_keyed(&app, "order-42/paid", &status_change(other, 9)).await;
    assert_eq!(r.status(), 202);
    // Without a key nothing is deduplicated.
    app.enqueue(body.clone()).await;
    assert_eq!(count(&app, "notifications").await, 4, "3 and the barrier's");
}

#[tokio::test]
async fn racing_repeats_create_one_notification_and_get_one_answer() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let body = status_change(partner, 8);
    for round in 0..3 {
        let key = format!("race-{round}");
        let answers = futures::future::join_all((0..8).map(|_| async {
            let r = post_keyed(&app, &key, &body).await;
            (r.status().as_u16(), r.text().await.unwrap())
        }))
        .await;
        let created = answers.iter().filter(|(s, _)| *s == 202).count();
        assert_eq!(created, 1, "{answers:?}");
        assert!(
            answers.iter().all(|(s, _)| *s == 202 || *s == 200),
            "{answers:?}"
        );
        assert!(
            answers.iter().all(|(_, t)| *t == answers[0].1),
            "{answers:?}"
        );
    }
    assert_eq!(count(&app, "notifications").await, 3);
    assert_eq!(count(&app, "deliveries").await, 3);
}

#[tokio::test]
async fn bad_keys_and_refused_requests_leave_no_key_behind() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let before = app.row_counts().await;
    let body = status_change(partner, 2);
    let long = "k".repeat(256);
    for key in ["", long.as_str(), "tab\there"] {
        let r = post_keyed(&app, key, &body).await;
        let v = expect_refusal(r, 400, None).await;
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "{v}"
        );
    }
    let r = app
        .client
        .post(app.url("/v1/notifications"))
        .bearer_auth(&app.token)
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_refusal(r, 400, None).await;
    let non_ascii = app
        .client
        .post(app.url("/v1/notifications"))
        .bearer_auth(&app.token)
        .header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes("chave-ção".as_bytes()).unwrap(),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_refusal(non_ascii, 400, None).await;

    // A refused request does not burn its key: fixed, the same key goes through.
    let mut bad = body.clone();
    bad["status"] = json!(12);
    expect_refusal(post_keyed(&app, "k-1", &bad).await, 422, Some("status")).await;
    let mut unknown = body.clone();
    unknown["partner_id"] = json!(Uuid::new_v4());
    expect_refusal(
        post_keyed(&app, "k-1", &unknown).await,
        422,
        Some("partner_id"),
    )
    .await;
    assert_eq!(app.row_counts().await, before);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(keys, 0);
    let longest = "k".repeat(255);
    assert_eq!(post_keyed(&app, &longest, &body).await.status(), 202);
    assert_eq!(post_keyed(&app, "k-1", &body).await.status(), 202);
}

/// A group with an Idempotency-Key, written as the API's committer writes it, on a
/// connection of its own (another API process).
async fn group_on_its_own_connection(
    url: &str,
    items: Vec<(NewNotification, &'static str)>,
) -> tokio::task::JoinHandle<Result<Vec<Written>, sqlx::Error>> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    tokio::spawn(async move {
        let db = Db::new(pool);
        let group: Vec<GroupItem<'_>> = items
            .iter()
            .map(|(notification, key)| GroupItem {
                notification,
                key: Some(key),
            })
            .collect();
        write_group(&db, &group).await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_naming_the_same_keys_in_opposite_orders_do_not_deadlock() {
    let db = TestDb::create().await;
    let shared = db.share();
    let url = shared.url.clone();
    let app = spawn_on(db, Role::Api, |_| {}).await;
    let partner = app.create_partner("Keys").await;
    let notification = |status: u8| -> NewNotification {
        serde_json::from_value(status_change(partner, status)).unwrap()
    };
    let waiting = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    // Another request holds key "b" while both groups start.
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO idempotency_keys (partner_id, key, request_hash) VALUES ($1, 'b', '\\x00')",
    )
    .bind(partner)
    .execute(&mut *holder)
    .await
    .unwrap();
    // A names a then b: it takes a and waits for b.
    let a = group_on_its_own_connection(&url, vec![(notification(2), "a"), (notification(3), "b")])
        .await;
    wait_until("A waiting for b", Duration::from_secs(30), async || {
        waiting().await == 1
    })
    .await;
    // B names b then a, the same requests. Claimed in the items' order, B would wait for b
    // beside A, and when the holder lets b go, whichever of them takes it waits for the
    // other's key: a deadlock half the time. Claimed in key order, B waits for A's a.
    let b = group_on_its_own_connection(&url, vec![(notification(3), "b"), (notification(2), "a")])
        .await;
    wait_until("B waiting too", Duration::from_secs(30), async || {
        waiting().await == 2
    })
    .await;
    holder.rollback().await.unwrap();

    let a = a.await.unwrap().expect("A is written");
    let b = b.await.unwrap().expect("B is not a deadlock victim");
    assert!(a.iter().all(|w| matches!(w, Written::Created(_))), "{a:?}");
    // B's are the same requests: each gets A's answer, byte for byte.
    let answers: Vec<String> = a
        .iter()
        .map(|w| match w {
            Written::Created(e) => serde_json::to_string(e).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    match (&b[0], &b[1]) {
        (Written::Repeated(first), Written::Repeated(second)) => {
            assert_eq!(first.get(), answers[1]);
            assert_eq!(second.get(), answers[0]);
        }
        other => panic!("B: {other:?}"),
    }
    assert_eq!(count(&app, "notifications").await, 2);
}
