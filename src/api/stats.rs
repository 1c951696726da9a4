//! `GET /v1/stats/timeline?window=1h|6h|24h`: what the console draws. Attempts per time
//! bucket by outcome, success rate and latency per endpoint, and the oldest due delivery's
//! wait. Every query is bounded by time: `delivery_attempts_started_brin` (0013) lets the
//! scan read only the blocks of the window, whatever the table's size.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::extract::QueryPairs;
use super::{ApiContext, ApiError};
use crate::store::db;

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

#[derive(sqlx::FromRow, utoipa::ToSchema)]
pub(super) struct Bucket {
    t: DateTime<Utc>,
    delivered: i64,
    failed_attempt: i64,
    dead: i64,
}

#[derive(sqlx::FromRow, utoipa::ToSchema)]
pub(super) struct EndpointStats {
    endpoint_id: Uuid,
    partner_id: Uuid,
    partner_name: String,
    environment: String,
    url: String,
    attempts: i64,
    delivered: i64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
}

/// An attempt's outcome: 2xx delivered; a failure that ended its delivery's current series
/// dead; any other failure a failed attempt (retried).
const OUTCOME: &str = "CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 'delivered'
         WHEN d.state = 'dead' AND d.series = a.series AND d.attempts = a.attempt THEN 'dead'
         ELSE 'failed_attempt' END";

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

    let counted: Vec<Bucket> = db::query_as(const_format::concatcp!(
        "SELECT date_bin(make_interval(secs => $3), a.started_at, $1) AS t,
                count(*) FILTER (WHERE o.outcome = 'delivered') AS delivered,
                count(*) FILTER (WHERE o.outcome = 'failed_attempt') AS failed_attempt,
                count(*) FILTER (WHERE o.outcome = 'dead') AS dead
         FROM delivery_attempts a
         LEFT JOIN deliveries d ON d.id = a.delivery_id
                AND NOT coalesce(a.status_code BETWEEN 200 AND 299, false)
         CROSS JOIN LATERAL (SELECT ",
        OUTCOME,
        " AS outcome) o
         WHERE a.started_at >= $1 AND a.started_at < $2
         GROUP BY 1 ORDER BY 1"
    ))
    .bind(since)
    .bind(until)
    .bind(bucket.num_seconds() as f64)
    .fetch_all(&ctx.pool)
    .await?;

    let endpoints: Vec<EndpointStats> = db::query_as(
        "SELECT e.id AS endpoint_id, e.partner_id, p.name AS partner_name,
                e.environment, e.url, s.attempts, s.delivered, s.p50_ms, s.p95_ms
         FROM (SELECT a.endpoint_id, count(*) AS attempts,
                      count(*) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS delivered,
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50_ms,
                      percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95_ms
               FROM delivery_attempts a
               WHERE a.started_at >= $1 AND a.started_at < $2 AND a.endpoint_id IS NOT NULL
               GROUP BY a.endpoint_id) s
         JOIN endpoints e ON e.id = s.endpoint_id
         JOIN partners p ON p.id = e.partner_id
         ORDER BY p.name, e.environment, e.url",
    )
    .bind(since)
    .bind(until)
    .fetch_all(&ctx.pool)
    .await?;

    let probe = crate::prometheus::probe_endpoints(&ctx.pool).await?;
    let due_age = |id: Uuid| {
        probe
            .iter()
            .find(|r| r.endpoint_id == id)
            .and_then(|r| r.due_age)
            .map_or(0.0, |a| a.max(0.0))
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
        "oldest_due_age_s": crate::prometheus::oldest_due_age(&probe),
    })))
}

/// One entry per bucket of the window, zeros where nothing was attempted, so a chart's x
/// axis is time and not "the buckets that had data".
fn filled(
    counted: &[Bucket],
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
        let one = Bucket {
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
