//! Recovery after an outage: once an endpoint with `auto_replay_dead_on_recovery` answers
//! 2xx again, its dead deliveries of the last `auto_replay_window_s` are replayed, oldest
//! first, a bounded number per pass.

use uuid::Uuid;

use super::super::{Result, WAKE_CHANNEL};
use super::transitions::REPLAY_SERIES;
use crate::store::{Db, db};

/// One recovery pass over `endpoints` (those that just answered 2xx): for each endpoint that
/// opted in, is enabled, has dead deliveries in its window, and whose previous pass is at
/// least 0.9 s old (`auto_replay_next_at`, shared by every worker process, a little under
/// the workers' one pass per second so that a planned pass is not refused), replays at most
/// `per_second` of them, oldest first, due one after the other over the next second.
/// Returns how many were replayed.
///
/// The next pass needs another 2xx, so the replay proceeds only while the endpoint keeps
/// answering; a delivery whose automatic replay died again is not replayed automatically a
/// second time (an operator or the partner can still replay it), so a poison delivery cannot
/// loop.
pub async fn auto_replay_pass(pool: &Db, endpoints: &[Uuid], per_second: u32) -> Result<u64> {
    if endpoints.is_empty() || per_second == 0 {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let replayed = db::query(const_format::concatcp!(
        "WITH due AS (
             UPDATE endpoints e SET auto_replay_next_at = now() + interval '900 milliseconds'
             WHERE e.id = ANY($1) AND e.auto_replay_dead_on_recovery AND e.enabled
               AND e.deleted_at IS NULL
               AND (e.auto_replay_next_at IS NULL OR e.auto_replay_next_at <= now())
               AND EXISTS (
                   SELECT 1 FROM delivery_stopped s JOIN deliveries d ON d.id = s.delivery_id
                   WHERE s.endpoint_id = e.id AND s.state = 'dead'
                     AND s.created_at >= now() - make_interval(secs => e.auto_replay_window_s)
                     AND d.state = 'dead' AND d.trigger <> 'auto_recovery'
                     AND d.created_at >= now() - make_interval(secs => e.auto_replay_window_s))
             RETURNING e.id, e.auto_replay_window_s
         ),
         -- The endpoint's dead letters, oldest first, through `delivery_stopped`
         -- (migrations/0020: no index on `deliveries` names its state). Its copies of the
         -- state and creation time find the rows; the delivery's own decide.
         picked AS (
             SELECT p.id, row_number() OVER (
                        PARTITION BY p.endpoint_id ORDER BY p.created_at, p.id) AS rn
             FROM due, LATERAL (
                 SELECT d.id, d.endpoint_id, s.created_at
                 FROM delivery_stopped s JOIN deliveries d ON d.id = s.delivery_id
                 WHERE s.endpoint_id = due.id AND s.state = 'dead'
                   AND s.created_at >= now() - make_interval(secs => due.auto_replay_window_s)
                   AND d.state = 'dead' AND d.trigger <> 'auto_recovery'
                   AND d.created_at >= now() - make_interval(secs => due.auto_replay_window_s)
                 ORDER BY s.created_at, s.delivery_id
                 LIMIT $2::int8
             ) p
         )
         UPDATE deliveries d SET ",
        REPLAY_SERIES,
        ", trigger = 'auto_recovery',
             next_attempt_at = now() + make_interval(secs => (picked.rn - 1)::float8 / ($2::int8)::float8)
         FROM picked
         -- re-checked under the row lock: an operator's replay meanwhile wins
         WHERE d.id = picked.id AND d.state = 'dead'"
    ))
    .bind(endpoints)
    .bind(i64::from(per_second))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if replayed > 0 {
        db::query("SELECT pg_notify($1, '')")
            .bind(WAKE_CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(replayed)
}
