//! How far behind each enabled endpoint is, read at every metrics scrape and by the
//! console's timeline. One statement, whose cost is two index probes per enabled endpoint and
//! nothing per delivery:
//! - the endpoint's oldest ready delivery: the first entry of `delivery_queue_ready_idx`
//!   (endpoint_id, next_attempt_at) WHERE queue = 'ready';
//! - the endpoint's latest attempt: the first entry of `delivery_attempts_endpoint_idx`
//!   (endpoint_id, id DESC);
//!
//! plus one probe for the whole queue: the oldest delivery still `arriving` (an ordered
//! delivery the workers have not numbered yet), the first entry of
//! `delivery_queue_arriving_idx` (in arrival order). Without a worker, arrivals are due work
//! too.

use uuid::Uuid;

use super::Result;
use crate::store::{Db, db};

/// One enabled endpoint, as the probe finds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointProbe {
    pub endpoint_id: Uuid,
    pub partner_id: Uuid,
    pub partner_name: String,
    /// Seconds since the oldest ready delivery became due: negative when it is not due yet,
    /// NULL when the endpoint has no ready delivery.
    pub due_age: Option<f64>,
    /// Seconds the oldest arriving delivery (any endpoint) has waited to be numbered; the
    /// same on every row.
    pub arriving_age: Option<f64>,
    /// Whether the endpoint's latest attempt failed (NULL: no attempt yet).
    pub last_failed: Option<bool>,
}

impl EndpointProbe {
    /// Every enabled endpoint (of a partner not deleted), by partner and endpoint id.
    pub async fn enabled(pool: &Db) -> Result<Vec<EndpointProbe>> {
        Ok(db::query_as(
            "SELECT e.id AS endpoint_id, e.partner_id, p.name AS partner_name,
                    extract(epoch FROM now() - r.next_attempt_at)::float8 AS due_age,
                    a.failed AS last_failed,
                    (SELECT extract(epoch FROM now() - q.next_attempt_at)::float8
                     FROM delivery_queue q
                     WHERE q.queue = 'arriving' ORDER BY q.arrival LIMIT 1) AS arriving_age
             FROM endpoints e
             JOIN partners p ON p.id = e.partner_id
             LEFT JOIN LATERAL (
                 SELECT q.next_attempt_at FROM delivery_queue q
                 WHERE q.endpoint_id = e.id AND q.queue = 'ready'
                 ORDER BY q.next_attempt_at LIMIT 1) r ON true
             LEFT JOIN LATERAL (
                 SELECT NOT coalesce(x.status_code BETWEEN 200 AND 299, false) AS failed
                 FROM delivery_attempts x WHERE x.endpoint_id = e.id
                 ORDER BY x.id DESC LIMIT 1) a ON true
             WHERE e.enabled AND e.deleted_at IS NULL AND p.deleted_at IS NULL
             ORDER BY e.partner_id, e.id",
        )
        .fetch_all(pool)
        .await?)
    }

    /// Seconds this endpoint's oldest due delivery has waited (0 when none is due).
    pub fn due_wait(&self) -> f64 {
        self.due_age.unwrap_or(0.0).max(0.0)
    }

    /// Is a delivery of this endpoint due now?
    pub fn is_due(&self) -> bool {
        self.due_age.is_some_and(|age| age >= 0.0)
    }
}

/// The oldest due delivery's wait in seconds (0 when nothing is due): ready ones not yet
/// claimed, and arrivals not yet numbered.
pub fn oldest_due_age(rows: &[EndpointProbe]) -> f64 {
    rows.iter()
        .flat_map(|r| [r.due_age, r.arriving_age])
        .filter_map(|age| age.filter(|a| *a >= 0.0))
        .fold(0.0_f64, f64::max)
}
