//! The claim: ready → running, for up to `limit` deliveries, in one statement.
//!
//! Its cost is one index probe per endpoint that has ready rows, plus the rows it takes. It
//! never reads a delivery it cannot take:
//! - `heads` walks `delivery_queue_ready_idx` (endpoint_id, next_attempt_at) WHERE queue =
//!   'ready' as a skip scan: each step jumps to the next endpoint and lands on its oldest ready row.
//!   Waiting, arriving and running rows are not in that index at all, and finished ones have
//!   left the queue table.
//! - `due` keeps the endpoints that are enabled, due now, within this worker's cap and within
//!   their shared rate (`rates` locks only the rate-limited endpoints' rows); a disabled or capped endpoint costs that one probe, whatever its
//!   backlog.
//! - `shared` and `alloc` share `limit` equally among them (each at most its room), oldest
//!   first: a claim serves many endpoints with one due delivery each as well as one endpoint
//!   with a backlog, and never reads more than it takes.
//! - `picked` reads, per endpoint, exactly the rows it takes (`LIMIT take`).
//!
//! The plan does not depend on statistics: every step is an index probe with a LIMIT, and
//! bitmap scans (which would read every ready row to sort them) are switched off for this
//! statement.

use uuid::Uuid;

use super::super::Result;
use super::Claimed;
use crate::store::{Db, db};

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

/// The endpoints with ready deliveries, each with its oldest ready `next_attempt_at`: a skip
/// scan over `delivery_queue_ready_idx`, one probe per endpoint.
const HEADS: &str = "heads AS (
        (SELECT q.endpoint_id, q.next_attempt_at FROM delivery_queue q
         WHERE q.queue = 'ready'
         ORDER BY q.endpoint_id, q.next_attempt_at LIMIT 1)
      UNION ALL
        SELECT nx.endpoint_id, nx.next_attempt_at
        FROM heads h CROSS JOIN LATERAL (
            SELECT q.endpoint_id, q.next_attempt_at FROM delivery_queue q
            WHERE q.queue = 'ready' AND q.endpoint_id > h.endpoint_id
            ORDER BY q.endpoint_id, q.next_attempt_at LIMIT 1) nx
    )";

/// How many requests an endpoint's rate still allows now, with one second of burst: the
/// generic cell rate algorithm, whose only state is `rate_tat`, the theoretical arrival time
/// of the next request. `r` is the endpoint row read under lock (`rates`).
const RATE_ALLOWS: &str = "CASE WHEN r.rate_limit_per_s IS NULL THEN 2147483647
          WHEN r.rate_tat IS NULL OR r.rate_tat <= now() THEN r.rate_limit_per_s
          ELSE greatest(0, floor(r.rate_limit_per_s
                   * (1 - extract(epoch FROM r.rate_tat - now()))))::int8 END";

