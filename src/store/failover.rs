//! Connecting to the host that accepts writes, and following it when it changes.
//!
//! With several hosts in the URL ([`super::hosts`]), the pool is pointed at the first host
//! that accepts writes. Every new connection checks again (`after_connect`: a host that became
//! a standby, or a standby that a stale target still names, is refused), and a monitor task
//! checks the pool's host every [`MONITOR_INTERVAL`]: once it is gone or read-only, the hosts
//! are probed in order and the pool is pointed at whichever accepts writes now
//! (`Pool::set_connect_options`), without a restart. The connections to the old host are
//! dead already (a crash) and are dropped by the pool's test before acquire; anything asked of
//! the pool meanwhile fails as the database being unavailable (503 / retried).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection, Executor, PgPool, Row};

use super::hosts::{SessionAttrs, Targets};

/// How often the monitor looks at the pool's host.
pub const MONITOR_INTERVAL: Duration = Duration::from_millis(500);
/// Bound on one probe of one host (connect and query): a host that does not answer is passed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A pooled connection idle this long is checked before it is handed out.
const RECHECK_IDLE: Duration = Duration::from_secs(1);
/// How long after the monitor saw the pool's host gone or read-only every connection is
/// checked before it is handed out.
const SUSPICION: Duration = Duration::from_secs(10);

/// Until when (ms on [`clock`]) every checkout checks its connection; 0 when nothing is
/// suspected. Process-wide: every pool of the process points at the same hosts.
static SUSPECT_UNTIL_MS: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since this process first asked.
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// The monitor saw the pool's host gone or read-only: check every connection at checkout for
/// the next [`SUSPICION`].
fn suspect() {
    SUSPECT_UNTIL_MS.store(
        clock() + SUSPICION.as_millis() as u64,
        AtomicOrdering::Relaxed,
    );
}

fn suspected() -> bool {
    clock() < SUSPECT_UNTIL_MS.load(AtomicOrdering::Relaxed)
}

/// The options of one single-host URL, as every callbackd connection is made.
pub fn options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    Ok(options.application_name("callbackd"))
}

/// Does the connection's host accept writes? A standby (in recovery) or a server set to
/// `default_transaction_read_only` does not. Sent with the simple query protocol: one round
/// trip and nothing prepared, so it is right through a pooler in transaction mode too (see
/// [`super::db`]), where it runs before any transaction.
pub async fn writable(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let row = conn
        .fetch_one(
            "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'",
        )
        .await?;
    row.try_get(0)
}

/// The error a read-only host is refused with: an I/O error, so that it counts as the
/// database being unavailable (retried, 503), as the host being down would.
pub fn read_only_error() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(
        "the database host is read-only (a standby): waiting for a host that accepts writes",
    ))
}

/// `options` with the checks that keep writes off read-only hosts when `attrs` asks for a
/// host that accepts writes: a new connection to a read-only host is refused
/// (`after_connect`), and a pooled one whose host became read-only is closed at checkout
/// (`before_acquire`, which also finds dead connections, as the ping it replaces did).
pub fn guard(options: PgPoolOptions, attrs: SessionAttrs) -> PgPoolOptions {
    if attrs == SessionAttrs::Any {
        // After a server restart every idle connection is dead: check each one before use
        // (sqlx's default, stated here because the restart guarantee rests on it).
        return options.test_before_acquire(true);
    }
    options
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                if !writable(conn).await? {
                    tracing::warn!("refusing a connection to a read-only host (a standby)");
                    return Err(read_only_error());
                }
                Ok(())
            })
        })
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                // A connection in steady use is taken as it is: checking it cost a round trip
                // (parsed and planned each time) per transaction, 16,000 in a 30 s `ingest`
                // run. One that sat idle, or any while the monitor has seen a problem
                // lately, is checked: that is what finds the connections a restart killed and
                // those a demotion left open. Until the monitor's next look (MONITOR_INTERVAL)
                // a busy connection to a demoted host answers its writes with 25006, which is
                // transient: a 503, or a retry.
                if meta.idle_for < RECHECK_IDLE && !suspected() {
                    return Ok(true);
                }
                // An error (the server went away) makes the pool drop the connection too.
                let ok = writable(conn).await?;
                if !ok {
                    tracing::warn!(
                        "closing a pooled connection: its host no longer accepts writes \
                         (demoted or read-only)"
                    );
                }
                Ok(ok)
            })
        })
}

/// Index of the first host that answers and, if `attrs` asks for it, accepts writes.
pub async fn find(targets: &Targets) -> Option<usize> {
    for (i, url) in targets.urls.iter().enumerate() {
        let Ok(options) = options(url) else {
            continue;
        };
        let probe = async {
            let mut conn = PgConnection::connect_with(&options).await?;
            let ok = match targets.attrs {
                SessionAttrs::Any => true,
                SessionAttrs::ReadWrite => writable(&mut conn).await?,
            };
            let _ = conn.close().await;
            Ok::<_, sqlx::Error>(ok)
        };
        if let Ok(Ok(true)) = tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            return Some(i);
        }
    }
    None
}

/// Same host and port?
fn same_host(a: &PgConnectOptions, b: &PgConnectOptions) -> bool {
    a.get_host() == b.get_host() && a.get_port() == b.get_port()
}

/// Follows the writable host until the pool is closed.
pub fn spawn_monitor(pool: PgPool, targets: Targets) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(MONITOR_INTERVAL).await;
            if pool.is_closed() {
                return;
            }
            if current_is_fine(&pool, targets.attrs).await {
                continue;
            }
            suspect();
            let Some(i) = find(&targets).await else {
                continue; // no host takes writes now: look again next round
            };
            let Ok(next) = options(&targets.urls[i]) else {
                continue;
            };
            if !same_host(&pool.connect_options(), &next) {
                tracing::warn!(
                    host = next.get_host(),
                    port = next.get_port(),
                    "database failover: now connecting to this host"
                );
                pool.set_connect_options(next);
            }
        }
    });
}

/// The pool's host answers (and accepts writes, when asked) within the probe bound.
async fn current_is_fine(pool: &PgPool, attrs: SessionAttrs) -> bool {
    let check = async {
        let mut conn = pool.acquire().await?;
        match attrs {
            // the simple protocol, as in `writable`
            SessionAttrs::Any => conn.execute("SELECT 1").await.map(|_| true),
            SessionAttrs::ReadWrite => writable(&mut conn).await,
        }
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, check).await,
        Ok(Ok(true))
    )
}
