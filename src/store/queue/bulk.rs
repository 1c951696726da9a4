//! Bulk replay: every dead (or canceled) delivery matching a filter goes back to pending, in
//! chunks of their own transactions so a large replay never holds many locks for long.

use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::super::deliveries::{push_filter, push_stopped};
use super::super::{DeliveryFilter, Result, StoreError};
use super::transitions::{REPLAY_SET, wake};
use crate::model::{DeliveryState, Trigger, ValidationError};
use crate::store::{Db, db};

const CHUNK: i64 = 500;

/// Replays what matches `filter` (state `dead` when the filter names none) and returns how
/// many were replayed (their new series started by `trigger`); `progress` hears the
/// running total after each chunk.
pub async fn replay_matching(
    pool: &Db,
    filter: &DeliveryFilter,
    trigger: Trigger,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let mut filter = filter.clone();
    match filter.state.get_or_insert(DeliveryState::Dead) {
        DeliveryState::Dead | DeliveryState::Canceled => {}
        other => {
            return Err(StoreError::Invalid(ValidationError::new(
                "state",
                format!("only dead or canceled deliveries can be replayed, not {other}"),
            )));
        }
    }
    // Rows replayed here that fail and die again during the run are not taken twice.
    let started: chrono::DateTime<chrono::Utc> =
        db::query_scalar("SELECT now()").fetch_one(pool).await?;
    let mut total = 0u64;
    loop {
        let mut tx = pool.begin().await?;
        // Driven by `delivery_stopped` (the filter names dead or canceled), newest first:
        // a chunk reads the rows it replays and those the other filters leave out.
        let mut q = QueryBuilder::<Postgres>::new("WITH picked AS (SELECT d.id FROM deliveries d");
        let order = push_stopped(&mut q, &filter);
        q.push(" WHERE d.updated_at < ").push_bind(started);
        push_filter(&mut q, &filter);
        // One canceled while its attempt is still on the wire waits for that attempt.
        q.push(format!(
            " AND NOT EXISTS (SELECT 1 FROM delivery_queue q WHERE q.delivery_id = d.id) \
             ORDER BY {} DESC, {} DESC LIMIT ",
            order.created_at, order.id
        ))
        .push_bind(CHUNK)
        .push(" FOR UPDATE OF d SKIP LOCKED) UPDATE deliveries SET ")
        .push(REPLAY_SET)
        .push(", trigger = ")
        .push_bind(trigger.as_str())
        .push(" FROM picked WHERE deliveries.id = picked.id RETURNING deliveries.id");
        let ids: Vec<Uuid> = q
            .build_query_scalar()
            .persistent(db::prepared())
            .fetch_all(&mut *tx)
            .await?;
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(total);
        }
        wake(&mut tx).await?;
        tx.commit().await?;
        total += ids.len() as u64;
        progress(total);
    }
}
