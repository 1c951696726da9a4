//! The worker's background chores on the queue: renewing the leases of what it holds, taking
//! back what lost workers held, and vacuuming the queue table when dead rows pile up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::inflight::InFlight;
use crate::store;
use crate::store::Db;

/// Renews, every third of `lease_ms`, the lease of every delivery this process holds, so a
/// lease never expires under a live request or a slow completion. If the database cannot be
/// reached for longer than a lease, the leases lapse and another worker may send again (the
/// partner deduplicates on `X-Callback-Id`).
pub async fn renew_leases(
    pool: Db,
    in_flight: Arc<InFlight>,
    lease_ms: u64,
    shutdown: CancellationToken,
) {
    let every = Duration::from_millis((lease_ms / 3).max(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {},
            _ = shutdown.cancelled() => return,
        }
        let held = in_flight.snapshot();
        if held.is_empty() {
            continue;
        }
        if let Err(e) = store::renew_leases(&pool, &held, lease_ms as i64).await {
            tracing::warn!(error = %e, held = held.len(), "renewing leases failed; retrying");
        }
    }
}

/// Takes back, about every `every`, deliveries whose lease expired (their worker is gone),
/// and wakes the claimer when it did.
pub async fn reap(pool: Db, every: Duration, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        match store::reap_expired_leases(&pool, 1000).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    reaped = n,
                    "leases expired without an outcome: their worker was lost; taken back"
                );
                wake.notify_one();
                continue; // there may be more
            }
            Err(e) => tracing::warn!(error = %e, "taking back expired leases failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {},
            _ = shutdown.cancelled() => return,
        }
    }
}

/// How often a worker looks at the queue table's dead rows: a cheap read of statistics.
const VACUUM_CHECK: Duration = Duration::from_secs(1);

/// Vacuums the queue table (on the session connection `session`) whenever its dead row
/// versions reach `min_dead` or a quarter of its live rows, whichever is more: the dead index
/// entries a drained backlog leaves cost every numbering and claim a walk until then, and the
/// walk grows with them, while a VACUUM costs about the table's size. Several workers may
/// decide at once; `SKIP_LOCKED` lets one do it. `min_dead = 0`: never (autovacuum alone).
pub async fn vacuum_queue(session: Db, min_dead: u64, shutdown: CancellationToken) {
    if min_dead == 0 {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(VACUUM_CHECK) => {},
            _ = shutdown.cancelled() => return,
        }
        let (dead, live) = match store::queue_row_versions(&session).await {
            Ok(counts) => counts,
            Err(e) => {
                tracing::debug!(error = %e, "reading the queue table's statistics failed");
                continue;
            }
        };
        let threshold = (min_dead as i64).max(live / 4);
        if dead < threshold {
            continue;
        }
        let started = std::time::Instant::now();
        match store::vacuum_queue(&session).await {
            Ok(()) => tracing::info!(
                dead,
                live,
                took_ms = started.elapsed().as_millis() as u64,
                "vacuumed the queue table"
            ),
            Err(e) => tracing::warn!(error = %e, dead, "vacuuming the queue table failed"),
        }
    }
}
