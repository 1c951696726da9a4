//! Giving leases back: a stopping worker whose grace ran out releases the deliveries it
//! still holds, so another worker sends them at once instead of after `lease_ms`.

use sqlx::PgPool;
use uuid::Uuid;

use super::Result;

/// Releases each `(delivery id, lease token)` still held under that token: the lease is
/// cleared and the attempt counted at claim time is given back (no outcome was recorded for
/// it). Returns how many deliveries were released.
pub async fn release_leases(pool: &PgPool, held: &[(Uuid, Uuid)]) -> Result<u64> {
    if held.is_empty() {
        return Ok(0);
    }
    let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = held.iter().copied().unzip();
    let done = sqlx::query(
        "UPDATE deliveries d
         SET locked_until = NULL,
             lease_token = NULL,
             attempts = greatest(d.attempts - 1, 0),
             updated_at = now()
         FROM UNNEST($1::uuid[], $2::uuid[]) AS r(id, token)
         WHERE d.id = r.id AND d.lease_token = r.token AND d.state = 'pending'",
    )
    .bind(&ids)
    .bind(&tokens)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
