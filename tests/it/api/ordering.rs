//! Ordered delivery per proposal (endpoint option `ordering`).

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::{TestApp, spawn_app, spawn_app_with};
use crate::support::receiver::{Receiver, Recorded, Reply};

const WAIT: Duration = Duration::from_secs(15);

async fn status(app: &TestApp, partner: Uuid, proposal: Uuid, status: i64) -> String {
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status", "proposal": proposal, "status": status}))
        .await;
    n["deliveries"][0]["id"].as_str().unwrap().to_string()
}

fn of(requests: &[Recorded], proposal: Uuid) -> Vec<(String, String)> {
    requests
        .iter()
        .filter(|r| r.uri.contains(&proposal.to_string()))
        .map(|r| {
            let status = r
                .uri
                .split("status=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .to_string();
            (
                status,
                r.header("x-callback-sequence").unwrap_or("-").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_failing_head_holds_back_only_its_own_proposal() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    let ep = app
        .create_endpoint(partner, json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"}))
        .await;
    assert_eq!(
        ep["ordering"], "per_proposal",
        "the default for proposal.status"
    );
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    rx.script_for(
        &format!("proposal={a}&status=8"),
        [Reply::status(500), Reply::status(503)],
    );

    let mut last_a = String::new();
    for s in [8, 9, 10] {
        last_a = status(&app, partner, a, s).await;
        status(&app, partner, b, s).await;
    }
    app.wait_for_state(&last_a, "delivered", WAIT).await;
    let got = rx.wait_for(3 + 3 + 2, WAIT).await;
    let seq = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(&got, a),
        seq(&[("8", "1"), ("8", "1"), ("8", "1"), ("9", "2"), ("10", "3")]),
        "proposal A strictly in enqueue order"
    );
    assert_eq!(of(&got, b), seq(&[("8", "1"), ("9", "2"), ("10", "3")]));
    // B did not wait for A's retries: all of B arrived before A's head finally got through.
    let a_head_ok = got
        .iter()
        .filter(|r| r.uri.contains(&format!("proposal={a}&status=8")))
        .nth(2)
        .unwrap()
        .at;
    let b_last = got
        .iter()
        .filter(|r| r.uri.contains(&b.to_string()))
        .map(|r| r.at)
        .max()
        .unwrap();
    assert!(
        b_last < a_head_ok,
        "another proposal's callbacks flowed meanwhile"
    );
}

#[tokio::test]
async fn a_dead_head_releases_the_rest_and_its_replay_is_shown_out_of_order() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST", "max_attempts": 2}),
    )
    .await;
    let p = Uuid::new_v4();
    rx.script_for(
        &format!("proposal={p}&status=7"),
        [Reply::status(500), Reply::status(500)],
    );
    let head = status(&app, partner, p, 7).await;
    let next = status(&app, partner, p, 8).await;
    app.wait_for_state(&head, "dead", WAIT).await;
    let d = app.wait_for_state(&next, "delivered", WAIT).await;
    assert_eq!(d["sequence"], 2);
    assert_eq!(d["out_of_order"], false);

    let r = app
        .post(&format!("/v1/deliveries/{head}/replay"), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    let d = app.wait_for_state(&head, "delivered", WAIT).await;
    assert_eq!(
        d["out_of_order"], true,
        "status 8 reached the partner before this 7: {d:#}"
    );
    let got = rx.requests();
    assert_eq!(
        of(&got, p).last().unwrap(),
        &("7".to_string(), "1".to_string())
    );
}

#[tokio::test]
async fn unordered_endpoints_send_no_sequence_and_do_not_wait() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    let ep = app
        .create_endpoint(
            partner,
            json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST", "ordering": "none"}),
        )
        .await;
    assert_eq!(ep["ordering"], "none");
    let p = Uuid::new_v4();
    rx.script_for(&format!("proposal={p}&status=1"), [Reply::status(500)]);
    let first = status(&app, partner, p, 1).await;
    let second = status(&app, partner, p, 2).await;
    app.wait_for_state(&second, "delivered", WAIT).await;
    app.wait_for_state(&first, "delivered", WAIT).await;
    let got = rx.requests();
    assert!(
        got.iter()
            .all(|r| r.header("x-callback-sequence").is_none())
    );
    let order: Vec<String> = of(&got, p).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        order,
        ["1", "2", "1"],
        "without ordering the retry comes after the next status"
    );

    // Banking-only endpoints have nothing to order by.
    let banking: Value = app
        .create_endpoint(
            partner,
            json!({"environment": "production", "url": format!("{}/b", rx.base), "method": "POST",
                   "event_types": ["banking.ted.received"]}),
        )
        .await;
    assert_eq!(banking["ordering"], "none");
    let bad = app
        .post(
            &format!("/v1/partners/{partner}/endpoints"),
            &json!({"environment": "production", "url": format!("{}/c", rx.base), "method": "POST", "ordering": "fifo"}),
        )
        .await;
    assert_eq!(bad.status(), 422);
}

/// An app, a receiver, and a partner with one production endpoint at it (ordered per
/// proposal, the default for proposal.status).
async fn one_ordered_endpoint() -> (TestApp, Receiver, Uuid) {
    one_ordered_endpoint_with(|_| {}).await
}

/// [`one_ordered_endpoint`], with the app's settings tweaked.
async fn one_ordered_endpoint_with(
    tweak: impl FnOnce(&mut callbackd::config::Settings),
) -> (TestApp, Receiver, Uuid) {
    let app = spawn_app_with(tweak).await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"}),
    )
    .await;
    (app, rx, partner)
}

/// Posts `items` to the batch API; they must be accepted.
async fn batch_accepted(app: &TestApp, items: Vec<Value>) {
    let r = app
        .post("/v1/notifications/batch", &Value::Array(items))
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
}

