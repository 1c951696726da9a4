//! LISTEN for enqueues so that an idle worker sends within milliseconds; the claimer's
//! poll is the fallback when the listening connection is down.
//!
//! The connection is lost whenever PostgreSQL restarts. `PgListener` reconnects by itself
//! only after some I/O errors; a server that says goodbye (57P01 admin_shutdown) or that is
//! still down surfaces as an error here. Either way a fresh listener is made, with a backoff
//! while the server stays away, and the claimer is woken once it listens again: anything
//! enqueued meanwhile sent no notification that reached us.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::Db;
use crate::store::WAKE_CHANNEL;

/// First wait after a lost connection; doubled per failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Listens on `pool`'s host; it follows a failover, since `PgListener` reconnects through
/// the pool, whose target the failover monitor moves.
pub async fn run(pool: Db, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut state = Reconnect::default();
    loop {
        match listen(&pool, &wake, &shutdown, &mut state).await {
            Ok(()) => return,
            Err(e) => state.failed(&e),
        }
        tokio::select! {
            _ = tokio::time::sleep(state.backoff) => {},
            _ = shutdown.cancelled() => return,
        }
        state.backoff = next_backoff(state.backoff);
    }
}

/// The reconnect state: how long to wait next, and whether an outage is being reported.
struct Reconnect {
    backoff: Duration,
    /// Set from the first failure to the next successful LISTEN, so that an outage is logged
    /// once, not once per attempt.
    down: bool,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            backoff: FIRST_BACKOFF,
            down: false,
        }
    }
}

impl Reconnect {
    fn listening(&mut self) {
        if self.down {
            tracing::info!("LISTEN connection restored");
        }
        *self = Self::default();
    }

    fn failed(&mut self, e: &sqlx::Error) {
        if !self.down {
            tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
            self.down = true;
        }
    }
}

fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(MAX_BACKOFF)
}

/// Listens until shutdown (`Ok`) or until the connection fails in a way `PgListener` does
/// not recover from itself (`Err`).
async fn listen(
    pool: &Db,
    wake: &Notify,
    shutdown: &CancellationToken,
    state: &mut Reconnect,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(WAKE_CHANNEL).await?;
    state.listening();
    // Anything enqueued while we were not listening is found by this first look.
    wake.notify_one();
    loop {
        tokio::select! {
            n = listener.try_recv() => match n? {
                Some(_) => wake.notify_one(),
                // The connection dropped and PgListener already listens on a new one
                // (eager reconnect): notifications sent in between are lost, so look.
                None => wake.notify_one(),
            },
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = FIRST_BACKOFF;
        let mut seen = vec![b];
        for _ in 0..8 {
            b = next_backoff(b);
            seen.push(b);
        }
        assert_eq!(seen[1], Duration::from_millis(200));
        assert_eq!(seen[4], Duration::from_millis(1600));
        assert!(seen[5..].iter().all(|d| *d == MAX_BACKOFF));
    }
}
