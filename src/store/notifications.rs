use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{Result, StoreError, classify};
use crate::model::{DeliveryState, NewNotification, ProposalStatus};

/// A delivery as listed inside an enqueue answer or a notification.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryRef {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    #[sqlx(try_from = "String")]
    pub state: DeliveryState,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Notification {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub environment: String,
    pub event_type: String,
    pub proposal: Option<Uuid>,
    pub status: Option<i16>,
    #[sqlx(skip)]
    pub status_name: Option<&'static str>,
    /// The NomeEvento of a schedule event, the description of a banking event.
    pub event_name: Option<String>,
    pub identifier: Option<String>,
    #[sqlx(try_from = "Option<String>")]
    pub body: JsonText,
    pub created_at: DateTime<Utc>,
    #[sqlx(skip)]
    pub deliveries: Vec<DeliveryRef>,
}

/// A JSON document kept as its exact text (key order, numbers) and shown as JSON.
#[derive(Debug, Clone, Default)]
pub struct JsonText(pub Option<Box<RawValue>>);

impl TryFrom<Option<String>> for JsonText {
    type Error = serde_json::Error;
    fn try_from(text: Option<String>) -> Result<Self, Self::Error> {
        Ok(JsonText(text.map(RawValue::from_string).transpose()?))
    }
}

impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

pub(crate) fn status_name(status: Option<i16>) -> Option<&'static str> {
    status
        .and_then(|s| ProposalStatus::new(s.into()).ok())
        .map(ProposalStatus::name)
}

/// The answer to one enqueue: `{"id", "deliveries"}`.
#[derive(Debug, Clone, Serialize)]
pub struct Enqueued {
    pub id: Uuid,
    pub deliveries: Vec<DeliveryRef>,
}

/// The outcome of an enqueue under an Idempotency-Key: the answer as the exact text of the
/// first request's answer, and whether this request created it.
#[derive(Debug)]
pub enum Keyed {
    Created(Box<RawValue>),
    Repeated(Box<RawValue>),
}

/// A refused batch: the input index and why.
#[derive(Debug)]
pub struct ItemError {
    pub index: usize,
    pub error: StoreError,
}

