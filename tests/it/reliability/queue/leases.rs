//! Leases and attempt rows: a lease never expires under a live request or a slow completion;
//! a delivery whose workers keep dying ends `dead` at `max_attempts`; a completion retried
//! after its commit writes its attempt row once.

use std::time::Duration;

use callbackd::model::ErrorKind;
use callbackd::startup::Role;
use callbackd::store::{self, Claimed, EndpointRoom, Next, Outcome};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    attempt_rows, enqueue_status, later_delivery_arrives, partner_with_endpoint, requests_for,
    wait_until,
};
use crate::support::app::{TestDb, spawn_app_with, spawn_on};
use crate::support::receiver::{Receiver, Reply};

/// Makes the database refuse every successful attempt row with a transient error
/// (serialization_failure) while `test_hold.held` is true, counting refusals in the
/// non-transactional sequence `test_refusals`. The completer retries such a batch with
/// backoff, so the completion is delayed while the lease renewal (an UPDATE of `deliveries`
/// only) and the reaper's lost-worker rows (which carry an error) go through. A table lock
/// on `delivery_attempts` would not do: it would block the reaper too, and so hide a lease
/// that was not renewed.
pub(super) const HOLD_COMPLETIONS: &str = "
    CREATE TABLE test_hold (held boolean NOT NULL);
    INSERT INTO test_hold VALUES (true);
    CREATE SEQUENCE test_refusals;
    CREATE FUNCTION test_refuse_outcomes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.error IS NULL AND (SELECT held FROM test_hold) THEN
            PERFORM nextval('test_refusals');
            RAISE EXCEPTION 'test: completion held' USING ERRCODE = 'serialization_failure';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER test_refuse_outcomes BEFORE INSERT ON delivery_attempts
        FOR EACH ROW EXECUTE FUNCTION test_refuse_outcomes();";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lease_expires_under_a_live_request_or_a_slow_completion() {
    // lease 3 s, timeout 2 s (the most lease_ms allows): the receiver holds the request for
    // 1.8 s and the completion is then held for well over a lease.
    let app = spawn_app_with(|s| s.lease_ms = 3_000).await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(200).after(Duration::from_millis(1_800)));
    let (partner, _) = partner_with_endpoint(&app, &rx, json!({"timeout_ms": 2_000})).await;
    sqlx::raw_sql(HOLD_COMPLETIONS)
        .execute(&app.pool)
        .await
        .unwrap();

    let id = enqueue_status(&app, partner, Uuid::new_v4(), 1).await;
    rx.wait_for(1, Duration::from_secs(20)).await;
    let (first_lease, token): (DateTime<Utc>, Uuid) = sqlx::query_as(
        "SELECT locked_until, lease_token FROM delivery_queue
         WHERE delivery_id = $1::uuid AND queue = 'running'",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();

    // The partner answered, the completion is refused again and again; wait until the first
    // lease has been expired for 1.5 s (the reaper runs every 200 ms).
    wait_until(
        "the first lease to be long past",
        Duration::from_secs(20),
        || async {
            sqlx::query_scalar::<_, bool>("SELECT now() > $1 + interval '1.5 s'")
                .bind(first_lease)
                .fetch_one(&app.pool)
                .await
                .unwrap()
                .then_some(())
        },
    )
    .await;
    let refusals: i64 = sqlx::query_scalar("SELECT last_value FROM test_refusals")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(refusals >= 1, "the completion was attempted and held");
    let (still_ours, renewed): (bool, bool) = sqlx::query_as(
        "SELECT lease_token = $2 AND queue = 'running', locked_until > now()
         FROM delivery_queue WHERE delivery_id = $1::uuid",
    )
    .bind(&id)
    .bind(token)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(still_ours && renewed, "the worker kept renewing its lease");

    sqlx::query("UPDATE test_hold SET held = false")
        .execute(&app.pool)
        .await
        .unwrap();
    let d = app
        .wait_for_state(&id, "delivered", Duration::from_secs(30))
        .await;
    later_delivery_arrives(&app, partner).await;

    assert_eq!(requests_for(&rx, &id).len(), 1, "sent exactly once");
    assert_eq!(attempt_rows(&app.pool, &id).await, 1);
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{d:#}");
    assert_eq!(log[0]["status_code"], 200);
    assert_eq!(log[0]["error"], json!(null));
    assert_eq!(d["attempts"], 1, "{d:#}");
}

/// Claims for a worker that will die: no outcome is ever written for these leases.
async fn claim_and_die(pool: &PgPool, lease_ms: i64) -> Vec<Claimed> {
    store::sequence_arrivals(pool, 100).await.unwrap();
    let room = EndpointRoom {
        per_endpoint: 10,
        ..Default::default()
    };
    store::claim(&pool.clone().into(), 10, lease_ms, Uuid::new_v4(), &room)
        .await
        .unwrap()
}

/// An API-only app: no worker of its own claims, so the test plays the workers.
pub(super) async fn api_only() -> crate::support::app::TestApp {
    spawn_on(TestDb::create().await, Role::Api, |_| {}).await
}

#[tokio::test]
async fn a_delivery_whose_workers_keep_dying_ends_dead_at_max_attempts() {
    let app = api_only().await;
    let rx = Receiver::start().await;
    let (partner, _) = partner_with_endpoint(&app, &rx, json!({"max_attempts": 3})).await;
    let id = enqueue_status(&app, partner, Uuid::new_v4(), 1).await;

    for round in 1..=3 {
        let claimed = claim_and_die(&app.pool, 300).await;
        assert_eq!(claimed.len(), 1, "round {round}: the delivery is claimable");
        assert_eq!(claimed[0].id.to_string(), id);
        assert_eq!(claimed[0].attempt, round, "the counter rises at the claim");
        wait_until("the lease to expire", Duration::from_secs(10), || async {
            sqlx::query_scalar::<_, bool>(
                "SELECT coalesce((SELECT locked_until < now() FROM delivery_queue
                                  WHERE delivery_id = $1::uuid), true)",
            )
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap()
            .then_some(())
        })
        .await;
        assert_eq!(store::reap_expired_leases(&app.pool, 100).await.unwrap(), 1);
    }

    let d = app.delivery(&id).await;
    assert_eq!(d["state"], "dead", "{d:#}");
    assert_eq!(d["attempts"], 3);
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 3, "{d:#}");
    for (i, a) in log.iter().enumerate() {
        assert_eq!(a["error_kind"], "internal", "{a:#}");
        assert!(
            a["error"].as_str().unwrap().contains("lost"),
            "says the worker was lost: {a:#}"
        );
        assert_eq!(a["attempt"], i as i64 + 1);
    }
    // It never loops: nothing left to claim or to take back, and no request was ever sent.
    assert!(claim_and_die(&app.pool, 300).await.is_empty());
    assert_eq!(store::reap_expired_leases(&app.pool, 100).await.unwrap(), 0);
    assert!(rx.requests().is_empty());
}

