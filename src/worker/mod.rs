//! The delivery workers: claim due deliveries in batches, run one attempt each (sent through
//! [`crate::outbound`]), complete the outcomes in batches. One `Dispatcher` per process; many
//! processes may share a database.
//!
//! ```text
//! wakeup (LISTEN) ─┐
//!                  ▼
//! claimer ── Claimed ──▶ one task per delivery (attempt) ── Outcome ──▶ completer ──▶ hooks
//!    ▲  permits = worker_concurrency                                      │      (alerts,
//!    └──────────────────────── kick after each batch ◀────────────────────┘     recovery)
//! ```
//!
//! - this file: the claim loop and the shutdown;
//! - `attempt.rs`: one delivery's attempt, and what its result means (retry, dead, delivered);
//! - `retry_policy.rs`: when a failed attempt is tried again;
//! - `completer.rs`, `hooks.rs`: writing outcomes, then alerts and recovery;
//! - `inflight.rs`, `upkeep.rs`, `wakeup.rs`: what is held, leases and reaping, LISTEN;
//! - `numbering.rs`: a backlog of arrivals numbered beside the claims;
//! - `retention.rs`: the purge of old finished deliveries, every worker process.

mod attempt;
mod completer;
mod hooks;
mod inflight;
mod numbering;
pub mod retention;
mod retry_policy;
mod upkeep;
mod wakeup;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::alerts::Alerts;
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::outbound::{CallbackSender, CredentialCache};
use crate::store::Db;
use crate::store::{self, Outcome};
pub use retry_policy::RetryPolicy;

pub struct Dispatcher {
    pool: Db,
    /// Where to LISTEN: a session, direct when `pool` goes through a pooler.
    listen: Db,
    settings: Arc<Settings>,
    secrets: SecretBox,
    sender: CallbackSender,
    policy: RetryPolicy,
    wake: Arc<Notify>,
    credentials: CredentialCache,
    /// What this process is sending now: per delivery (for the lease release at shutdown)
    /// and per endpoint (for the per-endpoint cap).
    in_flight: Arc<inflight::InFlight>,
    /// A backlog of arrivals being numbered beside the claims (see `numbering.rs`).
    backlog: Arc<numbering::Backlog>,
}

impl Dispatcher {
    pub fn new(pool: Db, settings: Arc<Settings>, secrets: SecretBox) -> anyhow::Result<Self> {
        Ok(Self {
            sender: CallbackSender::new(settings.allow_private_targets)?,
            policy: RetryPolicy {
                base_ms: settings.retry_base_ms,
                max_ms: settings.retry_max_ms,
            },
            listen: pool.clone(),
            pool,
            settings,
            secrets,
            wake: Arc::new(Notify::new()),
            credentials: Default::default(),
            in_flight: Arc::default(),
            backlog: Arc::default(),
        })
    }

    /// LISTENs on `listen` instead of the pool (a direct connection behind a pooler).
    pub fn listen_on(mut self, listen: Db) -> Self {
        self.listen = listen;
        self
    }

