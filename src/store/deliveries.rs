//! Deliveries as operators see them: list and inspect. What changes them (replay, cancel)
//! is in [`super::queue`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::notifications::status_name;
use super::{Cursor, Result, StoreError};
use crate::model::{DeliveryState, Environment, EventType, Trigger};
use crate::store::{Db, db};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    pub notification_id: Uuid,
    pub partner_id: Uuid,
    pub endpoint_id: Uuid,
    #[schema(value_type = crate::model::Environment)]
    pub environment: String,
    #[schema(value_type = crate::model::EventType)]
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

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
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
    /// The partner's bytes were not valid UTF-8 text (or held NUL): `response_body` shows
    /// them with each invalid sequence replaced by U+FFFD.
    pub response_body_lossy: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

const COLUMNS: &str = "SELECT d.id, d.notification_id, d.partner_id, d.endpoint_id, d.environment,
        d.event_type, d.proposal, n.status,
        callbackd_event_name(d.event_type, n.body) AS event_name, n.identifier, d.state, d.series,
        -- a pending delivery's queue row is ahead of its delivery row (see store::queue)
        coalesce(dq.attempts, d.attempts) AS attempts,
        coalesce(dq.next_attempt_at, d.next_attempt_at) AS next_attempt_at,
        d.last_status_code, d.last_error, d.created_at, d.updated_at,
        d.delivered_at, coalesce(dq.sequence, d.sequence) AS sequence, d.trigger,
        -- A later delivery of the same proposal reached the partner before this one did
        -- (possible only after a replay): the partner may have to reconcile. The deliveries
        -- of one (endpoint, key) are found through deliveries_key_idx, on the key written at
        -- insert; sequence, state and delivered_at are read from the heap (an index on them
        -- would keep the completion's update from being HOT: migrations/0020).
        (d.ordering_key IS NOT NULL AND d.series > 1 AND EXISTS (
            SELECT 1 FROM deliveries q
            WHERE q.endpoint_id = d.endpoint_id AND q.ordering_key = d.ordering_key
              AND q.sequence > d.sequence AND q.state = 'delivered'
              AND q.delivered_at < coalesce(d.delivered_at, 'infinity'))) AS out_of_order";

const JOINS: &str = " JOIN notifications n ON n.id = d.notification_id
     LEFT JOIN delivery_queue dq ON dq.delivery_id = d.id";

const FROM: &str = const_format::concatcp!(" FROM deliveries d", JOINS);

const SELECT: &str = const_format::concatcp!(COLUMNS, FROM);

/// How many of the newest deliveries (matching the other filters) a pending listing looks
/// through before it reads the queue instead; see [`Source`].
const RECENT: i64 = 5000;

/// Where a page of the listing is read from. No index on `deliveries` names `state` (the
/// completion's update would not be HOT: migrations/0020_hot_completion.sql), so:
/// - dead and canceled deliveries are read through `delivery_stopped` ([`push_stopped`]);
/// - pending ones are the newest in a backlog: a page looks through the [`RECENT`] newest
///   deliveries first; when those hold less than a page, it reads the deliveries that have a
///   queue row (every pending one has: migrations/0015), one primary-key probe each. Either
///   way a page costs at most the window or the queue, never the table's history;
/// - delivered (most of the table) and unfiltered listings walk the creation-time indexes.
enum Source {
    Table,
    Recent,
    Queue,
}

/// One page (`limit` + 1 rows, newest first, after the cursor) read from `source`.
fn page(
    f: &DeliveryFilter,
    limit: u32,
    after: Option<Cursor>,
    source: Source,
) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::<Postgres>::new(COLUMNS);
    let by_delivery = Order {
        created_at: "d.created_at",
        id: "d.id",
    };
    let order = match source {
        Source::Table => {
            q.push(FROM);
            let order = push_stopped(&mut q, f);
            q.push(" WHERE true");
            push_filter(&mut q, f);
            push_after(&mut q, &order, after);
            order
        }
        Source::Recent => {
            let others = DeliveryFilter {
                state: None,
                ..f.clone()
            };
            // The window is the rows themselves (not ids joined back to the table), so
            // the state is read from them and never through a scan of the table.
            q.push(" FROM (SELECT * FROM deliveries d WHERE true");
            push_filter(&mut q, &others);
            push_after(&mut q, &by_delivery, after);
            q.push(" ORDER BY d.created_at DESC, d.id DESC LIMIT ")
                .push_bind(RECENT)
                .push(") d")
                .push(JOINS)
                .push(" WHERE true");
            push_filter(&mut q, f);
            by_delivery
        }
        Source::Queue => {
            q.push(FROM)
                .push(" WHERE d.id = ANY (ARRAY(SELECT pq.delivery_id FROM delivery_queue pq))");
            push_filter(&mut q, f);
            push_after(&mut q, &by_delivery, after);
            by_delivery
        }
    };
    q.push(format!(
        " ORDER BY {} DESC, {} DESC LIMIT ",
        order.created_at, order.id
    ))
    .push_bind(i64::from(limit) + 1);
    q
}

