//! One delivery's attempt: prepare the request from the claimed row (URL, headers, body,
//! signature, trace context, credentials), send it through [`crate::outbound`], and decide
//! what the result means for the delivery: delivered, retried later, or dead. A panicking
//! attempt becomes an `internal` failure like any other.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::Instrument;
use uuid::Uuid;

use super::Dispatcher;
use crate::model::{ErrorKind, Method};
use crate::outbound::auth::AuthConfig;
use crate::outbound::{self, AttemptResult, CallbackRequest, Failure, proposal_status_url};
use crate::store::{Claimed, Next, Outcome};

impl Dispatcher {
    pub(super) async fn deliver(
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
                let result = AttemptResult::failed(Failure::new(
                    ErrorKind::Internal,
                    format!("internal: the attempt panicked: {what}"),
                ));
                self.conclude(&c, lease_token, result)
            }
        };
        ::metrics::gauge!(crate::prometheus::IN_FLIGHT).decrement(1.0);
        if self
            .in_flight
            .request_done(c.endpoint_id, self.settings.endpoint_concurrency)
        {
            self.wake.notify_one();
        }
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
        // contains this marker panics here, so tests/it/reliability/queue can prove that a
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
        if let Some(kind) = result.error_kind {
            span.record("error_kind", kind.as_str());
            crate::prometheus::record_failed_attempt(&c.partner_id, kind.as_str());
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
            error_kind: result.error_kind,
            response_body: result.response_body,
            response_body_lossy: result.response_body_lossy,
            next,
        }
    }

    /// The request without auth, and the endpoint's auth.
    fn prepare(&self, c: &Claimed) -> Result<(reqwest::Request, Arc<AuthConfig>), Failure> {
        let unusable = |m: String| Failure::new(ErrorKind::Other, m);
        let method: Method = c.method.parse().map_err(unusable)?;
        let url = match (c.event_type.as_str(), c.proposal, c.status) {
            ("proposal.status", Some(proposal), Some(status)) => {
                proposal_status_url(&c.url, proposal, status, c.identifier.as_deref())
            }
            _ => url::Url::parse(&c.url),
        }
        .map_err(|e| unusable(format!("request: endpoint URL does not parse: {e}")))?;
        let creds = self.credentials.get(&self.secrets, c)?;
        let unix_time = Utc::now().timestamp();
        let mut request = CallbackRequest {
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
            outbound::sign_standard_webhooks(&mut request, keys, c.id, unix_time);
        }
        // The attempt's own trace context, never the platform's: only for endpoints that
        // asked for it (prepare runs inside the attempt span).
        if c.propagate_trace_context
            && let Some(value) = crate::telemetry::traceparent(&tracing::Span::current())
        {
            outbound::set_traceparent(&mut request, value);
        }
        Ok((request, creds.auth.clone()))
    }
}
