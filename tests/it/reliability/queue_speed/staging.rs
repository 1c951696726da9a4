//! Staging for the queue tests: partners and endpoints through the API, notifications through
//! the batch API, raw partners that answer bytes, and what the queue holds.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use callbackd::startup::Role;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::reliability::receivers::{raw_server, read_request_head};
use crate::support::app::{TestApp, TestDb, spawn_on};
use crate::support::receiver::Receiver;
use crate::support::wait::wait_until;

/// A partner with one POST endpoint at `url` (`extra` added to its settings); returns the
/// partner and the endpoint's id.
pub async fn partner_at(app: &TestApp, name: &str, url: &str, extra: Value) -> (Uuid, String) {
    let partner = app.create_partner(name).await;
    let mut body = json!({"environment": "production", "url": url, "method": "POST"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let endpoint = app.create_endpoint(partner, body).await;
    (partner, endpoint["id"].as_str().unwrap().to_string())
}

/// One `proposal.status` per proposal through `POST /v1/notifications/batch`, 500 per call;
/// returns the delivery ids.
pub async fn enqueue_batched(app: &TestApp, partner: Uuid, proposals: &[Uuid]) -> Vec<String> {
    let mut ids = Vec::with_capacity(proposals.len());
    for chunk in proposals.chunks(500) {
        let batch: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({"partner_id": partner, "environment": "production",
                       "event_type": "proposal.status", "proposal": p, "status": i % 12})
            })
            .collect();
        let r = app.post("/v1/notifications/batch", &json!(batch)).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 202, "{v}");
        for item in v["items"].as_array().unwrap() {
            ids.push(item["deliveries"][0]["id"].as_str().unwrap().to_string());
        }
    }
    ids
}

/// Waits until `n` deliveries of `endpoint` are delivered; panics at `deadline`.
pub async fn wait_delivered(app: &TestApp, endpoint: &str, n: i64, deadline: Instant) {
    let within = deadline.saturating_duration_since(Instant::now());
    wait_until(&format!("{n} delivered"), within, async || {
        let delivered: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = $1::uuid AND state = 'delivered'",
        )
        .bind(endpoint)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if delivered == n {
            Ok(())
        } else {
            Err(format!(
                "{delivered} delivered; by queue: {:?}",
                by_queue(app).await
            ))
        }
    })
    .await
}

/// Pending deliveries per queue position (`arriving`, `waiting`, `ready`, `running`).
pub async fn by_queue(app: &TestApp) -> Vec<(Option<String>, i64)> {
    sqlx::query_as(
        "SELECT q.queue, count(*) FROM deliveries d
         LEFT JOIN delivery_queue q ON q.delivery_id = d.id
         GROUP BY q.queue ORDER BY q.queue",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

/// The X-Callback-Id of every request `rx` got, each once; panics on a repeat.
pub fn received_once(rx: &Receiver) -> HashSet<String> {
    let mut seen = HashSet::new();
    for r in rx.requests() {
        let id = r.header("x-callback-id").unwrap().to_string();
        assert!(seen.insert(id.clone()), "{id} was sent twice");
    }
    seen
}

/// Nothing ever ran ANALYZE on `deliveries`: the planner works from no statistics.
pub async fn assert_never_analyzed(app: &TestApp) {
    let never: bool = sqlx::query_scalar(
        "SELECT last_analyze IS NULL AND last_autoanalyze IS NULL
         FROM pg_stat_user_tables WHERE relname = 'deliveries'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(never, "the deliveries table was analyzed");
}

/// A partner on raw TCP that answers `status` with exactly `body` (or, with None, a chunked
/// body that never ends: one NUL byte every 50 ms). Returns its URL and how many requests it
/// got.
pub async fn binary_partner(status: u16, body: Option<Vec<u8>>) -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let (counter, body) = (seen.clone(), Arc::new(body));
    let base = raw_server(move |mut socket| {
        let (counter, body) = (counter.clone(), body.clone());
        async move {
            read_request_head(&mut socket).await;
            counter.fetch_add(1, Ordering::SeqCst);
            let Some(bytes) = body.as_ref() else {
                let head = format!("HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n");
                let _ = socket.write_all(head.as_bytes()).await;
                while socket.write_all(b"1\r\n\0\r\n").await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                return;
            };
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\n\r\n",
                bytes.len()
            );
            // Fails once callbackd closes the connection after its 4 KiB: that is the point.
            if socket.write_all(head.as_bytes()).await.is_ok() {
                let _ = socket.write_all(bytes).await;
            }
        }
    })
    .await;
    (format!("{base}/cb"), seen)
}

/// An API-only callbackd (no worker) on a fresh database, and that database for a worker.
pub async fn api_only() -> (TestApp, TestDb) {
    let db = TestDb::create().await;
    let shared = db.share();
    (spawn_on(db, Role::Api, |_| {}).await, shared)
}

/// Numbers every arrival, as each worker does before it claims.
pub async fn sequence_all(app: &TestApp) {
    callbackd::store::sequence_arrivals(&app.pool, 100_000)
        .await
        .unwrap();
}

/// `n` new proposals, one notification each.
pub fn fresh_proposals(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::new_v4()).collect()
}

/// The callback URL of a receiver.
pub fn cb(rx: &Receiver) -> String {
    format!("{}/cb", rx.base)
}
