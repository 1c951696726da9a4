//! Every bound a setting must keep, checked once at load so a bad value stops the start with a
//! message naming its key (instead of surfacing later as a stalled worker or an overflow).

use super::{ConfigError, PoolMode, Settings};

impl Settings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least("retry_base_ms", self.retry_base_ms, 1)?;
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
        between("max_attempts", u64::from(self.max_attempts), 1, 100)?;
        at_least("worker_concurrency", self.worker_concurrency as u64, 1)?;
        between(
            "endpoint_concurrency",
            self.endpoint_concurrency as u64,
            1,
            10_000,
        )?;
        between("claim_batch", self.claim_batch as u64, 1, 10_000)?;
        at_least("endpoint_timeout_ms", self.endpoint_timeout_ms, 1)?;
        if self.lease_ms <= self.endpoint_timeout_ms {
            return invalid(
                "lease_ms",
                "must exceed endpoint_timeout_ms (a lease must outlive the request it covers)",
            );
        }
        at_least("poll_interval_ms", self.poll_interval_ms, 1)?;
        at_least("retention_interval_s", self.retention_interval_s, 1)?;
        between(
            "retention_batch",
            u64::from(self.retention_batch),
            1,
            100_000,
        )?;
        between(
            "auto_replay_per_second",
            u64::from(self.auto_replay_per_second),
            1,
            10_000,
        )?;
        at_least(
            "alerts_failure_streak",
            u64::from(self.alerts_failure_streak),
            1,
        )?;
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
        at_least(
            "database_max_connections",
            u64::from(self.database_max_connections),
            2,
        )?;
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

fn invalid(key: &'static str, message: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key,
        message: message.into(),
    })
}

/// Refuses `value` of `key` below `min`.
fn at_least(key: &'static str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value < min {
        return invalid(key, format!("must be at least {min}"));
    }
    Ok(())
}

/// Refuses `value` of `key` outside `min..=max`.
fn between(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if !(min..=max).contains(&value) {
        return invalid(key, format!("must be between {min} and {max}"));
    }
    Ok(())
}
