use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgConnection, PgExecutor, Postgres, Transaction};
use uuid::Uuid;

use super::{EndpointHealth, Result, StoreError};
use crate::model::{DeliveryOrder, Environment, Method};
use crate::store::{Db, db};

/// An endpoint as the API shows it: the auth object only as its public view.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Endpoint {
    pub id: Uuid,
    pub partner_id: Uuid,
    #[sqlx(try_from = "String")]
    pub environment: Environment,
    pub url: String,
    #[sqlx(try_from = "String")]
    pub method: Method,
    #[schema(value_type = Vec<crate::model::EventType>)]
    pub event_types: Vec<String>,
    #[sqlx(try_from = "String")]
    pub ordering: DeliveryOrder,
    /// The type and non-secret fields only.
    #[sqlx(rename = "auth_public")]
    #[schema(value_type = crate::model::AuthSchema)]
    pub auth: serde_json::Value,
    pub timeout_ms: i32,
    pub max_attempts: i32,
    pub enabled: bool,
    /// `standard_webhooks` when requests are signed, else `none`.
    #[schema(value_type = crate::model::Signing)]
    pub signing: String,
    /// Replay the dead deliveries of the last `auto_replay_window_s` once it answers 2xx.
    pub auto_replay_dead_on_recovery: bool,
    pub auto_replay_window_s: i32,
    /// Requests per second at most, shared by every worker process; None: unlimited.
    pub rate_limit_per_s: Option<i32>,
    /// The proposal statuses (0–11) this endpoint wants; None: all.
    pub statuses: Option<Vec<i16>>,
    /// The schedule event types (`TipoEvento`, 1–6) this endpoint wants; None: all.
    pub schedule_types: Option<Vec<i16>>,
    /// Callbacks carry a W3C `traceparent` header (the attempt span's context).
    pub propagate_trace_context: bool,
    /// A generated signing secret, shown once in the answer that created it.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Filled in by [`Endpoint::with_health`] where a view shows it.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<EndpointHealth>,
}

/// What is written for an endpoint: every field validated, the auth object sealed.
#[derive(Debug, Clone)]
pub struct EndpointRecord {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub environment: Environment,
    pub url: String,
    pub method: Method,
    pub event_types: Vec<String>,
    pub ordering: DeliveryOrder,
    pub signing: SigningChange,
    pub auth_type: String,
    pub auth_public: serde_json::Value,
    pub auth_sealed: Vec<u8>,
    pub timeout_ms: i32,
    pub max_attempts: i32,
    pub enabled: bool,
    pub auto_replay_dead_on_recovery: bool,
    pub auto_replay_window_s: i32,
    pub rate_limit_per_s: Option<i32>,
    pub statuses: Option<Vec<i16>>,
    pub schedule_types: Option<Vec<i16>>,
    pub propagate_trace_context: bool,
}

/// What a write does to the Standard Webhooks keys.
#[derive(Debug, Clone)]
pub enum SigningChange {
    Keep,
    Set(Vec<u8>),
    Clear,
}

impl SigningChange {
    fn mode(&self) -> &'static str {
        match self {
            SigningChange::Keep => "keep",
            SigningChange::Set(_) => "set",
            SigningChange::Clear => "clear",
        }
    }

    fn sealed(&self) -> Option<&[u8]> {
        match self {
            SigningChange::Set(s) => Some(s),
            _ => None,
        }
    }
}

impl EndpointRecord {
    /// Binds what both the insert and the update write, in one order: the next eighteen
    /// parameters (environment through trace propagation), so the two statements cannot drift.
    fn bind_fields<'q, O>(
        &'q self,
        query: QueryAs<'q, Postgres, O, PgArguments>,
    ) -> QueryAs<'q, Postgres, O, PgArguments> {
        query
            .bind(self.environment.as_str())
            .bind(&self.url)
            .bind(self.method.as_str())
            .bind(&self.event_types)
            .bind(&self.auth_type)
            .bind(&self.auth_public)
            .bind(&self.auth_sealed)
            .bind(self.timeout_ms)
            .bind(self.max_attempts)
            .bind(self.enabled)
            .bind(self.ordering.as_str())
            .bind(self.signing.sealed())
            .bind(self.auto_replay_dead_on_recovery)
            .bind(self.auto_replay_window_s)
            .bind(self.rate_limit_per_s)
            .bind(&self.statuses)
            .bind(&self.schedule_types)
            .bind(self.propagate_trace_context)
    }
}

const RETURNING: &str = "id, partner_id, environment, url, method, event_types, ordering, \
                         auth_public, timeout_ms, max_attempts, enabled, \
                         CASE WHEN signing_sealed IS NULL THEN 'none' ELSE 'standard_webhooks' END \
                         AS signing, auto_replay_dead_on_recovery, auto_replay_window_s, \
                         rate_limit_per_s, statuses, schedule_types, propagate_trace_context, \
                         created_at, updated_at";

/// The live endpoint with id `$1`; [`Endpoint::lock`] adds `FOR UPDATE`.
const BY_ID: &str = const_format::concatcp!(
    "SELECT ",
    RETURNING,
    " FROM endpoints WHERE id = $1 AND deleted_at IS NULL"
);

