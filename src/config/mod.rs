//! Typed settings: the defaults of `config/default.toml` (compiled in), an optional extra
//! file, then environment variables with the fixed names of the contract.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

mod validate;

/// The defaults, the same text that ships as `config/default.toml`.
const DEFAULTS: &str = include_str!("../../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Clone, Deserialize)]
pub struct Settings {
    pub database_url: String,
    pub listen: SocketAddr,
    /// Where `/metrics` is served; empty: on the API's address (see [`Settings::metrics_address`]).
    pub metrics_listen: String,
    /// Secrets are `SecretString`: zeroized on drop, and `Debug` shows no value.
    pub api_token: SecretString,
    pub secret_key: SecretString,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub max_attempts: u32,
    pub allow_private_targets: bool,
    pub worker_concurrency: usize,
    pub endpoint_concurrency: usize,
    pub lease_ms: u64,
    pub endpoint_timeout_ms: u64,
    pub claim_batch: usize,
    pub poll_interval_ms: u64,
    pub database_max_connections: u32,
    pub session_database_url: String,
    pub database_pool_mode: PoolMode,
    /// Dead row versions in the queue table at which a worker vacuums it, or a quarter of its
    /// live rows if that is more (0: never; see `worker::upkeep::vacuum_queue`).
    pub queue_vacuum_dead_rows: u64,
    pub shutdown_grace_s: u64,
    pub production_requires_https: bool,
    pub retention_days: u32,
    pub retention_interval_s: u64,
    pub retention_batch: u32,
    pub auto_replay_per_second: u32,
    pub alerts_webhook_url: String,
    pub alerts_token: SecretString,
    pub alerts_failure_streak: u32,
    pub alerts_min_interval_s: u64,
    pub alerts_burst_window_ms: u64,
    /// OTLP/HTTP base URL traces are exported to; empty: none (see [`Settings::otlp_endpoint`]).
    pub otlp_endpoint: String,
}

// Secrets stay out of Debug output, so a settings dump in a log never leaks them.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "session_database_url",
                &redact_url(&self.session_database_url),
            )
            .field("database_pool_mode", &self.database_pool_mode)
            .field("queue_vacuum_dead_rows", &self.queue_vacuum_dead_rows)
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("api_token", &"<redacted>")
            .field("secret_key", &"<redacted>")
            .field("retry_base_ms", &self.retry_base_ms)
            .field("retry_max_ms", &self.retry_max_ms)
            .field("max_attempts", &self.max_attempts)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("worker_concurrency", &self.worker_concurrency)
            .field("endpoint_concurrency", &self.endpoint_concurrency)
            .field("lease_ms", &self.lease_ms)
            .field("endpoint_timeout_ms", &self.endpoint_timeout_ms)
            .field("claim_batch", &self.claim_batch)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("production_requires_https", &self.production_requires_https)
            .field("retention_days", &self.retention_days)
            .field("auto_replay_per_second", &self.auto_replay_per_second)
            .field("alerts_webhook_url", &redact_url(&self.alerts_webhook_url))
            .field("alerts_token", &"<redacted>")
            .field("alerts_failure_streak", &self.alerts_failure_streak)
            .field("alerts_min_interval_s", &self.alerts_min_interval_s)
            .field("otlp_endpoint", &redact_url(&self.otlp_endpoint))
            .finish_non_exhaustive()
    }
}

/// How `database_url` is pooled, which decides how statements are sent (see `store::db`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// A direct connection, or a pooler in session mode: statements prepared once per
    /// connection and cached.
    Session,
    /// A pooler in transaction mode (PgBouncer without prepared-statement support): every
    /// statement unnamed, and each one on its own in a transaction of its own.
    Transaction,
}

/// A URL with its password replaced, fit for logs (database URLs with several hosts too).
pub fn redact_url(raw: &str) -> String {
    if raw.starts_with("postgres") {
        return crate::store::hosts::redact(raw);
    }
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".to_string(),
    }
}

impl Settings {
    /// Defaults, then `extra_file` if given, then the process environment.
    pub fn load(extra_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(extra_file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given (so tests need not touch the
    /// process's own).
    pub fn load_with_env(
        extra_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = extra_file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let callbackd_vars: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("CALLBACKD_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("CALLBACKD")
                .prefix_separator("_")
                .try_parsing(true)
                .source(Some(callbackd_vars)),
        );
        if let Some(url) = env.get("DATABASE_URL") {
            builder = builder.set_override("database_url", url.as_str())?;
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The defaults alone, ignoring the environment: the base of tests and benchmarks.
    pub fn defaults() -> Self {
        config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("the compiled-in defaults parse")
    }

    /// The largest timeout an endpoint may ask for: it must end well inside the lease.
    pub fn max_endpoint_timeout_ms(&self) -> u64 {
        self.lease_ms.saturating_sub(1000).clamp(1, 120_000)
    }

    /// The separate address of `/metrics`, or None to serve it with the API.
    pub fn metrics_address(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let raw = self.metrics_listen.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse().map(Some).map_err(|_| ConfigError::Invalid {
            key: "metrics_listen",
            message: "must be empty or an address like 127.0.0.1:9100".to_string(),
        })
    }

    /// Where traces go over OTLP/HTTP (the base URL; `/v1/traces` is added), or None.
    pub fn otlp_endpoint(&self) -> Option<&str> {
        Some(self.otlp_endpoint.trim()).filter(|e| !e.is_empty())
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
}

#[cfg(test)]
mod tests;
