//! The delivery workers: claim due deliveries in batches, send each one, complete the
//! outcomes in batches. One `Dispatcher` per process; many processes may share a database.
//!
//! ```text
//! wakeup (LISTEN) ─┐
//!                  ▼
//! claimer ── Claimed ──▶ one task per delivery (sender) ── Outcome ──▶ completer
//!    ▲  permits = worker_concurrency                                      │
//!    └──────────────────────── kick after each batch ◀────────────────────┘
//! ```

pub mod alerts;
mod completer;
mod credentials;
mod hooks;
mod inflight;
mod request;
mod schedule;
mod sender;
pub mod test_callback;
mod upkeep;
mod wakeup;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use chrono::Utc;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::AuthConfig;
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::model::Method;
use crate::store::Db;
use crate::store::{self, Claimed, Next, Outcome};
pub use credentials::{Credentials, open as open_credentials};
pub use request::{USER_AGENT, proposal_status_url};
pub use schedule::{RetryPolicy, parse_retry_after};
pub use sender::{AttemptResult, RESPONSE_BODY_LIMIT, Sender};

/// Arrivals of ordered endpoints numbered per statement.
const SEQUENCE_BATCH: i32 = 1000;

pub struct Dispatcher {
    pool: Db,
    /// Where to LISTEN: a session, direct when `pool` goes through a pooler.
    listen: Db,
    settings: Arc<Settings>,
    secrets: SecretBox,
    sender: Sender,
    policy: RetryPolicy,
    wake: Arc<Notify>,
    credentials: credentials::CredentialCache,
    /// What this process is sending now: per delivery (for the lease release at shutdown)
    /// and per endpoint (for the per-endpoint cap).
    in_flight: Arc<inflight::InFlight>,
}