impl Endpoint {
    pub async fn insert(db: impl PgExecutor<'_>, r: &EndpointRecord) -> Result<Endpoint> {
        let query = db::query_as(const_format::concatcp!(
            "INSERT INTO endpoints (id, partner_id, environment, url, method, event_types,
                 auth_type, auth_public, auth_sealed, timeout_ms, max_attempts, enabled, ordering,
                 signing_sealed, auto_replay_dead_on_recovery, auto_replay_window_s,
                 rate_limit_per_s, statuses, schedule_types, propagate_trace_context)
             SELECT $1, p.id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                    $18, $19, $20
             FROM partners p WHERE p.id = $2 AND p.deleted_at IS NULL
             RETURNING ",
            RETURNING
        ))
        .bind(r.id)
        .bind(r.partner_id);
        r.bind_fields(query)
            .fetch_optional(db)
            .await?
            .ok_or(StoreError::NotFound("partner"))
    }

    /// Rewrites every field; the auth columns only when `r.auth_sealed` is not empty
    /// (a PATCH without `auth` keeps the stored credentials).
    pub async fn update(conn: &mut PgConnection, r: &EndpointRecord) -> Result<Endpoint> {
        let query = db::query_as(const_format::concatcp!(
            "UPDATE endpoints SET environment = $2, url = $3, method = $4, event_types = $5,
                 auth_type = CASE WHEN length($8) > 0 THEN $6 ELSE auth_type END,
                 auth_public = CASE WHEN length($8) > 0 THEN $7 ELSE auth_public END,
                 auth_sealed = CASE WHEN length($8) > 0 THEN $8 ELSE auth_sealed END,
                 timeout_ms = $9, max_attempts = $10, enabled = $11, ordering = $12,
                 signing_sealed = CASE $20 WHEN 'keep' THEN signing_sealed
                                           WHEN 'set' THEN $13 END,
                 auto_replay_dead_on_recovery = $14, auto_replay_window_s = $15,
                 rate_limit_per_s = $16, statuses = $17, schedule_types = $18,
                 propagate_trace_context = $19,
                 rate_tat = CASE WHEN $16::int4 IS NULL THEN NULL ELSE rate_tat END,
                 updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL
             RETURNING ",
            RETURNING
        ))
        .bind(r.id);
        let updated = r
            .bind_fields(query)
            .bind(r.signing.mode())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound("endpoint"))?;
        if r.ordering == DeliveryOrder::None {
            // The endpoint's current setting governs: nothing of it waits for a predecessor.
            super::queue::transitions::unorder(&mut *conn, r.id).await?;
        }
        // Re-enabled (or re-pointed): its waiting deliveries are due now.
        db::query("SELECT pg_notify($1, '')")
            .bind(super::WAKE_CHANNEL)
            .execute(&mut *conn)
            .await?;
        Ok(updated)
    }

    pub async fn with_health(mut self, pool: &Db) -> Result<Endpoint> {
        self.health = Some(EndpointHealth::of(pool, self.id).await?);
        Ok(self)
    }

    pub async fn get(pool: &Db, id: Uuid) -> Result<Endpoint> {
        db::query_as(BY_ID)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .ok_or(StoreError::NotFound("endpoint"))
    }

    /// The endpoint, its row locked until `tx` ends (so that an audited change records
    /// exactly what it replaced).
    pub async fn lock(tx: &mut PgConnection, id: Uuid) -> Result<Endpoint> {
        db::query_as(const_format::concatcp!(BY_ID, " FOR UPDATE"))
            .bind(id)
            .fetch_optional(tx)
            .await?
            .ok_or(StoreError::NotFound("endpoint"))
    }

    /// The sealed auth object and Standard Webhooks keys of a live endpoint.
    pub async fn sealed_credentials(pool: &Db, id: Uuid) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
        db::query_as(
            "SELECT auth_sealed, signing_sealed FROM endpoints WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound("endpoint"))
    }

    /// A partner's endpoints, or every endpoint when `partner_id` is None.
    pub async fn list(pool: &Db, partner_id: Option<Uuid>) -> Result<Vec<Endpoint>> {
        Ok(db::query_as(const_format::concatcp!(
            "SELECT ",
            RETURNING,
            " FROM endpoints WHERE ($1::uuid IS NULL OR partner_id = $1) AND deleted_at IS NULL
              ORDER BY partner_id, environment, created_at, id"
        ))
        .bind(partner_id)
        .fetch_all(pool)
        .await?)
    }

    /// Soft delete; its pending deliveries are canceled (a deleted URL is never called).
    /// Takes effect when the caller commits `tx`.
    pub async fn delete(tx: &mut Transaction<'static, Postgres>, id: Uuid) -> Result<()> {
        let hit = db::query(
            "UPDATE endpoints SET deleted_at = now(), enabled = false, updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
        if hit.rows_affected() == 0 {
            return Err(StoreError::NotFound("endpoint"));
        }
        super::queue::transitions::cancel_pending(
            tx,
            super::queue::transitions::Scope::Endpoint(id),
            "endpoint deleted",
        )
        .await?;
        Ok(())
    }
}
