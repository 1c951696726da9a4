//! The queue's guarantees (issue 13, docs/guarantees.md "Queue guarantees"): leases never
//! expire under a live request, ordering has no holes (cancel, replay, a changed `ordering`),
//! nothing an attempt or the database does can stop completion or loop a delivery, attempt
//! rows are written exactly once, and an endpoint's `rate_limit_per_s` holds across workers.
//!
//! Negative assertions ("never sent again") wait for an observable later event: a later
//! notification to the same endpoint is delivered, so whatever the queue would have done
//! wrongly before it has had its chance.

mod backpressure;
mod completion;
mod completion_batches;
mod hot;
mod leases;
mod ordering;
mod rate;
mod sequencer;
mod vacuum;

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::TestApp;
use crate::support::receiver::{Receiver, Recorded};
pub use crate::support::wait::wait_until;

/// A `proposal.status` notification for `partner` in production.
fn status_of(partner: Uuid, proposal: Uuid, status: i16) -> Value {
    json!({"partner_id": partner, "environment": "production",
           "event_type": "proposal.status", "proposal": proposal, "status": status,
           "body": {"proposal": proposal, "status": status}})
}

/// Enqueues `status` of `proposal` and returns the id of its only delivery.
async fn enqueue_status(app: &TestApp, partner: Uuid, proposal: Uuid, status: i16) -> String {
    let v = app.enqueue(status_of(partner, proposal, status)).await;
    let deliveries = v["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{v}");
    deliveries[0]["id"].as_str().unwrap().to_string()
}

/// A partner with one POST endpoint at `<rx>/cb` plus `extra` fields; returns both ids.
async fn partner_with_endpoint(app: &TestApp, rx: &Receiver, extra: Value) -> (Uuid, String) {
    let partner = app.create_partner("Acme").await;
    let mut body = json!({"environment": "production", "url": format!("{}/cb", rx.base),
                          "method": "POST"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let endpoint = app.create_endpoint(partner, body).await;
    (partner, endpoint["id"].as_str().unwrap().to_string())
}

/// The requests the receiver got for delivery `id` (its `X-Callback-Id`).
fn requests_for(rx: &Receiver, id: &str) -> Vec<Recorded> {
    rx.requests()
        .into_iter()
        .filter(|r| r.header("x-callback-id") == Some(id))
        .collect()
}

/// The later event of a negative assertion: one more notification to the partner's endpoint,
/// on a proposal of its own, delivered.
async fn later_delivery_arrives(app: &TestApp, partner: Uuid) {
    let id = enqueue_status(app, partner, Uuid::new_v4(), 7).await;
    app.wait_for_state(&id, "delivered", Duration::from_secs(30))
        .await;
}

/// Waits until the delivery's attempt log has `n` entries and returns the delivery.
async fn wait_for_attempts(app: &TestApp, id: &str, n: usize, within: Duration) -> Value {
    wait_until(&format!("{n} attempts of {id}"), within, || async {
        let d = app.delivery(id).await;
        (d["attempt_log"].as_array().unwrap().len() >= n).then_some(d)
    })
    .await
}

/// Attempt rows of one delivery in the database.
async fn attempt_rows(pool: &PgPool, id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1::uuid")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The value of a counter in `GET /metrics` (0 when it was never incremented).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
