//! Numbering in commit order across workers: two sequencers running at once must not number a
//! proposal's later notification before its earlier one (migration 0024).

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::ordering::queue_row;
use super::{enqueue_status, partner_with_endpoint, wait_until};
use crate::support::receiver::Receiver;

/// Sequencer A takes the two oldest arrivals (status 2 of proposal J, status 1 of proposal K)
/// and waits for J's counter, which a third session holds. Meanwhile sequencer B runs. Before
/// 0024, B took K's status 2 (A held K's status 1), bumped K's counter first and numbered it
/// 1 and ready: K's status 2 would have been sent first, its status 1 behind it as number 2.
/// Now B finds the numbering taken and numbers nothing; once A is done, K's status 1 is
/// number 1 and ready, and status 2 is number 2 and waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sequencers_at_once_keep_a_proposals_order() {
    let app = super::leases::api_only().await;
    let rx = Receiver::start().await;
    let (partner, _) = partner_with_endpoint(&app, &rx, json!({})).await;
    // Counters are locked in (endpoint, key) order: J's before K's.
    let mut proposals = [Uuid::new_v4(), Uuid::new_v4()];
    proposals.sort_by_key(|p| p.to_string());
    let [j, k] = proposals;
    let number = async |max: i32| {
        callbackd::store::sequence_arrivals(&app.pool, max)
            .await
            .unwrap()
    };

    // J gets a counter (its status 1 numbered, then canceled) for a third session to hold.
    let j1 = enqueue_status(&app, partner, j, 1).await;
    assert_eq!(number(100).await, 1);
    let canceled = app
        .post(&format!("/v1/deliveries/{j1}/cancel"), &json!({}))
        .await;
    assert_eq!(canceled.status(), 200);
    let j2 = enqueue_status(&app, partner, j, 2).await;
    let k1 = enqueue_status(&app, partner, k, 1).await;
    let k2 = enqueue_status(&app, partner, k, 2).await;

    let mut holder = app.pool.begin().await.unwrap();
    let held = sqlx::query(
        "SELECT 1 FROM ordering_sequences s
         WHERE (s.endpoint_id, s.ordering_key) =
               (SELECT endpoint_id, ordering_key FROM delivery_queue WHERE delivery_id = $1::uuid)
         FOR UPDATE",
    )
    .bind(&j2)
    .execute(&mut *holder)
    .await
    .unwrap();
    assert_eq!(held.rows_affected(), 1, "J's counter is held");

    let pool = app.pool.clone();
    let a = tokio::spawn(async move { callbackd::store::sequence_arrivals(&pool, 2).await });
    wait_until(
        "sequencer A to wait for J's counter",
        Duration::from_secs(10),
        async || {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND query LIKE '%callbackd_sequence_arrivals%'",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap()
                == 1
        },
    )
    .await;

    let numbered_by_b = number(100).await;
    let queued = async |id: &str| queue_row(&app, id).await.expect("still queued");
    let k2_while_a_numbers = queued(&k2).await;

    holder.commit().await.unwrap();
    assert_eq!(
        a.await.unwrap().unwrap(),
        2,
        "A numbers J's status 2 and K's status 1"
    );
    number(100).await; // what B left, K's status 2 (before 0024, B had numbered it already)
    assert_eq!(queued(&j2).await, ("ready".into(), Some(2)));
    assert_eq!(
        queued(&k1).await,
        ("ready".into(), Some(1)),
        "K's status 1 is numbered first and sent first"
    );
    assert_eq!(
        queued(&k2).await,
        ("waiting".into(), Some(2)),
        "K's status 2 comes after its status 1"
    );
    assert_eq!(numbered_by_b, 0, "B numbered nothing while A was numbering");
    assert_eq!(k2_while_a_numbers, ("arriving".into(), None));
}
