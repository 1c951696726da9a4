//! Endpoint health, read from the attempt log: the last success, the failed attempts since
//! (the failure streak), and how many deliveries wait or died.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Result;
use crate::store::{Db, db};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EndpointHealth {
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Failed attempts since the last success.
    pub failure_streak: i64,
    pub pending: i64,
    pub dead: i64,
}

impl EndpointHealth {
    pub async fn of(pool: &Db, endpoint_id: Uuid) -> Result<EndpointHealth> {
        Ok(db::query_as(
            "WITH ok AS (
                 SELECT id, started_at FROM delivery_attempts
                 WHERE endpoint_id = $1 AND status_code BETWEEN 200 AND 299
                 ORDER BY id DESC LIMIT 1
             ),
             failed AS (
                 SELECT count(*) AS n, max(started_at) AS last FROM delivery_attempts
                 WHERE endpoint_id = $1 AND id > coalesce((SELECT id FROM ok), 0)
             )
             SELECT (SELECT started_at FROM ok) AS last_success_at,
                    failed.last AS last_failure_at,
                    failed.n AS failure_streak,
                    (SELECT count(*) FROM deliveries
                     WHERE endpoint_id = $1 AND state = 'pending') AS pending,
                    (SELECT count(*) FROM deliveries
                     WHERE endpoint_id = $1 AND state = 'dead') AS dead
             FROM failed",
        )
        .bind(endpoint_id)
        .fetch_one(pool)
        .await?)
    }
}
