//! Leases while a worker lives: renewed while a request is on the wire (so a slow partner or
//! a slow completion never lets another worker send the same callback again), and given back
//! by a stopping worker whose grace ran out (so another worker sends them at once instead of
//! after `lease_ms`).

use uuid::Uuid;

use super::super::Result;
use crate::store::{Db, db};

/// Extends to `lease_ms` from now the lease of each `(delivery id, lease token)` still held
/// under that token. Returns how many leases were renewed.
pub async fn renew_leases(pool: &Db, held: &[(Uuid, Uuid)], lease_ms: i64) -> Result<u64> {
    if held.is_empty() {
        return Ok(0);
    }
    let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = held.iter().copied().unzip();
    let done = db::query(
        "UPDATE delivery_queue q
         SET locked_until = now() + make_interval(secs => $3::float8 / 1000)
         FROM UNNEST($1::uuid[], $2::uuid[]) AS r(id, token)
         WHERE q.delivery_id = r.id AND q.lease_token = r.token AND q.queue = 'running'",
    )
    .bind(&ids)
    .bind(&tokens)
    .bind(lease_ms)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Releases each `(delivery id, lease token)` still held under that token: the delivery is
/// ready again at once and the attempt counted at claim time is given back (no outcome was
/// recorded for it). A delivery canceled meanwhile is left to the reaper, which finishes it.
/// Returns how many deliveries were released.
pub async fn release_leases(pool: &Db, held: &[(Uuid, Uuid)]) -> Result<u64> {
    if held.is_empty() {
        return Ok(0);
    }
    let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = held.iter().copied().unzip();
    let mut tx = pool.begin().await?;
    // Lock first, read the delivery's state after: a cancel that held the queue row has
    // committed by the time the second statement takes its snapshot.
    db::query(
        "SELECT 1 FROM delivery_queue q
         WHERE q.delivery_id = ANY ($1::uuid[])
         ORDER BY q.delivery_id FOR UPDATE",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    let done = db::query(
        "UPDATE delivery_queue q
         SET queue = 'ready',
             next_attempt_at = now(),
             locked_until = NULL,
             lease_token = NULL,
             attempts = greatest(q.attempts - 1, 0)
         FROM UNNEST($1::uuid[], $2::uuid[]) AS r(id, token), deliveries d
         WHERE q.delivery_id = r.id AND q.lease_token = r.token AND q.queue = 'running'
           AND d.id = q.delivery_id AND d.state = 'pending'",
    )
    .bind(&ids)
    .bind(&tokens)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}
