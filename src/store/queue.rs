//! The queue's hot path: claim due deliveries in one statement, complete many in one
//! statement. No row lock is held across an HTTP call: the claim sets a lease
//! (`locked_until`) and commits at once.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::Result;

/// A delivery a worker now holds, with everything needed to send it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub notification_id: Uuid,
    pub partner_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_type: String,
    /// 1-based number of this attempt within its series.
    pub attempt: i32,
    pub series: i32,
    pub url: String,
    pub method: String,
    pub auth_sealed: Vec<u8>,
    pub endpoint_updated_at: DateTime<Utc>,
    pub timeout_ms: i32,
    pub max_attempts: i32,
    pub proposal: Option<Uuid>,
    pub status: Option<i16>,
    pub identifier: Option<String>,
    pub body: Option<String>,
    /// Position within its (endpoint, ordering key), when the endpoint orders deliveries.
    pub sequence: Option<i64>,
    /// Standard Webhooks keys, sealed; None when the endpoint is not signed.
    pub signing_sealed: Option<Vec<u8>>,
    /// The endpoint replays its dead deliveries once it answers 2xx again.
    pub auto_replay: bool,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAfterMs(i64),
    Dead,
}

/// The result of one attempt, to be written by the completer.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: Uuid,
    /// Not written by [`complete`]: what the completer's hooks (recovery, alerts) need.
    pub endpoint_id: Uuid,
    pub partner_id: Uuid,
    pub auto_replay: bool,
    pub lease_token: Uuid,
    pub series: i32,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub next: Next,
}

/// The claim's and the next-due query's condition on a pending delivery `d`: its endpoint is
/// enabled, and no earlier delivery of its (endpoint, ordering key) is still pending. Written
/// inline (not as a SQL function, which PostgreSQL cannot inline around a sub-select: that cost
/// ~40 µs per candidate row) and short-circuited for unordered rows.
const SENDABLE: &str = "EXISTS (SELECT 1 FROM endpoints e WHERE e.id = d.endpoint_id AND e.enabled)
               AND (d.ordering_key IS NULL OR NOT EXISTS (
                   SELECT 1 FROM deliveries p
                   WHERE p.endpoint_id = d.endpoint_id AND p.ordering_key = d.ordering_key
                     AND p.sequence < d.sequence AND p.state = 'pending'))";

/// How many more requests each endpoint may have in flight in this worker: endpoints with
/// no room are skipped by the claim, the others get at most their room (endpoints not named
/// get `per_endpoint`). This is what keeps one slow partner from taking every slot.
#[derive(Debug, Clone, Default)]
pub struct EndpointRoom {
    pub full: Vec<Uuid>,
    pub partial: Vec<Uuid>,
    pub partial_room: Vec<i32>,
    pub per_endpoint: i32,
}

/// Claims up to `limit` due deliveries of enabled endpoints for `lease_ms`, under
/// `lease_token`, respecting `room`. The attempt counter goes up at claim time, so an attempt
/// whose worker died still counts and a poison delivery cannot loop forever.
pub async fn claim(
    pool: &PgPool,
    limit: i64,
    lease_ms: i64,
    lease_token: Uuid,
    room: &EndpointRoom,
) -> Result<Vec<Claimed>> {
    Ok(sqlx::query_as(const_format::concatcp!(
        "WITH candidates AS (
             SELECT d.id, d.endpoint_id, greatest(d.next_attempt_at, d.locked_until) AS due
             FROM deliveries d
             WHERE d.state = 'pending'
               AND greatest(d.next_attempt_at, d.locked_until) <= now()
               AND d.endpoint_id <> ALL ($4::uuid[])
               AND ",
        SENDABLE,
        "
             ORDER BY greatest(d.next_attempt_at, d.locked_until)
             LIMIT $1
             FOR UPDATE OF d SKIP LOCKED
         ),
         due AS (
             SELECT r.id FROM (
                 SELECT c.id, c.due,
                        row_number() OVER (PARTITION BY c.endpoint_id ORDER BY c.due) AS rn,
                        coalesce(k.room, $7) AS room
                 FROM candidates c
                 LEFT JOIN unnest($5::uuid[], $6::int4[]) AS k(endpoint_id, room)
                        ON k.endpoint_id = c.endpoint_id
             ) r
             WHERE r.rn <= r.room
             ORDER BY r.due
             LIMIT $1
         )
         UPDATE deliveries d
         SET locked_until = now() + make_interval(secs => $2::float8 / 1000),
             lease_token = $3,
             attempts = d.attempts + 1,
             updated_at = now()
         FROM due, endpoints e, notifications n
         WHERE d.id = due.id AND e.id = d.endpoint_id AND n.id = d.notification_id
         RETURNING d.id, d.notification_id, d.partner_id, d.endpoint_id, d.event_type,
                   d.attempts AS attempt, d.series, e.url, e.method, e.auth_sealed,
                   e.updated_at AS endpoint_updated_at, e.timeout_ms, e.max_attempts,
                   n.proposal, n.status, n.identifier, n.body::text AS body, d.sequence,
                   e.signing_sealed, e.auto_replay_dead_on_recovery AS auto_replay"
    ))
    .bind(limit)
    .bind(lease_ms)
    .bind(lease_token)
    .bind(&room.full)
    .bind(&room.partial)
    .bind(&room.partial_room)
    .bind(room.per_endpoint)
    .fetch_all(pool)
    .await?)
}

