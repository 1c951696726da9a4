//! Writes outcomes in batches: whatever has arrived while the previous batch was being
//! written goes in the next statement, so completion costs one round-trip for many rows
//! under load and adds no wait when idle.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use super::alerts::Alerts;
use crate::store::{self, Next, Outcome};

const MAX_BATCH: usize = 1000;

/// What runs after a batch is written: operator alerts, and the recovery pass of endpoints
/// with `auto_replay_dead_on_recovery` that answered 2xx.
pub struct Hooks {
    pub alerts: Option<Alerts>,
    pub auto_replay_per_second: u32,
    /// When this process last asked for a recovery pass of an endpoint: at most one query
    /// per endpoint per second from here (the database bounds it across processes too).
    last_recovery_check: HashMap<Uuid, Instant>,
}

impl Hooks {
    pub fn new(alerts: Option<Alerts>, auto_replay_per_second: u32) -> Self {
        Hooks {
            alerts,
            auto_replay_per_second,
            last_recovery_check: HashMap::new(),
        }
    }

    fn after_batch(&mut self, pool: &PgPool, batch: &[Outcome], wake: &Arc<Notify>) {
        if let Some(alerts) = &self.alerts {
            alerts.observe(batch);
        }
        let now = Instant::now();
        let mut recovered: Vec<Uuid> = Vec::new();
        for o in batch {
            if o.auto_replay && o.next == Next::Delivered && !recovered.contains(&o.endpoint_id) {
                let fresh = self
                    .last_recovery_check
                    .get(&o.endpoint_id)
                    .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1));
                if !fresh {
                    self.last_recovery_check.insert(o.endpoint_id, now);
                    recovered.push(o.endpoint_id);
                }
            }
        }
        if self.last_recovery_check.len() > 10_000 {
            self.last_recovery_check
                .retain(|_, t| now.duration_since(*t) < Duration::from_secs(1));
        }
        if recovered.is_empty() {
            return;
        }
        // Off the completion path: a slow recovery query never delays the next batch.
        let pool = pool.clone();
        let wake = wake.clone();
        let per_second = self.auto_replay_per_second;
        tokio::spawn(async move {
            match store::auto_replay_pass(&pool, &recovered, per_second).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(replayed = n, "endpoint answering again: dead deliveries replayed");
                    wake.notify_one();
                }
                Err(e) => tracing::warn!(error = %e, "automatic replay after recovery failed"),
            }
        });
    }
}

pub async fn run(
    pool: PgPool,
    mut outcomes: mpsc::Receiver<Outcome>,
    wake: Arc<Notify>,
    mut hooks: Hooks,
) {
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
        hooks.after_batch(&pool, &batch, &wake);
        batch.clear();
        // A retry may now be due sooner than the claimer planned to wake up.
        wake.notify_one();
    }
}
