//! The delivery queue: every change of a delivery's state happens in this module, in SQL in
//! plain sight, from its insert to its purge. Nothing outside it inserts, deletes or moves a
//! delivery, writes `deliveries.state` or touches the `delivery_queue` table.
//!
//! ```text
//!                    enqueue (fan-out trigger)
//!        ┌───────────────────────┴──────────────────────┐
//!        │ ordered endpoint                             │ unordered
//!        ▼                                              ▼
//!    arriving ──sequence_arrivals──▶ waiting ──release──▶ ready ◀── replay (dead/canceled)
//!        │  (numbered; first of its key        (the head of        │   ▲
//!        │   with nothing active: ready)        its key finished)  │   │ retry due later
//!        └───────────────────────────────────────────────────────▶ │   │ (complete)
//!                                                          claim   ▼   │
//!                                                               running ──complete 2xx──▶ delivered
//!                                      lease expired (reap) ◀──────┤ ──complete, last try──▶ dead
//!                                      back to ready, or dead      │
//!                                      at max_attempts             └─ cancel: canceled, but stays
//!                                                                     running until its attempt ends
//! ```
//!
//! `deliveries.state` is what operators and partners see (pending, delivered, dead, canceled).
//! Where a pending delivery stands is its row in the narrow `delivery_queue` table
//! (migrations/0015_narrow_queue.sql): `queue`, the lease, the attempt counter, its sequence.
//! Numbering, claiming and lease renewal write only that row; the wide `deliveries` row is
//! written when the delivery is created and once per completed attempt, and the queue row is
//! deleted by the transaction that finishes it. Wherever both are written, the queue row is
//! locked first. The indexes of `deliveries` name only columns written at insert, so the
//! completion's update is HOT (no index entry; migrations/0020_hot_completion.sql); a
//! delivery that becomes dead or canceled also gets a `delivery_stopped` row, in the same
//! statement, which its replay (the `deliveries_queue_replay` trigger) deletes: that narrow
//! table serves the listings, counts and replays by those states.
//!
//! | edge | statement | file |
//! |---|---|---|
//! | (new) → pending | the insert of deliveries: the API's group commit and batch | [`enqueue`] |
//! | (new) → pending | `callbackd_enqueue()`, for SQL callers inside their transaction | latest in migrations/0014 |
//! | enqueue → arriving / ready | `deliveries_queue_arrivals` statement trigger | migrations/0015 |
//! | arriving → waiting / ready | `callbackd_sequence_arrivals()` | [`upkeep::sequence_arrivals`] |
//! | ready → running | the claim (lease, attempts + 1) | [`claim::claim`] |
//! | running → running | lease renewal while the request lives | [`lease::renew_leases`] |
//! | running → ready / delivered / dead | batch completion | [`complete::complete`] |
//! | finished head → next waiting ready | [`release::release_next`] (complete, cancel, reap) | [`release`] |
//! | running (lease expired) → ready / dead | the reaper | [`upkeep::reap_expired_leases`] |
//! | running → ready (shutdown) | [`lease::release_leases`] | |
//! | dead / canceled → ready | replay, bulk replay, recovery (the `deliveries_queue_replay` trigger queues it) | [`transitions`], [`bulk`], [`recovery`] |
//! | pending → canceled | cancel | [`transitions`] |
//! | delivered / canceled → (deleted) | retention, after `retention_days` | [`retention`] |
//!
//! What each guarantee costs:
//! - The claim reads only `ready` rows, per endpoint, through `delivery_queue_ready_idx`: one probe
//!   per endpoint with ready rows plus the rows it takes. A delivery waiting for its
//!   predecessor, or one of a disabled endpoint or of an endpoint at its cap, is not read.
//! - Per-proposal ordering costs one extra update of the narrow queue row per ordered delivery
//!   (numbering) and one counter row lock per finished ordered delivery (release), both in the
//!   workers, never in the enqueuing transaction.
//! - A completed attempt costs one HOT update of the wide row (no index entry), one attempt
//!   row and the queue row's delete (or move back to `ready`): 58–96 µs a delivery in
//!   `pg_stat_statements` during a benchmark, against 100–168 µs before the update was HOT
//!   (docs/performance.md).
//! - No row lock is held across an HTTP call: the claim sets a lease and commits; the worker
//!   renews the lease while the request lives.

pub mod bulk;
pub mod claim;
pub mod complete;
pub mod enqueue;
pub mod lease;
pub mod recovery;
pub mod release;
pub mod retention;
pub mod transitions;
pub mod upkeep;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::ErrorKind;

pub use bulk::replay_matching;
pub use claim::{EndpointRoom, claim, next_due_in_ms, sequence_and_claim};
pub use complete::complete;
pub use enqueue::{GroupItem, Written, write_group};
pub use lease::{release_leases, renew_leases};
pub use recovery::auto_replay_pass;
pub use retention::{Purged, purge_batch};
pub use upkeep::{queue_row_versions, reap_expired_leases, sequence_arrivals, vacuum_queue};

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
    /// The enqueue request's W3C traceparent (validated when stored): the attempt links to it.
    pub traceparent: Option<String>,
    /// The endpoint wants the attempt's trace context in a `traceparent` header.
    pub propagate_trace_context: bool,
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
    /// The kind of `error` (CONTRACT §7), stored as `delivery_attempts.error_kind`.
    pub error_kind: Option<ErrorKind>,
    pub response_body: Option<String>,
    /// The stored body is not byte for byte what the partner sent (see
    /// [`crate::model::text_from_bytes`]).
    pub response_body_lossy: bool,
    pub next: Next,
}

impl Outcome {
    /// The same attempt reduced to what can always be stored: no partner bytes, and an
    /// `internal` error saying why the full outcome could not be written. Used by the
    /// completer for a row that failed on its own.
    pub fn stripped(&self, why: &str) -> Outcome {
        Outcome {
            error: Some(crate::model::text_from_str(&format!(
                "internal: the outcome could not be written: {why}"
            ))),
            error_kind: Some(ErrorKind::Internal),
            response_body: None,
            response_body_lossy: false,
            ..self.clone()
        }
    }
}
