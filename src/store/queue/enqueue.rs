//! The direct enqueue of notifications that Rust has already validated
//! (`NewNotification::validate`): one statement, `callbackd_insert_fanned_out()` (migration
//! 0026), checks the partners, claims the Idempotency-Keys, inserts every notification (UNNEST
//! arrays) and fans them all out to deliveries with the rules of `callbackd_enqueue()`; that
//! insert's trigger wakes the workers (one NOTIFY). SQL callers keep `callbackd_enqueue()`,
//! which validates because nothing before it did.
//!
//! Two users: a group of single calls (`write_group`, the statement alone, each item
//! answered on its own) and a batch (`insert_fanned_out` in the batch's transaction, all or
//! nothing).

use std::collections::{HashMap, HashSet};

use serde_json::value::RawValue;
use uuid::Uuid;

use crate::model::{NewNotification, ValidationError};
use crate::store::{Db, db};
use crate::store::{DeliveryRef, Enqueued, StoreError};

/// One single call of a group: the validated notification and its Idempotency-Key, if any.
pub struct GroupItem<'a> {
    pub notification: &'a NewNotification,
    pub key: Option<&'a str>,
}

/// What became of one item.
#[derive(Debug)]
pub enum Written {
    /// Enqueued now: `{"id", "deliveries"}`, as stored for its key.
    Created(Enqueued),
    /// Its Idempotency-Key was used before with the same request: that first answer.
    Repeated(Box<RawValue>),
    /// Refused alone (unknown partner, key reused with another request); nothing written.
    Refused(StoreError),
}

