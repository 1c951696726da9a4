//! Writes outcomes in batches: whatever has arrived while the previous batch was being
//! written goes in the next statement, so completion costs one round-trip for many rows
//! under load and adds no wait when idle. One batch is written at a time, two when the first
//! is stuck (see [`MAX_WRITERS`]).
//!
//! Nothing an outcome carries may hold the others back. A batch that fails on a transient
//! database error (the server restarting, a lost connection, a deadlock) is retried whole
//! until it is written; one that fails for any other reason is split in halves until the
//! outcome at fault is alone, and that one is written stripped of what the partner sent, as
//! an `internal` error. If even that fails, its lease expires and the reaper records it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::hooks::Hooks;
use super::inflight::InFlight;
use crate::store::Db;
use crate::store::{self, Outcome, StoreError};

const MAX_BATCH: usize = 1000;

/// One batch is written at a time: what arrives while a batch is written waits for it and
/// goes in the next, so a busy worker writes fewer, larger batches. Two writers at all times
/// (one batch gathered and written while the other committed) halved the batches of a
/// steady stream: in `ingest` (32 clients, single calls) 11 outcomes per batch instead of
/// 20, 0.087 completion transactions per notification instead of 0.051, each five round
/// trips, with no gain in burst, one-endpoint or steady latency (docs/performance.md,
/// 2026-12-04, evening).
///
/// But a batch that has been writing for [`SECOND_WRITER_AFTER`] is waiting on something
/// (a row lock held by another transaction, a slow or restarting database), and then a
/// second writer takes what has queued behind it, and goes on, batch after batch, while the
/// first stays stuck: one stuck batch does not hold every outcome of the worker back.
const MAX_WRITERS: usize = 2;

/// How long a batch may write before a second writer starts beside it. A batch takes a few
/// milliseconds; this is far above that and far below a lease.
const SECOND_WRITER_AFTER: Duration = Duration::from_millis(100);

/// How many written batches may wait for a stuck older one before no new batch is taken.
/// While the first batch is stuck, the second writer goes on batch after batch; their leases
/// are released at once, but their after-batch work (alerts, recovery) waits for the stuck
/// batch, so it runs in order. Past this many, outcomes wait in the channel, and the
/// senders behind it, rather than in memory without bound.
const MAX_HELD: usize = 64;

pub async fn run(
    pool: Db,
    mut outcomes: mpsc::Receiver<Outcome>,
    wake: Arc<Notify>,
    in_flight: Arc<InFlight>,
    mut hooks: Hooks,
) {
    let mut writing = FuturesUnordered::new();
    let mut order = Order::default();
    let mut open = true;
    while open || !writing.is_empty() {
        // When the oldest batch still writing lets a second writer start.
        let second_at = order.oldest_start().map(|s| s + SECOND_WRITER_AFTER);
        let has_room = writing.len() < MAX_WRITERS && order.held() < MAX_HELD;
        let may_start = match second_at {
            None => true,
            Some(at) => has_room && Instant::now() >= at,
        };
        tokio::select! {
            first = outcomes.recv(), if open && may_start => {
                let Some(first) = first else {
                    open = false;
                    continue;
                };
                let mut batch = Vec::with_capacity(MAX_BATCH);
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match outcomes.try_recv() {
                        Ok(o) => batch.push(o),
                        Err(_) => break,
                    }
                }
                let pool = pool.clone();
                let taken = order.start(Instant::now());
                writing.push(async move {
                    write(&pool, &batch).await;
                    (taken, batch)
                });
            }
            Some((taken, batch)) = writing.next(), if !writing.is_empty() => {
                // Leases are per delivery: a written batch needs no renewal, whatever older
                // batch is still writing.
                in_flight.written(batch.iter().map(|o| o.delivery_id));
                // A retry may now be due sooner than the claimer planned to wake up.
                wake.notify_one();
                // In the order the outcomes were taken, so alerts and recovery never see a
                // newer outcome of an endpoint before an older one.
                for batch in order.written(taken, batch) {
                    hooks.after_batch(&pool, &batch, &wake);
                }
            }
            // The one batch writing has taken long enough for a second writer to start: look
            // again (only armed while that moment is still ahead).
            _ = tokio::time::sleep_until(second_at.unwrap_or_else(Instant::now)),
                if open && !may_start && has_room && second_at.is_some() => {}
        }
    }
}

