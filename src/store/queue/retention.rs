//! Retention: finished deliveries, their attempt logs, and the notifications left without
//! deliveries are deleted once older than the configured age, a small batch per
//! transaction. Pending and dead deliveries (and so their notifications) are never touched.

use crate::store::Result;
use crate::store::{Db, db};

/// Rows deleted by one purge batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub deliveries: u64,
    pub notifications: u64,
}

/// Deletes up to `batch` delivered or canceled deliveries (with their attempts) finished more
/// than `days` days ago, then up to `batch` notifications older than that which no delivery
/// refers to any more (with their idempotency keys). Each statement is its own short
/// transaction; rows another transaction holds are skipped, never waited for.
///
/// No index names `state` or `updated_at` (an index on them would make every completion
/// write index entries: migrations/0020_hot_completion.sql), so the purge walks
/// `deliveries_created_idx` down from the cutoff: a delivery finished before the cutoff was
/// created before it (updated_at >= created_at). What it steps over is what the cutoff keeps:
/// pending and dead deliveries created before the cutoff, and canceled ones canceled after
/// it, a heap fetch each (~1 µs). Walking down from the cutoff, a batch steps over the kept
/// rows between the cutoff and the first purgeable ones, which in a steady state are the
/// rows that expired since the last pass; the pass's last batch (the one that finds less
/// than `batch`) walks on to the oldest delivery, so dead letters that pile up (they are
/// kept until replayed) cost one read each per pass: 100,000 of them, ~0.1 s per pass.
/// Walking up from the oldest would read them in every batch.
pub async fn purge_batch(pool: &Db, days: u32, batch: u32) -> Result<Purged> {
    // That walk, whatever the statistics say: without them (a table never analyzed) the
    // planner may collect every row older than the cutoff (a bitmap or a sequential scan)
    // and sort them, for each batch.
    let mut tx = db::begin_probing(pool, db::Plans::AsUsual).await?;
    let deliveries: i64 = db::query_scalar(
        "WITH victims AS (
             SELECT id, state FROM deliveries
             WHERE created_at < now() - make_interval(days => $1)
               AND state IN ('delivered', 'canceled')
               AND updated_at < now() - make_interval(days => $1)
             ORDER BY created_at DESC, id DESC
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         ),
         attempts AS (
             DELETE FROM delivery_attempts a USING victims v WHERE a.delivery_id = v.id
         ),
         unlisted AS (
             DELETE FROM delivery_stopped s USING victims v
             WHERE s.delivery_id = v.id AND v.state = 'canceled'
         ),
         gone AS (
             DELETE FROM deliveries d USING victims v WHERE d.id = v.id RETURNING d.id
         )
         SELECT count(*) FROM gone",
    )
    .bind(days as i32)
    .bind(i64::from(batch))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let notifications: i64 = db::query_scalar(
        "WITH victims AS (
             SELECT n.id FROM notifications n
             WHERE n.created_at < now() - make_interval(days => $1)
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id)
             ORDER BY n.created_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         ),
         keys AS (
             DELETE FROM idempotency_keys k USING victims v WHERE k.notification_id = v.id
         ),
         gone AS (
             DELETE FROM notifications n USING victims v WHERE n.id = v.id RETURNING n.id
         )
         SELECT count(*) FROM gone",
    )
    .bind(days as i32)
    .bind(i64::from(batch))
    .fetch_one(pool)
    .await?;
    Ok(Purged {
        deliveries: deliveries as u64,
        notifications: notifications as u64,
    })
}