/// The claim statement. Binds: `$1` limit (int8, most rows to take), `$2` lease in ms (int8),
/// `$3` lease token (uuid), `$4` endpoints with no room (uuid[]), `$5` endpoints with some
/// room (uuid[]) and `$6` their room (int4[], same order), `$7` room of any other endpoint
/// (int4). Run it in a transaction of [`db::begin_probing`] (see [`claim`]). Public so its
/// cost can be checked with `EXPLAIN (ANALYZE, BUFFERS)` (tests/it/reliability/queue_speed.rs).
pub const CLAIM_SQL: &str = const_format::concatcp!(
    "WITH RECURSIVE ",
    HEADS,
    ",
         rates AS (
             -- Rate-limited endpoints only, read under lock: the workers that claim for the
             -- same limited endpoint take turns, so the rate holds across processes.
             SELECT e.id, e.rate_limit_per_s, e.rate_tat FROM endpoints e
             WHERE e.id IN (SELECT endpoint_id FROM heads) AND e.rate_limit_per_s IS NOT NULL
             ORDER BY e.id
             FOR NO KEY UPDATE
         ),
         due AS (
             SELECT h.endpoint_id, h.next_attempt_at AS oldest,
                    least(coalesce(k.room, $7), $1, ",
    RATE_ALLOWS,
    ") AS room
             FROM heads h
             JOIN endpoints e ON e.id = h.endpoint_id AND e.enabled
             LEFT JOIN rates r ON r.id = h.endpoint_id
             LEFT JOIN unnest($5::uuid[], $6::int4[]) AS k(endpoint_id, room)
                    ON k.endpoint_id = h.endpoint_id
             WHERE h.next_attempt_at <= now() AND h.endpoint_id <> ALL ($4::uuid[])
         ),
         shared AS (
             -- An equal share of the batch for every due endpoint (at most its room), so one
             -- claim serves many endpoints with a little due each as well as one with a lot.
             SELECT u.endpoint_id, u.oldest,
                    least(u.room, ceil($1::float8 / count(*) OVER ())::int8) AS share
             FROM due u WHERE u.room > 0
         ),
         alloc AS (
             SELECT s.endpoint_id,
                    least(s.share, $1 - (sum(s.share) OVER (ORDER BY s.oldest, s.endpoint_id)
                                         - s.share)) AS take
             FROM shared s
         ),
         picked AS (
             SELECT c.delivery_id AS id, a.endpoint_id FROM alloc a CROSS JOIN LATERAL (
                 SELECT q.delivery_id FROM delivery_queue q
                 WHERE q.queue = 'ready' AND q.endpoint_id = a.endpoint_id
                   AND q.next_attempt_at <= now()
                 ORDER BY q.next_attempt_at
                 LIMIT a.take
                 FOR UPDATE SKIP LOCKED) c
             WHERE a.take > 0
         ),
         rated AS (
             -- What a rate-limited endpoint took moves its theoretical arrival time on.
             UPDATE endpoints e SET rate_tat = greatest(coalesce(r.rate_tat, now()), now())
                     + make_interval(secs => p.n::float8 / r.rate_limit_per_s)
             FROM rates r,
                  (SELECT endpoint_id, count(*) AS n FROM picked GROUP BY endpoint_id) p
             WHERE e.id = r.id AND p.endpoint_id = r.id
         )
         -- Only the narrow queue row is written; the delivery and its notification are read.
         UPDATE delivery_queue q
         SET queue = 'running',
             locked_until = now() + make_interval(secs => $2::float8 / 1000),
             lease_token = $3,
             attempts = q.attempts + 1
         FROM picked, deliveries d, endpoints e, notifications n
         WHERE q.delivery_id = picked.id AND d.id = q.delivery_id AND e.id = q.endpoint_id
           AND n.id = d.notification_id
         RETURNING d.id, d.notification_id, d.partner_id, d.endpoint_id, d.event_type,
                   q.attempts AS attempt, d.series, e.url, e.method, e.auth_sealed,
                   e.updated_at AS endpoint_updated_at, e.timeout_ms, e.max_attempts,
                   n.proposal, n.status, n.identifier, n.body::text AS body, q.sequence,
                   e.signing_sealed, e.auto_replay_dead_on_recovery AS auto_replay,
                   n.traceparent, e.propagate_trace_context"
);

/// Claims up to `limit` due deliveries for `lease_ms` under `lease_token`, respecting `room`
/// and each endpoint's `rate_limit_per_s`. The attempt counter goes up here, so an attempt
/// whose worker died still counts and a poison delivery cannot loop forever.
pub async fn claim(
    pool: &Db,
    limit: i64,
    lease_ms: i64,
    lease_token: Uuid,
    room: &EndpointRoom,
) -> Result<Vec<Claimed>> {
    Ok(
        sequence_and_claim(pool, 0, limit, lease_ms, lease_token, room)
            .await?
            .1,
    )
}

/// What a worker does each round: numbers up to `sequence_max` arrivals of ordered endpoints
/// (`callbackd_sequence_arrivals()`), then [`claim`]s, in one transaction, so that what was
/// just numbered can be claimed at once. Returns how many arrivals were numbered, and the
/// claimed deliveries.
///
/// One transaction rather than two: the numbering's own commit was a WAL flush per round
/// (and a round trip to take a connection, and its BEGIN and COMMIT), for work that needs no
/// durability of its own: arrivals whose numbering is lost in a crash are still `arriving`,
/// and are numbered again.
pub async fn sequence_and_claim(
    pool: &Db,
    sequence_max: i32,
    limit: i64,
    lease_ms: i64,
    lease_token: Uuid,
    room: &EndpointRoom,
) -> Result<(i32, Vec<Claimed>)> {
    // Statistics must not matter: an index probe with a LIMIT is always the right plan here,
    // and a bitmap or sequential scan (chosen when the planner believes the queue is small,
    // and kept by the prepared statement) reads and sorts every ready row. Planned once: its
    // plan does not depend on its arguments, and planning it again for them cost more than
    // a millisecond each time PostgreSQL chose to (a quarter of the rounds in `ingest`).
    let mut tx = db::begin_probing(pool, db::Plans::Cached).await?;
    let sequenced = if sequence_max > 0 {
        super::upkeep::sequence_arrivals(&mut *tx, sequence_max).await?
    } else {
        0
    };
    let claimed = db::query_as(CLAIM_SQL)
        .bind(limit)
        .bind(lease_ms)
        .bind(lease_token)
        .bind(&room.full)
        .bind(&room.partial)
        .bind(&room.partial_room)
        .bind(room.per_endpoint)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((sequenced, claimed))
}

/// The statement of [`next_due_in_ms`]. Binds: `$1` endpoints with no room (uuid[]). Public
/// so its cost can be checked with `EXPLAIN (ANALYZE, BUFFERS)`.
pub const NEXT_DUE_SQL: &str = const_format::concatcp!(
        "WITH RECURSIVE ",
        HEADS,
        "
         SELECT greatest(0, ceil(extract(epoch FROM min(greatest(h.next_attempt_at,
                    -- a rate-limited endpoint opens again one second before its
                    -- theoretical arrival time
                    coalesce(e.rate_tat - interval '1 second', '-infinity'))) - now()) * 1000))::int8
         FROM heads h JOIN endpoints e ON e.id = h.endpoint_id AND e.enabled
         WHERE h.endpoint_id <> ALL ($1::uuid[])
         HAVING count(*) > 0"
);

/// Milliseconds until the next ready delivery of an enabled endpoint not in `full` is due (0
/// if one is due now), counting each endpoint's rate, or None when nothing is ready.
pub async fn next_due_in_ms(pool: &Db, full: &[Uuid]) -> Result<Option<i64>> {
    // The same skip scan as the claim's, so the same planner settings and the same cached
    // plan (see [`claim`]): planned for its arguments, it was planned again in half of its
    // calls in `ingest`.
    let mut tx = db::begin_probing(pool, db::Plans::Cached).await?;
    let due = db::query_scalar(NEXT_DUE_SQL)
        .bind(full)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(due)
}
