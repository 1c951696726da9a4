//! Deliveries as operators see them: list, inspect, replay, cancel.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use super::notifications::status_name;
use super::{Cursor, Result, StoreError, WAKE_CHANNEL};
use crate::model::{DeliveryState, Environment, EventType, Trigger};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub notification_id: Uuid,
    pub partner_id: Uuid,
    pub endpoint_id: Uuid,
    pub environment: String,
    pub event_type: String,
    pub proposal: Option<Uuid>,
    pub status: Option<i16>,
    #[sqlx(skip)]
    pub status_name: Option<&'static str>,
    pub event_name: Option<String>,
    pub identifier: Option<String>,
    #[sqlx(try_from = "String")]
    pub state: DeliveryState,
    pub series: i32,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// `X-Callback-Sequence` of this delivery when its endpoint orders per proposal.
    pub sequence: Option<i64>,
    pub out_of_order: bool,
    /// Why the current series was started: initial, operator, partner or auto_recovery.
    #[sqlx(try_from = "String")]
    pub trigger: Trigger,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Attempt {
    pub series: i32,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// CONTRACT §7: timeout, dns, connect, tls, redirect, http_4xx, http_5xx,
    /// auth_rejected, body_too_large (and forbidden_target, auth, other); null on success.
    pub error_kind: Option<String>,
    /// Why this attempt's series was started (CONTRACT §7).
    #[sqlx(try_from = "String")]
    pub trigger: Trigger,
    pub response_body: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub attempt_log: Vec<Attempt>,
}

/// The filters of `GET /v1/deliveries`; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
    pub partner_id: Option<Uuid>,
    pub endpoint_id: Option<Uuid>,
    pub environment: Option<Environment>,
    pub event_type: Option<EventType>,
    pub proposal: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

const SELECT: &str = "SELECT d.id, d.notification_id, d.partner_id, d.endpoint_id, d.environment,
        d.event_type, d.proposal, n.status,
        callbackd_event_name(d.event_type, n.body) AS event_name, n.identifier, d.state, d.series, d.attempts,
        d.next_attempt_at, d.last_status_code, d.last_error, d.created_at, d.updated_at,
        d.delivered_at, d.sequence, d.trigger,
        -- A later delivery of the same proposal reached the partner before this one did
        -- (possible only after a replay): the partner may have to reconcile.
        (d.ordering_key IS NOT NULL AND EXISTS (
            SELECT 1 FROM deliveries q
            WHERE q.endpoint_id = d.endpoint_id AND q.ordering_key = d.ordering_key
              AND q.sequence > d.sequence AND q.state = 'delivered'
              AND q.delivered_at < coalesce(d.delivered_at, 'infinity')
              AND d.series > 1)) AS out_of_order
     FROM deliveries d JOIN notifications n ON n.id = d.notification_id";

/// What a replay does to a delivery: pending again, a new series from attempt 1 (the caller
/// sets `trigger` and, unless it uses [`REPLAY_SET`], `next_attempt_at`).
pub(crate) const REPLAY_SERIES: &str = "state = 'pending', series = series + 1, attempts = 0,
    locked_until = NULL, lease_token = NULL, updated_at = now()";

/// [`REPLAY_SERIES`], due now.
pub(crate) const REPLAY_SET: &str =
    const_format::concatcp!(REPLAY_SERIES, ", next_attempt_at = now()");

/// Which pending deliveries a configuration change cancels.
pub(crate) enum Scope {
    Partner(Uuid),
    Endpoint(Uuid),
}

fn named(mut d: Delivery) -> Delivery {
    d.status_name = status_name(d.status);
    d
}

