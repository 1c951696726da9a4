//! Shapes the API answers with that several resources share (lists, pages, the errors
//! some routes state themselves), and the OpenAPI schema of `GET /v1/stats/timeline`,
//! whose answer `stats.rs` assembles from its rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

use crate::store::{AttemptBucket, EndpointAttempts};

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

/// An error answer, with the one error shape (`Error`).
pub fn error_response(description: &str) -> Response {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Error")))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build()
}

fn error(status: &str, description: &str) -> BTreeMap<String, RefOr<Response>> {
    BTreeMap::from([(status.to_string(), error_response(description).into())])
}

/// 409: the delivery (or the Idempotency-Key) is in a state that refuses the request.
pub struct Conflict;

impl IntoResponses for Conflict {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error("409", "State conflict")
    }
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
    /// Attempts started in each bucket, by outcome.
    buckets: Vec<AttemptBucket>,
    endpoints: Vec<StatsEndpoint>,
    /// How long the oldest due delivery of an enabled endpoint has waited.
    oldest_due_age_s: f64,
}

/// One endpoint's attempts in the window.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatsEndpoint {
    #[serde(flatten)]
    row: EndpointAttempts,
    success_rate: f64,
    oldest_due_age_s: f64,
}
