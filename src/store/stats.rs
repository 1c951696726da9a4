//! The console's timeline (`GET /v1/stats/timeline`): attempts per time bucket by outcome,
//! and attempts, success and latency per endpoint, over a window. Every query is bounded by
//! time: `delivery_attempts_started_brin` (0013) lets the scan read only the blocks of the
//! window, whatever the table's size.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::Result;
use crate::store::{Db, db};

/// The attempts of one time bucket, by outcome.
#[derive(Debug, Clone, sqlx::FromRow, utoipa::ToSchema)]
pub struct AttemptBucket {
    /// The bucket's start.
    pub t: DateTime<Utc>,
    pub delivered: i64,
    pub failed_attempt: i64,
    pub dead: i64,
}

/// One endpoint's attempts over the window.
#[derive(Debug, Clone, sqlx::FromRow, utoipa::ToSchema)]
pub struct EndpointAttempts {
    pub endpoint_id: Uuid,
    pub partner_id: Uuid,
    pub partner_name: String,
    pub environment: String,
    pub url: String,
    pub attempts: i64,
    /// Attempts answered with a 2xx.
    pub delivered: i64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// An attempt's outcome: 2xx delivered; a failure that ended its delivery's current series
/// dead; any other failure a failed attempt (retried).
const OUTCOME: &str = "CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 'delivered'
         WHEN d.state = 'dead' AND d.series = a.series AND d.attempts = a.attempt THEN 'dead'
         ELSE 'failed_attempt' END";

impl AttemptBucket {
    /// The buckets of `[since, until)` that had attempts, `bucket` wide and aligned on
    /// `since`, in time order.
    pub async fn between(
        pool: &Db,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        bucket: Duration,
    ) -> Result<Vec<AttemptBucket>> {
        Ok(db::query_as(const_format::concatcp!(
            "SELECT date_bin(make_interval(secs => $3), a.started_at, $1) AS t,
                    count(*) FILTER (WHERE o.outcome = 'delivered') AS delivered,
                    count(*) FILTER (WHERE o.outcome = 'failed_attempt') AS failed_attempt,
                    count(*) FILTER (WHERE o.outcome = 'dead') AS dead
             FROM delivery_attempts a
             LEFT JOIN deliveries d ON d.id = a.delivery_id
                    AND NOT coalesce(a.status_code BETWEEN 200 AND 299, false)
             CROSS JOIN LATERAL (SELECT ",
            OUTCOME,
            " AS outcome) o
             WHERE a.started_at >= $1 AND a.started_at < $2
             GROUP BY 1 ORDER BY 1"
        ))
        .bind(since)
        .bind(until)
        .bind(bucket.num_seconds() as f64)
        .fetch_all(pool)
        .await?)
    }
}

impl EndpointAttempts {
    /// Every endpoint with attempts in `[since, until)`, by partner name, environment and URL.
    pub async fn between(
        pool: &Db,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<EndpointAttempts>> {
        Ok(db::query_as(
            "SELECT e.id AS endpoint_id, e.partner_id, p.name AS partner_name,
                    e.environment, e.url, s.attempts, s.delivered, s.p50_ms, s.p95_ms
             FROM (SELECT a.endpoint_id, count(*) AS attempts,
                          count(*) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS delivered,
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50_ms,
                          percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95_ms
                   FROM delivery_attempts a
                   WHERE a.started_at >= $1 AND a.started_at < $2 AND a.endpoint_id IS NOT NULL
                   GROUP BY a.endpoint_id) s
             JOIN endpoints e ON e.id = s.endpoint_id
             JOIN partners p ON p.id = e.partner_id
             ORDER BY p.name, e.environment, e.url",
        )
        .bind(since)
        .bind(until)
        .fetch_all(pool)
        .await?)
    }
}