impl Dispatcher {
    pub fn new(pool: Db, settings: Arc<Settings>, secrets: SecretBox) -> anyhow::Result<Self> {
        Ok(Self {
            sender: Sender::new(settings.allow_private_targets)?,
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
            alerts::Alerts::start(&self.settings),
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
            // Number what arrived for ordered endpoints first, so that it can be claimed now.
            let sequenced = match store::sequence_arrivals(&self.pool, SEQUENCE_BATCH).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "numbering arrivals failed; retrying");
                    0
                }
            };
            let lease_token = Uuid::new_v4();
            let room = self.in_flight.room(self.settings.endpoint_concurrency);
            let claimed = match store::claim(
                &self.pool,
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
            if got > 0 || sequenced == SEQUENCE_BATCH {
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

    async fn deliver(
        self: Arc<Self>,
        c: Claimed,
        lease_token: Uuid,
        permit: OwnedSemaphorePermit,
        outcomes: mpsc::Sender<Outcome>,
    ) {
        let span = tracing::info_span!(
            "attempt",
            delivery_id = %c.id,
            partner_id = %c.partner_id,
            endpoint_id = %c.endpoint_id,
            event_type = %c.event_type,
            attempt = c.attempt,
            series = c.series,
            status_code = tracing::field::Empty,
            error_kind = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        crate::telemetry::link(&span, c.traceparent.as_deref());
        ::metrics::gauge!(crate::prometheus::IN_FLIGHT).increment(1.0);
        // A panic in the attempt (a bug, or an input nobody foresaw) must not lose the
        // delivery's slot, its endpoint's count or its outcome: it becomes a failed attempt
        // of kind `internal`, retried and in the end dead-lettered like any other failure.
        let outcome = match AssertUnwindSafe(self.attempt(&c, lease_token).instrument(span.clone()))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                let _enter = span.enter();
                tracing::error!(panic = %what, "the attempt panicked; recorded as an internal error");
                let result =
                    AttemptResult::failed(format!("internal: the attempt panicked: {what}"));
                self.conclude(&c, lease_token, result)
            }
        };
        ::metrics::gauge!(crate::prometheus::IN_FLIGHT).decrement(1.0);
        self.in_flight.request_done(c.endpoint_id);
        // If the completer is gone the process is stopping: the lease brings it back.
        let _ = outcomes.send(outcome).await;
        // The slot is free only once the outcome is queued for the completer: when writing
        // outcomes is slower than sending (a long backlog on a busy database), the claim loop
        // waits for the completer instead of claiming ever more deliveries whose outcomes
        // (and leases to renew) pile up in memory.
        drop(permit);
    }

    async fn attempt(&self, c: &Claimed, lease_token: Uuid) -> Outcome {
        // Test hook (debug builds only; release builds do not have it): an endpoint whose URL
        // contains this marker panics here, so tests/reliability/queue can prove that a
        // panicking attempt is recorded as `internal` and frees its slot and endpoint count.
        #[cfg(debug_assertions)]
        if c.url.contains("callbackd-test-panic") {
            panic!("test hook: the endpoint URL asks this attempt to panic");
        }
        let result = match self.prepare(c) {
            Ok((request, auth)) => {
                let timeout = Duration::from_millis(c.timeout_ms.max(1) as u64);
                self.sender
                    .attempt(request, c.endpoint_id, &auth, timeout)
                    .await
            }
            Err(error) => AttemptResult::failed(error),
        };
        self.conclude(c, lease_token, result)
    }

    /// What an attempt's result means for the delivery: delivered, retried later, or dead.
    fn conclude(&self, c: &Claimed, lease_token: Uuid, result: AttemptResult) -> Outcome {
        let span = tracing::Span::current();
        span.record(
            "duration_ms",
            i64::try_from(result.duration.as_millis()).unwrap_or(i64::MAX),
        );
        if let Some(code) = result.status_code {
            // As a signed integer: OpenTelemetry has no unsigned one (a u64 became a string).
            span.record("status_code", i64::from(code));
        }
        let next = if result.succeeded() {
            tracing::info!("delivered");
            Next::Delivered
        } else if c.attempt >= c.max_attempts {
            tracing::warn!(
                error = result.error.as_deref(),
                "attempt failed; dead-lettered"
            );
            Next::Dead
        } else {
            let delay =
                self.policy
                    .delay_ms(c.attempt as u32, rand::random::<f64>(), result.retry_after);
            tracing::info!(
                error = result.error.as_deref(),
                retry_in_ms = delay,
                "attempt failed"
            );
            Next::RetryAfterMs(i64::try_from(delay).unwrap_or(i64::MAX))
        };
        let label = match next {
            Next::Delivered => "delivered",
            Next::RetryAfterMs(_) => "failed_attempt",
            Next::Dead => "dead",
        };
        crate::prometheus::record_attempt(&c.partner_id, label, result.duration);
        if let Some(kind) =
            crate::model::error_kind(result.error.as_deref(), result.status_code.map(i32::from))
        {
            span.record("error_kind", kind);
            crate::prometheus::record_failed_attempt(&c.partner_id, kind);
        }
        Outcome {
            delivery_id: c.id,
            endpoint_id: c.endpoint_id,
            partner_id: c.partner_id,
            auto_replay: c.auto_replay,
            lease_token,
            series: c.series,
            attempt: c.attempt,
            started_at: result.started_at,
            duration_ms: i32::try_from(result.duration.as_millis()).unwrap_or(i32::MAX),
            status_code: result.status_code.map(i32::from),
            error: result.error.as_deref().map(crate::model::text_from_str),
            response_body: result.response_body,
            response_body_lossy: result.response_body_lossy,
            next,
        }
    }

    /// The request without auth, and the endpoint's auth.
    fn prepare(&self, c: &Claimed) -> Result<(reqwest::Request, Arc<AuthConfig>), String> {
        let method: Method = c.method.parse()?;
        let url = match (c.event_type.as_str(), c.proposal, c.status) {
            ("proposal.status", Some(proposal), Some(status)) => {
                proposal_status_url(&c.url, proposal, status, c.identifier.as_deref())
            }
            _ => url::Url::parse(&c.url),
        }
        .map_err(|e| format!("request: endpoint URL does not parse: {e}"))?;
        let creds = self.credentials.get(&self.secrets, c)?;
        let unix_time = Utc::now().timestamp();
        let mut request = request::CallbackRequest {
            url,
            method,
            delivery_id: c.id,
            attempt: c.attempt,
            event_type: &c.event_type,
            unix_time,
            body: c.body.as_deref(),
            sequence: c.sequence,
        }
        .build();
        if let Some(keys) = &creds.signing {
            request::sign_standard_webhooks(&mut request, keys, c.id, unix_time);
        }
        // The attempt's own trace context, never the platform's: only for endpoints that
        // asked for it (prepare runs inside the attempt span).
        if c.propagate_trace_context
            && let Some(value) = crate::telemetry::traceparent(&tracing::Span::current())
        {
            request::set_traceparent(&mut request, value);
        }
        Ok((request, creds.auth.clone()))
    }
}

/// How many outcomes may wait for the completer. A slot is freed only once its outcome is in
/// this queue (backpressure), so it must be deep enough for the completer to write large
/// batches while the senders go on (up to its `MAX_BATCH`), yet bounded: at most four
/// outcomes per slot (each holds at most 4 KiB of what the partner answered).
fn outcome_queue(concurrency: usize) -> usize {
    (concurrency * 4).max(64)
}
