//! `POST /v1/notifications/batch`: up to 1,000 in one transaction, all or nothing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use super::{PROPOSAL, expect_refusal, partner_with_receiver, post_raw};
use crate::support::app::{spawn_app, spawn_app_with};
use crate::support::receiver::Receiver;

fn status_change(partner: Uuid, status: u8) -> Value {
    json!({"partner_id": partner, "environment": "production", "event_type": "proposal.status",
           "proposal": PROPOSAL, "status": status})
}

fn schedule(partner: Uuid) -> Value {
    let body: Value =
        serde_json::from_str(include_str!("../../fixtures/seed001_schedule_5.json")).unwrap();
    json!({"partner_id": partner, "environment": "production", "event_type": "schedule.event",
           "body": body})
}

#[tokio::test]
async fn a_batch_is_enqueued_in_order_and_delivered() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let homologation_only = json!({"partner_id": partner, "environment": "homologation",
        "event_type": "proposal.status", "proposal": PROPOSAL, "status": 1});
    let batch = json!([
        status_change(partner, 2),
        schedule(partner),
        homologation_only
    ]);
    let r = app.post("/v1/notifications/batch", &batch).await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(items[1]["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(
        items[2]["deliveries"],
        json!([]),
        "no homologation endpoint"
    );
    let shown: Value = app
        .get(&format!(
            "/v1/notifications/{}",
            items[1]["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["event_type"], "schedule.event");
    assert_eq!(shown["event_name"], "Geração de Boleto");
    assert_eq!(
        shown["deliveries"][0]["id"],
        items[1]["deliveries"][0]["id"]
    );
    let got = rx.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2);

    let r = app.post("/v1/notifications/batch", &json!([])).await;
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn a_batch_with_bad_items_reports_each_and_writes_nothing() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let before = app.row_counts().await;
    let mut broken_schedule = schedule(partner);
    broken_schedule["body"]["TipoEvento"] = json!(9);
    let mut unknown_partner = status_change(partner, 3);
    unknown_partner["partner_id"] = json!(Uuid::new_v4());
    let batch = json!([
        status_change(partner, 2),
        broken_schedule,
        status_change(partner, 4),
        json!({"partner_id": partner, "environment": "production", "event_type": "proposal.status",
               "proposal": PROPOSAL, "status": 12}),
        unknown_partner,
        "not an object",
    ]);
    let r = app.post("/v1/notifications/batch", &batch).await;
    let v = expect_refusal(r, 422, None).await;
    assert_eq!(v["error"]["code"], "validation_failed");
    let items = v["error"]["items"].as_array().unwrap();
    let summary: Vec<(u64, &str)> = items
        .iter()
        .map(|i| (i["index"].as_u64().unwrap(), i["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "body.TipoEvento"),
            (3, "status"),
            (4, "partner_id"),
            (5, "body")
        ],
        "{v}"
    );
    for item in items {
        assert_eq!(item["code"], "validation_failed");
        assert!(item["message"].is_string());
    }
    assert_eq!(app.row_counts().await, before);

    // One bad item among many good ones: still nothing.
    let mut batch: Vec<Value> = (0..50).map(|i| status_change(partner, i % 12)).collect();
    batch[49]["environment"] = json!("staging");
    let v = expect_refusal(
        app.post("/v1/notifications/batch", &json!(batch)).await,
        422,
        None,
    )
    .await;
    assert_eq!(v["error"]["items"][0]["index"], 49);
    assert_eq!(v["error"]["items"][0]["field"], "environment");
    assert_eq!(app.row_counts().await, before);
    app.barrier_elsewhere().await;
    assert!(rx.requests().is_empty());
}

#[tokio::test]
async fn batch_limits_and_shape() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let before = app.row_counts().await;
    let too_many: Vec<Value> = (0..1001).map(|_| status_change(partner, 1)).collect();
    expect_refusal(
        app.post("/v1/notifications/batch", &json!(too_many)).await,
        422,
        Some("body"),
    )
    .await;
    expect_refusal(
        app.post("/v1/notifications/batch", &status_change(partner, 1))
            .await,
        422,
        Some("body"),
    )
    .await;
    expect_refusal(
        post_raw(&app, "/v1/notifications/batch", "[{\"partner_id\": ".into()).await,
        400,
        None,
    )
    .await;
    let keyed = app
        .client
        .post(app.url("/v1/notifications/batch"))
        .bearer_auth(&app.token)
        .header("idempotency-key", "k")
        .json(&json!([status_change(partner, 1)]))
        .send()
        .await
        .unwrap();
    expect_refusal(keyed, 400, None).await;
    assert_eq!(app.row_counts().await, before);
}

#[tokio::test]
async fn a_full_batch_of_1000_goes_in_one_transaction() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let batch: Vec<Value> = (0..1000)
        .map(|i| {
            if i % 2 == 0 {
                status_change(partner, (i % 12) as u8)
            } else {
                schedule(partner)
            }
        })
        .collect();
    let started = Instant::now();
    let r = app.post("/v1/notifications/batch", &json!(batch)).await;
    let took = started.elapsed();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 1000);
    eprintln!("batch of 1000 enqueued in {took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    // Each answer belongs to its input.
    let rows: Vec<(Uuid, String, Option<i16>)> =
        sqlx::query_as("SELECT id, event_type, status FROM notifications")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1000);
    let by_id: std::collections::HashMap<Uuid, (String, Option<i16>)> =
        rows.into_iter().map(|(id, t, s)| (id, (t, s))).collect();
    for (i, item) in v["items"].as_array().unwrap().iter().enumerate() {
        let id: Uuid = item["id"].as_str().unwrap().parse().unwrap();
        let (event_type, status) = &by_id[&id];
        if i % 2 == 0 {
            assert_eq!(
                (event_type.as_str(), *status),
                ("proposal.status", Some((i % 12) as i16))
            );
        } else {
            assert_eq!(event_type, "schedule.event");
        }
        assert_eq!(item["deliveries"].as_array().unwrap().len(), 1);
    }
    rx.wait_for(1000, Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_refusal_only_the_database_finds_aborts_the_batch_and_names_its_item() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    // Stands in for a rule only the database can check (a partner deleted mid-batch, say).
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.identifier = 'boom' THEN
                 RAISE EXCEPTION 'identifier boom is refused' USING ERRCODE = 'CB001',
                     COLUMN = 'identifier';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_boom BEFORE INSERT ON notifications
             FOR EACH ROW EXECUTE FUNCTION refuse_boom();",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let before = app.row_counts().await;
    let mut batch: Vec<Value> = (0..20).map(|i| status_change(partner, i % 12)).collect();
    batch[13]["identifier"] = json!("boom");
    let v = expect_refusal(
        app.post("/v1/notifications/batch", &json!(batch)).await,
        422,
        None,
    )
    .await;
    let items = v["error"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["index"], 13);
    assert_eq!(items[0]["field"], "identifier");
    assert_eq!(items[0]["message"], "identifier boom is refused");
    assert_eq!(app.row_counts().await, before);
    app.barrier_elsewhere().await;
    assert!(rx.requests().is_empty());
}

#[tokio::test]
async fn a_batch_wakes_the_workers_at_once() {
    // A poll interval of a minute: only the NOTIFY sent by the fan-out's trigger (migration
    // 0025) can explain a delivery within seconds.
    let app = spawn_app_with(|s| s.poll_interval_ms = 60_000).await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let r = app
        .post(
            "/v1/notifications/batch",
            &json!([status_change(partner, 1), schedule(partner)]),
        )
        .await;
    assert_eq!(r.status(), 202);
    // Well inside the minute.
    rx.wait_for(2, Duration::from_secs(10)).await;
}
