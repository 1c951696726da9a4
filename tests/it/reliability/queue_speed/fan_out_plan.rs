//! The enqueue's insert and fan-out, `callbackd_insert_fanned_out()` (migration 0026), keep a
//! plan that probes by partner however many endpoints there are. plpgsql caches the plans of
//! its statements per session, and the function asks for generic ones, so an API connection
//! that starts on a database with one endpoint keeps the plans it made then. The function's
//! own settings (sequential and bitmap scans priced out) are what make those plans probes: a
//! group of single calls runs it alone, with no transaction to carry them.

use serde_json::Value;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::cached_plans::buffers;
use super::staging::{api_only, cb, partner_at};
use crate::support::receiver::Receiver;

/// Shared buffers the function touches to enqueue one status change of a fresh proposal for
/// `partner`, under `EXPLAIN (ANALYZE, BUFFERS)` (a function scan counts what its statements
/// read), rolled back.
async fn buffers_for_one(conn: &mut PgConnection, partner: Uuid) -> (i64, String) {
    let call = format!(
        "SELECT * FROM callbackd_insert_fanned_out(
             ARRAY['{id}']::uuid[], ARRAY['{partner}']::uuid[], ARRAY['production'],
             ARRAY['proposal.status'], ARRAY['{proposal}']::uuid[], ARRAY[2]::int2[],
             ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[NULL]::text[],
             ARRAY[NULL]::text[], ARRAY[NULL]::text[])",
        id = Uuid::now_v7(),
        proposal = Uuid::new_v4(),
    );
    let (buffers, plan) = buffers(conn, &call).await;
    let top: Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(top[0]["Plan"]["Actual Rows"], 1, "one delivery:\n{plan}");
    (buffers, plan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fan_out_planned_on_one_endpoint_still_probes_among_thousands() {
    const OTHERS: i64 = 10_000;
    let (app, db) = api_only().await;
    let rx = Receiver::start().await;
    let (partner, endpoint) = partner_at(&app, "Fanout", &cb(&rx), serde_json::json!({})).await;

    // Planned now, on one connection, while the database holds one partner and one endpoint.
    let mut api = PgConnection::connect(&db.url).await.unwrap();
    let mut small = 0;
    for _ in 0..3 {
        small = buffers_for_one(&mut api, partner).await.0;
    }

    // 10,000 more partners with an endpoint each, copies of the first, as a platform grows.
    let added = sqlx::query(
        "WITH p AS (
             INSERT INTO partners (name)
             SELECT 'Other ' || i FROM generate_series(1, $2) i RETURNING id)
         INSERT INTO endpoints
         SELECT (json_populate_record(e, json_build_object('id', callbackd_uuid_v7(),
                                                           'partner_id', p.id))).*
         FROM endpoints e, p WHERE e.id = $1::uuid",
    )
    .bind(&endpoint)
    .bind(OTHERS)
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(added.rows_affected(), OTHERS as u64);

    let (grown, plan) = buffers_for_one(&mut api, partner).await;
    eprintln!("shared buffers to enqueue one: {small} with 1 endpoint, {grown} with 10,001");
    // The same probes as before: the partner, its endpoints, the rows and index entries
    // written (22 and 29 here). With the function's scan settings reset, the plan made on one
    // endpoint read the endpoints table: 78 buffers among 5,001 endpoints.
    assert!(
        grown < small + 40,
        "{grown} buffers among 10,001 endpoints, {small} among one:\n{plan}"
    );
}