/// Writes a batch of outcomes in one statement: the attempt rows, and the new state of each
/// delivery whose lease is still ours (a lease that expired and was taken by another worker
/// leaves that worker in charge; the attempt is still logged, because it happened).
pub async fn complete(pool: &PgPool, outcomes: &[Outcome]) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(outcomes.len());
    let mut tokens = Vec::with_capacity(outcomes.len());
    let mut states = Vec::with_capacity(outcomes.len());
    let mut delays = Vec::with_capacity(outcomes.len());
    let mut series = Vec::with_capacity(outcomes.len());
    let mut attempts = Vec::with_capacity(outcomes.len());
    let mut started = Vec::with_capacity(outcomes.len());
    let mut durations = Vec::with_capacity(outcomes.len());
    let mut codes = Vec::with_capacity(outcomes.len());
    let mut errors = Vec::with_capacity(outcomes.len());
    let mut bodies = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        ids.push(o.delivery_id);
        tokens.push(o.lease_token);
        let (state, delay) = match o.next {
            Next::Delivered => ("delivered", None),
            Next::RetryAfterMs(ms) => ("pending", Some(ms)),
            Next::Dead => ("dead", None),
        };
        states.push(state);
        delays.push(delay);
        series.push(o.series);
        attempts.push(o.attempt);
        started.push(o.started_at);
        durations.push(o.duration_ms);
        codes.push(o.status_code);
        errors.push(o.error.as_deref());
        bodies.push(o.response_body.as_deref());
    }
    sqlx::query(
        "WITH o AS (
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::int4[],
                                  $6::int4[], $7::timestamptz[], $8::int4[], $9::int4[],
                                  $10::text[], $11::text[])
                 AS o(id, token, state, delay_ms, series, attempt, started_at, duration_ms,
                      status_code, error, response_body)
         ),
         upd AS (
             UPDATE deliveries d SET
                 state = o.state,
                 next_attempt_at = CASE WHEN o.state = 'pending'
                     THEN now() + make_interval(secs => o.delay_ms::float8 / 1000)
                     ELSE d.next_attempt_at END,
                 locked_until = NULL,
                 lease_token = NULL,
                 last_status_code = o.status_code,
                 last_error = o.error,
                 delivered_at = CASE WHEN o.state = 'delivered' THEN now() END,
                 updated_at = now()
             FROM o
             WHERE d.id = o.id AND d.lease_token = o.token AND d.state = 'pending'
             RETURNING d.id
         )
         INSERT INTO delivery_attempts
             (delivery_id, endpoint_id, series, attempt, started_at, duration_ms, status_code,
              error, response_body, trigger)
         SELECT o.id, d.endpoint_id, o.series, o.attempt, o.started_at, o.duration_ms,
                o.status_code, o.error, o.response_body,
                -- why this series exists (a series replaced meanwhile keeps it unknown)
                CASE WHEN d.series = o.series THEN d.trigger END
         FROM o JOIN deliveries d ON d.id = o.id",
    )
    .bind(&ids)
    .bind(&tokens)
    .bind(&states)
    .bind(&delays)
    .bind(&series)
    .bind(&attempts)
    .bind(&started)
    .bind(&durations)
    .bind(&codes)
    .bind(&errors)
    .bind(&bodies)
    .execute(pool)
    .await?;
    Ok(())
}

/// Milliseconds until the next pending delivery of an enabled endpoint is due (0 if one is
/// due now), or None when nothing is pending.
pub async fn next_due_in_ms(pool: &PgPool) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(const_format::concatcp!(
        "SELECT greatest(0, ceil(extract(epoch FROM
                    (greatest(d.next_attempt_at, d.locked_until) - now())) * 1000))::int8
         FROM deliveries d
         WHERE d.state = 'pending' AND ",
        SENDABLE,
        "
         ORDER BY greatest(d.next_attempt_at, d.locked_until)
         LIMIT 1"
    ))
    .fetch_optional(pool)
    .await?)
}
