//! The worker's background chores on the queue: renewing the leases of what it holds, and
//! taking back what lost workers held.

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
