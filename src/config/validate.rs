//! Every bound a setting must keep, checked once at load so a bad value stops the start with a
//! message naming its key (instead of surfacing later as a stalled worker or an overflow).

use super::{ConfigError, PoolMode, Settings};

impl Settings {
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
}
