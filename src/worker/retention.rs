//! The periodic purge of old finished deliveries (see `store::purge_batch`). Runs in every
//! worker process; concurrent purgers skip each other's rows, so several workers are fine.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store;
use crate::store::Db;

/// Purges once now and then every `interval`, until `shutdown`. Each pass deletes batch
/// after batch (a short transaction each, with a breath in between) until nothing is left.
pub async fn run(pool: Db, days: u32, batch: u32, interval: Duration, shutdown: CancellationToken) {
    if days == 0 {
        return; // keep forever
    }
    loop {
        if let Err(e) = purge_all(&pool, days, batch, &shutdown).await {
            tracing::warn!(error = %e, "retention purge failed; trying again next round");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {},
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass: batches until a batch deletes nothing. Returns the totals.
pub async fn purge_all(
    pool: &Db,
    days: u32,
    batch: u32,
    shutdown: &CancellationToken,
) -> Result<store::Purged, store::StoreError> {
    let mut total = store::Purged::default();
    while !shutdown.is_cancelled() {
        let purged = store::purge_batch(pool, days, batch).await?;
        total.deliveries += purged.deliveries;
        total.notifications += purged.notifications;
        if purged == store::Purged::default() {
            break;
        }
        // Let the queue's own statements through between batches.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if total != store::Purged::default() {
        tracing::info!(
            deliveries = total.deliveries,
            notifications = total.notifications,
            retention_days = days,
            "purged finished deliveries past retention"
        );
    }
    Ok(total)
}