fn push_after(q: &mut QueryBuilder<Postgres>, order: &Order, after: Option<Cursor>) {
    if let Some(c) = after {
        q.push(format!(" AND ({}, {}) < (", order.created_at, order.id))
            .push_bind(c.created_at)
            .push(", ")
            .push_bind(c.id)
            .push(")");
    }
}

async fn fetch(pool: &Db, mut q: QueryBuilder<Postgres>) -> Result<Vec<Delivery>> {
    Ok(q.build_query_as()
        .persistent(db::prepared())
        .fetch_all(pool)
        .await?)
}

fn named(mut d: Delivery) -> Delivery {
    d.status_name = status_name(d.status);
    d
}

impl Delivery {
    /// Newest first; returns the page and the cursor of the next one, if any.
    pub async fn list(
        pool: &Db,
        filter: &DeliveryFilter,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<(Vec<Delivery>, Option<Cursor>)> {
        let mut rows = if filter.state == Some(DeliveryState::Pending) {
            let recent = fetch(pool, page(filter, limit, after, Source::Recent)).await?;
            if recent.len() > limit as usize {
                recent
            } else {
                fetch(pool, page(filter, limit, after, Source::Queue)).await?
            }
        } else {
            fetch(pool, page(filter, limit, after, Source::Table)).await?
        };
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

    pub async fn get(pool: &Db, id: Uuid) -> Result<DeliveryDetail> {
        // One snapshot for the row and its attempts: a completion committing between two
        // reads would show an attempt whose effect on the delivery is not there yet.
        let mut tx = pool.begin().await?;
        db::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let delivery: Delivery = db::query_as(const_format::concatcp!(SELECT, " WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("delivery"))?;
        let attempt_log = db::query_as(
            "SELECT series, attempt, started_at, duration_ms, status_code, error, error_kind,
                    coalesce(trigger, CASE WHEN series = 1 THEN 'initial' ELSE 'operator' END)
                        AS trigger,
                    response_body, response_body_lossy
             FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(DeliveryDetail {
            delivery: named(delivery),
            attempt_log,
        })
    }
}

/// The columns a listing is ordered by, newest first: `created_at` and `id` of the delivery
/// (the same values), from the table the listing walks.
pub(crate) struct Order {
    pub created_at: &'static str,
    pub id: &'static str,
}

/// Joins `delivery_stopped s` when the filter asks for dead or canceled deliveries, and
/// returns the columns to order by: that table's index (state, created_at DESC, id DESC)
/// then gives the listing's order, so a page reads its own rows and no more. Dead and
/// canceled are rare states, and no index on `deliveries` names `state`
/// (migrations/0020_hot_completion.sql). Push it right after the FROM clause, before WHERE.
pub(crate) fn push_stopped(q: &mut QueryBuilder<Postgres>, f: &DeliveryFilter) -> Order {
    match f.state {
        Some(DeliveryState::Dead | DeliveryState::Canceled) => {
            q.push(" JOIN delivery_stopped s ON s.delivery_id = d.id");
            Order {
                created_at: "s.created_at",
                id: "s.delivery_id",
            }
        }
        _ => Order {
            created_at: "d.created_at",
            id: "d.id",
        },
    }
}

/// The filter's conditions, to follow `WHERE true`; a query with a state filter pushes
/// [`push_stopped`] first.
pub(crate) fn push_filter(q: &mut QueryBuilder<Postgres>, f: &DeliveryFilter) {
    if let Some(v) = f.state {
        q.push(" AND d.state = ").push_bind(v.as_str());
        match v {
            DeliveryState::Dead | DeliveryState::Canceled => {
                q.push(" AND s.state = ").push_bind(v.as_str());
            }
            // Pending: see [`Source`].
            DeliveryState::Pending | DeliveryState::Delivered => {}
        }
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
