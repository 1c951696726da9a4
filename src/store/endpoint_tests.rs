//! Test callbacks (`POST /v1/endpoints/{id}/test`): one real attempt each, recorded apart
//! from the delivery queue.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Result;
use crate::model::ErrorKind;
use crate::store::{Db, db};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = EndpointTestRecord)]
pub struct EndpointTest {
    /// Also the `X-Callback-Id` the test request carried.
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub partner_id: Uuid,
    #[schema(value_type = crate::model::EventType)]
    pub event_type: String,
    /// `operator` or `partner:<partner id>`
    pub actor: String,
    pub token_id: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub delivered: bool,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    /// The kind of `error` (CONTRACT §7). Not serialized with the row: the API adds it next
    /// to its hint, after the other fields.
    #[serde(skip)]
    pub error_kind: Option<ErrorKind>,
}

const COLUMNS: &str = "id, endpoint_id, partner_id, event_type, actor, token_id, started_at, \
                       duration_ms, delivered, status_code, error, response_body, error_kind";

/// How many test callbacks are kept per endpoint (older ones are dropped as new ones come).
pub const KEEP_PER_ENDPOINT: i64 = 100;

impl EndpointTest {
    pub async fn insert(pool: &Db, t: &EndpointTest) -> Result<()> {
        let mut tx = pool.begin().await?;
        db::query(const_format::concatcp!(
            "INSERT INTO endpoint_tests (",
            COLUMNS,
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(t.id)
        .bind(t.endpoint_id)
        .bind(t.partner_id)
        .bind(&t.event_type)
        .bind(&t.actor)
        .bind(t.token_id)
        .bind(t.started_at)
        .bind(t.duration_ms)
        .bind(t.delivered)
        .bind(t.status_code)
        .bind(&t.error)
        .bind(&t.response_body)
        .bind(t.error_kind.map(ErrorKind::as_str))
        .execute(&mut *tx)
        .await?;
        db::query(
            "DELETE FROM endpoint_tests WHERE endpoint_id = $1 AND id NOT IN (
                 SELECT id FROM endpoint_tests WHERE endpoint_id = $1
                 ORDER BY started_at DESC, id DESC LIMIT $2)",
        )
        .bind(t.endpoint_id)
        .bind(KEEP_PER_ENDPOINT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An endpoint's test callbacks, newest first.
    pub async fn list(pool: &Db, endpoint_id: Uuid) -> Result<Vec<EndpointTest>> {
        Ok(db::query_as(const_format::concatcp!(
            "SELECT ",
            COLUMNS,
            " FROM endpoint_tests WHERE endpoint_id = $1 ORDER BY started_at DESC, id DESC"
        ))
        .bind(endpoint_id)
        .fetch_all(pool)
        .await?)
    }
}

/// `error_kind` columns are text with a CHECK of the kinds' names
/// (migrations/0018_error_kind.sql), read back as the type.
impl sqlx::Type<sqlx::Postgres> for ErrorKind {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for ErrorKind {
    fn decode(
        value: sqlx::postgres::PgValueRef<'r>,
    ) -> std::result::Result<Self, sqlx::error::BoxDynError> {
        let name = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(name.parse()?)
    }
}
