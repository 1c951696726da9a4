//! A worker keeps its plans: sqlx prepares each statement once per connection and plpgsql
//! caches the plans of a function per session, and after a few runs PostgreSQL may settle on
//! a generic plan made with the sizes the tables had then. A worker that starts on a quiet
//! database must not carry plans that read the whole table once the queue and the counters
//! have grown.
//!
//! The test makes that worst case certain: one connection with
//! `plan_cache_mode = force_generic_plan` prepares the worker's statements and runs them
//! while the queue holds 50 proposals just vacuumed (the worker's own VACUUM, which tells the
//! planner "a small queue"); then 20,000 proposals arrive, and the same connection runs them
//! again under `EXPLAIN (ANALYZE, BUFFERS)`. Before migration 0022 and
//! `db::begin_probing`, that read 830 buffers to number one arrival (a sequential scan of
//! the queue), 4,400 to claim 64 rows, 1,600 to find when the next one is due, and the
//! release's lock of one counter was a hash join over all 20,050 of them (229 buffers).

use std::time::Duration;

use serde_json::Value;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use callbackd::store::db::Plans;
use callbackd::store::queue::claim::{CLAIM_SQL, NEXT_DUE_SQL};
use callbackd::store::queue::release::LOCK_COUNTERS_SQL;

use super::staging::{
    api_only, assert_never_analyzed, by_queue, cb, enqueue_batched, fresh_proposals, partner_at,
    sequence_all,
};
use crate::support::receiver::Receiver;
use crate::support::wait::wait_until;

/// Shared buffers touched by `EXPLAIN (ANALYZE, BUFFERS) <sql>` on `conn`, rolled back, run
/// after the planner settings the worker runs it with.
pub(super) async fn buffers(conn: &mut PgConnection, sql: &str) -> (i64, String) {
    let mut tx = if sql.starts_with("EXECUTE claim") || sql.starts_with("EXECUTE next_due") {
        conn.begin_with(Plans::AsUsual.begin_statement())
            .await
            .unwrap()
    } else {
        conn.begin().await.unwrap()
    };
    let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}");
    let plan: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let top = &plan[0]["Plan"];
    (
        top["Shared Hit Blocks"].as_i64().unwrap() + top["Shared Read Blocks"].as_i64().unwrap(),
        serde_json::to_string_pretty(&plan).unwrap(),
    )
}

/// `EXECUTE lock_counters(…)` for one (endpoint, key): literal arrays, as EXECUTE takes no
/// subqueries. The values are uuids, so they need no quoting beyond the literal's.
fn lock_one(endpoint: &str, key: Uuid) -> String {
    format!("EXECUTE lock_counters('{{{endpoint}}}'::uuid[], '{{{key}}}'::text[])")
}

/// The claim as a worker runs it: up to 200 rows, 64 per endpoint.
const CLAIM: &str =
    "EXECUTE claim(200, 60000, '00000000-0000-0000-0000-000000000000', '{}', '{}', '{}', 64)";
