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

impl Notification {
    /// Enqueues through `callbackd_enqueue()` in `tx` and returns the notification id and
    /// the deliveries it fanned out to. The caller commits.
    pub async fn enqueue_in(
        tx: &mut Transaction<'static, Postgres>,
        n: &NewNotification,
    ) -> Result<(Uuid, Vec<DeliveryRef>)> {
        let id: Uuid =
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
                .map_err(classify)?;
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

    pub async fn get(pool: &PgPool, id: Uuid) -> Result<Notification> {
        let mut n: Notification = sqlx::query_as(
            "SELECT id, partner_id, environment, event_type, proposal, status, identifier,
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
