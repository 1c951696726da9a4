//! Retention: finished deliveries and their attempt logs past the configured age are purged
//! by the worker, in small batches; dead and pending ones are kept.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::support::app::{TestApp, spawn_app_with};
use crate::support::wait::wait_until;

#[tokio::test]
async fn old_delivered_notifications_are_purged_and_dead_ones_kept() {
    // One-day retention, checked every second, two rows per transaction.
    let app = spawn_app_with(|s| {
        s.retention_days = 1;
        s.retention_interval_s = 1;
        s.retention_batch = 2;
        s.max_attempts = 1;
    })
    .await;
    let ok = crate::support::receiver::Receiver::start().await;
    let down = crate::support::receiver::Receiver::start().await;
    down.always(crate::support::receiver::Reply::status(500));
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", ok.base), "method": "POST"}),
    )
    .await;
    app.create_endpoint(
        partner,
        json!({"environment": "homologation", "url": format!("{}/cb", down.base), "method": "POST"}),
    )
    .await;
    let mut delivered = Vec::new();
    for _ in 0..7 {
        let n = app
            .enqueue(json!({"partner_id": partner, "environment": "production",
                            "event_type": "proposal.status", "proposal": Uuid::new_v4(), "status": 9}))
            .await;
        delivered.push((
            n["id"].as_str().unwrap().to_string(),
            n["deliveries"][0]["id"].as_str().unwrap().to_string(),
        ));
    }
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "homologation",
                        "event_type": "proposal.status", "proposal": Uuid::new_v4(), "status": 9}))
        .await;
    let dead = n["deliveries"][0]["id"].as_str().unwrap().to_string();
    for (_, d) in &delivered {
        app.wait_for_state(d, "delivered", Duration::from_secs(20))
            .await;
    }
    app.wait_for_state(&dead, "dead", Duration::from_secs(20))
        .await;
    // A notification that matched no endpoint.
    let lonely = app.create_partner("No endpoints").await;
    let orphan = app
        .enqueue(json!({"partner_id": lonely, "environment": "production",
                        "event_type": "schedule.event",
                        "body": serde_json::from_str::<serde_json::Value>(include_str!("../../fixtures/seed001_schedule_1.json")).unwrap()}))
        .await;
    assert_eq!(orphan["deliveries"], json!([]));

    // Age everything but the last delivered one past the retention.
    let keep = &delivered[6];
    sqlx::query(
        "UPDATE deliveries SET updated_at = now() - interval '2 days', created_at = now() - interval '2 days'
         WHERE id::text <> $1",
    )
    .bind(&keep.1)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE notifications SET created_at = now() - interval '2 days' WHERE id::text <> $1",
    )
    .bind(&keep.0)
    .execute(&app.pool)
    .await
    .unwrap();

    wait_until("the purge", Duration::from_secs(20), async || {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        let notifications: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if left == 1 && notifications == 2 {
            Ok(())
        } else {
            Err(format!("{left} delivered, {notifications} notifications"))
        }
    })
    .await;
    // The recent one and the dead one stay, with their attempt logs.
    app.delivery(&keep.1).await;
    let d = app.delivery(&dead).await;
    assert_eq!(d["state"], "dead");
    assert_eq!(d["attempt_log"].as_array().unwrap().len(), 1);
    let r = app.get(&format!("/v1/deliveries/{}", delivered[0].1)).await;
    assert_eq!(r.status(), 404);
    let r = app
        .get(&format!(
            "/v1/notifications/{}",
            orphan["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status(), 404);
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_attempts")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 2, "the kept delivered one and the dead one");
}

#[tokio::test]
async fn retention_zero_keeps_everything() {
    let app = spawn_app_with(|s| {
        s.retention_days = 0;
        s.retention_interval_s = 1;
    })
    .await;
    // Beside it, the same with a day's retention: what it purges shows the time a purger had.
    let purging = spawn_app_with(|s| {
        s.retention_days = 1;
        s.retention_interval_s = 1;
    })
    .await;
    let kept = delivered_and_aged(&app).await;
    // Two purges one after the other, both after the aging: at least one interval has passed
    // since, so a purger in `app` would have had its pass too.
    for _ in 0..2 {
        let id = delivered_and_aged(&purging).await;
        wait_until(
            "the other app's purge",
            Duration::from_secs(20),
            async || purging.get(&format!("/v1/deliveries/{id}")).await.status() == 404,
        )
        .await;
    }
    app.delivery(&kept).await;
}

/// A delivered delivery, last changed ten years ago; its id.
async fn delivered_and_aged(app: &TestApp) -> String {
    let ok = crate::support::receiver::Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", ok.base), "method": "POST"}),
    )
    .await;
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": Uuid::new_v4(), "status": 9}))
        .await;
    let d = n["deliveries"][0]["id"].as_str().unwrap().to_string();
    app.wait_for_state(&d, "delivered", Duration::from_secs(20))
        .await;
    sqlx::query(
        "UPDATE deliveries SET updated_at = now() - interval '3650 days',
                               created_at = now() - interval '3650 days'
         WHERE id = $1::text::uuid",
    )
    .bind(&d)
    .execute(&app.pool)
    .await
    .unwrap();
    d
}
