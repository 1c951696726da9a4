//! The queue table vacuums itself: every delivery leaves dead row versions (numbered, claimed,
//! finished), and their index entries sit at the head of the indexes the numbering and the
//! claim walk. With autovacuum off (as on this machine) nothing else removes them.

use std::time::Duration;

use serde_json::json;

use super::{partner_with_endpoint, wait_until};
use crate::support::app::spawn_app_with;
use crate::support::receiver::{Receiver, Reply};

const NOTIFICATIONS: i64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_vacuums_the_queue_table_once_dead_rows_pile_up() {
    let app = spawn_app_with(|s| s.queue_vacuum_dead_rows = 300).await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(200));
    // Ordered (the default): each delivery is numbered, claimed and finished, three dead row
    // versions of its queue row.
    let (partner, _) = partner_with_endpoint(&app, &rx, json!({})).await;
    sqlx::query(
        "SELECT count(callbackd_enqueue($1, 'production', 'proposal.status', gen_random_uuid(),
                                        1, 'v' || g))
         FROM generate_series(1, $2) g",
    )
    .bind(partner)
    .bind(NOTIFICATIONS)
    .execute(&app.pool)
    .await
    .unwrap();
    wait_until(
        "every delivery delivered",
        Duration::from_secs(60),
        || async {
            let delivered: i64 =
                sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            (delivered == NOTIFICATIONS).then_some(())
        },
    )
    .await;

    // Autovacuum is off for this server (and would count in autovacuum_count): a manual
    // VACUUM of the queue table is the worker's. Statistics lag a backend's flush (up to 10 s
    // for an idle one).
    let (vacuums, dead): (i64, i64) = wait_until(
        "the worker to vacuum the queue table",
        Duration::from_secs(40),
        || async {
            let row: (i64, i64) = sqlx::query_as(
                "SELECT vacuum_count, n_dead_tup FROM pg_stat_user_tables
                 WHERE relid = 'delivery_queue'::regclass",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
            (row.0 >= 1).then_some(row)
        },
    )
    .await;
    assert!(vacuums >= 1);
    // 3,000 dead row versions were made; a vacuum at 300 leaves far fewer behind.
    assert!(dead < 3 * NOTIFICATIONS, "{dead} dead row versions left");
    assert_eq!(
        rx.requests().len(),
        NOTIFICATIONS as usize,
        "each sent once"
    );
}
