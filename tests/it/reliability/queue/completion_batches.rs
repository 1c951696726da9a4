//! One completion batch at a time: the outcomes that come in while a batch is being written
//! wait for it and then go together, in one transaction. Two writers at once halved the
//! batches of a busy worker (11 outcomes per statement instead of 20 in `ingest`), and with
//! them the work each statement shares (docs/performance.md, 2026-12-04, evening).

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::{partner_with_endpoint, status_of, wait_until};
use crate::support::app::spawn_app;
use crate::support::receiver::{Receiver, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_that_arrive_during_a_write_go_together_after_it() {
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

    // Ten more are sent and answered at once while A's batch waits.
    let mut later = Vec::new();
    for status in 2..2 + LATER as i16 {
        let v = app
            .enqueue(status_of(partner, Uuid::new_v4(), status))
            .await;
        later.push(v["deliveries"][0]["id"].as_str().unwrap().to_string());
    }
    rx.wait_for(1 + LATER, Duration::from_secs(30)).await;
    // Their outcomes are not written beside A's waiting batch (a second writer would have
    // written them by now).
    let written_later = "SELECT count(*) FROM deliveries
                         WHERE id = ANY($1::uuid[]) AND state = 'delivered'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline {
        let written: i64 = sqlx::query_scalar(written_later)
            .bind(&later)
            .fetch_one(app.pool.pool())
            .await
            .unwrap();
        assert_eq!(written, 0, "outcomes written while A's batch was waiting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    holder.rollback().await.unwrap();
    app.wait_for_state(&a, "delivered", Duration::from_secs(30))
        .await;
    for id in &later {
        app.wait_for_state(id, "delivered", Duration::from_secs(30))
            .await;
    }
    // One transaction wrote all ten: one transaction start time (`now()`), after A's.
    let (batches, after_a): (i64, bool) = sqlx::query_as(
        "SELECT count(DISTINCT d.updated_at), bool_and(d.updated_at > a.updated_at)
         FROM deliveries d, deliveries a WHERE d.id = ANY($1::uuid[]) AND a.id = $2::uuid",
    )
    .bind(&later)
    .bind(&a)
    .fetch_one(app.pool.pool())
    .await
    .unwrap();
    assert_eq!((batches, after_a), (1, true), "the later outcomes' batches");
}
