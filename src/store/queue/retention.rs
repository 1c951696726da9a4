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
pub async fn purge_batch(pool: &Db, days: u32, batch: u32) -> Result<Purged> {
    let deliveries: i64 = db::query_scalar(
        "WITH victims AS (
             SELECT id FROM deliveries
             WHERE state IN ('delivered', 'canceled')
               AND updated_at < now() - make_interval(days => $1)
             ORDER BY updated_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         ),
         attempts AS (
             DELETE FROM delivery_attempts a USING victims v WHERE a.delivery_id = v.id
         ),
         gone AS (
             DELETE FROM deliveries d USING victims v WHERE d.id = v.id RETURNING d.id
         )
         SELECT count(*) FROM gone",
    )
    .bind(days as i32)
    .bind(i64::from(batch))
    .fetch_one(pool)
    .await?;
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
