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

/// A refused batch: why, and the input index when one item is to blame.
#[derive(Debug)]
pub struct ItemError {
    pub index: Option<usize>,
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

    /// Enqueues every notification in one transaction, all or nothing: one statement calls
    /// `callbackd_enqueue()` for every item (one round trip for the whole batch), then one
    /// query reads all the deliveries. The workers get one NOTIFY at commit (PostgreSQL
    /// folds them). If the database refuses an item, the transaction is rolled back and the
    /// items are replayed one by one in a transaction that is always rolled back, to name it.
    pub async fn enqueue_batch(
        pool: &PgPool,
        items: &[NewNotification],
    ) -> Result<Vec<Enqueued>, ItemError> {
        let whole = |error: StoreError| ItemError { index: None, error };
        let mut tx = pool.begin().await.map_err(|e| whole(e.into()))?;
        let enqueued: std::result::Result<Vec<(i64, Uuid)>, sqlx::Error> = sqlx::query_as(
            "SELECT x.n, callbackd_enqueue(x.p, x.e, x.t, x.pr, x.s, x.i, x.b::json)
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::int4[],
                         $6::text[], $7::text[])
                  WITH ORDINALITY AS x(p, e, t, pr, s, i, b, n)",
        )
        .bind(items.iter().map(|n| n.partner_id).collect::<Vec<_>>())
        .bind(
            items
                .iter()
                .map(|n| n.environment.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            items
                .iter()
                .map(|n| n.event_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(items.iter().map(|n| n.proposal).collect::<Vec<_>>())
        .bind(
            items
                .iter()
                .map(|n| n.status.map(|s| i32::from(s.id())))
                .collect::<Vec<_>>(),
        )
        .bind(
            items
                .iter()
                .map(|n| n.identifier.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            items
                .iter()
                .map(|n| n.body.as_ref().map(|b| b.get()))
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await;
        let mut enqueued = match enqueued.map_err(classify) {
            Ok(rows) => rows,
            Err(StoreError::Invalid(v)) => {
                tx.rollback().await.map_err(|e| whole(e.into()))?;
                let index = Self::find_refused(pool, items).await.map_err(whole)?;
                return Err(ItemError {
                    index,
                    error: StoreError::Invalid(v),
                });
            }
            Err(other) => return Err(whole(other)),
        };
        enqueued.sort_unstable_by_key(|(n, _)| *n);
        let ids: Vec<Uuid> = enqueued.into_iter().map(|(_, id)| id).collect();
        if ids.len() != items.len() {
            return Err(whole(StoreError::Database(sqlx::Error::Protocol(format!(
                "batch enqueue returned {} ids for {} items",
                ids.len(),
                items.len()
            )))));
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

    /// The index of the first item the database refuses, found by enqueueing them one by
    /// one in a transaction that is rolled back whatever happens.
    async fn find_refused(pool: &PgPool, items: &[NewNotification]) -> Result<Option<usize>> {
        let mut tx = pool.begin().await?;
        let mut refused = None;
        for (index, n) in items.iter().enumerate() {
            match call_enqueue(&mut tx, n).await {
                Ok(_) => {}
                Err(StoreError::Invalid(_)) => {
                    refused = Some(index);
                    break;
                }
                Err(other) => return Err(other),
            }
        }
        tx.rollback().await?;
        Ok(refused)
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
