use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::queue::enqueue::{GroupItem, Written};
use super::{Result, StoreError, classify, queue};
use crate::model::{DeliveryState, NewNotification, ProposalStatus};
use crate::store::{Db, db};

/// A delivery as listed inside an enqueue answer or a notification.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeliveryRef {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    #[sqlx(try_from = "String")]
    pub state: DeliveryState,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Notification {
    pub id: Uuid,
    pub partner_id: Uuid,
    #[schema(value_type = crate::model::Environment)]
    pub environment: String,
    #[schema(value_type = crate::model::EventType)]
    pub event_type: String,
    pub proposal: Option<Uuid>,
    pub status: Option<i16>,
    #[sqlx(skip)]
    pub status_name: Option<&'static str>,
    /// The NomeEvento of a schedule event, the description of a banking event.
    pub event_name: Option<String>,
    pub identifier: Option<String>,
    /// The body as it was enqueued (absent: null).
    #[sqlx(try_from = "Option<String>")]
    #[schema(value_type = Option<Object>)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Enqueued {
    pub id: Uuid,
    pub deliveries: Vec<DeliveryRef>,
}

/// A refused batch: why, and the input index when one item is to blame.
#[derive(Debug)]
pub struct ItemError {
    pub index: Option<usize>,
    pub error: StoreError,
}

impl Notification {
    /// The partner ids among `ids` that name no (live) partner.
    pub async fn unknown_partners(pool: &Db, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        Ok(queue::enqueue::unknown_partners(pool, ids).await?)
    }

    /// Enqueues every notification (validated by the caller) in one transaction, all or
    /// nothing, with the direct set-based insert: one statement checks the partners, inserts
    /// the notifications and fans them out (one NOTIFY). If the database refuses the data,
    /// the items are replayed one by one in a transaction that is always rolled back, to
    /// name the item to blame.
    pub async fn enqueue_batch(
        pool: &Db,
        items: &[NewNotification],
    ) -> Result<Vec<Enqueued>, ItemError> {
        let whole = |error: StoreError| ItemError { index: None, error };
        let refs: Vec<GroupItem<'_>> = items
            .iter()
            .map(|notification| GroupItem {
                notification,
                key: None,
            })
            .collect();
        let mut tx = pool.begin().await.map_err(|e| whole(e.into()))?;
        match queue::enqueue::insert_fanned_out(&mut *tx, &refs).await {
            Ok(written) => {
                let mut answers = Vec::with_capacity(written.len());
                for (index, w) in written.into_iter().enumerate() {
                    match w {
                        Written::Created(e) => answers.push(e),
                        // Without keys, nothing is repeated; an unknown partner is the one
                        // refusal left.
                        Written::Refused(error) => {
                            tx.rollback().await.map_err(|e| whole(e.into()))?;
                            return Err(ItemError {
                                index: Some(index),
                                error,
                            });
                        }
                        Written::Repeated(_) => {
                            return Err(whole(StoreError::Database(sqlx::Error::Protocol(
                                "a batch item without a key was answered as a repeat".into(),
                            ))));
                        }
                    }
                }
                tx.commit().await.map_err(|e| whole(e.into()))?;
                Ok(answers)
            }
            Err(e @ sqlx::Error::Database(_)) => {
                tx.rollback().await.map_err(|e| whole(e.into()))?;
                let index = Self::find_refused(pool, &refs).await.map_err(whole)?;
                Err(ItemError {
                    index,
                    error: classify(e),
                })
            }
            Err(e) => Err(whole(e.into())),
        }
    }

    /// The index of the first item the database refuses, found by inserting them one by
    /// one in a transaction that is rolled back whatever happens.
    async fn find_refused(pool: &Db, items: &[GroupItem<'_>]) -> Result<Option<usize>> {
        let mut tx = pool.begin().await?;
        let mut refused = None;
        for (index, n) in items.iter().enumerate() {
            match queue::enqueue::insert_fanned_out(&mut *tx, std::slice::from_ref(n)).await {
                Ok(_) => {}
                Err(sqlx::Error::Database(_)) => {
                    refused = Some(index);
                    break;
                }
                Err(other) => return Err(other.into()),
            }
        }
        tx.rollback().await?;
        Ok(refused)
    }

    pub async fn get(pool: &Db, id: Uuid) -> Result<Notification> {
        let mut n: Notification = db::query_as(
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
        n.deliveries = db::query_as(
            "SELECT id, endpoint_id, state FROM deliveries WHERE notification_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        Ok(n)
    }
}