fn outcome_of(c: &Claimed, token: Uuid, next: Next) -> Outcome {
    Outcome {
        delivery_id: c.id,
        endpoint_id: c.endpoint_id,
        partner_id: c.partner_id,
        auto_replay: c.auto_replay,
        lease_token: token,
        series: c.series,
        attempt: c.attempt,
        started_at: Utc::now(),
        duration_ms: 12,
        status_code: Some(if next == Next::Delivered { 200 } else { 503 }),
        error: (next != Next::Delivered).then(|| "HTTP 503".to_string()),
        error_kind: (next != Next::Delivered).then_some(ErrorKind::Http5xx),
        response_body: Some("ok".into()),
        response_body_lossy: false,
        next,
    }
}

/// Everything the completion may change, per delivery, as text.
async fn queue_rows(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT concat_ws('|', d.id, d.state, q.queue, d.attempts, q.attempts, d.next_attempt_at,
                          q.next_attempt_at, q.locked_until, q.lease_token, d.last_status_code,
                          d.last_error, d.delivered_at, d.updated_at)
         FROM deliveries d LEFT JOIN delivery_queue q ON q.delivery_id = d.id ORDER BY d.id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_completion_retried_after_its_commit_writes_each_attempt_row_once() {
    let app = api_only().await;
    let rx = Receiver::start().await;
    let (partner, _) = partner_with_endpoint(&app, &rx, json!({"ordering": "none"})).await;
    for status in [1, 2] {
        enqueue_status(&app, partner, Uuid::new_v4(), status).await;
    }
    let token = Uuid::new_v4();
    let room = EndpointRoom {
        per_endpoint: 10,
        ..Default::default()
    };
    let claimed = store::claim(&app.pool, 10, 60_000, token, &room)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    // One delivered, one to be retried a minute later.
    let outcomes = [
        outcome_of(&claimed[0], token, Next::Delivered),
        outcome_of(&claimed[1], token, Next::RetryAfterMs(60_000)),
    ];

    store::complete(&app.pool, &outcomes).await.unwrap();
    let after_first = queue_rows(&app.pool).await;
    // The commit's answer was lost: the completer writes the same batch again.
    store::complete(&app.pool, &outcomes).await.unwrap();

    assert_eq!(
        queue_rows(&app.pool).await,
        after_first,
        "state as after the first"
    );
    for c in &claimed {
        assert_eq!(attempt_rows(&app.pool, &c.id.to_string()).await, 1);
    }
    let delivered = app.delivery(&claimed[0].id.to_string()).await;
    assert_eq!(delivered["state"], "delivered");
    let retried = app.delivery(&claimed[1].id.to_string()).await;
    assert_eq!(retried["state"], "pending");
    assert_eq!(retried["attempt_log"].as_array().unwrap().len(), 1);
}