const NEXT_DUE: &str = "EXECUTE next_due('{}')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_made_on_a_small_queue_still_probe_by_key_when_it_has_grown() {
    let (app, db) = api_only().await;
    let rx = Receiver::start().await;
    let (partner, endpoint) = partner_at(&app, "Cached", &cb(&rx), serde_json::json!({})).await;

    let mut worker = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut worker)
        .await
        .unwrap();
    // The simple protocol, so that `$1`… are the prepared statements' own.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PREPARE lock_counters(uuid[], text[]) AS {LOCK_COUNTERS_SQL};
         PREPARE claim(int8, int8, uuid, uuid[], uuid[], int4[], int4) AS {CLAIM_SQL};
         PREPARE next_due(uuid[]) AS {NEXT_DUE_SQL};"
    )))
    .execute(&mut worker)
    .await
    .unwrap();
    // Planned now, while the queue is small, and kept. 50 proposals and a VACUUM (the
    // worker's own, as it runs it), so that the statistics say "a small queue", as they did
    // when this was seen in the `ingest` benchmark.
    enqueue_batched(&app, partner, &fresh_proposals(50)).await;
    sequence_all(&app).await;
    callbackd::store::queue::upkeep::vacuum_queue(&app.pool)
        .await
        .unwrap();
    let first = Uuid::new_v4();
    let (small_lock, _) = buffers(&mut worker, &lock_one(&endpoint, first)).await;
    let (small_sequencer, _) =
        buffers(&mut worker, "SELECT callbackd_sequence_arrivals(1000)").await;
    let (small_claim, _) = buffers(&mut worker, CLAIM).await;
    let (small_due, _) = buffers(&mut worker, NEXT_DUE).await;

    // 20,000 proposals later: 20,000 counters and 20,000 ready rows of the ordered endpoint.
    enqueue_batched(&app, partner, &fresh_proposals(20_000)).await;
    sequence_all(&app).await;
    let (counters,): (i64,) = sqlx::query_as("SELECT count(*) FROM ordering_sequences")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(counters, 20_050);
    // And one more arrival, of a proposal seen before (its counter exists, its head is ready).
    let known: Uuid =
        sqlx::query_scalar("SELECT ordering_key::uuid FROM ordering_sequences LIMIT 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    enqueue_batched(&app, partner, &[known]).await;
    assert_never_analyzed(&app).await;

    // The first look at the arrivals index after the burst walks the 20,000 entries of the
    // rows numbered meanwhile and marks them dead as it passes (whatever its plan; the
    // worker's VACUUM of the queue removes them later): not what this test is about. It can
    // mark them only once they are dead to every transaction of the server, other tests'
    // included (a snapshot's xmin counts every database's): that is waited for first, or a
    // transaction another test holds open makes the measured look walk them again.
    let newer: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    wait_until(
        "every transaction older than the numbering to end",
        Duration::from_secs(120),
        || async {
            let xmin: i64 =
                sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            xmin > newer
        },
    )
    .await;
    buffers(&mut worker, "SELECT callbackd_sequence_arrivals(1000)").await;
    let (sequencer, plan) = buffers(&mut worker, "SELECT callbackd_sequence_arrivals(1000)").await;
    let (lock, lock_plan) = buffers(&mut worker, &lock_one(&endpoint, known)).await;
    let (claim, claim_plan) = buffers(&mut worker, CLAIM).await;
    let (due, due_plan) = buffers(&mut worker, NEXT_DUE).await;
    eprintln!(
        "shared buffers on a small queue: sequencer {small_sequencer}, lock {small_lock}, \
         claim {small_claim}, next due {small_due}; after 20,000 proposals: sequencer \
         {sequencer}, lock {lock}, claim {claim}, next due {due}"
    );
    // One arrival: its counter (an index probe and a write), its key's active rows (one
    // probe), its own row by TID and its endpoint, and the arrivals index's pages that still
    // hold the entries of the 20,000 numbered rows, marked dead but not yet vacuumed away
    // (about 90 in all). Reading the queue's 20,000 rows was 830.
    assert!(
        sequencer < 200,
        "the sequencer read {sequencer} buffers:\n{plan}"
    );
    assert!(
        lock < 20,
        "the lock of one counter read {lock} buffers:\n{lock_plan}"
    );
    // 64 rows taken (the endpoint's room), as `a_disabled_endpoints_backlog_is_not_read…`
    // bounds a claim planned afresh.
    assert!(
        claim < 100 + 50 * 64,
        "the claim read {claim} buffers:\n{claim_plan}"
    );
    assert!(
        due < 50,
        "the next-due probe read {due} buffers:\n{due_plan}"
    );
    assert_eq!(
        by_queue(&app).await,
        vec![(Some("arriving".into()), 1), (Some("ready".into()), 20_050)],
        "the EXPLAINs were rolled back"
    );
}