    /// Runs until `shutdown` fires, then stops claiming and waits up to
    /// `shutdown_grace_s` for the requests in flight and their completion.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let concurrency = self.settings.worker_concurrency;
        let (outcomes_tx, outcomes_rx) = mpsc::channel::<Outcome>(outcome_queue(concurrency));
        let hooks = hooks::Hooks::new(
            Alerts::start(&self.settings),
            self.settings.auto_replay_per_second,
        );
        let completer = tokio::spawn(completer::run(
            self.pool.clone(),
            outcomes_rx,
            self.wake.clone(),
            self.in_flight.clone(),
            hooks,
        ));
        let listener = tokio::spawn(wakeup::run(
            self.listen.clone(),
            self.wake.clone(),
            shutdown.clone(),
        ));
        // Chores stop only after the requests in flight are done (or given back below).
        let chores = CancellationToken::new();
        let renewer = tokio::spawn(upkeep::renew_leases(
            self.pool.clone(),
            self.in_flight.clone(),
            self.settings.lease_ms,
            chores.clone(),
        ));
        tokio::spawn(upkeep::reap(
            self.pool.clone(),
            Duration::from_millis(self.settings.poll_interval_ms.clamp(100, 5_000)),
            self.wake.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(numbering::run(
            self.pool.clone(),
            self.numbering_batch(),
            self.backlog.clone(),
            self.wake.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(upkeep::vacuum_queue(
            self.listen.clone(),
            self.settings.queue_vacuum_dead_rows,
            shutdown.clone(),
        ));
        let permits = Arc::new(Semaphore::new(concurrency));

        self.claim_loop(&permits, &outcomes_tx, &shutdown).await;

        tracing::info!("dispatcher stopping: no new claims, waiting for requests in flight");
        let grace = Duration::from_secs(self.settings.shutdown_grace_s);
        let drained = tokio::time::timeout(grace, async {
            let _all = permits.acquire_many(concurrency as u32).await;
            drop(outcomes_tx);
            let _ = completer.await;
        })
        .await;
        if drained.is_err() {
            // Give the leases back so another worker sends them now, not after lease_ms.
            let stranded = self.in_flight.snapshot();
            match store::release_leases(&self.pool, &stranded).await {
                Ok(n) => tracing::warn!(
                    released = n,
                    "requests still in flight after {grace:?}: their leases were released for another worker"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "requests still in flight after {grace:?}; their leases will expire and another worker sends them again"
                ),
            }
        }
        chores.cancel();
        let _ = renewer.await;
        listener.abort();
    }

    /// Arrivals numbered per transaction, by a claim round or by `numbering.rs`: as many as
    /// a claim may take. claim_batch is at most 10,000 (config validation).
    fn numbering_batch(&self) -> i32 {
        i32::try_from(self.settings.claim_batch).unwrap_or(i32::MAX)
    }

    async fn claim_loop(
        self: &Arc<Self>,
        permits: &Arc<Semaphore>,
        outcomes: &mpsc::Sender<Outcome>,
        shutdown: &CancellationToken,
    ) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let mut db_backoff = Duration::from_millis(100);
        loop {
            let first = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
                _ = shutdown.cancelled() => return,
            };
            let wanted = (permits.available_permits() + 1).min(self.settings.claim_batch);
            let lease_token = Uuid::new_v4();
            let room = self.in_flight.room(self.settings.endpoint_concurrency);
            // Number what arrived for ordered endpoints first, in the claim's transaction, so
            // that it can be claimed now: as many as a claim may take, no more. Numbering is
            // the round's slow part (about 60 µs an arrival), and nothing is claimed or sent
            // until it ends: with 1,000 a round, a burst's first 9 s went at a third of the
            // rate that followed once everything was numbered (docs/performance.md). The total
            // is the same either way; the first deliveries no longer wait for the numbering.
            // A backlog is numbered beside the rounds, by `numbering.rs`, not in them: a
            // round numbering a full batch sent nothing meanwhile.
            let sequence_max = if self.backlog.numbering() {
                0
            } else {
                self.numbering_batch()
            };
            let (sequenced, claimed) = match store::sequence_and_claim(
                &self.pool,
                sequence_max,
                wanted as i64,
                self.settings.lease_ms as i64,
                lease_token,
                &room,
            )
            .await
            {
                Ok(c) => {
                    db_backoff = Duration::from_millis(100);
                    c
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claim failed; retrying");
                    drop(first);
                    tokio::select! {
                        _ = tokio::time::sleep(db_backoff) => {},
                        _ = shutdown.cancelled() => return,
                    }
                    db_backoff = (db_backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let got = claimed.len();
            let mut first = Some(first);
            self.in_flight
                .claimed(lease_token, claimed.iter().map(|c| (c.id, c.endpoint_id)));
            for delivery in claimed {
                let permit = match first.take() {
                    Some(p) => p,
                    // Never more than the free permits were asked for; if that ever breaks,
                    // the lease brings the delivery back rather than a panic stopping the loop.
                    None => match permits.clone().try_acquire_owned() {
                        Ok(p) => p,
                        Err(_) => {
                            tracing::error!(delivery_id = %delivery.id, "claimed more than the free slots; its lease will bring it back");
                            continue;
                        }
                    },
                };
                let me = self.clone();
                let outcomes = outcomes.clone();
                tokio::spawn(
                    async move { me.deliver(delivery, lease_token, permit, outcomes).await },
                );
            }
            drop(first);
            let full = sequence_max > 0 && sequenced == sequence_max;
            if full {
                self.backlog.found();
            }
            if got > 0 || full {
                continue; // more may be due right now
            }
            // Nothing claimable now: sleep until the next due time, a NOTIFY, or the poll.
            let wait = match store::next_due_in_ms(&self.pool, &room.full).await {
                Ok(Some(ms)) => Duration::from_millis(ms as u64).min(poll),
                Ok(None) | Err(_) => poll,
            };
            // Due but not claimable (another worker is claiming it now): a short pause.
            let wait = wait.max(Duration::from_millis(5));
            tokio::select! {
                _ = self.wake.notified() => {},
                _ = tokio::time::sleep(wait) => {},
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// How many outcomes may wait for the completer. A slot is freed only once its outcome is in
/// this queue (backpressure), so it must be deep enough for the completer to write large
/// batches while the senders go on (up to its `MAX_BATCH`), yet bounded: at most four
/// outcomes per slot (each holds at most 4 KiB of what the partner answered).
fn outcome_queue(concurrency: usize) -> usize {
    (concurrency * 4).max(64)
}
