//! `callbackd_enqueue()` inside the platform's own transaction.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::support::app::spawn_app;
use crate::support::receiver::Receiver;

#[tokio::test]
async fn a_rolled_back_transaction_leaves_no_callback_and_a_committed_one_is_delivered() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"}),
    )
    .await;
    let proposal = Uuid::new_v4();
    let enqueue = "SELECT callbackd_enqueue(partner_id => $1, environment => 'production',
                       event_type => 'proposal.status', proposal => $2, status => 9,
                       identifier => 'OP-1', body => '{\"b\":1,\"a\":2}'::json)";

    let mut tx = app.pool.begin().await.unwrap();
    let _: Uuid = sqlx::query_scalar(enqueue)
        .bind(partner)
        .bind(proposal)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    app.barrier_elsewhere().await;
    assert!(rx.requests().is_empty());

    let mut tx = app.pool.begin().await.unwrap();
    let id: Uuid = sqlx::query_scalar(enqueue)
        .bind(partner)
        .bind(proposal)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(
        got[0].uri,
        format!("/cb?proposal={proposal}&status=9&identifier=OP-1")
    );
    assert_eq!(&got[0].body[..], br#"{"b":1,"a":2}"#);
    let shown: serde_json::Value = app
        .get(&format!("/v1/notifications/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["deliveries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_arguments_raise_a_clear_sql_error() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let err = sqlx::query("SELECT callbackd_enqueue($1, 'production', 'proposal.status', $2, 12)")
        .bind(partner)
        .bind(Uuid::new_v4())
        .execute(&app.pool)
        .await
        .unwrap_err();
    let db = err.as_database_error().unwrap();
    assert_eq!(db.code().as_deref(), Some("CB001"));
    assert!(
        db.message()
            .contains("status must be a proposal status id from 0 to 11"),
        "{}",
        db.message()
    );
    let err = sqlx::query("SELECT callbackd_enqueue($1, 'production', 'proposal.status', $2, 1)")
        .bind(Uuid::new_v4())
        .bind(Uuid::new_v4())
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(
        err.as_database_error()
            .unwrap()
            .message()
            .contains("unknown partner_id")
    );
}

#[tokio::test]
async fn the_sql_catalog_matches_the_rust_one() {
    let app = spawn_app().await;
    let sql: Vec<String> = sqlx::query_scalar("SELECT unnest(callbackd_event_types())")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let rust: Vec<String> = callbackd::model::EventType::ALL
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(sql, rust);
}
