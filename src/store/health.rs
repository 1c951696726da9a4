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

/// The endpoint `$1`'s pending deliveries: its queue rows (migrations/0015), but for one
/// canceled while its request is on the wire (it keeps its `running` row until that request
/// ends, and has a `delivery_stopped` row). No index on `deliveries` names `state` (the
/// completion's update would not be HOT: migrations/0020), so the count reads the queue's
/// partial indexes, one branch per queue: the endpoint's own ready and waiting rows, and of
/// the running and arriving rows (few: the requests in flight, the arrivals not yet
/// numbered) those of the endpoint.
const PENDING: &str =
    "SELECT 1 FROM delivery_queue q WHERE q.endpoint_id = $1 AND q.queue = 'ready'
     UNION ALL
     SELECT 1 FROM delivery_queue q
     WHERE q.endpoint_id = $1 AND q.queue = 'waiting' AND q.ordering_key IS NOT NULL
     UNION ALL
     SELECT 1 FROM delivery_queue q WHERE q.queue = 'arriving' AND q.endpoint_id = $1
     UNION ALL
     SELECT 1 FROM delivery_queue q WHERE q.queue = 'running' AND q.endpoint_id = $1
       AND NOT EXISTS (SELECT 1 FROM delivery_stopped s WHERE s.delivery_id = q.delivery_id)";

impl EndpointHealth {
    pub async fn of(pool: &Db, endpoint_id: Uuid) -> Result<EndpointHealth> {
        Ok(db::query_as(const_format::concatcp!(
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
                    (SELECT count(*) FROM (",
            PENDING,
            ") p) AS pending,
                    (SELECT count(*) FROM delivery_stopped
                     WHERE endpoint_id = $1 AND state = 'dead') AS dead
             FROM failed"
        ))
        .bind(endpoint_id)
        .fetch_one(pool)
        .await?)
    }
}
