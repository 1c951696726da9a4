//! The claim runs from one cached generic plan per connection. PostgreSQL otherwise plans a
//! prepared statement again for its arguments whenever it judges a custom plan worthwhile,
//! and the claim's plan took longer to make (about 1.1 ms) than a small claim takes to run:
//! in `ingest` a quarter of the rounds were planned again, 35 % of the claim's time
//! (pg_stat_statements, docs/performance.md). Its plan is the same whatever the arguments
//! (index probes with a LIMIT; `cached_plans` checks that the generic one stays small as the
//! queue grows), so it is planned once. So are the statements of an enqueue group (single
//! calls written together), which is one call of `callbackd_insert_fanned_out()`: under the
//! fan-out's planner settings PostgreSQL planned the partner check again for every group
//! when they were statements of their own.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use callbackd::model::NewNotification;
use callbackd::store::queue::claim::{
    CLAIM_SQL, EndpointRoom, NEXT_DUE_SQL, next_due_in_ms, sequence_and_claim,
};
use callbackd::store::{Db, GroupItem, Written, write_group};

use super::staging::{api_only, cb, enqueue_batched, fresh_proposals, partner_at};
use crate::support::receiver::Receiver;

/// A pool of one connection, as itself (to read that connection's prepared statements) and
/// as the `Db` the product's functions take.
async fn one_connection(url: &str) -> (PgPool, Db) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    (pool.clone(), Db::new(pool))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_connection_plans_the_claim_and_next_due_once() {
    const ROUNDS: i64 = 8;
    const TAKE: i64 = 5;
    let (app, db) = api_only().await;
    let rx = Receiver::start().await;
    let (partner, _) = partner_at(&app, "Planned once", &cb(&rx), serde_json::json!({})).await;
    enqueue_batched(&app, partner, &fresh_proposals((ROUNDS * TAKE) as usize)).await;

    // One connection, as a worker's claims share its few connections.
    let (pool, worker) = one_connection(&db.url).await;
    let room = EndpointRoom {
        per_endpoint: 100,
        ..Default::default()
    };
    for round in 0..ROUNDS {
        let (_, claimed) = sequence_and_claim(&worker, 100, TAKE, 60_000, Uuid::new_v4(), &room)
            .await
            .unwrap();
        assert_eq!(claimed.len(), TAKE as usize, "round {round} claimed");
        // And when to look again, as an idle worker asks.
        next_due_in_ms(&worker, &[]).await.unwrap();
    }

    for (name, sql) in [("the claim", CLAIM_SQL), ("next-due", NEXT_DUE_SQL)] {
        let plans: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
        )
        .bind(sql)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            plans,
            vec![(ROUNDS, 0)],
            "(generic, custom) plans of {name} on the worker's connection"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_group_is_one_statement_planned_once_per_connection() {
    const GROUPS: usize = 8;
    let (app, db) = api_only().await;
    let rx = Receiver::start().await;
    let (partner, _) = partner_at(&app, "Groups", &cb(&rx), serde_json::json!({})).await;
    let (pool, api) = one_connection(&db.url).await;
    for (group, proposals) in fresh_proposals(GROUPS * 3).chunks(3).enumerate() {
        let notifications: Vec<NewNotification> = proposals
            .iter()
            .map(|p| {
                serde_json::from_value(serde_json::json!({
                    "partner_id": partner, "environment": "production",
                    "event_type": "proposal.status", "proposal": p, "status": 2}))
                .unwrap()
            })
            .collect();
        let keys: Vec<String> = proposals.iter().map(|p| format!("key-{p}")).collect();
        let items: Vec<GroupItem<'_>> = notifications
            .iter()
            .zip(&keys)
            // Every other group: two with an Idempotency-Key, one without.
            .enumerate()
            .map(|(i, (n, k))| GroupItem {
                notification: n,
                key: (i > 0 && group % 2 == 0).then_some(k.as_str()),
            })
            .collect();
        let written = write_group(&api, &items).await.unwrap();
        assert!(
            written.iter().all(|w| matches!(w, Written::Created(_))),
            "group {group}: {written:?}"
        );
    }

    // One statement per group, with or without keys: the function call.
    let statements: Vec<String> = sqlx::query_scalar(
        "SELECT regexp_replace(statement, '\\s+', ' ', 'g') FROM pg_prepared_statements
         WHERE statement NOT LIKE '%pg_prepared_statements%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        statements.len(),
        1,
        "the statements of {GROUPS} groups: {statements:?}"
    );
    assert!(
        statements[0].contains("callbackd_insert_fanned_out"),
        "{statements:?}"
    );
    // Its statements are planned by plpgsql, once per connection, under the function's own
    // settings: generic plans, index probes (`fan_out_plan` checks what they read).
    let settings: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(proconfig) FROM pg_proc WHERE proname = 'callbackd_insert_fanned_out'
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        settings,
        [
            "enable_bitmapscan=off",
            "enable_seqscan=off",
            "plan_cache_mode=force_generic_plan"
        ]
    );
}
