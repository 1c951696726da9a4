//! The completion runs from a cached generic plan (planning it for each batch cost more than
//! running it in a trickle of small batches), so its one plan must read what its batch names
//! and nothing else, whatever the estimates. A generic plan assumes 10 outcomes: before, it
//! read every running row of the queue (an index scan hashed against the batch) to find the
//! batch's own, so a batch of 40 among 1,024 requests in flight read 1,024 queue rows; and
//! without `db::Plans::Cached` a join between two of its CTEs could become a nested
//! loop, its cost the square of the batch (87 ms for 324 outcomes, docs/performance.md).

use serde_json::Value;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use callbackd::store::db::Plans;
use callbackd::store::queue::claim::EndpointRoom;
use callbackd::store::queue::complete::COMPLETE_SQL;

use super::staging::{api_only, cb, enqueue_batched, fresh_proposals, partner_at, sequence_all};
use crate::support::receiver::Receiver;

/// The plan's nodes that read more than a probe's worth: a table scanned rather than probed
/// (more than one row per loop: a probe by primary key finds one), or a CTE or function
/// scan run again for each row of a loop.
fn not_probes(node: &Value, found: &mut Vec<String>) {
    let kind = node["Node Type"].as_str().unwrap_or_default();
    let loops = node["Actual Loops"].as_i64().unwrap_or(0);
    let rows = node["Actual Rows"].as_i64().unwrap_or(0);
    let name = node["CTE Name"]
        .as_str()
        .or(node["Relation Name"].as_str())
        .unwrap_or("?");
    let table_scan = matches!(
        kind,
        "Seq Scan" | "Index Scan" | "Index Only Scan" | "Bitmap Heap Scan"
    );
    if (table_scan && rows > 1) || (matches!(kind, "CTE Scan" | "Function Scan") && loops > 1) {
        found.push(format!("{kind} on {name}: {rows} rows × {loops} loops"));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        not_probes(child, found);
    }
}

/// `'{a,b,…}'::<ty>[]`, for EXECUTE, which takes no subqueries or binds.
fn literal<T: ToString>(values: impl IntoIterator<Item = T>, ty: &str) -> String {
    let items: Vec<String> = values.into_iter().map(|v| v.to_string()).collect();
    format!("'{{{}}}'::{ty}[]", items.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cached_completion_plan_reads_only_the_rows_of_its_batch() {
    // 400 requests in flight, 40 of them answered: the batch.
    const N: usize = 400;
    const BATCH: usize = 40;
    let (app, db) = api_only().await;
    let rx = Receiver::start().await;
    let (partner, _) = partner_at(&app, "Completion", &cb(&rx), serde_json::json!({})).await;
    enqueue_batched(&app, partner, &fresh_proposals(N)).await;
    sequence_all(&app).await;
    let token = Uuid::new_v4();
    let room = EndpointRoom {
        per_endpoint: N as i32,
        ..Default::default()
    };
    let claimed = callbackd::store::claim(&app.pool, N as i64, 60_000, token, &room)
        .await
        .unwrap();
    assert_eq!(claimed.len(), N);

    let claimed = &claimed[..BATCH];
    let n = claimed.len();
    let execute = format!(
        "EXECUTE complete({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
        literal(claimed.iter().map(|c| c.id), "uuid"),
        literal(vec![token; n], "uuid"),
        literal(vec!["delivered"; n], "text"),
        literal(vec!["NULL"; n], "int8"),
        literal(claimed.iter().map(|c| c.series), "int4"),
        literal(claimed.iter().map(|c| c.attempt), "int4"),
        literal(vec!["\"2026-12-04 12:00:00+00\""; n], "timestamptz"),
        literal(vec![5; n], "int4"),
        literal(vec![200; n], "int4"),
        literal(vec!["NULL"; n], "text"),
        literal(vec!["ok"; n], "text"),
        literal(vec![false; n], "bool"),
        literal(vec!["NULL"; n], "text"),
    );

    let mut worker = PgConnection::connect(&db.url).await.unwrap();
    // As `store::complete` runs it: index probes only, the cached generic plan.
    let mut tx = worker
        .begin_with(Plans::Cached.begin_statement())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PREPARE complete(uuid[], uuid[], text[], int8[], int4[], int4[], timestamptz[],
                          int4[], int4[], text[], text[], bool[], text[]) AS {COMPLETE_SQL}"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    let plan: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}"
    )))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let delivered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE state = 'delivered' AND delivered_at IS NOT NULL",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();

    let shown = serde_json::to_string_pretty(&plan).unwrap();
    assert_eq!(
        delivered, BATCH as i64,
        "the plan ran the completion:\n{shown}"
    );
    let mut found = Vec::new();
    not_probes(&plan[0]["Plan"], &mut found);
    assert!(
        found.is_empty(),
        "more read than a probe per outcome: {found:?}\n{shown}"
    );
}
