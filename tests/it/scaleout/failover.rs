//! Failover under load: a primary and a synchronous streaming standby (private clusters),
//! `DATABASE_URL` naming both. The primary is killed (`stop -m immediate`) while enqueues
//! stream in and a worker delivers; the standby is promoted. Every process stays up, /readyz
//! says 503 while no host takes writes (the standby answers, read-only) and 200 after,
//! delivery resumes within 10 s of the promotion, and every acknowledged notification is
//! delivered (a duplicate only under the same X-Callback-Id).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Fleet, primary_and_standby, start_fleet};
use crate::support::cluster::Cluster;
use crate::support::traffic::{
    assert_alive, enqueue_stream, received, run_phase, wait_acknowledged,
    wait_all_marked_delivered, wait_ready_status,
};

const RESUME_BOUND: Duration = Duration::from_secs(10);
/// How long the test keeps the cluster without a writable host before promoting.
const NO_PRIMARY: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_follows_the_promoted_standby_without_a_restart() {
    let (primary, standby, url) = primary_and_standby("cbfailover").await;
    // Fast failure detection for the worker; /readyz answers within its bound either way.
    let env = [("CALLBACKD_DATABASE_MAX_CONNECTIONS", "8")];
    let Fleet {
        mut serve,
        mut worker,
        rx,
        api,
        ledger,
    } = start_fleet(&url, &env).await;
    run_phase(&api, &ledger, &rx, 0..500).await;
    assert_eq!(api.readyz().await.0, 200);

    // Load across the failover.
    let stop = Arc::new(AtomicBool::new(false));
    let stream = tokio::spawn(enqueue_stream(
        api.clone(),
        ledger.clone(),
        1_000_000,
        stop.clone(),
    ));
    wait_acknowledged(&ledger, 100, &stream).await;
    primary.crash().await;
    let crashed = Instant::now();
    let down_after = wait_ready_status(&api, 503, crashed, "the primary's crash").await;
    // The standby answers but is read-only: /readyz must not call that ready.
    while crashed.elapsed() < NO_PRIMARY {
        let (status, _) = api.readyz().await;
        assert_eq!(status, 503, "/readyz with only a read-only standby up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_alive(&mut [&mut serve, &mut worker], "while no host takes writes");

    standby.promote().await;
    let promoted = Instant::now();
    let up_after = wait_ready_status(&api, 200, promoted, "the promotion").await;
    // Resumed: a notification acknowledged after the promotion reaches the receiver.
    let first_after = loop {
        let acked_after: Vec<usize> = ledger
            .lock()
            .unwrap()
            .keys()
            .copied()
            .filter(|s| *s >= 1_000_000)
            .collect();
        let (_, first) = received(&rx);
        if let Some(at) = acked_after
            .iter()
            .filter_map(|s| first.get(s))
            .filter(|at| **at > promoted)
            .min()
        {
            break at.duration_since(promoted);
        }
        assert!(
            promoted.elapsed() < RESUME_BOUND,
            "no delivery within {RESUME_BOUND:?} of the promotion\nworker:\n{}",
            worker.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    wait_acknowledged(&ledger, 100, &stream).await;
    stop.store(true, Ordering::SeqCst);
    let (acked, refused) = stream.await.unwrap();

    // Every acknowledged notification arrives; duplicates only under one X-Callback-Id.
    run_phase(&api, &ledger, &rx, 2_000_000..2_000_200).await;
    let (ids, _) = received(&rx);
    let acked_seqs: Vec<usize> = ledger.lock().unwrap().keys().copied().collect();
    let missing: Vec<_> = acked_seqs.iter().filter(|s| !ids.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged, never delivered: {missing:?}"
    );
    let split: Vec<_> = ids.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(
        split.is_empty(),
        "one notification under two ids: {split:?}"
    );
    let duplicates = rx.requests().len() - ids.len();
    wait_all_marked_delivered(&standby.url("cbfailover"), &ledger, Duration::from_secs(30)).await;
    assert_alive(&mut [&mut serve, &mut worker], "after the failover");
    assert!(
        worker.output().contains("database failover"),
        "{}",
        worker.output()
    );
    eprintln!(
        "failover: /readyz 503 after {down_after:?}, 200 {up_after:?} after the promotion; \
         first delivery {first_after:?} after it; stream: {acked} acknowledged, {refused} \
         refused (503); {duplicates} duplicate requests; nothing lost"
    );
    drop(serve);
    drop(worker);
    drop(standby);
    drop(primary);
}

/// The pool never hands out a connection to a standby: with only a standby in the URL,
/// connecting fails (as an unavailable database: sqlx reports the refused connections as a
/// pool timeout), although the standby itself answers.
#[tokio::test]
async fn a_standby_alone_is_refused() {
    let primary = Cluster::start_new().await;
    let standby = Cluster::standby_of(&primary).await;
    let err = callbackd::store::connect(&standby.url("postgres"), 2, true)
        .await
        .expect_err("a read-only host is refused");
    assert!(err.is_transient(), "{err}");
    let mut direct = <sqlx::PgConnection as sqlx::Connection>::connect(&standby.url("postgres"))
        .await
        .expect("the standby answers");
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut direct)
        .await
        .unwrap();
    assert!(in_recovery);
}
