//! `rate_limit_per_s`: validated, shown and removable through the API, and held by two worker
//! processes sharing one database.

use std::time::Duration;

use callbackd::startup::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{enqueue_status, partner_with_endpoint, wait_until};
use crate::support::app::{TestDb, spawn_app, spawn_on};
use crate::support::receiver::Receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_exceed_an_endpoints_rate_limit() {
    let db = TestDb::create().await;
    let api = spawn_on(db.share(), Role::Api, |_| {}).await;
    let rx = Receiver::start().await;
    let (partner, _) = partner_with_endpoint(
        &api,
        &rx,
        json!({"rate_limit_per_s": 5, "ordering": "none"}),
    )
    .await;
    // Both workers start on a backlog of 20: each could send all of them at once.
    let posts = (0..20).map(|i| enqueue_status(&api, partner, Uuid::new_v4(), i % 12));
    futures::future::join_all(posts).await;
    let _w1 = spawn_on(db.share(), Role::Worker, |_| {}).await;
    let _w2 = spawn_on(db.share(), Role::Worker, |_| {}).await;

    let got = rx.wait_for(20, Duration::from_secs(60)).await;
    let mut at: Vec<_> = got.iter().map(|r| r.at).collect();
    at.sort();
    // One second of burst at 5/s: any window [t_i, t_j] holds at most 5 × (its length + 1 s)
    // requests, plus one for the rounding of arrival times.
    for i in 0..at.len() {
        for j in i + 1..at.len() {
            let seconds = (at[j] - at[i]).as_secs_f64();
            let n = (j - i + 1) as f64;
            assert!(
                n <= 5.0 * (seconds + 1.0) + 1.0,
                "{n} requests within {seconds:.3} s (from #{i} to #{j})"
            );
        }
    }
    wait_until("all 20 delivered", Duration::from_secs(30), || async {
        let delivered: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
                .fetch_one(&api.pool)
                .await
                .unwrap();
        (delivered == 20).then_some(())
    })
    .await;
    assert_eq!(rx.requests().len(), 20, "each sent once");
}

fn assert_names_rate(status: u16, v: &Value) {
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "validation_failed", "{v}");
    assert_eq!(v["error"]["field"], "rate_limit_per_s", "{v}");
}

#[tokio::test]
async fn rate_limit_per_s_is_validated_shown_and_removable() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let base = json!({"environment": "production", "method": "POST",
                      "url": "http://127.0.0.1:9/cb"});
    let with = |rate: Value| {
        let mut b = base.clone();
        b["rate_limit_per_s"] = rate;
        b
    };
    let bad = [json!(0), json!(-1), json!(100_001), json!("x"), json!(2.5)];

    let before = app.row_counts().await;
    for rate in &bad {
        let r = app
            .post(
                &format!("/v1/partners/{partner}/endpoints"),
                &with(rate.clone()),
            )
            .await;
        let status = r.status().as_u16();
        assert_names_rate(status, &r.json().await.unwrap());
    }
    assert_eq!(app.row_counts().await, before, "nothing was written");

    let e = app.create_endpoint(partner, with(json!(7))).await;
    assert_eq!(e["rate_limit_per_s"], 7);
    let path = format!("/v1/endpoints/{}", e["id"].as_str().unwrap());
    let show = |v: Value| v["rate_limit_per_s"].clone();
    assert_eq!(show(app.get(&path).await.json().await.unwrap()), 7);

    for rate in &bad {
        let r = app.patch(&path, &json!({"rate_limit_per_s": rate})).await;
        let status = r.status().as_u16();
        assert_names_rate(status, &r.json().await.unwrap());
    }
    assert_eq!(show(app.get(&path).await.json().await.unwrap()), 7);

    // Absent keeps it; null removes it; the bounds are allowed.
    let r = app.patch(&path, &json!({"timeout_ms": 1000})).await;
    assert_eq!(show(r.json().await.unwrap()), 7);
    let r = app.patch(&path, &json!({"rate_limit_per_s": null})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        show(app.get(&path).await.json().await.unwrap()),
        json!(null)
    );
    for edge in [1, 100_000] {
        let r = app.patch(&path, &json!({"rate_limit_per_s": edge})).await;
        assert_eq!(show(r.json().await.unwrap()), edge);
    }
    let created_without = app.create_endpoint(partner, base.clone()).await;
    assert_eq!(created_without["rate_limit_per_s"], json!(null));
}
