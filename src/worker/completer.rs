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

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
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
/// second writer takes what has queued behind it: one stuck batch does not hold every
/// outcome of the worker back.
const MAX_WRITERS: usize = 2;

/// How long a batch may write before a second writer starts beside it. A batch takes a few
/// milliseconds; this is far above that and far below a lease.
const SECOND_WRITER_AFTER: Duration = Duration::from_millis(100);

pub async fn run(
    pool: Db,
    mut outcomes: mpsc::Receiver<Outcome>,
    wake: Arc<Notify>,
    in_flight: Arc<InFlight>,
    mut hooks: Hooks,
) {
    // Batches being written, finished in the order they were taken, and when each started.
    let mut writing = FuturesOrdered::new();
    let mut started: VecDeque<Instant> = VecDeque::with_capacity(MAX_WRITERS);
    let mut open = true;
    while open || !writing.is_empty() {
        // When the oldest batch still writing lets a second writer start.
        let second_at = started.front().map(|s| *s + SECOND_WRITER_AFTER);
        let may_start = match second_at {
            None => true,
            Some(at) => writing.len() < MAX_WRITERS && Instant::now() >= at,
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
                started.push_back(Instant::now());
                writing.push_back(async move {
                    write(&pool, &batch).await;
                    batch
                });
            }
            Some(batch) = writing.next(), if !writing.is_empty() => {
                started.pop_front();
                in_flight.written(batch.iter().map(|o| o.delivery_id));
                // In the order the outcomes were taken, so alerts and recovery never see a
                // newer outcome of an endpoint before an older one.
                hooks.after_batch(&pool, &batch, &wake);
                // A retry may now be due sooner than the claimer planned to wake up.
                wake.notify_one();
            }
            // The one batch writing has taken long enough for a second writer to start: look
            // again (only armed while that moment is still ahead).
            _ = tokio::time::sleep_until(second_at.unwrap_or_else(Instant::now)),
                if open && !may_start && writing.len() < MAX_WRITERS && second_at.is_some() => {}
        }
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
