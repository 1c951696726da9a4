//! The queue's upkeep, run by every worker: numbering arrivals of ordered endpoints, and
//! taking back deliveries whose worker was lost.

use uuid::Uuid;

use super::super::{Result, WAKE_CHANNEL};
use super::release::release_next;
use crate::store::{Db, db};

/// Numbers up to `max_rows` committed arrivals (arriving → waiting | ready) and returns how
/// many it numbered. See `callbackd_sequence_arrivals()` in migrations/0011 (and 0024: one
/// sequencer at a time per database; a call that finds another numbering returns 0 at once).
/// On the pool, or inside a transaction (the worker's claim: `claim::sequence_and_claim`).
pub async fn sequence_arrivals<'c>(conn: impl sqlx::PgExecutor<'c>, max_rows: i32) -> Result<i32> {
    Ok(db::query_scalar("SELECT callbackd_sequence_arrivals($1)")
        .bind(max_rows)
        .fetch_one(conn)
        .await?)
}

/// Dead and live row versions of the queue table, as PostgreSQL's statistics count them (up
/// to a second or so behind).
pub async fn queue_row_versions(pool: &Db) -> Result<(i64, i64)> {
    Ok(db::query_as(
        "SELECT coalesce(n_dead_tup, 0), coalesce(n_live_tup, 0) FROM pg_stat_user_tables
         WHERE relid = 'delivery_queue'::regclass",
    )
    .fetch_optional(pool)
    .await?
    .unwrap_or((0, 0)))
}

/// Vacuums the queue table, its indexes included (`INDEX_CLEANUP ON`: the dead index
/// entries are what the numbering and the claim step over), unless another VACUUM (say,
/// autovacuum's) holds it already. Takes a session connection: VACUUM cannot run inside a
/// transaction, which is what a statement on its own becomes behind a transaction pooler
/// (see [`super::super::db`]); sent with the simple protocol, outside any transaction.
///
/// `TRUNCATE OFF`: giving the empty pages at the end of the file back to the system needs
/// an ACCESS EXCLUSIVE lock on the queue table, which stops every claim and completion while
/// it is held, and a queue's file grows again with the next burst anyway. With truncation on,
/// 6–14 % of the database's samples during an ordered burst were this VACUUM waiting for that
/// lock (`Timeout:VacuumTruncate`, `callbackd-bench fleet`).
pub async fn vacuum_queue(session: &Db) -> Result<()> {
    use sqlx::Executor;
    session
        .pool()
        .execute("VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON, TRUNCATE OFF) delivery_queue")
        .await?;
    Ok(())
}

/// Deliveries whose lease expired: their worker stopped renewing it, so it is gone (or cut
/// off from the database) and its outcome is unknown. Each gets a failed attempt with error
/// kind `internal` and goes back to `ready` at once — or `dead` if that was its last attempt,
/// so a delivery that keeps killing its worker ends instead of looping. One canceled while it
/// was running leaves `running`. Returns how many were taken back.
pub async fn reap_expired_leases(pool: &Db, max_rows: i64) -> Result<u64> {
    let mut tx = db::begin_probing(pool, db::Plans::AsUsual).await?;
    let reaped: Vec<(Uuid, Uuid, Option<String>, Option<String>)> = db::query_as(
        "WITH lost AS (
             SELECT q.delivery_id AS id, q.lease_token, q.attempts, q.ordering_key,
                    q.sequence, e.max_attempts
             FROM delivery_queue q JOIN endpoints e ON e.id = q.endpoint_id
             WHERE q.queue = 'running' AND q.locked_until < now()
             ORDER BY q.locked_until
             LIMIT $1
             FOR UPDATE OF q SKIP LOCKED
         ),
         wide AS (
             UPDATE deliveries d SET
                 state = CASE WHEN d.state = 'pending' AND l.attempts >= l.max_attempts
                              THEN 'dead' ELSE d.state END,
                 attempts = CASE WHEN d.state = 'pending' THEN l.attempts ELSE d.attempts END,
                 next_attempt_at = CASE WHEN d.state = 'pending' THEN now()
                                        ELSE d.next_attempt_at END,
                 last_status_code = CASE WHEN d.state = 'pending' THEN NULL
                                         ELSE d.last_status_code END,
                 last_error = CASE WHEN d.state = 'pending' THEN $2 ELSE d.last_error END,
                 sequence = l.sequence,
                 updated_at = now()
             FROM lost l
             WHERE d.id = l.id
             RETURNING d.id, d.endpoint_id, d.state, d.series, d.trigger, l.attempts,
                       l.lease_token, d.created_at
         ),
         -- Dead now (a canceled one has its row already): see migrations/0020.
         stopped AS (
             INSERT INTO delivery_stopped (delivery_id, endpoint_id, state, created_at)
             SELECT w.id, w.endpoint_id, 'dead', w.created_at FROM wide w
             WHERE w.state = 'dead'
         ),
         gone AS (
             DELETE FROM delivery_queue q USING wide w
             WHERE q.delivery_id = w.id AND w.state <> 'pending'
         ),
         retry AS (
             UPDATE delivery_queue q SET queue = 'ready', next_attempt_at = now(),
                    locked_until = NULL, lease_token = NULL
             FROM wide w
             WHERE q.delivery_id = w.id AND w.state = 'pending'
         ),
         logged AS (
             INSERT INTO delivery_attempts
                 (delivery_id, endpoint_id, series, attempt, started_at, duration_ms, error,
                  error_kind, trigger, lease_token)
             SELECT w.id, w.endpoint_id, w.series, w.attempts, now(), 0, $2, 'internal',
                    w.trigger, w.lease_token
             FROM wide w
             ON CONFLICT (delivery_id, lease_token) DO NOTHING
         )
         SELECT w.id, w.endpoint_id, l.ordering_key,
                CASE WHEN w.state = 'pending' THEN 'ready' END AS queue
         FROM wide w JOIN lost l ON l.id = w.id",
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
        db::query("SELECT pg_notify($1, '')")
            .bind(WAKE_CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(reaped.len() as u64)
}

const LOST: &str = "internal: the worker sending this attempt was lost before its outcome was \
                    written (its lease expired); the partner may or may not have received it";
