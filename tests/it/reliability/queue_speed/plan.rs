//! What a claim really reads: the claim statement run under `EXPLAIN (ANALYZE, BUFFERS)` in
//! a transaction that is rolled back, so nothing is claimed.

use callbackd::store::db::Plans;
use callbackd::store::queue::claim::{CLAIM_SQL, NEXT_DUE_SQL};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// The cost of one execution, from its plan.
pub struct Cost {
    /// Rows the statement returned (deliveries claimed).
    pub returned: f64,
    /// Rows of `deliveries` its scans read (returned by a scan node or removed by its
    /// filter), an upper bound: EXPLAIN shows a node's rows per loop rounded, so a node that
    /// ran more than once counts half a row more per loop.
    pub deliveries_read: f64,
    /// Shared buffers touched by the whole statement (hit + read, at the top node).
    pub buffers: i64,
    /// The plan as text, for the failure message.
    pub text: String,
}

/// Runs the claim for up to `limit` rows, `per_endpoint` room each, as the workers do
/// (in a transaction of `db::begin_probing`), and rolls it back.
pub async fn claim_cost(pool: &PgPool, limit: i64, per_endpoint: i32) -> Cost {
    explain(pool, CLAIM_SQL, |q| {
        q.bind(limit)
            .bind(60_000_i64)
            .bind(Uuid::new_v4())
            .bind(Vec::<Uuid>::new())
            .bind(Vec::<Uuid>::new())
            .bind(Vec::<i32>::new())
            .bind(per_endpoint)
    })
    .await
}

/// The skip scan that tells an idle worker when to look again.
pub async fn next_due_cost(pool: &PgPool) -> Cost {
    explain(pool, NEXT_DUE_SQL, |q| q.bind(Vec::<Uuid>::new())).await
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

async fn explain(
    pool: &PgPool,
    sql: &str,
    bind: impl for<'q> FnOnce(Query<'q>) -> Query<'q>,
) -> Cost {
    let mut tx = pool
        .begin_with(Plans::AsUsual.begin_statement())
        .await
        .unwrap();
    let json = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}");
    let plan: Value = bind(sqlx::query(sqlx::AssertSqlSafe(json.clone())))
        .fetch_one(&mut *tx)
        .await
        .map(|row| sqlx::Row::get(&row, 0))
        .unwrap();
    tx.rollback().await.unwrap();
    let top = &plan[0]["Plan"];
    Cost {
        returned: top["Actual Rows"].as_f64().unwrap() * top["Actual Loops"].as_f64().unwrap(),
        deliveries_read: deliveries_read(top),
        buffers: top["Shared Hit Blocks"].as_i64().unwrap()
            + top["Shared Read Blocks"].as_i64().unwrap(),
        text: serde_json::to_string_pretty(top).unwrap(),
    }
}

fn deliveries_read(node: &Value) -> f64 {
    // The queue rows and the delivery rows the statement reads.
    let relation = node["Relation Name"].as_str().unwrap_or("");
    let own = if (relation == "delivery_queue" || relation == "deliveries")
        && node["Node Type"].as_str().unwrap().ends_with("Scan")
    {
        let n = |k: &str| node[k].as_f64().unwrap_or(0.0);
        let rounding = if n("Actual Loops") > 1.0 { 0.5 } else { 0.0 };
        (n("Actual Rows")
            + n("Rows Removed by Filter")
            + n("Rows Removed by Index Recheck")
            + rounding)
            * n("Actual Loops")
    } else {
        0.0
    };
    own + node["Plans"]
        .as_array()
        .map(|plans| plans.iter().map(deliveries_read).sum())
        .unwrap_or(0.0)
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows returned, {} queue and delivery rows read, {} shared buffers",
            self.returned, self.deliveries_read, self.buffers
        )
    }
}
