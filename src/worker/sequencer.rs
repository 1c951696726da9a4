//! The sequencer: numbers what arrived for ordered endpoints (arriving → waiting / ready,
//! `store::sequence_arrivals`), in a task of its own.
//!
//! It used to run inline, before each claim. A large arrival (a batch of 100,000 for one
//! partner) is numbered 1,000 at a time, each step taking tens of milliseconds; inline, every
//! such step held the claim loop, so requests stopped going out while the database had cores
//! to spare (`perf`: 18 % idle during an ordered burst). On its own it numbers while the claim
//! loop claims, and wakes the claim loop when it made something ready.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{self, Db};

/// Arrivals of ordered endpoints numbered per statement.
pub const BATCH: i32 = 1000;

/// Numbers arrivals until `shutdown`: at once while full batches keep coming, otherwise when
/// `arrivals` is notified (an enqueue's NOTIFY) or after `poll`.
pub async fn run(
    pool: Db,
    arrivals: Arc<Notify>,
    claimer: Arc<Notify>,
    poll: Duration,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let pause = match store::sequence_arrivals(&pool, BATCH).await {
            Ok(n) => {
                backoff = Duration::from_millis(100);
                if n > 0 {
                    claimer.notify_one();
                }
                if n == BATCH {
                    continue; // more are waiting
                }
                poll
            }
            Err(e) => {
                tracing::warn!(error = %e, "numbering arrivals failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(5));
                backoff
            }
        };
        tokio::select! {
            _ = arrivals.notified() => {},
            _ = tokio::time::sleep(pause) => {},
            _ = shutdown.cancelled() => return,
        }
    }
}