impl Notification {
    /// Enqueues through `callbackd_enqueue()` in `tx` and returns the notification id and
    /// the deliveries it fanned out to. The caller commits.
    pub async fn enqueue_in(
        tx: &mut Transaction<'static, Postgres>,
        n: &NewNotification,
    ) -> Result<(Uuid, Vec<DeliveryRef>)> {
        let id = call_enqueue(tx, n).await?;
        let deliveries = sqlx::query_as(
            "SELECT id, endpoint_id, state FROM deliveries WHERE notification_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
        Ok((id, deliveries))
    }

    pub async fn enqueue(pool: &PgPool, n: &NewNotification) -> Result<(Uuid, Vec<DeliveryRef>)> {
        let mut tx = pool.begin().await?;
        let out = Self::enqueue_in(&mut tx, n).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Enqueues once per (partner, key). The key row is inserted first, in the enqueue's
    /// transaction: a concurrent request with the same key blocks on the primary key until
    /// this one commits, then finds the row and gets the stored answer. If the enqueue fails,
    /// the rollback takes the key row with it. The same key with another request: Conflict.
    pub async fn enqueue_keyed(pool: &PgPool, n: &NewNotification, key: &str) -> Result<Keyed> {
        let fingerprint = n.fingerprint();
        let mut tx = pool.begin().await?;
        let claimed: Option<bool> = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (partner_id, key, request_hash)
             VALUES ($1, $2, sha256(convert_to($3, 'UTF8')))
             ON CONFLICT (partner_id, key) DO NOTHING
             RETURNING true",
        )
        .bind(n.partner_id)
        .bind(key)
        .bind(&fingerprint)
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            // Taken by a committed request (a racing one was waited for by the INSERT).
            let (same, response): (bool, Option<String>) = sqlx::query_as(
                "SELECT request_hash = sha256(convert_to($3, 'UTF8')), response::text
                 FROM idempotency_keys WHERE partner_id = $1 AND key = $2",
            )
            .bind(n.partner_id)
            .bind(key)
            .bind(&fingerprint)
            .fetch_one(&mut *tx)
            .await?;
            tx.rollback().await?;
            if !same {
                return Err(StoreError::Conflict(
                    "this Idempotency-Key was already used with a different request".into(),
                ));
            }
            let response = response.ok_or_else(|| {
                StoreError::Conflict(
                    "the first request with this Idempotency-Key is unfinished".into(),
                )
            })?;
            return Ok(Keyed::Repeated(RawValue::from_string(response).map_err(
                |e| StoreError::Database(sqlx::Error::Decode(e.into())),
            )?));
        }
        let (id, deliveries) = Self::enqueue_in(&mut tx, n).await?;
        let answer = serde_json::value::to_raw_value(&Enqueued { id, deliveries })
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.into())))?;
        sqlx::query(
            "UPDATE idempotency_keys SET notification_id = $3, response = $4::text::json
             WHERE partner_id = $1 AND key = $2",
        )
        .bind(n.partner_id)
        .bind(key)
        .bind(id)
        .bind(answer.get())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Keyed::Created(answer))
    }

    /// The partner ids among `ids` that name no (live) partner.
    pub async fn unknown_partners(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        Ok(sqlx::query_scalar(
            "SELECT i FROM unnest($1::uuid[]) AS i
             WHERE NOT EXISTS (SELECT 1 FROM partners p WHERE p.id = i AND p.deleted_at IS NULL)",
        )
        .bind(ids)
        .fetch_all(pool)
        .await?)
    }

    /// Enqueues every notification in one transaction, all or nothing: one
    /// `callbackd_enqueue()` call per item (so a refusal names its item), then one query for
    /// all the deliveries. The workers get one NOTIFY at commit (PostgreSQL folds them).
    pub async fn enqueue_batch(
        pool: &PgPool,
        items: &[NewNotification],
    ) -> Result<Vec<Enqueued>, ItemError> {
        let whole = |error: StoreError| ItemError { index: 0, error };
        let mut tx = pool.begin().await.map_err(|e| whole(e.into()))?;
        let mut ids = Vec::with_capacity(items.len());
        for (index, n) in items.iter().enumerate() {
            ids.push(
                call_enqueue(&mut tx, n)
                    .await
                    .map_err(|error| ItemError { index, error })?,
            );
        }
        let rows: Vec<(Uuid, Uuid, Uuid, String)> = sqlx::query_as(
            "SELECT notification_id, id, endpoint_id, state FROM deliveries
             WHERE notification_id = ANY($1) ORDER BY notification_id, id",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| whole(e.into()))?;
        tx.commit().await.map_err(|e| whole(e.into()))?;
        let mut by_notification: std::collections::HashMap<Uuid, Vec<DeliveryRef>> =
            std::collections::HashMap::with_capacity(ids.len());
        for (notification_id, id, endpoint_id, state) in rows {
            let state = state
                .try_into()
                .map_err(|e: String| whole(StoreError::Database(sqlx::Error::Decode(e.into()))))?;
            by_notification
                .entry(notification_id)
                .or_default()
                .push(DeliveryRef {
                    id,
                    endpoint_id,
                    state,
                });
        }
        Ok(ids
            .into_iter()
            .map(|id| Enqueued {
                id,
                deliveries: by_notification.remove(&id).unwrap_or_default(),
            })
            .collect())
    }

    pub async fn get(pool: &PgPool, id: Uuid) -> Result<Notification> {
        let mut n: Notification = sqlx::query_as(
            "SELECT id, partner_id, environment, event_type, proposal, status,
                    callbackd_event_name(event_type, body) AS event_name, identifier,
                    body::text AS body, created_at
             FROM notifications WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound("notification"))?;
        n.status_name = status_name(n.status);
        n.deliveries = sqlx::query_as(
            "SELECT id, endpoint_id, state FROM deliveries WHERE notification_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        Ok(n)
    }
}

/// One `callbackd_enqueue()` call; returns the notification id.
async fn call_enqueue(
    tx: &mut Transaction<'static, Postgres>,
    n: &NewNotification,
) -> Result<Uuid> {
    sqlx::query_scalar("SELECT callbackd_enqueue($1, $2, $3, $4, $5, $6, $7::text::json)")
        .bind(n.partner_id)
        .bind(n.environment.as_str())
        .bind(n.event_type.as_str())
        .bind(n.proposal)
        .bind(n.status.map(|s| i32::from(s.id())))
        .bind(n.identifier.as_deref())
        .bind(n.body.as_ref().map(|b| b.get()))
        .fetch_one(&mut **tx)
        .await
        .map_err(classify)
}
