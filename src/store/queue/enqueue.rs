//! The direct enqueue of notifications that Rust has already validated
//! (`NewNotification::validate`): set-based SQL, no plpgsql validation. One statement,
//! `callbackd_insert_fanned_out()` (migration 0026), checks the partners, inserts every
//! notification (UNNEST arrays) and fans them all out to deliveries with the rules of
//! `callbackd_enqueue()`; that insert's trigger wakes the workers (one NOTIFY). SQL callers
//! keep `callbackd_enqueue()`, which validates because nothing before it did.
//!
//! Two users: a group of single calls (`write_group`, each item answered on its own) and a
//! batch (`insert_fanned_out` in the batch's transaction, all or nothing).

use std::collections::{HashMap, HashSet};

use serde_json::value::RawValue;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::model::{NewNotification, ValidationError};
use crate::store::{Db, db};
use crate::store::{DeliveryRef, Enqueued, StoreError};

/// One single call of a group: the validated notification and its Idempotency-Key, if any.
pub struct GroupItem<'a> {
    pub notification: &'a NewNotification,
    pub key: Option<&'a str>,
}

/// What became of one item of a committed group.
#[derive(Debug)]
pub enum Written {
    /// Enqueued now: the answer `{"id", "deliveries"}` as stored for its key.
    Created(Box<RawValue>),
    /// Its Idempotency-Key was used before with the same request: that first answer.
    Repeated(Box<RawValue>),
    /// Refused alone (unknown partner, key reused with another request); nothing written.
    Refused(StoreError),
}