/// Writes one group of single calls and answers each item: one statement, its own
/// transaction, committed when this returns (one round trip, where a transaction of its own
/// statements took five, seven with keys: docs/performance.md, 2026-12-04, night). Items with
/// a key must carry distinct (partner, key) pairs: a repeat inside one group is the caller's
/// to hold back for the next group, where it finds the first one committed.
///
/// An `Err` means the statement failed and nothing of the group is written: the caller may
/// retry any part of it.
pub async fn write_group(pool: &Db, group: &[GroupItem<'_>]) -> sqlx::Result<Vec<Written>> {
    insert_fanned_out(pool, group).await
}

fn unfinished() -> StoreError {
    StoreError::Conflict("the first request with this Idempotency-Key is unfinished".into())
}

/// The partner ids among `ids` that name no live partner.
pub(crate) async fn unknown_partners(
    conn: impl sqlx::PgExecutor<'_>,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    db::query_scalar(
        "SELECT i FROM unnest($1::uuid[]) AS i
         WHERE NOT EXISTS (SELECT 1 FROM partners p WHERE p.id = i AND p.deleted_at IS NULL)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// The refusal `callbackd_enqueue()` gives an unknown partner, word for word.
pub(crate) fn unknown_partner(id: Uuid) -> StoreError {
    StoreError::Invalid(ValidationError::new(
        "partner_id",
        format!("unknown partner_id: {id}"),
    ))
}

/// One row of `callbackd_insert_fanned_out()`: a delivery made for an item, or the answer of
/// an item that wrote nothing (see migration 0026).
#[derive(sqlx::FromRow)]
struct ItemRow {
    notification_id: Uuid,
    outcome: String,
    delivery_id: Option<Uuid>,
    endpoint_id: Option<Uuid>,
    state: Option<String>,
    answer: Option<String>,
}

/// Writes `items` (validated) with `callbackd_insert_fanned_out()` (migration 0026, which
/// carries its own planner settings): claims their keys, inserts them and fans each out to
/// every enabled, live endpoint of its partner and environment that takes its event type, in
/// item order; the insert's trigger wakes the workers when anything fanned out. Returns each
/// item's answer, in order; a refused or repeated item wrote nothing.
///
/// On a pool, the statement is its own transaction and has committed when this returns (sqlx
/// reads to ReadyForQuery, which follows the implicit commit); in a transaction, it is part
/// of it.
pub async fn insert_fanned_out(
    conn: impl sqlx::PgExecutor<'_>,
    items: &[GroupItem<'_>],
) -> sqlx::Result<Vec<Written>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    // UUIDv7 made here, like the column default: time-ordered, and known before the insert.
    let ids: Vec<Uuid> = items.iter().map(|_| Uuid::now_v7()).collect();
    let column = |f: &dyn Fn(&NewNotification) -> Option<&str>| -> Vec<Option<&str>> {
        items.iter().map(|i| f(i.notification)).collect()
    };
    let rows: Vec<ItemRow> = db::query_as(
        "SELECT notification_id, outcome, delivery_id, endpoint_id, state, answer
         FROM callbackd_insert_fanned_out($1::uuid[], $2::uuid[], $3::text[], $4::text[],
                                          $5::uuid[], $6::int2[], $7::text[], $8::text[],
                                          $9::text[], $10::text[], $11::text[])",
    )
    .bind(&ids)
    .bind(
        items
            .iter()
            .map(|i| i.notification.partner_id)
            .collect::<Vec<_>>(),
    )
    .bind(column(&|n| Some(n.environment.as_str())))
    .bind(column(&|n| Some(n.event_type.as_str())))
    .bind(
        items
            .iter()
            .map(|i| i.notification.proposal)
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|i| i.notification.status.map(|s| i16::from(s.id())))
            .collect::<Vec<_>>(),
    )
    .bind(column(&|n| n.identifier.as_deref()))
    .bind(column(&|n| n.body.as_ref().map(|b| b.get())))
    .bind(column(&|n| n.traceparent.as_deref()))
    .bind(items.iter().map(|i| i.key).collect::<Vec<_>>())
    .bind(
        items
            .iter()
            .map(|i| i.key.map(|_| i.notification.fingerprint()))
            .collect::<Vec<_>>(),
    )
    .fetch_all(conn)
    .await?;

    let mut answered: HashMap<Uuid, Written> = HashMap::new();
    let mut unknown: HashSet<Uuid> = HashSet::new();
    let mut by_notification: HashMap<Uuid, Vec<DeliveryRef>> = HashMap::with_capacity(ids.len());
    for row in rows {
        let notification_id = row.notification_id;
        let written = match (
            row.outcome.as_str(),
            row.delivery_id,
            row.endpoint_id,
            row.state,
            row.answer,
        ) {
            ("delivery", Some(id), Some(endpoint_id), Some(state), _) => {
                let state = state
                    .try_into()
                    .map_err(|e: String| sqlx::Error::Decode(e.into()))?;
                by_notification
                    .entry(notification_id)
                    .or_default()
                    .push(DeliveryRef {
                        id,
                        endpoint_id,
                        state,
                    });
                continue;
            }
            ("unknown_partner", ..) => {
                unknown.insert(notification_id);
                continue;
            }
            ("repeated", .., Some(answer)) => Written::Repeated(
                RawValue::from_string(answer).map_err(|e| sqlx::Error::Decode(e.into()))?,
            ),
            ("conflict", ..) => Written::Refused(StoreError::Conflict(
                "this Idempotency-Key was already used with a different request".into(),
            )),
            ("unfinished", ..) => Written::Refused(unfinished()),
            (other, ..) => {
                return Err(sqlx::Error::Decode(
                    format!("callbackd_insert_fanned_out: unexpected outcome {other:?}").into(),
                ));
            }
        };
        answered.insert(notification_id, written);
    }
    Ok(ids
        .into_iter()
        .zip(items)
        .map(|(id, item)| {
            if unknown.contains(&id) {
                return Written::Refused(unknown_partner(item.notification.partner_id));
            }
            if let Some(written) = answered.remove(&id) {
                return written;
            }
            let mut deliveries = by_notification.remove(&id).unwrap_or_default();
            // As GET /v1/notifications/{id} lists them, and as the stored answer has them.
            deliveries.sort_unstable_by_key(|d| d.id);
            Written::Created(Enqueued { id, deliveries })
        })
        .collect())
}
