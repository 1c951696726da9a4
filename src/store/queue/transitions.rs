//! What operators and partners do to one delivery: replay (dead/canceled → ready) and cancel
//! (pending → canceled); and the cancel that a configuration change implies.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::super::{Delivery, DeliveryDetail, Result, StoreError, WAKE_CHANNEL};
use super::release::release_next;
use crate::model::Trigger;
use crate::store::{Db, db};

/// What a replay does to a delivery: pending again, a new series from attempt 1 (the caller
/// sets `trigger` and, unless it uses [`REPLAY_SET`], `next_attempt_at`). The
/// `deliveries_queue_replay` trigger (migrations/0015) puts it back in the queue, ready at
/// `next_attempt_at`. A replayed delivery of an ordered endpoint keeps its sequence number and
/// is sent at once; a later delivery of its key that was already sent is then flagged
/// `out_of_order`.
pub(crate) const REPLAY_SERIES: &str =
    "state = 'pending', series = series + 1, attempts = 0, updated_at = now()";

/// [`REPLAY_SERIES`], due now.
pub(crate) const REPLAY_SET: &str =
    const_format::concatcp!(REPLAY_SERIES, ", next_attempt_at = now()");

/// Which pending deliveries a configuration change cancels.
pub(crate) enum Scope {
    Partner(Uuid),
    Endpoint(Uuid),
}

impl Delivery {
    /// A dead or canceled delivery goes back to pending with a fresh series of attempts,
    /// started by `trigger` (who asked). One canceled while its attempt is still on the wire
    /// is refused until that attempt ends, so two series never run at once.
    pub async fn replay(pool: &Db, id: Uuid, trigger: Trigger) -> Result<DeliveryDetail> {
        let mut tx = pool.begin().await?;
        let found: Option<(String, Option<String>)> = db::query_as(
            "SELECT d.state, q.queue FROM deliveries d
                 LEFT JOIN delivery_queue q ON q.delivery_id = d.id
                 WHERE d.id = $1 FOR UPDATE OF d",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        match found {
            None => return Err(StoreError::NotFound("delivery")),
            Some((_, Some(queue))) if queue == "running" => {
                return Err(StoreError::Conflict(
                    "its last attempt is still running; replay it once that attempt has ended"
                        .into(),
                ));
            }
            Some((state, _)) if state == "dead" || state == "canceled" => {}
            Some((other, _)) => {
                return Err(StoreError::Conflict(format!(
                    "only dead or canceled deliveries can be replayed; this one is {other}"
                )));
            }
        }
        db::query(const_format::concatcp!(
            "UPDATE deliveries SET ",
            REPLAY_SET,
            ", trigger = $2 WHERE id = $1"
        ))
        .bind(id)
        .bind(trigger.as_str())
        .execute(&mut *tx)
        .await?;
        wake(&mut tx).await?;
        tx.commit().await?;
        Self::get(pool, id).await
    }

    /// A pending delivery is never sent again. One in flight finishes its request, but its
    /// outcome no longer changes the state.
    pub async fn cancel(pool: &Db, id: Uuid) -> Result<DeliveryDetail> {
        Self::cancel_because(pool, id, "canceled by operator").await
    }

