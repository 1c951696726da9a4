//! Operator alerts: a JSON POST to `alerts_webhook_url` when deliveries die, when an
//! endpoint's failure streak reaches `alerts_failure_streak`, and when an endpoint that was
//! alerted about answers 2xx again.
//!
//! Fed by the completer after each written batch. Rate-limited per endpoint and kind
//! (`alerts_min_interval_s`); the deaths of one burst (`alerts_burst_window_ms` from the
//! first) make one alert with their count, and deaths held back by the rate limit are counted
//! into the next one. Alerts are not deliveries: they are sent once, never retried or queued,
//! and a failing alert receiver only produces a log line. The state lives in this worker
//! process (with several worker processes each alerts on what it sent).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::config::Settings;
use crate::model::ErrorKind;
use crate::store::{Next, Outcome};

/// What the alerts need of one outcome.
#[derive(Debug, Clone)]
pub struct Observed {
    pub endpoint_id: Uuid,
    pub partner_id: Uuid,
    pub next: Next,
    pub error: Option<String>,
    pub error_kind: Option<ErrorKind>,
}

impl From<&Outcome> for Observed {
    fn from(o: &Outcome) -> Self {
        Observed {
            endpoint_id: o.endpoint_id,
            partner_id: o.partner_id,
            next: o.next,
            error: o.error.clone(),
            error_kind: o.error_kind,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AlertKind {
    #[serde(rename = "deliveries.dead")]
    DeliveriesDead,
    #[serde(rename = "endpoint.failing")]
    EndpointFailing,
    #[serde(rename = "endpoint.recovered")]
    EndpointRecovered,
}

/// The JSON body of an alert.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    #[serde(rename = "type")]
    pub kind: AlertKind,
    pub at: DateTime<Utc>,
    pub endpoint_id: Uuid,
    pub partner_id: Uuid,
    /// `deliveries.dead`: deliveries dead-lettered since the previous alert of this kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Consecutive failed attempts (for `endpoint.recovered`: the streak that just ended).
    pub failure_streak: u64,
    pub last_error: Option<String>,
    pub last_error_kind: Option<ErrorKind>,
}

#[derive(Debug, Default)]
struct EndpointBook {
    partner_id: Uuid,
    streak: u64,
    /// An alert about this endpoint's failures went out and no 2xx has been seen since.
    alerted: bool,
    dead_pending: u64,
    flush_at: Option<Instant>,
    last_error: Option<String>,
    last_error_kind: Option<ErrorKind>,
    last_sent: HashMap<AlertKind, Instant>,
}

/// The alerting rules, without I/O (the clock is an argument), so they are unit-tested.
#[derive(Debug)]
pub struct AlertBook {
    streak_threshold: u64,
    min_interval: Duration,
    burst_window: Duration,
    endpoints: HashMap<Uuid, EndpointBook>,
}

/// The longest interval or window the book works with: the settings have no upper bound,
/// and an `Instant` plus anything longer may not be representable.
const LONGEST: Duration = Duration::from_secs(365 * 86_400);

impl AlertBook {
    pub fn new(streak_threshold: u64, min_interval: Duration, burst_window: Duration) -> Self {
        AlertBook {
            streak_threshold: streak_threshold.max(1),
            min_interval: min_interval.min(LONGEST),
            burst_window: burst_window.min(LONGEST),
            endpoints: HashMap::new(),
        }
    }

    fn allowed(&self, e: &EndpointBook, kind: AlertKind, now: Instant) -> bool {
        e.last_sent
            .get(&kind)
            .is_none_or(|t| now.duration_since(*t) >= self.min_interval)
    }

    /// The alert of `kind` about endpoint `id`, noted as sent at `now` (the rate limit
    /// counts from there).
    fn send(
        e: &mut EndpointBook,
        id: Uuid,
        kind: AlertKind,
        count: Option<u64>,
        now: Instant,
    ) -> Alert {
        e.last_sent.insert(kind, now);
        Alert {
            kind,
            at: Utc::now(),
            endpoint_id: id,
            partner_id: e.partner_id,
            count,
            failure_streak: e.streak,
            last_error: e.last_error.clone(),
            last_error_kind: e.last_error_kind,
        }
    }

    /// Takes one outcome into account; returns the alerts to send now.
    pub fn observe(&mut self, now: Instant, o: &Observed) -> Vec<Alert> {
        let mut out = Vec::new();
        let threshold = self.streak_threshold;
        let mut e = self.endpoints.remove(&o.endpoint_id).unwrap_or_default();
        e.partner_id = o.partner_id;
        match o.next {
            Next::Delivered => {
                if e.alerted {
                    if self.allowed(&e, AlertKind::EndpointRecovered, now) {
                        out.push(Self::send(
                            &mut e,
                            o.endpoint_id,
                            AlertKind::EndpointRecovered,
                            None,
                            now,
                        ));
                    }
                    e.alerted = false;
                }
                e.streak = 0;
            }
            Next::RetryAfterMs(_) | Next::Dead => {
                e.streak += 1;
                e.last_error = o.error.clone();
                e.last_error_kind = o.error_kind;
                if e.streak == threshold && self.allowed(&e, AlertKind::EndpointFailing, now) {
                    out.push(Self::send(
                        &mut e,
                        o.endpoint_id,
                        AlertKind::EndpointFailing,
                        None,
                        now,
                    ));
                    e.alerted = true;
                }
                if o.next == Next::Dead {
                    e.dead_pending += 1;
                    if e.flush_at.is_none() {
                        let earliest = e
                            .last_sent
                            .get(&AlertKind::DeliveriesDead)
                            .and_then(|t| t.checked_add(self.min_interval));
                        let burst_end = now.checked_add(self.burst_window).unwrap_or(now);
                        e.flush_at = Some(earliest.map_or(burst_end, |t| t.max(burst_end)));
                    }
                }
            }
        }
        self.endpoints.insert(o.endpoint_id, e);
        out
    }

    /// The dead-letter alerts whose burst window (or rate limit) has passed.
    pub fn due(&mut self, now: Instant) -> Vec<Alert> {
        let mut out = Vec::new();
        for (id, e) in self.endpoints.iter_mut() {
            if e.flush_at.is_some_and(|t| t <= now) && e.dead_pending > 0 {
                let count = Some(e.dead_pending);
                out.push(Self::send(e, *id, AlertKind::DeliveriesDead, count, now));
                e.dead_pending = 0;
                e.flush_at = None;
                e.alerted = true;
            }
        }
        // Forget endpoints with nothing left to remember.
        let min_interval = self.min_interval;
        self.endpoints.retain(|_, e| {
            e.streak > 0
                || e.alerted
                || e.dead_pending > 0
                || e.last_sent
                    .values()
                    .any(|t| now.duration_since(*t) < min_interval)
        });
        out
    }

    /// When [`AlertBook::due`] has something to send next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.endpoints.values().filter_map(|e| e.flush_at).min()
    }
}

/// The completer's handle on the alerts task; None when no alerts URL is configured.
#[derive(Clone)]
pub struct Alerts {
    tx: mpsc::Sender<Vec<Observed>>,
}

impl Alerts {
    /// Starts the alerts task when `alerts_webhook_url` is set.
    pub fn start(settings: &Settings) -> Option<Alerts> {
        if settings.alerts_webhook_url.is_empty() {
            return None;
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(crate::outbound::USER_AGENT)
            .build()
            .ok()?;
        let target = Arc::new(Target {
            client,
            url: settings.alerts_webhook_url.clone(),
            token: settings.alerts_token.clone(),
        });
        let book = AlertBook::new(
            u64::from(settings.alerts_failure_streak),
            Duration::from_secs(settings.alerts_min_interval_s),
            Duration::from_millis(settings.alerts_burst_window_ms),
        );
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run(book, rx, target));
        Some(Alerts { tx })
    }

