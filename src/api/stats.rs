//! `GET /v1/stats/timeline?window=1h|6h|24h`: what the console draws. Attempts per time
//! bucket by outcome, success rate and latency per endpoint, and the oldest due delivery's
//! wait. The statements are the store's (store/stats.rs, bounded by time, and the metrics'
//! endpoint probe); this file picks the window and shapes the answer.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::extract::QueryPairs;
use super::{ApiContext, ApiError};
use crate::store::{AttemptBucket, EndpointAttempts, EndpointProbe, oldest_due_age};

pub fn router() -> utoipa_axum::router::OpenApiRouter<ApiContext> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(timeline))
}

/// The windows the console offers, each with the width of one bucket.
fn window(raw: &str) -> Result<(Duration, Duration), String> {
    match raw {
        "1h" => Ok((Duration::hours(1), Duration::minutes(1))),
        "6h" => Ok((Duration::hours(6), Duration::minutes(5))),
        "24h" | "1d" => Ok((Duration::hours(24), Duration::minutes(15))),
        _ => Err("expected 1h, 6h or 24h".to_string()),
    }
}

/// Attempts per time bucket by outcome, success rate and latency per endpoint, the oldest due delivery's wait (the console's charts)
#[utoipa::path(get, path = "/stats/timeline", tag = "stats", operation_id = "statsTimeline",
    params(("window" = Option<String>, Query, description = "1h (default), 6h, 24h or 1d; buckets of 1 min (1h), 5 min (6h), 15 min (24h)")),
    responses(
        (status = 200, description = "The window's statistics", body = super::schema::StatsTimeline),
        (status = 422, description = "Invalid window", body = super::ErrorBody),
    ))]
async fn timeline(State(ctx): State<ApiContext>, q: QueryPairs) -> Result<Json<Value>, ApiError> {
    q.only(&["window"])?;
    let label = q
        .get("window", |v| window(v).map(|_| v.to_string()))?
        .unwrap_or_else(|| "1h".to_string());
    let (span, bucket) = window(&label).expect("validated above");
    let until = Utc::now()
        .duration_trunc(bucket)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?
        + bucket;
    let since = until - span;

    let counted = AttemptBucket::between(&ctx.pool, since, until, bucket).await?;
    let endpoints = EndpointAttempts::between(&ctx.pool, since, until).await?;
    let probe = EndpointProbe::enabled(&ctx.pool).await?;
    let due_age = |id: Uuid| {
        probe
            .iter()
            .find(|r| r.endpoint_id == id)
            .map_or(0.0, EndpointProbe::due_wait)
    };

    Ok(Json(json!({
        "window": label,
        "since": since,
        "until": until,
        "bucket_s": bucket.num_seconds(),
        "buckets": filled(&counted, since, until, bucket),
        "endpoints": endpoints.iter().map(|e| json!({
            "endpoint_id": e.endpoint_id,
            "partner_id": e.partner_id,
            "partner_name": e.partner_name,
            "environment": e.environment,
            "url": e.url,
            "attempts": e.attempts,
            "delivered": e.delivered,
            "success_rate": e.delivered as f64 / e.attempts.max(1) as f64,
            "p50_ms": e.p50_ms,
            "p95_ms": e.p95_ms,
            "oldest_due_age_s": due_age(e.endpoint_id),
        })).collect::<Vec<_>>(),
        "oldest_due_age_s": oldest_due_age(&probe),
    })))
}

/// One entry per bucket of the window, zeros where nothing was attempted, so a chart's x
/// axis is time and not "the buckets that had data".
fn filled(
    counted: &[AttemptBucket],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket: Duration,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut t = since;
    let mut rows = counted.iter().peekable();
    while t < until {
        let (delivered, failed_attempt, dead) = match rows.peek() {
            Some(b) if b.t == t => {
                let b = rows.next().expect("peeked");
                (b.delivered, b.failed_attempt, b.dead)
            }
            _ => (0, 0, 0),
        };
        out.push(
            json!({"t": t, "delivered": delivered, "failed_attempt": failed_attempt, "dead": dead}),
        );
        t += bucket;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_offered_windows_are_accepted() {
        assert_eq!(window("1h").unwrap().1, Duration::minutes(1));
        assert_eq!(window("24h").unwrap().0, Duration::hours(24));
        for bad in ["", "1", "-1h", "1000000h", "1h\0", "1H", "7d"] {
            assert!(window(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn empty_buckets_are_zeros_in_time_order() {
        let since = DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let one = AttemptBucket {
            t: since + Duration::minutes(2),
            delivered: 3,
            failed_attempt: 1,
            dead: 1,
        };
        let out = filled(
            &[one],
            since,
            since + Duration::minutes(4),
            Duration::minutes(1),
        );
        let delivered: Vec<i64> = out
            .iter()
            .map(|b| b["delivered"].as_i64().unwrap())
            .collect();
        assert_eq!(delivered, vec![0, 0, 3, 0]);
        assert_eq!(out[2]["dead"], 1);
    }
}
