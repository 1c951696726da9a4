//! Ordering without holes: a canceled in-flight head holds its successor until its request
//! has ended; a replay or cancel racing a running attempt ends in one consistent state; the
//! endpoint's current `ordering` governs.

use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use super::{
    enqueue_status, later_delivery_arrives, partner_with_endpoint, requests_for, wait_for_attempts,
    wait_until,
};
use crate::support::app::{TestApp, spawn_app};
use crate::support::receiver::{Receiver, Reply};

/// How long the receiver holds the requests the tests cancel or replay under (under the
/// endpoints' 2 s timeout).
const HELD: Duration = Duration::from_millis(1_500);

async fn cancel(app: &TestApp, id: &str) -> reqwest::Response {
    app.post(&format!("/v1/deliveries/{id}/cancel"), &json!({}))
        .await
}

/// The delivery's queue row: where it stands and its number, or None once it left the queue.
pub(super) async fn queue_row(app: &TestApp, id: &str) -> Option<(String, Option<i64>)> {
    sqlx::query_as("SELECT queue, sequence FROM delivery_queue WHERE delivery_id = $1::uuid")
        .bind(id)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
}

async fn replay(app: &TestApp, id: &str) -> reqwest::Response {
    app.post(&format!("/v1/deliveries/{id}/replay"), &json!({}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_in_flight_head_holds_its_successor_until_its_request_ended() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let proposal = Uuid::new_v4();
    rx.script_for(&proposal.to_string(), [Reply::status(200).after(HELD)]);
    let (partner, endpoint) = partner_with_endpoint(&app, &rx, json!({})).await;
    let shown = app.get(&format!("/v1/endpoints/{endpoint}")).await;
    let shown: serde_json::Value = shown.json().await.unwrap();
    assert_eq!(
        shown["ordering"], "per_proposal",
        "the default for proposal.status"
    );

    let head = enqueue_status(&app, partner, proposal, 1).await;
    let first = rx.wait_for(1, Duration::from_secs(20)).await[0].clone();
    let next = enqueue_status(&app, partner, proposal, 2).await;
    let r = cancel(&app, &head).await;
    assert_eq!(r.status(), 200);
    assert!(
        first.at.elapsed() < HELD,
        "the cancel came while the head was on the wire"
    );

    let got = rx.wait_for(2, Duration::from_secs(20)).await;
    assert!(got[1].uri.contains("status=2&"), "{}", got[1].uri);
    assert!(
        got[1].at >= first.at + HELD,
        "status 2 arrived {:?} after status 1, before its answer ({HELD:?})",
        got[1].at - first.at
    );
    app.wait_for_state(&next, "delivered", Duration::from_secs(20))
        .await;
    let head = wait_for_attempts(&app, &head, 1, Duration::from_secs(20)).await;
    assert_eq!(head["state"], "canceled", "{head:#}");
    let log = head["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{head:#}");
    assert_eq!(log[0]["status_code"], 200, "its attempt is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_or_cancel_racing_a_running_attempt_ends_in_one_consistent_state() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let (replayed_p, canceled_p) = (Uuid::new_v4(), Uuid::new_v4());
    rx.script_for(&replayed_p.to_string(), [Reply::status(200).after(HELD)]);
    rx.script_for(&canceled_p.to_string(), [Reply::status(200).after(HELD)]);
    let (partner, _) = partner_with_endpoint(&app, &rx, json!({})).await;

    let replayed = enqueue_status(&app, partner, replayed_p, 1).await;
    let canceled = enqueue_status(&app, partner, canceled_p, 1).await;
    rx.wait_for(2, Duration::from_secs(20)).await;
    let sent_at = requests_for(&rx, &replayed)[0].at;
    for id in [&replayed, &canceled] {
        let r = cancel(&app, id).await;
        assert_eq!(r.status(), 200);
    }

    // The replay is refused while the canceled attempt runs, then accepted.
    let refused = std::cell::Cell::new(0);
    let accepted_at = wait_until(
        "the replay to be accepted",
        Duration::from_secs(20),
        || async {
            let r = replay(&app, &replayed).await;
            match r.status().as_u16() {
                202 => Some(Instant::now()),
                409 => {
                    refused.set(refused.get() + 1);
                    None
                }
                other => panic!("replay answered {other}: {}", r.text().await.unwrap()),
            }
        },
    )
    .await;
    assert!(
        refused.get() > 0,
        "the first replay came while the attempt ran"
    );
    assert!(
        accepted_at >= sent_at + HELD,
        "accepted {:?} after the request, before its answer",
        accepted_at - sent_at
    );
    let d = app
        .wait_for_state(&replayed, "delivered", Duration::from_secs(20))
        .await;
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2, "{d:#}");
    assert_eq!(requests_for(&rx, &replayed).len(), 2);

    // The one only canceled: its attempt logged, canceled for good, never sent again.
    let c = wait_for_attempts(&app, &canceled, 1, Duration::from_secs(20)).await;
    later_delivery_arrives(&app, partner).await;
    let c_now = app.delivery(&canceled).await;
    assert_eq!(c_now["state"], "canceled", "{c_now:#}");
    assert_eq!(c_now["attempt_log"], c["attempt_log"], "no other attempt");
    assert_eq!(c_now["attempt_log"].as_array().unwrap().len(), 1);
    assert_eq!(requests_for(&rx, &canceled).len(), 1, "never sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_current_ordering_governs() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let proposal = Uuid::new_v4();
    // The head of the proposal fails for as long as the test runs.
    rx.script_for("status=1&", vec![Reply::status(500); 1_000]);
    let (partner, endpoint) = partner_with_endpoint(&app, &rx, json!({"max_attempts": 100})).await;

    let head = enqueue_status(&app, partner, proposal, 1).await;
    rx.wait_for(1, Duration::from_secs(20)).await;
    let next = enqueue_status(&app, partner, proposal, 2).await;
    // Held behind the failing head: the head is retried twice more, status 2 is not sent.
    let tries = requests_for(&rx, &head).len();
    wait_until(
        "two more tries of the head",
        Duration::from_secs(20),
        || async { (requests_for(&rx, &head).len() >= tries + 2).then_some(()) },
    )
    .await;
    assert!(requests_for(&rx, &next).is_empty(), "status 2 waits");
    assert_eq!(app.delivery(&next).await["state"], "pending");

    let r = app
        .patch(
            &format!("/v1/endpoints/{endpoint}"),
            &json!({"ordering": "none"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let changed = Instant::now();
    app.wait_for_state(&next, "delivered", Duration::from_secs(20))
        .await;
    // Held behind the head it would wait for the head's 100 attempts (tens of seconds).
    assert!(
        changed.elapsed() < Duration::from_secs(10),
        "delivered without waiting for the head ({:?})",
        changed.elapsed()
    );
    let h = app.delivery(&head).await;
    assert_eq!(h["state"], "pending", "the head still fails: {h:#}");
}

/// A delivery canceled before any worker numbered it, then replayed, arrives again: it is
/// numbered like any arrival (the first of its proposal: sequence 1, ready), never left
/// unnumbered or stuck.
#[tokio::test]
async fn an_arrival_canceled_before_it_was_numbered_is_numbered_when_replayed() {
    let app = super::leases::api_only().await;
    let rx = Receiver::start().await;
    let (partner, _) = partner_with_endpoint(&app, &rx, json!({})).await;
    let id = enqueue_status(&app, partner, Uuid::new_v4(), 1).await;
    assert_eq!(queue_row(&app, &id).await, Some(("arriving".into(), None)));

    assert_eq!(cancel(&app, &id).await.status(), 200);
    assert_eq!(
        queue_row(&app, &id).await,
        None,
        "a canceled arrival leaves the queue"
    );
    assert_eq!(replay(&app, &id).await.status(), 202);
    assert_eq!(queue_row(&app, &id).await, Some(("arriving".into(), None)));

    // What a worker does first on each loop.
    assert_eq!(
        callbackd::store::sequence_arrivals(&app.pool, 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(queue_row(&app, &id).await, Some(("ready".into(), Some(1))));
}

/// The sequencer asks "is anything of this key active?" only for a key numbered before: a
/// key whose numbers start at 1 in this call has nothing active by construction. Both paths,
/// in one numbering call: a second arrival of a key whose first is ready waits (number 2), a
/// new key's first arrival is ready (number 1); and a key whose deliveries all finished
/// makes its next arrival ready again (number 3).
#[tokio::test]
async fn only_a_key_numbered_before_is_looked_up_and_its_arrival_waits_while_it_is_active() {
    let app = super::leases::api_only().await;
    let rx = Receiver::start().await;
    let (partner, _) = partner_with_endpoint(&app, &rx, json!({})).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let queued = async |id: &str| queue_row(&app, id).await.expect("still queued");
    let number = || callbackd::store::sequence_arrivals(&app.pool, 100);

    let a1 = enqueue_status(&app, partner, a, 1).await;
    assert_eq!(number().await.unwrap(), 1);
    assert_eq!(queued(&a1).await, ("ready".into(), Some(1)));

    let a2 = enqueue_status(&app, partner, a, 2).await;
    let b1 = enqueue_status(&app, partner, b, 1).await;
    assert_eq!(number().await.unwrap(), 2);
    assert_eq!(
        queued(&a2).await,
        ("waiting".into(), Some(2)),
        "its key's first delivery is still ready: it waits"
    );
    assert_eq!(
        queued(&b1).await,
        ("ready".into(), Some(1)),
        "a new key: ready"
    );

    // A's deliveries both leave the queue; its next one is ready, numbered on from 2.
    assert_eq!(cancel(&app, &a1).await.status(), 200);
    assert_eq!(queued(&a2).await, ("ready".into(), Some(2)));
    assert_eq!(cancel(&app, &a2).await.status(), 200);
    let a3 = enqueue_status(&app, partner, a, 3).await;
    assert_eq!(number().await.unwrap(), 1);
    assert_eq!(queued(&a3).await, ("ready".into(), Some(3)));
}
