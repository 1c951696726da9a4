//! The release: after a delivery of an ordered (endpoint, key) finished or was canceled, the
//! first active delivery of that key becomes ready if it was waiting.
//!
//! It races the sequencer (`callbackd_sequence_arrivals()`, migrations/0015), which makes a
//! new arrival wait when something of its key is active. Both take the key's counter row in
//! `ordering_sequences` (in (endpoint, key) order, so they never deadlock), and the release
//! looks for the waiting delivery in a statement of its own, after the lock: an arrival
//! numbered concurrently is either seen here, or its sequencer saw the finished delivery gone
//! and made it ready itself.
//!
//! Set-based: one statement locks every key's counter, one releases every key's next
//! delivery. Until migration 0019 this was a plpgsql function called once per key, whose call
//! and two inner statements cost 25 µs per delivery in an ordered burst (pg_stat_statements);
//! the two statements cost about a third of that (docs/performance.md).

use uuid::Uuid;

use super::super::Result;
use crate::store::db;

/// Locks the counter rows of `$1`/`$2` (endpoint, key pairs) in (endpoint, key) order, the
/// order the sequencer locks them in. Public so its plan can be checked
/// (tests/it/reliability/queue_speed.rs).
///
/// One index probe per key, whatever the planner believes: the lookup is a LATERAL
/// subquery, which PostgreSQL can only run as a nested loop over the sorted keys. Written as
/// a join, it was planned once per connection while `ordering_sequences` was small, and that
/// cached plan (a hash join over a sequential scan) then read every counter ever made on each
/// completion: a table that grows by one row per proposal and is never vacuumed by the
/// product. Measured in `ingest` (32 clients, single calls, on a fresh database): 4.2 ms per
/// call and growing, 195 µs per delivery, the single most expensive statement.
pub const LOCK_COUNTERS_SQL: &str = "SELECT 1
     FROM (SELECT DISTINCT k.endpoint_id, k.ordering_key
           FROM unnest($1::uuid[], $2::text[]) AS k(endpoint_id, ordering_key)
           ORDER BY k.endpoint_id, k.ordering_key) k
     CROSS JOIN LATERAL (
         SELECT 1 FROM ordering_sequences s
         WHERE s.endpoint_id = k.endpoint_id AND s.ordering_key = k.ordering_key
         FOR UPDATE) s";

/// Releases the next delivery of each (endpoint, key) in `keys`.
pub(super) async fn release_next(
    conn: &mut sqlx::PgConnection,
    keys: &[(Uuid, String)],
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let (endpoints, keys) = columns(keys);
    db::query(LOCK_COUNTERS_SQL)
        .bind(&endpoints)
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
    // A new statement, so a snapshot taken after the locks: each key's head (its active
    // delivery with the lowest sequence), made ready if it waits. A head that a cancel
    // deleted meanwhile is not updated; those keys are returned and looked at again.
    let raced: Vec<(Uuid, String)> = db::query_as(
        "WITH head AS (
             SELECT k.endpoint_id, k.ordering_key, h.delivery_id
             FROM (SELECT DISTINCT * FROM unnest($1::uuid[], $2::text[])) AS k(endpoint_id, ordering_key)
             CROSS JOIN LATERAL (
                 SELECT q.delivery_id, q.queue FROM delivery_queue q
                 WHERE q.endpoint_id = k.endpoint_id AND q.ordering_key = k.ordering_key
                   AND q.ordering_key IS NOT NULL
                   AND q.queue IN ('waiting', 'ready', 'running')
                 ORDER BY q.sequence
                 LIMIT 1) h
             WHERE h.queue = 'waiting'
         ),
         released AS (
             UPDATE delivery_queue q SET queue = 'ready'
             FROM head h
             WHERE q.delivery_id = h.delivery_id AND q.queue = 'waiting'
             RETURNING q.delivery_id
         )
         SELECT h.endpoint_id, h.ordering_key FROM head h
         WHERE NOT EXISTS (SELECT 1 FROM released r WHERE r.delivery_id = h.delivery_id)",
    )
    .bind(&endpoints)
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await?;
    // Rare: the waiting head was canceled under us. The per-key function looks again until
    // the key's head is settled (its counter is already ours).
    if !raced.is_empty() {
        let (endpoints, keys) = columns(&raced);
        db::query(
            "SELECT callbackd_release_next(k.endpoint_id, k.ordering_key)
             FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS k(endpoint_id, ordering_key, n)
             ORDER BY k.n",
        )
        .bind(&endpoints)
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// `(endpoint, key)` pairs as the two arrays the statements bind.
fn columns(keys: &[(Uuid, String)]) -> (Vec<Uuid>, Vec<&str>) {
    keys.iter().map(|(e, k)| (*e, k.as_str())).unzip()
}
