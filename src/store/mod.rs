//! All SQL lives here, one file per table group, written in plain sight (runtime-checked
//! queries: a clean clone builds without a database).

mod audit;
mod cursor;
pub mod db;
mod deliveries;
mod endpoint_tests;
mod endpoints;
mod failover;
mod health;
pub mod hosts;
mod keyring;
mod notifications;
mod partners;
mod probe;
pub mod queue;
mod stats;
mod tokens;
mod transient;

use std::time::Duration;

use sqlx::Postgres;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;

pub use audit::{AuditEntry, AuditRecord, mask_secrets};
pub use cursor::Cursor;
pub use db::Db;
pub use deliveries::{Attempt, Delivery, DeliveryDetail, DeliveryFilter};
pub use endpoint_tests::EndpointTest;
pub use endpoints::{Endpoint, EndpointRecord, SigningChange};
pub use health::EndpointHealth;
pub use keyring::verify_or_init_key;
pub use notifications::{DeliveryRef, Enqueued, ItemError, Notification};
pub use partners::Partner;
pub use probe::{EndpointProbe, oldest_due_age};
pub use queue::{
    Claimed, EndpointRoom, GroupItem, Next, Outcome, Purged, Written, auto_replay_pass, claim,
    complete, next_due_in_ms, purge_batch, queue_row_versions, reap_expired_leases, release_leases,
    renew_leases, replay_matching, sequence_and_claim, sequence_arrivals, vacuum_queue,
    write_group,
};
pub use stats::{AttemptBucket, EndpointAttempts};

use crate::model::ValidationError;

pub use tokens::{NewToken, PartnerToken, TOKEN_PREFIX, TokenOwner};
pub use transient::is_transient;

/// The PostgreSQL channel that wakes the workers (also used by `callbackd_enqueue`).
pub const WAKE_CHANNEL: &str = "callbackd_due";

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("database URL: {0}")]
    Url(#[from] hosts::HostsError),
}

impl StoreError {
    /// Worth retrying: the database was unavailable or the transaction lost a race.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Database(e) if is_transient(e))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Maps the errors `callbackd_enqueue()` raises (SQLSTATE CB001, COLUMN = the argument) to
/// validation errors (any statement, e.g. a platform's trigger, may raise them); everything
/// else stays a database error.
pub(crate) fn classify(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        && pg.code() == "CB001"
    {
        let field = pg.column().unwrap_or("request");
        // The body rules name the field in the message too, for SQL callers; the API's
        // error carries it separately.
        let message = pg
            .message()
            .strip_prefix(field)
            .and_then(|m| m.strip_prefix(": "))
            .unwrap_or(pg.message());
        return StoreError::Invalid(ValidationError::new(field, message));
    }
    StoreError::Database(e)
}

/// Creates the database if it is missing and `create` says so (racing starters are fine),
/// then connects to the first host of `database_url` that accepts writes (several hosts: see
/// [`hosts`]), and follows the writable host when there are several. Behind a pooler the
/// direct session connection creates it: the check is a statement of sqlx's own, prepared
/// under a name, which a pooler in transaction mode cannot carry.
pub async fn connect(database_url: &str, max_connections: u32, create: bool) -> Result<Db> {
    let targets = hosts::parse(database_url)?;
    // With no host writable now, the first one is the target: the errors then say why.
    let first = match targets.urls.len() {
        1 => 0,
        _ => failover::find(&targets).await.unwrap_or(0),
    };
    let url = &targets.urls[first];
    if create && !Postgres::database_exists(url).await? {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!("created database"),
            // 42P04 duplicate_database: another process created it first.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e.into()),
        }
    }
    let options = PgPoolOptions::new()
        .max_connections(max_connections)
        // Bounds the wait for a connection, including opening one (sqlx retries a refused
        // connect within it): with the server down, a request gets its 503 after this, not
        // a hang. It leaves room inside the 5 s an API caller may wait.
        .acquire_timeout(ACQUIRE_TIMEOUT);
    // Checked at connect and at every checkout: dead connections and, with read-write,
    // connections to a host that no longer takes writes are dropped (see failover::guard).
    let pool = failover::guard(options, targets.attrs)
        .connect_with(failover::options(url)?)
        .await?;
    if targets.urls.len() > 1 {
        failover::spawn_monitor(pool.clone(), targets);
    }
    Ok(Db::new(pool))
}

/// How long anything waits for a database connection before it is told the database is
/// unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Applies the migrations. sqlx serializes concurrent migrators with a session advisory
/// lock: give it a session (`session_database_url` behind a pooler), since through a
/// transaction pooler the lock and its unlock may land on different server connections.
pub async fn migrate(pool: &Db) -> Result<()> {
    MIGRATOR.run(pool.pool()).await?;
    Ok(())
}

/// `/readyz`: can a connection run a query now?
pub async fn ping(pool: &Db) -> Result<()> {
    db::query("SELECT 1").execute(pool).await?;
    Ok(())
}
