//! Several worker processes on one database: every delivery is sent once.

use std::collections::HashSet;
use std::time::Duration;

use callbackd::startup::Role;
use serde_json::json;

use crate::support::app::{TestDb, spawn_on};
use crate::support::receiver::Receiver;
use crate::support::wait::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_deliver_each_of_1000_notifications_exactly_once() {
    let db = TestDb::create().await;
    let w1 = spawn_on(db.share(), Role::Worker, |s| s.claim_batch = 50).await;
    let w2 = spawn_on(db.share(), Role::Worker, |s| s.claim_batch = 50).await;
    let api = spawn_on(db, Role::Api, |_| {}).await;

    let rx = Receiver::start().await;
    let partner = api.create_partner("Acme").await;
    api.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"}),
    )
    .await;
    let mut expected = HashSet::new();
    for chunk in 0..20 {
        let posts = (0..50).map(|i| {
            let proposal = uuid::Uuid::new_v4();
            let api = &api;
            async move {
                api.enqueue(json!({"partner_id": partner, "environment": "production",
                                   "event_type": "proposal.status", "proposal": proposal,
                                   "status": (chunk + i) % 12, "body": {"n": chunk * 50 + i}}))
                    .await
            }
        });
        for n in futures::future::join_all(posts).await {
            expected.insert(n["deliveries"][0]["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(expected.len(), 1000);

    let got = rx.wait_for(1000, Duration::from_secs(60)).await;
    let ids: HashSet<String> = got
        .iter()
        .map(|r| r.header("x-callback-id").unwrap().to_string())
        .collect();
    assert_eq!(ids, expected);
    wait_until(
        "every outcome recorded",
        Duration::from_secs(30),
        async || {
            let delivered: i64 =
                sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
                    .fetch_one(&api.pool)
                    .await
                    .unwrap();
            delivered == 1000
        },
    )
    .await;
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_attempts")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 1000);
    // A duplicate would come from a claim of a delivery already sent; deliveries enqueued
    // after all 1000 were recorded, and sent, put such a claim behind the workers.
    for _ in 0..2 {
        api.barrier_elsewhere().await;
    }
    let got_after = rx.requests();
    assert_eq!(
        got_after.len(),
        1000,
        "no delivery was sent twice (got {})",
        got_after.len()
    );
    w1.stop().await;
    w2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_holds_only_its_own_slots() {
    use crate::support::app::spawn_app_with;
    use crate::support::receiver::Reply;

    // 4 slots in all, at most 2 per endpoint: the hanging partner can never take them all.
    let app = spawn_app_with(|s| {
        s.worker_concurrency = 4;
        s.endpoint_concurrency = 2;
        s.endpoint_timeout_ms = 5000;
    })
    .await;
    let hang = Receiver::start().await;
    hang.always(Reply::status(200).after(Duration::from_secs(30)));
    let healthy = Receiver::start().await;
    let slow_partner = app.create_partner("Slow").await;
    let good_partner = app.create_partner("Good").await;
    for (p, rx) in [(slow_partner, &hang), (good_partner, &healthy)] {
        app.create_endpoint(
            p,
            json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"}),
        )
        .await;
    }
    for i in 0..10 {
        for p in [slow_partner, good_partner] {
            app.enqueue(json!({"partner_id": p, "environment": "production",
                               "event_type": "proposal.status", "proposal": uuid::Uuid::new_v4(),
                               "status": i}))
                .await;
        }
    }
    healthy.wait_for(10, Duration::from_secs(5)).await;
    assert_eq!(
        hang.requests().len(),
        2,
        "the hanging endpoint holds 2 slots, no more"
    );
}
