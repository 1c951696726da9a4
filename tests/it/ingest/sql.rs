//! `callbackd_enqueue()` inside the platform's own transaction.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::partner_with_receiver;
use crate::support::app::spawn_app_with;
use crate::support::receiver::Receiver;

const SCHEDULE: &str = include_str!("../../fixtures/seed002_schedule_5.json");

#[tokio::test]
async fn rollback_delivers_nothing_and_commit_wakes_the_workers_at_once() {
    // A poll interval of a minute: only the NOTIFY can explain a delivery within seconds. The
    // barriers below (each sent at once: woken by their own NOTIFY) leave the workers in
    // that long wait.
    let app = spawn_app_with(|s| s.poll_interval_ms = 60_000).await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;

    // The platform's own transaction: its own write, then the callback.
    let platform_write = "CREATE TABLE IF NOT EXISTS platform_boletos (nro integer)";
    sqlx::query(platform_write)
        .execute(&app.pool)
        .await
        .unwrap();
    let enqueue = "SELECT callbackd_enqueue(partner_id => $1, environment => 'production',
                       event_type => 'schedule.event', body => $2::text::json)";

    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("INSERT INTO platform_boletos VALUES (48924)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let _: Uuid = sqlx::query_scalar(enqueue)
        .bind(partner)
        .bind(SCHEDULE)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let counts = app.row_counts().await;
    assert!(counts.contains(&("notifications".into(), 0)), "{counts:?}");
    assert!(counts.contains(&("deliveries".into(), 0)), "{counts:?}");
    app.barrier_elsewhere().await;
    assert!(rx.requests().is_empty());

    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("INSERT INTO platform_boletos VALUES (48924)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let id: Uuid = sqlx::query_scalar(enqueue)
        .bind(partner)
        .bind(SCHEDULE)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    // Not before the commit: a later delivery, committed, is sent; this one is not.
    app.barrier_elsewhere().await;
    assert!(rx.requests().is_empty());
    let committed = Instant::now();
    tx.commit().await.unwrap();
    // The bound is the design's: far under the 60 s poll interval (it takes milliseconds
    // alone; seconds when the other tests load the machine).
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    eprintln!("delivered {:?} after commit", got[0].at - committed);
    assert!(got[0].at - committed < Duration::from_secs(10));
    assert_eq!(std::str::from_utf8(&got[0].body).unwrap(), SCHEDULE);
    let shown: serde_json::Value = app
        .get(&format!("/v1/notifications/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["event_name"], "Geração de Boleto");
}

#[tokio::test]
async fn a_broken_schedule_body_is_refused_by_the_sql_function() {
    let app = spawn_app_with(|_| {}).await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let broken = SCHEDULE.replace(r#""TipoEvento":5"#, r#""TipoEvento":8"#);
    assert_ne!(broken, SCHEDULE);
    let err = sqlx::query(
        "SELECT callbackd_enqueue(partner_id => $1, environment => 'production',
             event_type => 'schedule.event', body => $2::text::json)",
    )
    .bind(partner)
    .bind(&broken)
    .execute(&app.pool)
    .await
    .unwrap_err();
    let db = err
        .as_database_error()
        .unwrap()
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .unwrap();
    assert_eq!(db.code(), "CB001");
    assert_eq!(db.column(), Some("body.TipoEvento"));
    assert_eq!(
        db.message(),
        "body.TipoEvento: unknown TipoEvento 8: expected 1 to 6"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
