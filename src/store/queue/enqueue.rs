//! The direct enqueue of notifications that Rust has already validated
//! (`NewNotification::validate`): set-based SQL, no plpgsql validation. One statement inserts
//! every notification (UNNEST arrays), one fans them all out to deliveries with the rules of
//! `callbackd_enqueue()`, and that insert's trigger wakes the workers (one NOTIFY). SQL
//! callers keep `callbackd_enqueue()`, which validates because nothing before it did.
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
/// An `Err` means a statement failed and the whole group was rolled back: nothing of it is
/// written, and the caller may retry any part of it.
pub async fn write_group(pool: &Db, group: &[GroupItem<'_>]) -> sqlx::Result<Vec<Written>> {
    // The fan-out's planner settings (see `insert_fanned_out`), and every statement's cached
    // generic plan: each is a probe per item whatever the estimates, and under those
    // settings PostgreSQL planned the partner check again for every group (its custom plan
    // for one item looked cheaper than the generic one for ten).
    let mut tx = db::begin_probing(pool, db::Plans::Cached).await?;
    let mut answers: Vec<Option<Written>> = (0..group.len()).map(|_| None).collect();

    let mut partners: Vec<Uuid> = group.iter().map(|i| i.notification.partner_id).collect();
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
    let enqueued = insert_fanned_out(&mut tx, &items).await?;
    let mut stored_keys = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (index, e) in indexes.into_iter().zip(enqueued) {
        let answer =
            serde_json::value::to_raw_value(&e).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        if let Some(key) = group[index].key {
            stored_keys.0.push(group[index].notification.partner_id);
            stored_keys.1.push(key);
            stored_keys.2.push(e.id);
            stored_keys.3.push(answer.get().to_owned());
        }
        answers[index] = Some(Written::Created(answer));
    }
    if !stored_keys.0.is_empty() {
        db::query(
            "UPDATE idempotency_keys k SET notification_id = x.id, response = x.answer::json
             FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[]) AS x(p, key, id, answer)
             WHERE k.partner_id = x.p AND k.key = x.key",
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

/// Inserts `items` (validated, of live partners) and fans each out to every enabled, live
/// endpoint of its partner and environment that takes its event type, in item order; sends
/// the workers' NOTIFY (the insert's trigger) when anything fanned out. Returns each item's
/// answer, in order. `conn` must be
/// in a transaction begun by [`db::begin_probing`], which the fan-out's plan needs.
pub async fn insert_fanned_out(
    conn: &mut PgConnection,
    items: &[&NewNotification],
) -> sqlx::Result<Vec<Enqueued>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    // UUIDv7 made here, like the column default: time-ordered, and known before the insert.
    let ids: Vec<Uuid> = items.iter().map(|_| Uuid::now_v7()).collect();
    let partners: Vec<Uuid> = items.iter().map(|n| n.partner_id).collect();
    let environments: Vec<&str> = items.iter().map(|n| n.environment.as_str()).collect();
    let event_types: Vec<&str> = items.iter().map(|n| n.event_type.as_str()).collect();
    let proposals: Vec<Option<Uuid>> = items.iter().map(|n| n.proposal).collect();
    db::query(
        "INSERT INTO notifications (id, partner_id, environment, event_type, proposal, status,
                                    identifier, body, traceparent)
         SELECT x.id, x.p, x.e, x.t, x.pr, x.s, x.i, x.b::json, x.tp
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::int2[],
                     $7::text[], $8::text[], $9::text[]) AS x(id, p, e, t, pr, s, i, b, tp)",
    )
    .bind(&ids)
    .bind(&partners)
    .bind(&environments)
    .bind(&event_types)
    .bind(&proposals)
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
    .execute(&mut *conn)
    .await?;
    // The same fan-out rules as callbackd_enqueue(); ORDER BY makes the insert (and so any
    // per-row numbering by triggers) follow the items' order.
    //
    // Each item finds its endpoints by one probe of endpoints_fanout_idx, however many
    // endpoints there are: a LATERAL subquery (OFFSET 0 keeps it from being flattened into a
    // join) in a transaction of db::begin_probing. As a plain join, the plan made once per
    // connection while the table was small read every endpoint and compared each with each
    // item.
    let rows: Vec<(Uuid, Uuid, Uuid, String)> = db::query_as(
        "INSERT INTO deliveries (notification_id, endpoint_id, partner_id, environment,
                                 event_type, proposal, ordering_key)
         SELECT x.id, e.id, e.partner_id, e.environment, x.t, x.pr,
                callbackd_ordering_key(e.ordering, x.t, x.pr, n.body)
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[])
              WITH ORDINALITY AS x(id, p, env, t, pr, n)
         CROSS JOIN LATERAL (
             SELECT e.id, e.partner_id, e.environment, e.ordering, e.statuses, e.schedule_types
             FROM endpoints e
             WHERE e.partner_id = x.p AND e.environment = x.env AND e.deleted_at IS NULL
               AND e.enabled AND x.t = ANY (e.event_types)
             OFFSET 0) e
         JOIN notifications n ON n.id = x.id
         WHERE callbackd_filter_passes(e.statuses, e.schedule_types, x.t, n.status, n.body)
         ORDER BY x.n, e.id
         RETURNING notification_id, id, endpoint_id, state",
    )
    .bind(&ids)
    .bind(&partners)
    .bind(&environments)
    .bind(&event_types)
    .bind(&proposals)
    .fetch_all(&mut *conn)
    .await?;
    // The insert's trigger has sent the workers' NOTIFY if it queued anything (migration
    // 0025); they hear it when the transaction commits.
    let mut by_notification: HashMap<Uuid, Vec<DeliveryRef>> = HashMap::with_capacity(ids.len());
    for (notification_id, id, endpoint_id, state) in rows {
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
            let mut deliveries = by_notification.remove(&id).unwrap_or_default();
            // As GET /v1/notifications/{id} lists them.
            deliveries.sort_unstable_by_key(|d| d.id);
            Enqueued { id, deliveries }
        })
        .collect())
}
