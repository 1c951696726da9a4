//! Builds the application from settings: database, key check, API listener, dispatcher.
//! `main` and the tests both start callbackd through [`Application`].

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiContext};
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::store::Db;
use crate::store::{self, StoreError};
use crate::worker::Dispatcher;

mod error;
mod open_files;
pub use error::{StartupError, one_line};
pub use open_files::raise_open_files_limit;

/// Which parts run in this process (`serve --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Api,
    Worker,
    All,
}

impl Role {
    fn runs_api(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }
    fn runs_worker(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }
}

pub struct Application {
    pool: Db,
    api: Option<(TcpListener, axum::Router)>,
    address: Option<SocketAddr>,
    /// `/metrics` on an address of its own (`metrics_listen`), in every role.
    metrics: Option<TcpListener>,
    dispatcher: Option<Arc<Dispatcher>>,
    settings: Arc<Settings>,
    api_token: SecretString,
    token_generated: bool,
    dev_key: bool,
}

/// Creates the database if needed, applies the migrations, checks the secret key.
pub async fn prepare_database(
    settings: &Settings,
    secrets: &SecretBox,
) -> Result<Db, StartupError> {
    Ok(prepare_databases(settings, secrets).await?.pool)
}

/// The pools of a process.
pub struct Databases {
    /// Everything that runs in a transaction or a single statement (maybe pooled).
    pub pool: Db,
    /// Where workers LISTEN: the session pool, or `pool` when there is none.
    pub listen: Db,
}

/// As [`prepare_database`], with the session pool (`session_database_url`) when set.
pub async fn prepare_databases(
    settings: &Settings,
    secrets: &SecretBox,
) -> Result<Databases, StartupError> {
    apply_pool_mode(settings);
    let url = &settings.database_url;
    let session_url = &settings.session_database_url;
    // A direct connection for LISTEN and the migration lock: small, and never pooled.
    let session = if session_url.is_empty() {
        None
    } else {
        let pool = store::connect(session_url, 2, true)
            .await
            .map_err(|e| StartupError::store(session_url, e))?;
        Some((session_url, pool))
    };
    let pool = store::connect(url, settings.database_max_connections, session.is_none())
        .await
        .map_err(|e| StartupError::store(url, e))?;
    let (migrate_url, migrate_pool) = match &session {
        Some((u, p)) => (*u, p),
        None => (url, &pool),
    };
    store::migrate(migrate_pool)
        .await
        .map_err(|e| StartupError::Migrations {
            url: crate::config::redact_url(migrate_url),
            reason: e.to_string(),
        })?;
    let listen = session.map_or_else(|| pool.clone(), |(_, p)| p);
    match store::verify_or_init_key(&pool, secrets).await {
        Ok(()) => Ok(Databases { pool, listen }),
        Err(StoreError::Crypto(_)) => Err(StartupError::WrongSecretKey),
        Err(e) => Err(StartupError::store(url, e)),
    }
}

/// Behind a pooler in transaction mode, every statement of this process is sent unnamed and
/// in a transaction (see `store::db`). Before the first statement.
pub fn apply_pool_mode(settings: &Settings) {
    if settings.database_pool_mode == crate::config::PoolMode::Transaction {
        store::db::use_unnamed_statements();
    }
}

impl Application {
    pub async fn build(settings: Settings, role: Role) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        crate::prometheus::install();
        let secrets = SecretBox::from_setting(settings.secret_key.expose_secret())
            .map_err(|_| StartupError::MalformedSecretKey)?;
        let Databases { pool, listen } = prepare_databases(&settings, &secrets).await?;

        let token_generated = settings.api_token.expose_secret().trim().is_empty();
        let api_token = if token_generated {
            SecretString::from(
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()),
            )
        } else {
            SecretString::from(settings.api_token.expose_secret().trim())
        };

        let (api, address) = if role.runs_api() {
            let listener = TcpListener::bind(settings.listen)
                .await
                .map_err(|e| StartupError::listen(settings.listen, e))?;
            let address = listener.local_addr()?;
            let router = api::router(ApiContext::new(api::ApiState {
                pool: pool.clone(),
                settings: settings.clone(),
                secrets: secrets.clone(),
                api_token: api_token.clone(),
                sender: crate::outbound::CallbackSender::new(settings.allow_private_targets)?,
                enqueuer: api::EnqueueGroup::spawn(pool.clone()),
            }));
            (Some((listener, router)), Some(address))
        } else {
            (None, None)
        };
        let metrics = match settings.metrics_address()? {
            Some(at) => Some(
                TcpListener::bind(at)
                    .await
                    .with_context(|| format!("cannot listen on {at} (metrics_listen)"))?,
            ),
            None => None,
        };
        let dispatcher = if role.runs_worker() {
            Some(Arc::new(
                Dispatcher::new(pool.clone(), settings.clone(), secrets.clone())?.listen_on(listen),
            ))
        } else {
            None
        };
        Ok(Self {
            pool,
            api,
            address,
            metrics,
            dispatcher,
            settings,
            api_token,
            token_generated,
            dev_key: secrets.is_dev_key(),
        })
    }

    /// Where the API listens, when this process runs it.
    pub fn address(&self) -> Option<SocketAddr> {
        self.address
    }

    /// Where `/metrics` listens when `metrics_listen` is set.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn api_token(&self) -> &str {
        self.api_token.expose_secret()
    }

    /// True when no token was configured and a random one was made for this run.
    pub fn token_generated(&self) -> bool {
        self.token_generated
    }

    pub fn uses_dev_key(&self) -> bool {
        self.dev_key
    }

    pub fn pool(&self) -> &Db {
        &self.pool
    }

    /// Serves until `shutdown` fires, then stops accepting, drains, and returns.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let api = self.api.map(|(listener, router)| {
            let stop = shutdown.clone();
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
            })
        });
        if let Some(listener) = self.metrics {
            let router = api::metrics_router(self.pool.clone());
            let stop = shutdown.clone();
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
            });
        }
        // Workers also purge what is past retention (a no-op with retention_days = 0).
        let retention = self.dispatcher.is_some().then(|| {
            tokio::spawn(crate::worker::retention::run(
                self.pool.clone(),
                self.settings.retention_days,
                self.settings.retention_batch,
                std::time::Duration::from_secs(self.settings.retention_interval_s),
                shutdown.clone(),
            ))
        });
        let worker = self
            .dispatcher
            .map(|d| tokio::spawn(d.run(shutdown.clone())));
        if let Some(api) = api {
            api.await?.context("API server")?;
        }
        if let Some(worker) = worker {
            worker.await?;
        }
        if let Some(retention) = retention {
            retention.abort();
        }
        Ok(())
    }
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("signal received: shutting down");
    shutdown.cancel();
}