/// Writes one group in one transaction and answers each item. Items with a key must carry
/// distinct (partner, key) pairs: a repeat inside one group is the caller's to hold back for
/// the next group, where it finds the first one committed.
///
/// A group without keys is one statement, its own transaction (one round trip, where a
/// transaction of its own statements took five: docs/performance.md, 2026-12-04, night);
/// with keys, the key statements run around it in one transaction.
///
/// An `Err` means a statement failed and the whole group was rolled back: nothing of it is
/// written, and the caller may retry any part of it.
pub async fn write_group(pool: &Db, group: &[GroupItem<'_>]) -> sqlx::Result<Vec<Written>> {
    let items: Vec<&NewNotification> = group.iter().map(|i| i.notification).collect();
    if group.iter().all(|i| i.key.is_none()) {
        let fanned = insert_fanned_out(pool, &items).await?;
        return group
            .iter()
            .zip(fanned)
            .map(|(item, fanned)| match fanned {
                Some(e) => Ok(Written::Created(answer_of(&e)?)),
                None => Ok(Written::Refused(unknown_partner(
                    item.notification.partner_id,
                ))),
            })
            .collect();
    }

    // Every statement's cached generic plan: each is a probe per item whatever the
    // estimates, and PostgreSQL planned the partner check again for every group otherwise
    // (its custom plan for one item looked cheaper than the generic one for ten).
    let mut tx = db::begin_probing(pool, db::Plans::Cached).await?;
    let mut answers: Vec<Option<Written>> = (0..group.len()).map(|_| None).collect();

    // Before the keys: an item of an unknown partner claims no key.
    let mut partners: Vec<Uuid> = items.iter().map(|n| n.partner_id).collect();
    partners.sort_unstable();
    partners.dedup();
    let unknown: HashSet<Uuid> = unknown_partners(&mut *tx, &partners)
        .await?
        .into_iter()
        .collect();
    for (item, answer) in group.iter().zip(&mut answers) {
        let partner = item.notification.partner_id;
        if unknown.contains(&partner) {
            *answer = Some(Written::Refused(unknown_partner(partner)));
        }
    }
    claim_keys(&mut tx, group, &mut answers).await?;

    let (indexes, items): (Vec<usize>, Vec<&NewNotification>) = group
        .iter()
        .enumerate()
        .filter(|(i, _)| answers[*i].is_none())
        .map(|(i, item)| (i, item.notification))
        .unzip();
    let fanned = insert_fanned_out(&mut *tx, &items).await?;
    let mut stored_keys = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (index, fanned) in indexes.into_iter().zip(fanned) {
        let item = &group[index];
        let partner = item.notification.partner_id;
        let Some(e) = fanned else {
            // Deleted since the check above: refused, and its key, if claimed, let go with
            // the other keys' answers below (no answer stored: the row is removed).
            answers[index] = Some(Written::Refused(unknown_partner(partner)));
            if let Some(key) = item.key {
                stored_keys.0.push(partner);
                stored_keys.1.push(key);
                stored_keys.2.push(None);
                stored_keys.3.push(None);
            }
            continue;
        };
        let answer = answer_of(&e)?;
        if let Some(key) = item.key {
            stored_keys.0.push(partner);
            stored_keys.1.push(key);
            stored_keys.2.push(Some(e.id));
            stored_keys.3.push(Some(answer.get().to_owned()));
        }
        answers[index] = Some(Written::Created(answer));
    }
    if !stored_keys.0.is_empty() {
        // A key whose item was refused after all is deleted; every other one gets its answer.
        db::query(
            "WITH x AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[])
                                 AS x(p, key, id, answer)),
                  stored AS (
                      UPDATE idempotency_keys k SET notification_id = x.id,
                                                    response = x.answer::json
                      FROM x WHERE k.partner_id = x.p AND k.key = x.key AND x.id IS NOT NULL)
             DELETE FROM idempotency_keys k USING x
             WHERE k.partner_id = x.p AND k.key = x.key AND x.id IS NULL",
        )
        .bind(&stored_keys.0)
        .bind(&stored_keys.1)
        .bind(&stored_keys.2)
        .bind(&stored_keys.3)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(answers
        .into_iter()
        // Every item was answered above; an unanswered one would be a bug, refused not lost.
        .map(|a| a.unwrap_or_else(|| Written::Refused(unfinished())))
        .collect())
}

/// The 202 body of an enqueued item, as stored for its key.
fn answer_of(e: &Enqueued) -> sqlx::Result<Box<RawValue>> {
    serde_json::value::to_raw_value(e).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Claims the keys of the items still unanswered. A key already taken answers its item:
/// the stored answer when the request is the same, a conflict otherwise. A key taken by a
/// transaction still running (another API process) is waited for by the INSERT.
async fn claim_keys(
    tx: &mut PgConnection,
    group: &[GroupItem<'_>],
    answers: &mut [Option<Written>],
) -> sqlx::Result<()> {
    let keyed: Vec<(usize, Uuid, &str, String)> = group
        .iter()
        .enumerate()
        .filter(|(i, _)| answers[*i].is_none())
        .filter_map(|(i, item)| {
            let n = item.notification;
            item.key.map(|k| (i, n.partner_id, k, n.fingerprint()))
        })
        .collect();
    if keyed.is_empty() {
        return Ok(());
    }
    let partners: Vec<Uuid> = keyed.iter().map(|k| k.1).collect();
    let keys: Vec<&str> = keyed.iter().map(|k| k.2).collect();
    let fingerprints: Vec<&str> = keyed.iter().map(|k| k.3.as_str()).collect();
    // The keys this group now holds, matched back to their items here rather than by a join
    // in SQL, whose cached generic plan could not know how many there are.
    let claimed: Vec<(Uuid, String)> = db::query_as(
        "INSERT INTO idempotency_keys (partner_id, key, request_hash)
         SELECT x.p, x.key, sha256(convert_to(x.f, 'UTF8'))
         FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS x(p, key, f, n)
         ORDER BY x.n
         ON CONFLICT (partner_id, key) DO NOTHING
         RETURNING partner_id, key",
    )
    .bind(&partners)
    .bind(&keys)
    .bind(&fingerprints)
    .fetch_all(&mut *tx)
    .await?;
    let claimed: HashSet<(Uuid, &str)> = claimed.iter().map(|(p, k)| (*p, k.as_str())).collect();
    if claimed.len() == keyed.len() {
        return Ok(());
    }
    // Taken by committed requests: the same request gets the first answer.
    let taken: Vec<usize> = (0..keyed.len())
        .filter(|&i| !claimed.contains(&(partners[i], keys[i])))
        .collect();
    let rows: Vec<(i64, bool, Option<String>)> = db::query_as(
        "SELECT x.n, k.request_hash = sha256(convert_to(x.f, 'UTF8')), k.response::text
         FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS x(p, key, f, n)
         JOIN idempotency_keys k ON k.partner_id = x.p AND k.key = x.key",
    )
    .bind(taken.iter().map(|&i| partners[i]).collect::<Vec<_>>())
    .bind(taken.iter().map(|&i| keys[i]).collect::<Vec<_>>())
    .bind(taken.iter().map(|&i| fingerprints[i]).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    // A key whose row cannot be read back is refused rather than enqueued without its key.
    for &i in &taken {
        answers[keyed[i].0] = Some(Written::Refused(unfinished()));
    }
    for (n, same, response) in rows {
        let index = keyed[taken[n as usize - 1]].0;
        answers[index] = Some(match (same, response) {
            (false, _) => Written::Refused(StoreError::Conflict(
                "this Idempotency-Key was already used with a different request".into(),
            )),
            (true, None) => Written::Refused(unfinished()),
            (true, Some(text)) => Written::Repeated(
                RawValue::from_string(text).map_err(|e| sqlx::Error::Decode(e.into()))?,
            ),
        });
    }
    Ok(())
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

/// Inserts `items` (validated) and fans each out to every enabled, live endpoint of its
/// partner and environment that takes its event type, in item order, in one statement
/// (`callbackd_insert_fanned_out()`, migration 0026, which carries its own planner
/// settings); the insert's trigger wakes the workers when anything fanned out. Returns each
/// item's answer, in order: `None` when its partner is unknown or deleted, and then nothing of
/// it was written.
///
/// On a pool, the statement is its own transaction and has committed when this returns; in
/// a transaction, it is part of it.
pub async fn insert_fanned_out(
    conn: impl sqlx::PgExecutor<'_>,
    items: &[&NewNotification],
) -> sqlx::Result<Vec<Option<Enqueued>>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    // UUIDv7 made here, like the column default: time-ordered, and known before the insert.
    let ids: Vec<Uuid> = items.iter().map(|_| Uuid::now_v7()).collect();
    let rows: Vec<(Uuid, Option<Uuid>, Option<Uuid>, String)> = db::query_as(
        "SELECT notification_id, delivery_id, endpoint_id, state
         FROM callbackd_insert_fanned_out($1::uuid[], $2::uuid[], $3::text[], $4::text[],
                                          $5::uuid[], $6::int2[], $7::text[], $8::text[],
                                          $9::text[])",
    )
    .bind(&ids)
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
            .map(|n| n.status.map(|s| i16::from(s.id())))
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
    .bind(
        items
            .iter()
            .map(|n| n.traceparent.as_deref())
            .collect::<Vec<_>>(),
    )
    .fetch_all(conn)
    .await?;
    let mut refused: HashSet<Uuid> = HashSet::new();
    let mut by_notification: HashMap<Uuid, Vec<DeliveryRef>> = HashMap::with_capacity(ids.len());
    for (notification_id, delivery, endpoint, state) in rows {
        let (Some(id), Some(endpoint_id)) = (delivery, endpoint) else {
            refused.insert(notification_id);
            continue;
        };
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
    }
    Ok(ids
        .into_iter()
        .map(|id| {
            if refused.contains(&id) {
                return None;
            }
            let mut deliveries = by_notification.remove(&id).unwrap_or_default();
            // As GET /v1/notifications/{id} lists them.
            deliveries.sort_unstable_by_key(|d| d.id);
            Some(Enqueued { id, deliveries })
        })
        .collect())
}