impl Delivery {
    /// Newest first; returns the page and the cursor of the next one, if any.
    pub async fn list(
        pool: &PgPool,
        filter: &DeliveryFilter,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<(Vec<Delivery>, Option<Cursor>)> {
        let mut q = QueryBuilder::<Postgres>::new(SELECT);
        q.push(" WHERE true");
        push_filter(&mut q, filter);
        if let Some(c) = after {
            q.push(" AND (d.created_at, d.id) < (")
                .push_bind(c.created_at)
                .push(", ")
                .push_bind(c.id)
                .push(")");
        }
        q.push(" ORDER BY d.created_at DESC, d.id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let mut rows: Vec<Delivery> = q.build_query_as().fetch_all(pool).await?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|d| Cursor {
                created_at: d.created_at,
                id: d.id,
            })
        } else {
            None
        };
        Ok((rows.into_iter().map(named).collect(), next))
    }

    pub async fn get(pool: &PgPool, id: Uuid) -> Result<DeliveryDetail> {
        let delivery: Delivery =
            sqlx::query_as(const_format::concatcp!(SELECT, " WHERE d.id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("delivery"))?;
        let attempt_log = sqlx::query_as(
            "SELECT series, attempt, started_at, duration_ms, status_code, error, error_kind,
                    coalesce(trigger, CASE WHEN series = 1 THEN 'initial' ELSE 'operator' END)
                        AS trigger,
                    response_body
             FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        Ok(DeliveryDetail {
            delivery: named(delivery),
            attempt_log,
        })
    }

    /// A dead or canceled delivery goes back to pending with a fresh series of attempts,
    /// started by `trigger` (who asked).
    pub async fn replay(pool: &PgPool, id: Uuid, trigger: Trigger) -> Result<DeliveryDetail> {
        let mut tx = pool.begin().await?;
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM deliveries WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        match state.as_deref() {
            None => return Err(StoreError::NotFound("delivery")),
            Some("dead" | "canceled") => {}
            Some(other) => {
                return Err(StoreError::Conflict(format!(
                    "only dead or canceled deliveries can be replayed; this one is {other}"
                )));
            }
        }
        sqlx::query(const_format::concatcp!(
            "UPDATE deliveries SET ",
            REPLAY_SET,
            ", trigger = $2 WHERE id = $1"
        ))
        .bind(id)
        .bind(trigger.as_str())
        .execute(&mut *tx)
        .await?;
        wake(&mut tx).await?;
        tx.commit().await?;
        Self::get(pool, id).await
    }

    /// A pending delivery is never sent again. One in flight finishes its request, but its
    /// outcome no longer changes the state.
    pub async fn cancel(pool: &PgPool, id: Uuid) -> Result<DeliveryDetail> {
        Self::cancel_because(pool, id, "canceled by operator").await
    }

    /// [`Delivery::cancel`] with the `last_error` to record (who canceled it).
    pub async fn cancel_because(pool: &PgPool, id: Uuid, reason: &str) -> Result<DeliveryDetail> {
        let updated = sqlx::query_scalar::<_, String>(
            "WITH target AS (SELECT id, state FROM deliveries WHERE id = $1 FOR UPDATE)
             UPDATE deliveries d SET
                 state = CASE WHEN t.state = 'pending' THEN 'canceled' ELSE d.state END,
                 locked_until = CASE WHEN t.state = 'pending' THEN NULL ELSE d.locked_until END,
                 lease_token = CASE WHEN t.state = 'pending' THEN NULL ELSE d.lease_token END,
                 last_error = CASE WHEN t.state = 'pending' THEN $2
                                   ELSE d.last_error END,
                 updated_at = CASE WHEN t.state = 'pending' THEN now() ELSE d.updated_at END
             FROM target t WHERE d.id = t.id
             RETURNING t.state",
        )
        .bind(id)
        .bind(reason)
        .fetch_optional(pool)
        .await?;
        match updated.as_deref() {
            None => Err(StoreError::NotFound("delivery")),
            Some("pending") => Self::get(pool, id).await,
            Some(other) => Err(StoreError::Conflict(format!(
                "only pending deliveries can be canceled; this one is {other}"
            ))),
        }
    }
}

pub(crate) fn push_filter(q: &mut QueryBuilder<Postgres>, f: &DeliveryFilter) {
    if let Some(v) = f.state {
        q.push(" AND d.state = ").push_bind(v.as_str());
    }
    if let Some(v) = f.partner_id {
        q.push(" AND d.partner_id = ").push_bind(v);
    }
    if let Some(v) = f.endpoint_id {
        q.push(" AND d.endpoint_id = ").push_bind(v);
    }
    if let Some(v) = f.environment {
        q.push(" AND d.environment = ").push_bind(v.as_str());
    }
    if let Some(v) = f.event_type {
        q.push(" AND d.event_type = ").push_bind(v.as_str());
    }
    if let Some(v) = f.proposal {
        q.push(" AND d.proposal = ").push_bind(v);
    }
    if let Some(v) = f.since {
        q.push(" AND d.created_at >= ").push_bind(v);
    }
    if let Some(v) = f.until {
        q.push(" AND d.created_at < ").push_bind(v);
    }
}

pub(crate) async fn cancel_pending(
    tx: &mut Transaction<'static, Postgres>,
    scope: Scope,
    reason: &str,
) -> Result<u64> {
    let (partner, endpoint) = match scope {
        Scope::Partner(id) => (Some(id), None),
        Scope::Endpoint(id) => (None, Some(id)),
    };
    let done = sqlx::query(
        "UPDATE deliveries SET state = 'canceled', last_error = $3, locked_until = NULL,
             lease_token = NULL, updated_at = now()
         WHERE state = 'pending'
           AND ($1::uuid IS NULL OR partner_id = $1)
           AND ($2::uuid IS NULL OR endpoint_id = $2)",
    )
    .bind(partner)
    .bind(endpoint)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// Wakes the workers when `tx` commits.
pub(crate) async fn wake(tx: &mut Transaction<'static, Postgres>) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WAKE_CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
