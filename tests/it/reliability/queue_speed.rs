//! Issue 13, points 1–3: nothing a partner answers can stop completion, and the claim reads
//! only what it can take, whatever the backlog's shape, on a database never ANALYZEd (this
//! machine runs PostgreSQL with autovacuum off; no test here runs ANALYZE or VACUUM).

mod cached_plans;
mod completion_plan;
mod fan_out_plan;
mod plan;
mod planned_once;
pub(super) mod staging;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use callbackd::startup::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::{TestApp, spawn_app, spawn_app_with, spawn_on};
use crate::support::receiver::{Receiver, Reply};
use crate::support::wait::wait_until;
use staging::{
    api_only, assert_never_analyzed, binary_partner, by_queue, cb, enqueue_batched,
    fresh_proposals, partner_at, received_once, sequence_all, wait_delivered,
};

/// The only attempt of `id`'s delivery, once it is `state`.
async fn only_attempt(app: &TestApp, id: &str, state: &str) -> Value {
    let d = app.wait_for_state(id, state, Duration::from_secs(20)).await;
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{d:#}");
    log[0].clone()
}

fn assert_body(attempt: &Value, body: &str, lossy: bool) {
    assert_eq!(attempt["response_body"], body, "{attempt:#}");
    assert_eq!(attempt["response_body_lossy"], lossy, "{attempt:#}");
}

/// A valid UTF-8 answer with multi-byte characters.
const SHORT: &str = "falhou — tente às 10h ✓ (€ 1.000,00)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_binary_answer_cannot_stop_completion() {
    // A short lease: a delivery whose outcome was never written would be sent again within
    // 3 s (old main retried such a batch every 5 s forever, and the leases sent it again).
    let app = spawn_app_with(|s| {
        s.lease_ms = 3000;
        s.endpoint_timeout_ms = 1000;
        s.retry_max_ms = 5000;
    })
    .await;
    let once = json!({"max_attempts": 1, "timeout_ms": 1000});
    let binary = b"ok\x00\xff\xfe binary".to_vec();
    let ten_mb: Vec<u8> = (0..=255u8).cycle().take(10 << 20).collect();
    let mut hostile = Vec::new();
    for (name, status, body) in [
        ("Binary200", 200, Some(binary.clone())),
        ("Binary500", 500, Some(binary)),
        ("TenMegabytes", 200, Some(ten_mb.clone())),
        ("NeverEnds", 200, None),
    ] {
        let (url, seen) = binary_partner(status, body).await;
        let (partner, _) = partner_at(&app, name, &url, once.clone()).await;
        hostile.push((partner, seen));
    }
    // Valid UTF-8, cut by the 4 KiB limit in the middle of a two-byte character.
    let valid = Receiver::start().await;
    let long = format!("x{}", "é".repeat(3000));
    valid.always(Reply::status(200).with_body(&long));
    let (valid_partner, _) = partner_at(&app, "Valid", &cb(&valid), once.clone()).await;
    // And a short one, with three-byte characters, on a 500.
    let short = Receiver::start().await;
    short.always(Reply::status(500).with_body(SHORT));
    let (short_partner, _) = partner_at(&app, "ValidShort", &cb(&short), once).await;
    let mut hostile_ids = Vec::new();
    for partner in hostile
        .iter()
        .map(|(p, _)| *p)
        .chain([valid_partner, short_partner])
    {
        hostile_ids.push(enqueue_batched(&app, partner, &[Uuid::new_v4()]).await[0].clone());
    }
    // Every hostile answer is on its way back before the healthy load is enqueued.
    wait_until(
        "every hostile partner to get a request",
        Duration::from_secs(20),
        async || {
            hostile
                .iter()
                .all(|(_, seen)| seen.load(Ordering::SeqCst) > 0)
        },
    )
    .await;

    let healthy = Receiver::start().await;
    let (partner, endpoint) = partner_at(&app, "Healthy", &cb(&healthy), json!({})).await;
    let proposals: Vec<Uuid> = fresh_proposals(200);
    let ids: HashSet<String> = enqueue_batched(&app, partner, &proposals)
        .await
        .into_iter()
        .collect();
    wait_delivered(
        &app,
        &endpoint,
        200,
        Instant::now() + Duration::from_secs(30),
    )
    .await;
    assert_eq!(received_once(&healthy), ids);

    // What each partner answered, shown honestly.
    let a = only_attempt(&app, &hostile_ids[0], "delivered").await;
    assert_eq!(a["status_code"], 200);
    assert_body(&a, "ok\u{FFFD}\u{FFFD}\u{FFFD} binary", true);
    let a = only_attempt(&app, &hostile_ids[1], "dead").await;
    assert_eq!(
        (&a["status_code"], &a["error_kind"]),
        (&json!(500), &json!("http_5xx"))
    );
    assert_body(&a, "ok\u{FFFD}\u{FFFD}\u{FFFD} binary", true);
    let a = only_attempt(&app, &hostile_ids[2], "delivered").await;
    // No valid sequence in 0..=255 repeated: each NUL or non-ASCII byte is one U+FFFD.
    let kept: String = ten_mb[..4096]
        .iter()
        .map(|&b| {
            if b == 0 || b >= 0x80 {
                '\u{FFFD}'
            } else {
                b as char
            }
        })
        .collect();
    assert_body(&a, &kept, true);
    let a = only_attempt(&app, &hostile_ids[3], "dead").await;
    assert_eq!(a["error_kind"], "timeout", "{a:#}");
    let a = only_attempt(&app, &hostile_ids[4], "delivered").await;
    // 4095 bytes: the character cut in two is dropped, and that is not a lossy body.
    assert_body(&a, &format!("x{}", "é".repeat(2047)), false);
    let a = only_attempt(&app, &hostile_ids[5], "dead").await;
    assert_eq!(a["status_code"], 500);
    assert_body(&a, SHORT, false);
    for (_, seen) in &hostile {
        assert_eq!(seen.load(Ordering::SeqCst), 1, "one attempt each");
    }

    // No healthy delivery is sent again: a sentinel asks to be retried 4 s later (more than a
    // lease, and the reaper looks every 200 ms); by its second request any lease of the 200
    // has long expired, and a delivery whose outcome was lost would have been sent again.
    let sentinel = Receiver::start().await;
    sentinel.script([Reply::status(503).with_header("retry-after", "4")]);
    let (partner, _) = partner_at(&app, "Sentinel", &cb(&sentinel), json!({})).await;
    let id = enqueue_batched(&app, partner, &[Uuid::new_v4()]).await[0].clone();
    app.wait_for_state(&id, "delivered", Duration::from_secs(20))
        .await;
    let asked = sentinel.requests();
    assert!(asked[1].at - asked[0].at >= Duration::from_secs(4));
    assert_eq!(
        healthy.requests().len(),
        200,
        "a healthy delivery was sent again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_proposals_on_one_ordered_endpoint_are_delivered_within_a_minute() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("BigPartner").await;
    let endpoint = app
        .create_endpoint(
            partner,
            json!({"environment": "production", "url": cb(&rx),
                   "method": "POST"}),
        )
        .await;
    assert_eq!(endpoint["ordering"], "per_proposal", "the default");
    let endpoint = endpoint["id"].as_str().unwrap();
    let proposals: Vec<Uuid> = fresh_proposals(5000);
    let start = Instant::now();
    let ids: HashSet<String> = enqueue_batched(&app, partner, &proposals)
        .await
        .into_iter()
        .collect();
    let enqueued = start.elapsed();
    // Old main: a few hundred in 20 s (each claim walked every pending row of the endpoint).
    wait_delivered(&app, endpoint, 5000, start + Duration::from_secs(60)).await;
    let took = start.elapsed();
    assert_eq!(received_once(&rx), ids);
    assert_never_analyzed(&app).await;
    eprintln!(
        "5,000 proposals on one ordered endpoint: enqueued in {enqueued:?}, all delivered \
         {took:?} after the first enqueue ({:.0}/s)",
        5000.0 / took.as_secs_f64()
    );
}

/// Shared buffers a claim of `taken` rows may touch. Reading costs a few buffers per endpoint
/// with ready rows plus one index and one heap page per row taken; the rest is writing: a
/// claimed row is a new row version in each of the deliveries table's 14 indexes (about 35
/// buffers per row). What stays out is the backlog: 20,000 rows are hundreds of heap pages.
fn per_row_bound(taken: i64) -> i64 {
    100 + 50 * taken
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposals_waiting_successors_are_not_read_by_the_claim() {
    let (app, _db) = api_only().await;
    let rx = Receiver::start().await;
    let (partner, _) = partner_at(&app, "OneProposal", &cb(&rx), json!({})).await;
    let proposal = Uuid::new_v4();
    enqueue_batched(&app, partner, &vec![proposal; 20_000]).await;
    sequence_all(&app).await;
    let waiting = vec![(Some("ready".into()), 1), (Some("waiting".into()), 19_999)];
    assert_eq!(by_queue(&app).await, waiting);
    assert_never_analyzed(&app).await;

    let cost = plan::claim_cost(&app.pool, 200, 64).await;
    let due = plan::next_due_cost(&app.pool).await;
    eprintln!("claim behind 19,999 waiting: {cost}; next due: {due}");
    assert_eq!(cost.returned, 1.0, "the head, only");
    assert!(cost.deliveries_read <= 4.0, "{}", cost.text);
    assert!(cost.buffers <= per_row_bound(1), "{}", cost.text);
    assert!(due.deliveries_read <= 2.0, "{}", due.text);
    assert!(due.buffers < 50, "{}", due.text);
    assert_eq!(
        by_queue(&app).await,
        waiting,
        "the EXPLAINs were rolled back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_endpoints_backlog_is_not_read_by_the_claim() {
    let (app, db) = api_only().await;
    let (backlog_rx, healthy_rx) = (Receiver::start().await, Receiver::start().await);
    let (partner, endpoint) = partner_at(&app, "Disabled", &cb(&backlog_rx), json!({})).await;
    let proposals: Vec<Uuid> = fresh_proposals(20_000);
    enqueue_batched(&app, partner, &proposals).await;
    let r = app
        .patch(
            &format!("/v1/endpoints/{endpoint}"),
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let (partner, healthy) = partner_at(&app, "Healthy", &cb(&healthy_rx), json!({})).await;
    let proposals: Vec<Uuid> = fresh_proposals(100);
    let ids: HashSet<String> = enqueue_batched(&app, partner, &proposals)
        .await
        .into_iter()
        .collect();
    sequence_all(&app).await;
    assert_eq!(by_queue(&app).await, vec![(Some("ready".into()), 20_100)]);
    assert_never_analyzed(&app).await;

    // 64 is the default per-endpoint room: the claim takes that many of the healthy ones and
    // reads the disabled endpoint's 20,000 rows not at all (one probe finds its head).
    let cost = plan::claim_cost(&app.pool, 200, 64).await;
    let due = plan::next_due_cost(&app.pool).await;
    eprintln!("claim beside 20,000 disabled: {cost}; next due: {due}");
    assert_eq!(cost.returned, 64.0);
    // Each of the 64 taken is read three times: found in the ready index, fetched again by
    // the update, and its delivery row read for the callback (+ half a row per loop of
    // rounding on the two looped reads), and a few probes of the skip scan.
    assert!(cost.deliveries_read <= 4.0 * 64.0 + 8.0, "{}", cost.text);
    assert!(cost.buffers <= per_row_bound(64), "{}", cost.text);
    assert!(due.deliveries_read <= 3.0, "{}", due.text);
    assert!(due.buffers < 50, "{}", due.text);

    // And a worker serves the healthy endpoint at once.
    let start = Instant::now();
    let _worker = spawn_on(db, Role::Worker, |_| {}).await;
    wait_delivered(&app, &healthy, 100, start + Duration::from_secs(10)).await;
    eprintln!(
        "100 healthy beside 20,000 disabled: delivered in {:?}",
        start.elapsed()
    );
    assert_eq!(received_once(&healthy_rx), ids);
    assert!(
        backlog_rx.requests().is_empty(),
        "a disabled endpoint was sent to"
    );
}
