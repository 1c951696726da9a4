//! A primary demoted while it is up (issue 16): unlike a crash, its connections stay open and
//! answer, and only their writes fail, with SQLSTATE 25006 (read_only_sql_transaction).
//! Two private clusters, a primary and a synchronous streaming standby, both in
//! `DATABASE_URL`. Under load the old primary is fenced read-only
//! (`default_transaction_read_only = on`, reloaded: what a demotion does to the sessions it
//! keeps) and the standby promoted. Every refused enqueue must be a 503 (25006 is transient,
//! not a 500), the pools must leave the old primary's open connections and write to the new
//! one without a restart, and every acknowledged notification must be delivered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;

use super::{Fleet, primary_and_standby, start_fleet};
use crate::support::cluster::Cluster;
use crate::support::traffic::{
    assert_alive, enqueue_stream, received, run_phase, wait_acknowledged, wait_all_marked_delivered,
};
use crate::support::wait::wait_until;

const RESUME_BOUND: Duration = Duration::from_secs(10);
const DATABASE: &str = "cbdemoted";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_leave_a_primary_demoted_while_up_for_the_promoted_standby() {
    let (old, new, url) = primary_and_standby(DATABASE).await;
    let Fleet {
        mut serve,
        mut worker,
        rx,
        api,
        ledger,
    } = start_fleet(&url, &[]).await;
    // Fills both processes' pools with connections to the old primary.
    run_phase(&api, &ledger, &rx, 0..300).await;
    let on_old = callbackd_connections(&old).await;
    assert!(on_old >= 2, "{on_old} callbackd connections on the primary");

    // Under load: fence the old primary (its sessions stay open, their writes now fail with
    // 25006), then promote the standby. The stream asserts that every refusal is a timely
    // 503 database_unavailable.
    let stop = Arc::new(AtomicBool::new(false));
    let stream = tokio::spawn(enqueue_stream(
        api.clone(),
        ledger.clone(),
        1_000_000,
        stop.clone(),
    ));
    wait_acknowledged(&ledger, 100, &stream).await;
    read_only(&old).await;
    // As a demotion procedure does: promote once the transactions that began writable have
    // ended (a later commit on the old primary would wait for a standby that is gone).
    wait_writers_done(&old).await;
    new.promote().await;
    let promoted = Instant::now();

    // Delivery resumes on the new primary: something acknowledged after the promotion
    // reaches the receiver.
    let resumed = loop {
        let (_, first) = received(&rx);
        let after: Option<Instant> = ledger
            .lock()
            .unwrap()
            .keys()
            .filter(|s| **s >= 1_000_000)
            .filter_map(|s| first.get(s).copied())
            .filter(|at| *at > promoted)
            .min();
        if let Some(at) = after {
            break at.duration_since(promoted);
        }
        assert!(
            promoted.elapsed() < RESUME_BOUND,
            "no delivery within {RESUME_BOUND:?} of the promotion\napi:\n{}\nworker:\n{}",
            serve.output(),
            worker.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    wait_acknowledged(&ledger, 100, &stream).await;
    stop.store(true, Ordering::SeqCst);
    let (acked, refused) = stream.await.unwrap();

    // No connection to the fenced host is used again: 16 enqueues at a time (twice the
    // pool) take out every pooled connection, and each must be acknowledged.
    for chunk in (3_000_000..3_000_160).collect::<Vec<usize>>().chunks(16) {
        let answers = futures::future::join_all(chunk.iter().map(|s| api.enqueue(*s))).await;
        for (seq, a) in chunk.iter().zip(answers) {
            assert_eq!(a.status, 202, "after the switch: {}", a.body);
            let id = a.body["deliveries"][0]["id"].as_str().unwrap().to_string();
            ledger.lock().unwrap().insert(*seq, id);
        }
    }
    run_phase(&api, &ledger, &rx, 2_000_000..2_000_200).await;

    // Every acknowledged notification arrives; a duplicate only under its one X-Callback-Id.
    let (ids, _) = received(&rx);
    let missing: Vec<usize> = ledger
        .lock()
        .unwrap()
        .keys()
        .copied()
        .filter(|s| !ids.contains_key(s))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged, never delivered: {missing:?}"
    );
    let split: Vec<_> = ids.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(
        split.is_empty(),
        "one notification under two ids: {split:?}"
    );
    wait_all_marked_delivered(&new.url(DATABASE), &ledger, Duration::from_secs(30)).await;
    assert_alive(&mut [&mut serve, &mut worker], "after the demotion");
    for p in [&serve, &worker] {
        assert!(p.output().contains("database failover"), "{}", p.output());
        assert!(!p.output().contains("panicked"), "{}", p.output());
    }
    let duplicates = rx.requests().len() - ids.len();
    eprintln!(
        "demoted primary: first delivery {resumed:?} after the promotion; stream: {acked} \
         acknowledged, {refused} refused (503); {duplicates} duplicate requests; nothing lost"
    );
    drop(serve);
    drop(worker);
    drop(new);
    drop(old);
}

/// What a demotion does to the sessions a host keeps: from their next statement on, every
/// transaction is read-only, so writes fail with 25006 while reads (and sqlx's ping) work.
async fn read_only(cluster: &Cluster) {
    let mut c = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    sqlx::raw_sql("ALTER SYSTEM SET default_transaction_read_only = on")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::raw_sql("SELECT pg_reload_conf()")
        .execute(&mut c)
        .await
        .unwrap();
}

/// Waits until no session of the database is in a transaction that began before the fence
/// (reload plus a margin for the backends to take the signal).
async fn wait_writers_done(cluster: &Cluster) {
    let mut c = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    let fence: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT clock_timestamp() + interval '200 milliseconds'")
            .fetch_one(&mut c)
            .await
            .unwrap();
    wait_until(
        "the transactions older than the fence to end",
        Duration::from_secs(10),
        async || {
            let (now_past, open): (bool, i64) = sqlx::query_as(
                "SELECT clock_timestamp() > $2,
                        (SELECT count(*) FROM pg_stat_activity
                         WHERE datname = $1 AND xact_start < $2)",
            )
            .bind(DATABASE)
            .bind(fence)
            .fetch_one(&mut c)
            .await
            .unwrap();
            if now_past && open == 0 {
                Ok(())
            } else {
                Err(format!("{open} open"))
            }
        },
    )
    .await
}

async fn callbackd_connections(cluster: &Cluster) -> i64 {
    let mut c = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE application_name = 'callbackd' AND datname = $1",
    )
    .bind(DATABASE)
    .fetch_one(&mut c)
    .await
    .unwrap()
}
