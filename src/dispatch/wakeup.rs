//! LISTEN for enqueues so that an idle worker sends within milliseconds; the claimer's
//! poll is the fallback when the listening connection is down.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::WAKE_CHANNEL;

pub async fn run(pool: PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        match listen(&pool, &wake, &shutdown).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "LISTEN connection lost; reconnecting"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {},
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn listen(
    pool: &PgPool,
    wake: &Notify,
    shutdown: &CancellationToken,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(WAKE_CHANNEL).await?;
    // Anything enqueued while we were not listening is found by this first look.
    wake.notify_one();
    loop {
        tokio::select! {
            n = listener.try_recv() => match n? {
                Some(_) => wake.notify_one(),
                // The connection dropped; try_recv reconnects on the next call.
                None => wake.notify_one(),
            },
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}
