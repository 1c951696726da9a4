//! Numbering a backlog of arrivals beside the claims. A claim round numbers what arrived for
//! ordered endpoints in its own transaction (`store::sequence_and_claim`), so a trickle is
//! claimable at once at no extra commit. But when a backlog arrives (a batch, a burst, a
//! platform back from an outage) every round numbered a full `claim_batch` of arrivals while
//! it could send far fewer (one busy partner: the 128 or so its cap let it take), and nothing
//! was claimed or sent while it numbered: in `one-endpoint` the machine sat a third idle.
//!
//! So a round that numbers a full batch hands the numbering to this task: it numbers batch
//! after batch in transactions of its own, waking the claimer after each, while the rounds
//! only claim, until a batch comes out short. Then the rounds number again. The sequencer's
//! lock (migration 0024) still makes one numbering at a time per database, so the order of a
//! proposal's numbers is the same whoever numbers it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store;
use crate::store::Db;

/// Whether this task is numbering a backlog now, and how to start it.
#[derive(Default)]
pub struct Backlog {
    numbering: AtomicBool,
    start: Notify,
}

impl Backlog {
    /// A claim round numbered a full batch: there may be more behind it.
    pub fn found(&self) {
        if !self.numbering.swap(true, Ordering::AcqRel) {
            self.start.notify_one();
        }
    }

    /// Whether the numbering is this task's now, so a claim round leaves it alone.
    pub fn numbering(&self) -> bool {
        self.numbering.load(Ordering::Acquire)
    }
}

pub async fn run(
    pool: Db,
    max_rows: i32,
    backlog: Arc<Backlog>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = backlog.start.notified() => {},
            _ = shutdown.cancelled() => return,
        }
        loop {
            let numbered = match store::sequence_arrivals(&pool, max_rows).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "numbering the arrivals failed; the claims number them again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    0
                }
            };
            if numbered > 0 {
                // What was numbered is ready (or waiting on its proposal): claim it.
                wake.notify_one();
            }
            // Short: the backlog is numbered (or another numbering holds the lock, and
            // whoever holds it goes on); the claim rounds number what comes next.
            if numbered < max_rows || shutdown.is_cancelled() {
                break;
            }
        }
        backlog.numbering.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_starts_the_task_once() {
        let b = Backlog::default();
        assert!(!b.numbering());
        b.found();
        assert!(b.numbering());
        b.found(); // already numbering: no second start
        b.numbering.store(false, Ordering::Release);
        assert!(!b.numbering());
    }
}
