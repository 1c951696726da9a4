//! Shapes the API answers with that several resources share (lists, pages), and the
//! OpenAPI schema of `GET /v1/stats/timeline`, whose answer is assembled in `stats.rs`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// `{"items": [...]}`: a whole list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// `{"items": [...], "next_cursor": ...}`: one page, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The window's statistics: what the console's charts draw.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: stats.rs writes this shape as JSON
pub struct StatsTimeline {
    window: String,
    since: DateTime<Utc>,
    /// Exclusive.
    until: DateTime<Utc>,
    bucket_s: i64,
    buckets: Vec<StatsBucket>,
    endpoints: Vec<StatsEndpoint>,
    /// How long the oldest due delivery of an enabled endpoint has waited.
    oldest_due_age_s: f64,
}

/// Attempts started in one bucket, by outcome.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatsBucket {
    t: DateTime<Utc>,
    delivered: i64,
    failed_attempt: i64,
    dead: i64,
}

/// One endpoint's attempts in the window.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatsEndpoint {
    endpoint_id: Uuid,
    partner_id: Uuid,
    partner_name: String,
    environment: String,
    url: String,
    attempts: i64,
    delivered: i64,
    success_rate: f64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    oldest_due_age_s: f64,
}
