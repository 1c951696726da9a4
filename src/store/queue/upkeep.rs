//! The queue's upkeep, run by every worker: numbering arrivals of ordered endpoints, and
//! taking back deliveries whose worker was lost.

use sqlx::PgPool;
use uuid::Uuid;

use super::super::{Result, WAKE_CHANNEL};
use super::complete::release_next;

/// Numbers up to `max_rows` committed arrivals (arriving → waiting | ready) and returns how
/// many it numbered. See `callbackd_sequence_arrivals()` in migrations/0011.
pub async fn sequence_arrivals(pool: &PgPool, max_rows: i32) -> Result<i32> {
    Ok(sqlx::query_scalar("SELECT callbackd_sequence_arrivals($1)")
        .bind(max_rows)
        .fetch_one(pool)
        .await?)
}

/// Deliveries whose lease expired: their worker stopped renewing it, so it is gone (or cut
/// off from the database) and its outcome is unknown. Each gets a failed attempt with error
/// kind `internal` and goes back to `ready` at once — or `dead` if that was its last attempt,
/// so a delivery that keeps killing its worker ends instead of looping. One canceled while it
/// was running leaves `running`. Returns how many were taken back.
pub async fn reap_expired_leases(pool: &PgPool, max_rows: i64) -> Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL enable_bitmapscan = off")
        .execute(&mut *tx)
        .await?;
    let reaped: Vec<(Uuid, Uuid, Option<String>, Option<String>)> = sqlx::query_as(
        "WITH lost AS (
             SELECT d.id, d.lease_token FROM deliveries d
             WHERE d.queue = 'running' AND d.locked_until < now()
             ORDER BY d.locked_until
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         ),
         upd AS (
             UPDATE deliveries d SET
                 state = CASE WHEN d.state = 'pending' AND d.attempts >= e.max_attempts
                              THEN 'dead' ELSE d.state END,
                 queue = CASE WHEN d.state = 'pending' AND d.attempts < e.max_attempts
                              THEN 'ready' END,
                 next_attempt_at = now(),
                 locked_until = NULL,
                 lease_token = NULL,
                 last_status_code = CASE WHEN d.state = 'pending' THEN NULL
                                         ELSE d.last_status_code END,
                 last_error = CASE WHEN d.state = 'pending' THEN $2 ELSE d.last_error END,
                 updated_at = now()
             FROM lost, endpoints e
             WHERE d.id = lost.id AND e.id = d.endpoint_id
             RETURNING d.id, d.endpoint_id, d.ordering_key, d.queue, d.series, d.attempts,
                       d.trigger, lost.lease_token
         ),
         logged AS (
             INSERT INTO delivery_attempts
                 (delivery_id, endpoint_id, series, attempt, started_at, duration_ms, error,
                  trigger, lease_token)
             SELECT u.id, u.endpoint_id, u.series, u.attempts, now(), 0, $2, u.trigger,
                    u.lease_token
             FROM upd u
             ON CONFLICT (delivery_id, lease_token) WHERE lease_token IS NOT NULL DO NOTHING
         )
         SELECT u.id, u.endpoint_id, u.ordering_key, u.queue FROM upd u",
    )
    .bind(max_rows)
    .bind(LOST)
    .fetch_all(&mut *tx)
    .await?;
    let mut finished: Vec<(Uuid, String)> = reaped
        .iter()
        .filter(|(_, _, key, queue)| queue.is_none() && key.is_some())
        .filter_map(|(_, endpoint, key, _)| Some((*endpoint, key.clone()?)))
        .collect();
    finished.sort();
    finished.dedup();
    release_next(&mut tx, &finished).await?;
    if !reaped.is_empty() {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(WAKE_CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(reaped.len() as u64)
}

const LOST: &str = "internal: the worker sending this attempt was lost before its outcome was \
                    written (its lease expired); the partner may or may not have received it";