    /// [`Delivery::cancel`] with the `last_error` to record (who canceled it). A delivery
    /// whose request is on the wire stays `running` until that request ends, so the next
    /// delivery of its proposal is not sent before it; one that was ready (possibly the head
    /// of its proposal) releases the next one now.
    pub async fn cancel_because(pool: &Db, id: Uuid, reason: &str) -> Result<DeliveryDetail> {
        let mut tx = pool.begin().await?;
        // The queue row first, then the delivery: the order completion locks them in.
        let queued: Option<(String, Option<String>, Option<i64>)> = db::query_as(
            "SELECT queue, ordering_key, sequence FROM delivery_queue
             WHERE delivery_id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let found: Option<(String, Uuid)> =
            db::query_as("SELECT state, endpoint_id FROM deliveries WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let (state, endpoint) = found.ok_or(StoreError::NotFound("delivery"))?;
        if state != "pending" {
            return Err(StoreError::Conflict(format!(
                "only pending deliveries can be canceled; this one is {state}"
            )));
        }
        let (queue, key, sequence) = match queued {
            Some((queue, key, sequence)) => (Some(queue), key, sequence),
            None => (None, None, None),
        };
        // Canceled, and so listed and counted through its `delivery_stopped` row
        // (migrations/0020), written in the same statement.
        db::query(
            "WITH canceled AS (
                 UPDATE deliveries SET state = 'canceled', last_error = $2, updated_at = now(),
                     sequence = coalesce($3, sequence)
                 WHERE id = $1
                 RETURNING id, endpoint_id, created_at
             )
             INSERT INTO delivery_stopped (delivery_id, endpoint_id, state, created_at)
             SELECT id, endpoint_id, 'canceled', created_at FROM canceled",
        )
        .bind(id)
        .bind(reason)
        .bind(sequence)
        .execute(&mut *tx)
        .await?;
        // One whose request is on the wire keeps its running row until that request ends.
        if queue.as_deref() != Some("running") {
            db::query("DELETE FROM delivery_queue WHERE delivery_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let (Some("ready"), Some(key)) = (queue.as_deref(), key) {
            release_next(&mut tx, &[(endpoint, key)]).await?;
        }
        tx.commit().await?;
        Self::get(pool, id).await
    }
}

/// Cancels every pending delivery of a partner or an endpoint that is being deleted. Every
/// delivery of those endpoints is canceled, so no successor is left to release; one whose
/// request is on the wire stays `running` (with its lease) until that request ends.
pub(crate) async fn cancel_pending(
    tx: &mut Transaction<'static, Postgres>,
    scope: Scope,
    reason: &str,
) -> Result<u64> {
    let (partner, endpoint) = match scope {
        Scope::Partner(id) => (Some(id), None),
        Scope::Endpoint(id) => (None, Some(id)),
    };
    let canceled: i64 = db::query_scalar(
        "WITH queued AS (
             SELECT q.delivery_id, q.queue, q.ordering_key, q.sequence
             FROM deliveries d JOIN delivery_queue q ON q.delivery_id = d.id
             WHERE d.state = 'pending'
               AND ($1::uuid IS NULL OR d.partner_id = $1)
               AND ($2::uuid IS NULL OR d.endpoint_id = $2)
             ORDER BY q.delivery_id
             FOR UPDATE OF q
         ),
         canceled AS (
             UPDATE deliveries d SET state = 'canceled', last_error = $3, updated_at = now(),
                 sequence = q.sequence
             FROM queued q WHERE d.id = q.delivery_id AND d.state = 'pending'
             RETURNING d.id, d.endpoint_id, d.created_at
         ),
         stopped AS (
             INSERT INTO delivery_stopped (delivery_id, endpoint_id, state, created_at)
             SELECT c.id, c.endpoint_id, 'canceled', c.created_at FROM canceled c
         ),
         dequeued AS (
             DELETE FROM delivery_queue x USING queued q
             WHERE x.delivery_id = q.delivery_id AND q.queue <> 'running'
         )
         SELECT count(*) FROM canceled",
    )
    .bind(partner)
    .bind(endpoint)
    .bind(reason)
    .fetch_one(&mut **tx)
    .await?;
    Ok(canceled as u64)
}

/// The endpoint no longer orders per proposal: its deliveries that arrive or wait for a
/// predecessor are ready now.
pub(crate) async fn unorder(conn: &mut sqlx::PgConnection, endpoint_id: Uuid) -> Result<u64> {
    let done = db::query(
        "UPDATE delivery_queue SET queue = 'ready'
         WHERE endpoint_id = $1 AND queue IN ('arriving', 'waiting')",
    )
    .bind(endpoint_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Wakes the workers when `tx` commits.
pub(crate) async fn wake(tx: &mut Transaction<'static, Postgres>) -> Result<()> {
    db::query("SELECT pg_notify($1, '')")
        .bind(WAKE_CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