    /// Hands over a written batch; never waits (a full queue drops the batch with a log line:
    /// alerts must not slow delivery down).
    pub fn observe(&self, outcomes: &[Outcome]) {
        let batch: Vec<Observed> = outcomes.iter().map(Observed::from).collect();
        if let Err(e) = self.tx.try_send(batch) {
            tracing::warn!(error = %e, "alerts: queue full; a batch of outcomes was not considered");
        }
    }
}

struct Target {
    client: reqwest::Client,
    url: String,
    token: SecretString,
}

async fn run(mut book: AlertBook, mut rx: mpsc::Receiver<Vec<Observed>>, target: Arc<Target>) {
    loop {
        let deadline = book.next_deadline();
        let wait = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let mut alerts = Vec::new();
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(batch) => {
                    let now = Instant::now();
                    for o in &batch {
                        alerts.extend(book.observe(now, o));
                    }
                }
                None => return,
            },
            _ = wait => {}
        }
        alerts.extend(book.due(Instant::now()));
        for alert in alerts {
            tokio::spawn(send(target.clone(), alert));
        }
    }
}

/// One POST, no retry: an alert that cannot be sent is logged, never queued.
async fn send(target: Arc<Target>, alert: Alert) {
    let mut request = target.client.post(&target.url).json(&alert);
    if !target.token.expose_secret().is_empty() {
        request = request.bearer_auth(target.token.expose_secret());
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => {
            tracing::info!(kind = ?alert.kind, endpoint_id = %alert.endpoint_id, "alert sent")
        }
        Ok(r) => tracing::warn!(
            kind = ?alert.kind,
            endpoint_id = %alert.endpoint_id,
            status = r.status().as_u16(),
            "alert receiver refused an alert"
        ),
        Err(e) => tracing::warn!(
            kind = ?alert.kind,
            endpoint_id = %alert.endpoint_id,
            error = %e,
            "alert could not be sent"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(endpoint: Uuid, next: Next) -> Observed {
        Observed {
            endpoint_id: endpoint,
            partner_id: Uuid::nil(),
            next,
            error: (next != Next::Delivered).then(|| "http 503".to_string()),
            error_kind: (next != Next::Delivered).then_some(ErrorKind::Http5xx),
        }
    }

    #[test]
    fn a_burst_of_deaths_is_one_alert_with_its_count() {
        let mut book = AlertBook::new(100, Duration::from_secs(300), Duration::from_secs(1));
        let e = Uuid::now_v7();
        let t0 = Instant::now();
        for i in 0..5 {
            let at = t0 + Duration::from_millis(100 * i);
            assert!(book.observe(at, &seen(e, Next::Dead)).is_empty());
            assert!(book.due(at).is_empty());
        }
        let sent = book.due(t0 + Duration::from_secs(1));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].kind, AlertKind::DeliveriesDead);
        assert_eq!(sent[0].count, Some(5));
        assert_eq!(sent[0].last_error_kind, Some(ErrorKind::Http5xx));
        // More deaths inside the rate limit: held back, then counted into the next alert.
        let t1 = t0 + Duration::from_secs(10);
        book.observe(t1, &seen(e, Next::Dead));
        book.observe(t1, &seen(e, Next::Dead));
        assert!(book.due(t1 + Duration::from_secs(5)).is_empty());
        assert_eq!(book.next_deadline(), Some(t0 + Duration::from_secs(301)));
        let later = book.due(t0 + Duration::from_secs(301));
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].count, Some(2));
    }

    #[test]
    fn the_streak_alerts_once_and_recovery_follows_an_alert() {
        let mut book = AlertBook::new(3, Duration::from_secs(300), Duration::from_secs(1));
        let e = Uuid::now_v7();
        let now = Instant::now();
        // A success without a prior alert says nothing.
        assert!(book.observe(now, &seen(e, Next::Delivered)).is_empty());
        let mut sent = Vec::new();
        for _ in 0..10 {
            sent.extend(book.observe(now, &seen(e, Next::RetryAfterMs(10))));
        }
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].kind, AlertKind::EndpointFailing);
        assert_eq!(sent[0].failure_streak, 3);
        let back = book.observe(now, &seen(e, Next::Delivered));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].kind, AlertKind::EndpointRecovered);
        assert_eq!(back[0].failure_streak, 10);
        assert!(book.observe(now, &seen(e, Next::Delivered)).is_empty());
        // A new streak within the interval: rate-limited, so no recovery alert either.
        for _ in 0..5 {
            assert!(
                book.observe(now, &seen(e, Next::RetryAfterMs(10)))
                    .is_empty()
            );
        }
        assert!(book.observe(now, &seen(e, Next::Delivered)).is_empty());
    }
}
