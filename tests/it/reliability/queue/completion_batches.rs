//! One completion batch at a time, unless it is stuck: the outcomes that come in while a batch
//! is being written wait for it, for at most `SECOND_WRITER_AFTER` (100 ms), and then go
//! together. Two writers at all times halved the batches of a busy worker (11 outcomes per
//! statement instead of 20 in `ingest`, docs/performance.md, 2026-12-04, evening); one writer
//! at all times would let one batch waiting on a row lock hold every outcome of the worker.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::{partner_with_endpoint, status_of, wait_until};
use crate::support::app::spawn_app;
use crate::support::receiver::{Receiver, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waiting_on_a_lock_does_not_hold_the_others_back() {
    const LATER: usize = 10;
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let (partner, _) = partner_with_endpoint(&app, &rx, json!({})).await;
    // A's answer comes late enough for its queue row to be held by then.
    rx.script([Reply::status(200).after(Duration::from_millis(500))]);
    let a = app.enqueue(status_of(partner, Uuid::new_v4(), 1)).await["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    rx.wait_for(1, Duration::from_secs(30)).await;

    // A third session holds A's queue row, so A's completion waits for it.
    let mut holder = app.pool.begin().await.unwrap();
    let held = sqlx::query("SELECT 1 FROM delivery_queue WHERE delivery_id = $1::uuid FOR UPDATE")
        .bind(&a)
        .execute(&mut *holder)
        .await
        .unwrap();
    assert_eq!(held.rows_affected(), 1, "A is running and its row is held");
    let waiting_for_a_lock = "SELECT count(*) FROM pg_stat_activity
                              WHERE datname = current_database() AND wait_event_type = 'Lock'";
    wait_until(
        "A's completion waits for its row",
        Duration::from_secs(30),
        || async {
            sqlx::query_scalar::<_, i64>(waiting_for_a_lock)
                .fetch_one(app.pool.pool())
                .await
                .unwrap()
                == 1
        },
    )
    .await;

    // Ten more are sent and answered at once while A's batch waits, each written before the
    // next is sent, so they come to the completer apart, in batches of their own: the second
    // writer goes on batch after batch, not only once.
    for status in 2..2 + LATER as i16 {
        let v = app
            .enqueue(status_of(partner, Uuid::new_v4(), status))
            .await;
        let id = v["deliveries"][0]["id"].as_str().unwrap().to_string();
        app.wait_for_state(&id, "delivered", Duration::from_secs(10))
            .await;
    }
    // All ten were written beside A's stuck batch, and A's row is still held.
    let a_state: String = sqlx::query_scalar("SELECT state FROM deliveries WHERE id = $1::uuid")
        .bind(&a)
        .fetch_one(app.pool.pool())
        .await
        .unwrap();
    assert_eq!(a_state, "pending", "A is still waiting for its row");

    holder.rollback().await.unwrap();
    app.wait_for_state(&a, "delivered", Duration::from_secs(30))
        .await;
}
