//! Typed settings: the defaults of `config/default.toml` (compiled in), an optional extra
//! file, then environment variables with the fixed names of the contract.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// The defaults, the same text that ships as `config/default.toml`.
const DEFAULTS: &str = include_str!("../config/default.toml");

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
    /// live rows if that is more (0: never; see `dispatch::upkeep::vacuum_queue`).
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

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_string(),
            })
        };
        if self.retry_base_ms == 0 {
            return invalid("retry_base_ms", "must be at least 1");
        }
        if self.retry_max_ms < self.retry_base_ms {
            return invalid("retry_max_ms", "must not be below retry_base_ms");
        }
        // A retry further away than this is a delivery nobody is waiting for any more, and
        // the delay must stay far from what a database interval can hold.
        if self.retry_max_ms > 30 * 86_400_000 {
            return invalid("retry_max_ms", "must be at most 30 days (2592000000)");
        }
        if self.lease_ms > 86_400_000 {
            return invalid("lease_ms", "must be at most one day (86400000)");
        }
        if self.max_attempts == 0 || self.max_attempts > 100 {
            return invalid("max_attempts", "must be between 1 and 100");
        }
        if self.worker_concurrency == 0 {
            return invalid("worker_concurrency", "must be at least 1");
        }
        if self.endpoint_concurrency == 0 || self.endpoint_concurrency > 10_000 {
            return invalid("endpoint_concurrency", "must be between 1 and 10000");
        }
        if self.claim_batch == 0 || self.claim_batch > 10_000 {
            return invalid("claim_batch", "must be between 1 and 10000");
        }
        if self.endpoint_timeout_ms == 0 {
            return invalid("endpoint_timeout_ms", "must be at least 1");
        }
        if self.lease_ms <= self.endpoint_timeout_ms {
            return invalid(
                "lease_ms",
                "must exceed endpoint_timeout_ms (a lease must outlive the request it covers)",
            );
        }
        if self.poll_interval_ms == 0 {
            return invalid("poll_interval_ms", "must be at least 1");
        }
        if self.retention_interval_s == 0 {
            return invalid("retention_interval_s", "must be at least 1");
        }
        if self.retention_batch == 0 || self.retention_batch > 100_000 {
            return invalid("retention_batch", "must be between 1 and 100000");
        }
        if self.auto_replay_per_second == 0 || self.auto_replay_per_second > 10_000 {
            return invalid("auto_replay_per_second", "must be between 1 and 10000");
        }
        if self.alerts_failure_streak == 0 {
            return invalid("alerts_failure_streak", "must be at least 1");
        }
        if !self.alerts_webhook_url.is_empty() {
            match url::Url::parse(&self.alerts_webhook_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => return invalid("alerts_webhook_url", "must be an http or https URL"),
            }
        }
        self.metrics_address()?;
        if let Some(endpoint) = self.otlp_endpoint() {
            match url::Url::parse(endpoint) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return invalid(
                        "otlp_endpoint",
                        "must be empty or a URL like http://127.0.0.1:4318",
                    );
                }
            }
        }
        // Beyond a billion dead row versions a table is not being watched at all: 0 says so.
        if self.queue_vacuum_dead_rows > 1_000_000_000 {
            return invalid(
                "queue_vacuum_dead_rows",
                "must be between 0 (never) and 1000000000",
            );
        }
        if self.database_max_connections < 2 {
            return invalid("database_max_connections", "must be at least 2");
        }
        crate::store::hosts::parse(&self.database_url).map_err(|e| ConfigError::Invalid {
            key: "database_url",
            message: e.to_string(),
        })?;
        if self.database_pool_mode == PoolMode::Transaction && self.session_database_url.is_empty()
        {
            return invalid(
                "session_database_url",
                "must be set when database_pool_mode is transaction: LISTEN and the migrations' \
                 lock need a session, which a transaction pooler does not keep",
            );
        }
        if !self.session_database_url.is_empty() {
            crate::store::hosts::parse(&self.session_database_url).map_err(|e| {
                ConfigError::Invalid {
                    key: "session_database_url",
                    message: e.to_string(),
                }
            })?;
        }
        Ok(())
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
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn compiled_in_defaults_match_the_contract() {
        let s = Settings::defaults();
        assert_eq!(
            s.database_url,
            "postgres://postgres@127.0.0.1:5432/callbackd"
        );
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.retry_base_ms, 1000);
        assert_eq!(s.retry_max_ms, 900_000);
        assert_eq!(s.max_attempts, 10);
        assert!(!s.allow_private_targets);
        assert_eq!(s.lease_ms, 60_000);
        s.validate().unwrap();
    }

    #[test]
    fn environment_variables_override_the_defaults() {
        let env = [
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/other"),
            ("CALLBACKD_LISTEN", "127.0.0.1:9999"),
            ("CALLBACKD_RETRY_BASE_MS", "5"),
            ("CALLBACKD_RETRY_MAX_MS", "50"),
            ("CALLBACKD_MAX_ATTEMPTS", "3"),
            ("CALLBACKD_ALLOW_PRIVATE_TARGETS", "true"),
            ("CALLBACKD_WORKER_CONCURRENCY", "7"),
            ("CALLBACKD_LEASE_MS", "30000"),
            ("CALLBACKD_API_TOKEN", "t0ken"),
            ("UNRELATED", "x"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let s = Settings::load_with_env(None, env).unwrap();
        assert_eq!(s.database_url, "postgres://postgres@127.0.0.1:5432/other");
        assert_eq!(s.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(
            (s.retry_base_ms, s.retry_max_ms, s.max_attempts),
            (5, 50, 3)
        );
        assert!(s.allow_private_targets);
        assert_eq!(s.worker_concurrency, 7);
        assert_eq!(s.lease_ms, 30_000);
        assert_eq!(s.api_token.expose_secret(), "t0ken");
    }

    #[test]
    fn metrics_listen_is_empty_or_an_address() {
        assert_eq!(Settings::defaults().metrics_address().unwrap(), None);
        let env = [("CALLBACKD_METRICS_LISTEN", "127.0.0.1:9100")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let s = Settings::load_with_env(None, env).unwrap();
        assert_eq!(
            s.metrics_address().unwrap().map(|a| a.to_string()),
            Some("127.0.0.1:9100".to_string())
        );
        for bad in ["9100", "localhost", "127.0.0.1:99999", "\u{0}"] {
            let env = [("CALLBACKD_METRICS_LISTEN".to_string(), bad.to_string())];
            let err = Settings::load_with_env(None, env).unwrap_err().to_string();
            assert!(err.contains("metrics_listen"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_bad_value_is_a_clear_error() {
        let env = [("CALLBACKD_RETRY_BASE_MS".to_string(), "soon".to_string())];
        let err = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains("retry_base_ms"), "{err}");
    }

    #[test]
    fn lease_must_outlive_the_endpoint_timeout() {
        let mut s = Settings::defaults();
        s.lease_ms = s.endpoint_timeout_ms;
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("lease_ms"), "{err}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut s = Settings::defaults();
        s.api_token = "tok-very-secret".into();
        s.secret_key = "key-very-secret".into();
        s.database_url = "postgres://u:pw-very-secret@h/db".into();
        let shown = format!("{s:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }

    #[test]
    fn pooler_and_failover_settings_come_from_the_environment() {
        let defaults = Settings::defaults();
        assert!(defaults.session_database_url.is_empty());
        let env = [
            (
                "DATABASE_URL",
                "postgres://u:pw-very-secret@h1:6432,h2:6432/db",
            ),
            (
                "CALLBACKD_SESSION_DATABASE_URL",
                "postgres://u:pw-very-secret@h1:5432,h2:5432/db",
            ),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let s = Settings::load_with_env(None, env).unwrap();
        assert_eq!(
            s.session_database_url,
            "postgres://u:pw-very-secret@h1:5432,h2:5432/db"
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("h1:6432,h2:6432"), "{shown}");
    }

    #[test]
    fn transaction_pooling_needs_a_session_url_and_a_known_mode_and_vacuum_rows_a_sane_count() {
        assert_eq!(Settings::defaults().database_pool_mode, PoolMode::Session);
        let load = |vars: &[(&str, &str)]| {
            Settings::load_with_env(
                None,
                vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            )
        };
        let err = load(&[("CALLBACKD_DATABASE_POOL_MODE", "transaction")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("session_database_url"), "{err}");
        let err = load(&[("CALLBACKD_DATABASE_POOL_MODE", "statement")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("database_pool_mode") && err.contains("statement"),
            "{err}"
        );
        for bad in ["-1", "1000000001", "18446744073709551615", "lots"] {
            let err = load(&[("CALLBACKD_QUEUE_VACUUM_DEAD_ROWS", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("queue_vacuum_dead_rows"), "{bad}: {err}");
        }
        let s = load(&[
            ("CALLBACKD_DATABASE_POOL_MODE", "transaction"),
            ("CALLBACKD_SESSION_DATABASE_URL", "postgres://h:5432/db"),
        ])
        .unwrap();
        assert_eq!(s.database_pool_mode, PoolMode::Transaction);
    }

    #[test]
    fn a_bad_host_list_is_a_clear_error() {
        for (key, var) in [
            ("database_url", "DATABASE_URL"),
            ("session_database_url", "CALLBACKD_SESSION_DATABASE_URL"),
        ] {
            let env = [(
                var.to_string(),
                "postgres://h1:5432,h2:99999/db".to_string(),
            )];
            let err = Settings::load_with_env(None, env).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains("h2:99999"), "{err}");
        }
    }

    #[test]
    fn alert_settings_come_from_the_environment() {
        let env = [
            ("CALLBACKD_ALERTS_WEBHOOK_URL", "https://ops.example/hook"),
            ("CALLBACKD_ALERTS_TOKEN", "alert-very-secret"),
            ("CALLBACKD_ALERTS_FAILURE_STREAK", "3"),
            ("CALLBACKD_ALERTS_MIN_INTERVAL_S", "60"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let s = Settings::load_with_env(None, env).unwrap();
        assert_eq!(s.alerts_webhook_url, "https://ops.example/hook");
        assert_eq!(s.alerts_token.expose_secret(), "alert-very-secret");
        assert_eq!((s.alerts_failure_streak, s.alerts_min_interval_s), (3, 60));
        assert!(!format!("{s:?}").contains("very-secret"));
        let defaults = Settings::defaults();
        assert!(defaults.alerts_webhook_url.is_empty());
        assert_eq!(defaults.alerts_failure_streak, 10);
        assert_eq!(defaults.alerts_min_interval_s, 300);
    }
}