/// The batches in the order they were taken: which are still writing (and since when), and
/// which are written but wait for an older one before their after-batch work runs.
#[derive(Default)]
struct Order {
    next: u64,
    writing: BTreeMap<u64, Instant>,
    held: BTreeMap<u64, Vec<Outcome>>,
}

impl Order {
    /// A batch starts writing; returns its place in the order.
    fn start(&mut self, at: Instant) -> u64 {
        let taken = self.next;
        self.next += 1;
        self.writing.insert(taken, at);
        taken
    }

    /// When the oldest batch still writing started.
    fn oldest_start(&self) -> Option<Instant> {
        self.writing.first_key_value().map(|(_, at)| *at)
    }

    /// How many written batches wait for an older one.
    fn held(&self) -> usize {
        self.held.len()
    }

    /// The batch taken `taken`th is written: returns, oldest first, every written batch that
    /// no batch still writing is older than.
    fn written(&mut self, taken: u64, batch: Vec<Outcome>) -> Vec<Vec<Outcome>> {
        self.writing.remove(&taken);
        self.held.insert(taken, batch);
        let Some((&oldest_writing, _)) = self.writing.first_key_value() else {
            return std::mem::take(&mut self.held).into_values().collect();
        };
        let younger = self.held.split_off(&oldest_writing);
        std::mem::replace(&mut self.held, younger)
            .into_values()
            .collect()
    }
}

/// Writes `batch`, isolating any outcome that the database refuses.
async fn write(pool: &Db, batch: &[Outcome]) {
    let mut parts: Vec<&[Outcome]> = vec![batch];
    while let Some(part) = parts.pop() {
        let error = match write_through_outages(pool, part).await {
            Ok(()) => continue,
            Err(e) => e,
        };
        if part.len() > 1 {
            let (left, right) = part.split_at(part.len() / 2);
            parts.push(right);
            parts.push(left);
            continue;
        }
        let refused = &part[0];
        ::metrics::counter!(crate::prometheus::COMPLETION_FAILURES).increment(1);
        tracing::error!(
            delivery_id = %refused.delivery_id, error = %error,
            "the database refused this outcome; recording it as an internal error"
        );
        let stripped = refused.stripped(&error.to_string());
        if let Err(e) = write_through_outages(pool, std::slice::from_ref(&stripped)).await {
            tracing::error!(
                delivery_id = %refused.delivery_id, error = %e,
                "even the stripped outcome was refused; its lease will expire and the reaper records it"
            );
        }
    }
}

/// One write, retried for as long as the database is unavailable (the outcomes exist only
/// here until written; if the process dies first, the leases expire and the deliveries are
/// sent again with the same X-Callback-Id). Any other error is returned at once.
async fn write_through_outages(pool: &Db, part: &[Outcome]) -> Result<(), StoreError> {
    (|| store::complete(pool, part))
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_secs(5))
                .without_max_times(),
        )
        .when(StoreError::is_transient)
        .notify(|e, after| {
            ::metrics::counter!(crate::prometheus::COMPLETION_FAILURES).increment(1);
            tracing::warn!(error = %e, retry_in = ?after, "completing a batch failed; retrying")
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_batches_are_let_go_in_the_order_taken() {
        let mut order = Order::default();
        let t0 = Instant::now();
        let (stuck, b, c) = (order.start(t0), order.start(t0), order.start(t0));
        assert_eq!(order.oldest_start(), Some(t0));
        assert!(
            order.written(b, Vec::new()).is_empty(),
            "waits for the stuck one"
        );
        assert!(order.written(c, Vec::new()).is_empty());
        assert_eq!(order.held(), 2);
        let d = order.start(t0);
        assert_eq!(
            order.written(stuck, Vec::new()).len(),
            3,
            "stuck, b, c; d still writes"
        );
        assert_eq!(order.held(), 0);
        assert_eq!(order.written(d, Vec::new()).len(), 1);
        assert_eq!(order.oldest_start(), None);
    }
}
