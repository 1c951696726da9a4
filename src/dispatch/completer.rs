//! Writes outcomes in batches: whatever has arrived while the previous batch was being
//! written goes in the next statement, so completion costs one round-trip for many rows
//! under load and adds no wait when idle.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};

use crate::store::{self, Outcome};

const MAX_BATCH: usize = 1000;

pub async fn run(pool: PgPool, mut outcomes: mpsc::Receiver<Outcome>, wake: Arc<Notify>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = outcomes.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match outcomes.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        // The outcomes exist only here until written: keep trying (the database may be
        // restarting). If the process dies first, the leases expire and the deliveries are
        // sent again with the same X-Callback-Id.
        let write = || store::complete(&pool, &batch);
        let _ = write
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_secs(5))
                    .without_max_times(),
            )
            .notify(|e, after| {
                tracing::warn!(error = %e, retry_in = ?after, "completing a batch failed")
            })
            .await;
        batch.clear();
        // A retry may now be due sooner than the claimer planned to wake up.
        wake.notify_one();
    }
}
