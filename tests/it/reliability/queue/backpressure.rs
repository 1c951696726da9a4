//! Backpressure: when writing outcomes is slower than sending (a long backlog on a busy
//! database), a worker stops claiming instead of holding ever more sent deliveries, their
//! outcomes and their leases in memory.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::leases::HOLD_COMPLETIONS;
use super::{partner_with_endpoint, wait_until};
use crate::support::app::spawn_app_with;
use crate::support::receiver::{Receiver, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_completions_stall_stops_claiming_and_loses_nothing() {
    let app = spawn_app_with(|s| s.worker_concurrency = 4).await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(200));
    let (partner, _) = partner_with_endpoint(&app, &rx, json!({"ordering": "none"})).await;
    sqlx::raw_sql(HOLD_COMPLETIONS)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "SELECT count(callbackd_enqueue($1, 'production', 'proposal.status', gen_random_uuid(),
                                        1, 'b' || g))
         FROM generate_series(1, 1000) g",
    )
    .bind(partner)
    .execute(&app.pool)
    .await
    .unwrap();

    // The completer has been refused again and again (with backoff: well over a second),
    // time in which a worker that kept claiming would have sent all 1,000.
    wait_until(
        "the completer to be refused six times",
        Duration::from_secs(30),
        || async {
            let refusals: i64 = sqlx::query_scalar("SELECT last_value FROM test_refusals")
                .fetch_one(&app.pool)
                .await
                .unwrap();
            (refusals >= 6).then_some(())
        },
    )
    .await;
    let sent = rx.requests().len();
    // 4 requests in flight, 64 outcomes queued for the completer and the batch it holds
    // (what the queue held when it started: at most 64 + 1).
    assert!(
        sent <= 4 + 64 + 65,
        "{sent} sent while no outcome could be written"
    );

    // Once outcomes can be written, everything is delivered, each exactly once.
    sqlx::query("UPDATE test_hold SET held = false")
        .execute(&app.pool)
        .await
        .unwrap();
    wait_until("all 1,000 delivered", Duration::from_secs(60), || async {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        (n == 1000).then_some(())
    })
    .await;
    let ids: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.header("x-callback-id").unwrap().to_string())
        .collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 1000);
    assert_eq!(ids.len(), 1000, "no delivery was sent twice");
}
