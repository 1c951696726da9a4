//! Completion: running → ready (retry later), delivered or dead, for a batch of outcomes in
//! one transaction.
//!
//! - Only a delivery whose lease is still ours moves; a lease that expired and was taken by
//!   another worker leaves that worker in charge. The attempt is logged either way, because
//!   it happened — exactly once: a completion retried after a commit whose answer was lost
//!   finds its attempt row (unique on delivery and lease token) and adds nothing.
//! - A delivery canceled while its request was on the wire stays canceled; its attempt is
//!   logged and it leaves `running` now, which is when its successor may go.
//! - Each ordered delivery that finished releases the next one of its key.
//! - The delivery row is written once per attempt; the queue row is moved back to `ready`
//!   or deleted (see migrations/0015_narrow_queue.sql). The delivery row's update changes
//!   no indexed column, so PostgreSQL makes it HOT: no index entry is written
//!   (migrations/0020_hot_completion.sql). Only a delivery that dies writes one more row,
//!   in `delivery_stopped`.

use super::super::Result;
use super::release::release_next;
use super::{Next, Outcome};
use crate::model::ErrorKind;
use crate::store::{Db, db};

/// The completion statement. Binds, one array element per outcome: `$1` delivery ids,
/// `$2` lease tokens, `$3` next state (`delivered`, `pending` to retry, `dead`), `$4` retry
/// delay in ms, `$5` series, `$6` attempt, `$7` started at, `$8` duration in ms, `$9` status
/// code, `$10` error, `$11` response body, `$12` body was lossy, `$13` error kind. Returns
/// the (endpoint, key) of each ordered delivery that left `running` for good. Run it in a
/// transaction of [`db::begin_probing`] with [`db::Plans::Cached`] (see [`complete`]);
/// public so its plan can be checked (tests/it/reliability/queue_speed/completion_plan.rs).
pub const COMPLETE_SQL: &str = "WITH o AS (
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::int4[],
                              $6::int4[], $7::timestamptz[], $8::int4[], $9::int4[],
                              $10::text[], $11::text[], $12::bool[], $13::text[])
             AS o(id, token, state, delay_ms, series, attempt, started_at, duration_ms,
                  status_code, error, response_body, lossy, error_kind)
     ),
     -- The outcomes whose queue row is still leased to us, that row locked first (in id
     -- order, as every writer of queue rows that also writes deliveries locks them) so
     -- that a cancel of the same delivery waits for this completion or this completion
     -- sees it. One probe per outcome: the LATERAL with FOR UPDATE cannot be flattened,
     -- so it runs as a nested loop over the sorted outcomes whatever the estimates.
     mine AS (
         SELECT o.*, q.ordering_key, q.sequence
         FROM (SELECT * FROM o ORDER BY o.id) o
         CROSS JOIN LATERAL (
             SELECT q.ordering_key, q.sequence FROM delivery_queue q
             WHERE q.delivery_id = o.id AND q.lease_token = o.token
               AND q.queue = 'running'
             FOR UPDATE) q
     ),
     -- The delivery row: one write per attempt. Its state moves only while pending (a
     -- delivery canceled meanwhile stays canceled); RETURNING gives the state it now has.
     wide AS (
         UPDATE deliveries d SET
             state = CASE WHEN d.state = 'pending' THEN m.state ELSE d.state END,
             attempts = CASE WHEN d.state = 'pending' THEN m.attempt ELSE d.attempts END,
             next_attempt_at = CASE WHEN d.state = 'pending' AND m.state = 'pending'
                 THEN now() + make_interval(secs => m.delay_ms::float8 / 1000)
                 ELSE d.next_attempt_at END,
             last_status_code = CASE WHEN d.state = 'pending' THEN m.status_code
                                     ELSE d.last_status_code END,
             last_error = CASE WHEN d.state = 'pending' THEN m.error ELSE d.last_error END,
             delivered_at = CASE WHEN d.state = 'pending' AND m.state = 'delivered'
                                 THEN now() END,
             sequence = m.sequence,
             updated_at = now()
         FROM mine m
         WHERE d.id = m.id
         RETURNING d.id, d.state, d.next_attempt_at, d.endpoint_id, d.created_at
     ),
     -- Dead now (only a pending delivery moves, and only here to dead): listed, counted
     -- and replayed through its `delivery_stopped` row. A delivered one writes nothing.
     stopped AS (
         INSERT INTO delivery_stopped (delivery_id, endpoint_id, state, created_at)
         SELECT w.id, w.endpoint_id, 'dead', w.created_at FROM wide w
         WHERE w.state = 'dead'
     ),
     -- Finished (or canceled while running): the delivery leaves the queue.
     gone AS (
         DELETE FROM delivery_queue q USING wide w
         WHERE q.delivery_id = w.id AND w.state <> 'pending'
         RETURNING q.endpoint_id, q.ordering_key
     ),
     -- Retried later: ready again at its next attempt's time.
     retry AS (
         UPDATE delivery_queue q SET queue = 'ready', next_attempt_at = w.next_attempt_at,
                locked_until = NULL, lease_token = NULL
         FROM wide w
         WHERE q.delivery_id = w.id AND w.state = 'pending'
     ),
     logged AS (
         INSERT INTO delivery_attempts
             (delivery_id, endpoint_id, series, attempt, started_at, duration_ms,
              status_code, error, error_kind, response_body, response_body_lossy, trigger,
              lease_token)
         SELECT o.id, d.endpoint_id, o.series, o.attempt, o.started_at, o.duration_ms,
                o.status_code, o.error, o.error_kind, o.response_body, o.lossy,
                -- why this series exists (a series replaced meanwhile keeps it unknown)
                CASE WHEN d.series = o.series THEN d.trigger END, o.token
         FROM o JOIN deliveries d ON d.id = o.id
         ON CONFLICT (delivery_id, lease_token) DO NOTHING
     )
     SELECT DISTINCT g.endpoint_id, g.ordering_key FROM gone g
     WHERE g.ordering_key IS NOT NULL
     ORDER BY 1, 2";

pub async fn complete(pool: &Db, outcomes: &[Outcome]) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let n = outcomes.len();
    let mut ids = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut delays = Vec::with_capacity(n);
    let mut series = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut durations = Vec::with_capacity(n);
    let mut codes = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut bodies = Vec::with_capacity(n);
    let mut lossy = Vec::with_capacity(n);
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
        kinds.push(o.error_kind.map(ErrorKind::as_str));
        bodies.push(o.response_body.as_deref());
        lossy.push(o.response_body_lossy);
    }
    // Planned once per connection, not per batch. Planning this statement took 0.5 ms, a
    // third of its cost in a trickle of small batches (36 of 84 µs per notification in
    // `ingest`; docs/performance.md, 2026-12-04). A cached generic plan cannot know how
    // many outcomes the arrays hold (it assumes 10), so the statement is written for every
    // join to be a probe from the outcomes into a primary key: no join between two of its
    // CTEs, which a generic plan ran as nested loops (87 ms per batch of 324, its cost
    // growing with the square of the batch), and no scan that a plan made while the tables
    // were small would prefer (`db::begin_probing`).
    let mut tx = db::begin_probing(pool, db::Plans::Cached).await?;
    // (endpoint, key) of each ordered delivery that left `running` for good.
    let finished: Vec<(uuid::Uuid, String)> = db::query_as(COMPLETE_SQL)
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
        .bind(&lossy)
        .bind(&kinds)
        .fetch_all(&mut *tx)
        .await?;
    release_next(&mut tx, &finished).await?;
    tx.commit().await?;
    Ok(())
}
