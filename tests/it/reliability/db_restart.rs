//! A full PostgreSQL crash and restart under load (issue 13): a private cluster is stopped
//! with `-m immediate`, kept down 10 s and started again while a `serve` process (API and
//! workers) and a separate worker process run against it and a real receiver takes the
//! callbacks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::cluster::Cluster;
use crate::support::process;
use crate::support::receiver::Receiver;
use crate::support::traffic::{
    ANSWER_BOUND, Ledger, api_with_partner, assert_alive, assert_unavailable, enqueue_stream,
    received, run_phase, wait_acknowledged, wait_all_marked_delivered, wait_ready_status,
};

/// Notifications enqueued before the crash and after the restart (plus those of the stream
/// that runs across it).
const PER_PHASE: usize = 2000;
const OUTAGE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_keeps_every_process_up_loses_nothing_and_resumes_at_full_rate() {
    let cluster = Cluster::start_new().await;
    let url = cluster.url("callbackd");
    let rx = Receiver::start().await;
    let env = [
        // Claims made just before the crash whose outcome is lost come back within seconds.
        ("CALLBACKD_LEASE_MS", "5000"),
        ("CALLBACKD_ENDPOINT_TIMEOUT_MS", "2000"),
        // The poll alone would be far too slow: a prompt pickup after the restart needs
        // the LISTEN connection back.
        ("CALLBACKD_POLL_INTERVAL_MS", "10000"),
        ("CALLBACKD_WORKER_CONCURRENCY", "64"),
    ];
    let mut all = process::start(&url, "all", &env).await;
    let mut worker = process::start(&url, "worker", &env).await;

    let api = api_with_partner(&all, &rx).await;
    let ledger: Ledger = Arc::default();

    // Before: the pace to compare with.
    let before = run_phase(&api, &ledger, &rx, 0..PER_PHASE).await;

    // Load running into the crash: enqueues committing, claims taken, callbacks in flight.
    let stop = Arc::new(AtomicBool::new(false));
    let stream = tokio::spawn(enqueue_stream(
        api.clone(),
        ledger.clone(),
        10 * PER_PHASE,
        stop.clone(),
    ));
    wait_acknowledged(&ledger, 100, &stream).await;

    cluster.crash().await;
    let down_at = Instant::now();
    let unready_after = wait_ready_status(&api, 503, down_at, "the crash").await;
    let refused = api.enqueue(usize::MAX).await;
    assert_unavailable(&refused);

    tokio::time::sleep(OUTAGE.saturating_sub(down_at.elapsed())).await;
    assert_alive(&mut [&mut all, &mut worker], "during the outage");
    cluster.start().await;
    let up_at = Instant::now();
    let ready_after = wait_ready_status(&api, 200, up_at, "the restart").await;
    stop.store(true, Ordering::SeqCst);
    let (stream_acked, stream_refused) = stream.await.expect("the stream's enqueuers");
    // Both processes listen again: an idle worker hears of new work at once.
    for p in [&all, &worker] {
        p.wait_for_output("LISTEN connection restored", ANSWER_BOUND)
            .await;
    }

    // After: the same load again.
    let after = run_phase(&api, &ledger, &rx, PER_PHASE..2 * PER_PHASE).await;
    wait_all_marked_delivered(&url, &ledger, Duration::from_secs(30)).await;
    let (ids, first) = received(&rx);
    let resumed_after = first
        .values()
        .filter(|at| **at > up_at)
        .min()
        .map(|at| at.duration_since(up_at));

    assert_alive(&mut [&mut all, &mut worker], "after the restart");
    // At least once, and a repeat is the same delivery: one X-Callback-Id per notification,
    // the one its 202 named.
    let ledger = ledger.lock().unwrap().clone();
    for (seq, delivered_as) in &ids {
        assert_eq!(delivered_as.len(), 1, "seq {seq} sent as {delivered_as:?}");
        if let Some(acked) = ledger.get(seq) {
            assert!(delivered_as.contains(acked), "seq {seq}: {delivered_as:?}");
        }
    }
    let sent_again = rx.requests().len() - ids.len();
    eprintln!(
        "db restart: before {:.0}/s (pickup {:?}), after {:.0}/s (pickup {:?}); /readyz 503 \
         after {unready_after:?}, an enqueue's 503 in {:?}, /readyz 200 {ready_after:?} after \
         start; first callback {resumed_after:?} after start; stream across the crash: \
         {stream_acked} acknowledged, {stream_refused} refused with 503; {} acknowledged in \
         all, {sent_again} callbacks sent again",
        before.per_s,
        before.pickup,
        after.per_s,
        after.pickup,
        refused.took,
        ledger.len()
    );
    // The poll is 10 s: only a NOTIFY heard on the restored LISTEN connection is faster.
    // (Measured from before the batches are sent, so it includes their insert.)
    assert!(
        after.pickup < Duration::from_secs(5),
        "the first callback after the restart came {:?} after its enqueue",
        after.pickup
    );
    assert!(
        after.per_s >= before.per_s * 0.5,
        "after the restart {:.0}/s, before {:.0}/s",
        after.per_s,
        before.per_s
    );
}

/// What PostgreSQL really answers, sorted by `store::is_transient`: what a restart raises
/// is worth retrying; an error about the statement or its data is not.
#[tokio::test]
async fn real_server_errors_are_transient_only_when_trying_again_can_help() {
    use callbackd::store::is_transient;
    use sqlx::Connection;

    let db = crate::support::app::TestDb::create().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // What every backend gets at `stop`: 57P01 admin_shutdown (here our own, and only it).
    let e = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
        .execute(&mut conn)
        .await
        .unwrap_err();
    let code = e.as_database_error().and_then(|d| d.code());
    assert_eq!(code.as_deref(), Some("57P01"), "{e:?}");
    assert!(is_transient(&e), "{e:?}");
    // And the connection after it: gone.
    let e = sqlx::query("SELECT 1")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(is_transient(&e), "{e:?}");

    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("CREATE TEMP TABLE t (k int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .execute(&mut conn)
        .await
        .unwrap();
    for sql in [
        "SELECT 1/0",                  // 22012 division_by_zero
        "SELECT 'x'::int",             // 22P02 invalid_text_representation
        "INSERT INTO t VALUES (1)",    // 23505 unique_violation
        "INSERT INTO t VALUES (NULL)", // 23502 not_null_violation
        "SELECT * FROM nowhere",       // 42P01 undefined_table
        "SELEC 1",                     // 42601 syntax_error
    ] {
        let e = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(!is_transient(&e), "{sql}: {e:?}");
    }
    let e = sqlx::query("SELECT $1::text")
        .bind("a\0b") // 22021: a NUL in text
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(!is_transient(&e), "{e:?}");

    // Nothing listens: the pool gives up after its acquire timeout.
    let nowhere = format!(
        "postgres://postgres@127.0.0.1:{}/x",
        crate::support::free_port()
    );
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy(&nowhere)
        .unwrap();
    let e = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
    assert!(matches!(e, sqlx::Error::PoolTimedOut), "{e:?}");
    assert!(is_transient(&e));
}