/// One `callbackd_enqueue()` of a proposal status inside the platform's open transaction.
async fn enqueue_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    partner: Uuid,
    proposal: Uuid,
    status: i32,
) {
    sqlx::query("SELECT callbackd_enqueue($1, 'production', 'proposal.status', $2, $3)")
        .bind(partner)
        .bind(proposal)
        .bind(status)
        .execute(&mut **tx)
        .await
        .unwrap();
}

/// Two platform transactions enqueue for proposals A and B in opposite orders, inside
/// `callbackd_enqueue()`, both still open while the other enqueues: neither waits for the
/// other (no lock is taken at enqueue), both commit, and each proposal's deliveries are
/// numbered 1, 2 without a gap and sent in that order. Before, the second enqueue of each
/// transaction waited for the other's counter row lock: a deadlock inside the platform's own
/// business transaction.
#[tokio::test]
async fn ordered_enqueues_in_opposite_orders_cannot_deadlock() {
    let (app, rx, partner) = one_ordered_endpoint().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut one = app.pool.begin().await.unwrap();
    let mut two = app.pool.begin().await.unwrap();
    for (tx, proposal, status) in [(&mut one, a, 1), (&mut two, b, 1)] {
        enqueue_in(tx, partner, proposal, status).await;
    }
    // The crossing calls: each would have waited for the other's transaction.
    let crossing = async {
        for (tx, proposal, status) in [(&mut one, b, 2), (&mut two, a, 2)] {
            enqueue_in(tx, partner, proposal, status).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), crossing)
        .await
        .expect("an enqueue waited for another platform transaction");
    two.commit().await.unwrap();
    one.commit().await.unwrap();

    let got = rx.wait_for(4, WAIT).await;
    for proposal in [a, b] {
        let mine = of(&got, proposal);
        let sequences: Vec<&str> = mine.iter().map(|(_, seq)| seq.as_str()).collect();
        assert_eq!(sequences, ["1", "2"], "{proposal}: {mine:?}");
    }
}

/// Two batches naming the same proposals in opposite orders, racing: both are accepted, and
/// every proposal's deliveries are numbered 1..n without a gap and sent in that order.
#[tokio::test]
async fn racing_batches_in_opposite_orders_are_numbered_without_gaps() {
    let (app, rx, partner) = one_ordered_endpoint().await;
    let proposals: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    let items = |order: &[Uuid], status: i64| -> Value {
        Value::Array(
            order
                .iter()
                .map(|p| {
                    json!({"partner_id": partner, "environment": "production",
                           "event_type": "proposal.status", "proposal": p, "status": status})
                })
                .collect(),
        )
    };
    let reversed: Vec<Uuid> = proposals.iter().rev().copied().collect();
    let (ones, twos) = (items(&proposals, 1), items(&reversed, 2));
    let (first, second) = tokio::join!(
        app.post("/v1/notifications/batch", &ones),
        app.post("/v1/notifications/batch", &twos),
    );
    assert_eq!(first.status(), 202, "{}", first.text().await.unwrap());
    assert_eq!(second.status(), 202, "{}", second.text().await.unwrap());

    let got = rx.wait_for(100, WAIT).await;
    for p in &proposals {
        let mine = of(&got, *p);
        let sequences: Vec<&str> = mine.iter().map(|(_, seq)| seq.as_str()).collect();
        assert_eq!(sequences, ["1", "2"], "{p}: {mine:?}");
    }
}

/// One batch naming one proposal ten times (inserted in the same millisecond, where UUIDv7
/// ids are in random order): the deliveries are numbered and sent in the items' order.
#[tokio::test]
async fn one_batch_of_one_proposal_is_numbered_and_sent_in_the_items_order() {
    let (app, rx, partner) = one_ordered_endpoint().await;
    let proposal = Uuid::new_v4();
    let statuses = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7];
    let items: Vec<Value> = statuses
        .iter()
        .map(|s| {
            json!({"partner_id": partner, "environment": "production",
                   "event_type": "proposal.status", "proposal": proposal, "status": s})
        })
        .collect();
    batch_accepted(&app, items).await;

    let got = rx.wait_for(10, WAIT).await;
    let want: Vec<(String, String)> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| (s.to_string(), (i + 1).to_string()))
        .collect();
    assert_eq!(of(&got, proposal), want);
}

/// A backlog larger than a claim's batch (one batch of 240 items, claims of 20, 4 requests
/// at a time to the endpoint) is numbered beside the claims (worker/numbering.rs), batch
/// after batch, while the rounds only claim: every proposal's deliveries are still numbered
/// 1..8 in the items' order and sent in that order.
#[tokio::test]
async fn a_backlog_numbered_beside_the_claims_keeps_each_proposals_order() {
    let (app, rx, partner) = one_ordered_endpoint_with(|s| {
        s.claim_batch = 20;
        s.endpoint_concurrency = 4;
    })
    .await;
    let proposals: Vec<Uuid> = (0..30).map(|_| Uuid::new_v4()).collect();
    // Interleaved: every proposal's status 0, then every proposal's 1, and so on.
    let items: Vec<Value> = (0..8)
        .flat_map(|status| {
            proposals.iter().map(move |p| {
                json!({"partner_id": partner, "environment": "production",
                       "event_type": "proposal.status", "proposal": p, "status": status})
            })
        })
        .collect();
    batch_accepted(&app, items).await;

    let got = rx.wait_for(240, Duration::from_secs(60)).await;
    let want: Vec<(String, String)> = (0..8)
        .map(|s| (s.to_string(), (s + 1).to_string()))
        .collect();
    for p in &proposals {
        assert_eq!(of(&got, *p), want, "{p}");
    }
}
