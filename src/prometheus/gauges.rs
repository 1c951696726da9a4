//! The gauges read from the database at scrape time. One statement, whose cost is two index
//! probes per enabled endpoint and nothing per delivery:
//! - the endpoint's oldest ready delivery: the first entry of `delivery_queue_ready_idx`
//!   (endpoint_id, next_attempt_at) WHERE queue = 'ready';
//! - the endpoint's latest attempt: the first entry of `delivery_attempts_endpoint_idx`
//!   (endpoint_id, id DESC);
//!
//! plus one probe for the whole queue: the oldest delivery still `arriving` (an ordered
//! delivery the workers have not numbered yet), the first entry of
//! `delivery_queue_arriving_idx`
//! (in arrival order). Without a worker, arrivals are due work too.
//!
//! Totals (delivered, dead, failed) are counters recorded by the workers, not table counts:
//! `rate()` and `increase()` in PromQL answer "how many" without reading a table.

use crate::store::{Db, db};
use std::fmt::Write;
use std::time::Duration;

use uuid::Uuid;

/// A scrape never waits longer than this for the database: Prometheus's own scrape timeout
/// is often 1–10 s, and an unreachable database must show as `callbackd_database_up 0`, not
/// as a failed scrape.
const DATABASE_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, sqlx::FromRow)]
pub struct EndpointRow {
    pub endpoint_id: Uuid,
    pub partner_id: Uuid,
    pub partner_name: String,
    /// Seconds since the oldest ready delivery became due: negative when it is not due yet,
    /// NULL when the endpoint has no ready delivery.
    pub due_age: Option<f64>,
    /// Seconds the oldest arriving delivery (any endpoint) has waited to be numbered; the
    /// same on every row.
    pub arriving_age: Option<f64>,
    /// Whether the endpoint's latest attempt failed (NULL: no attempt yet).
    pub last_failed: Option<bool>,
}

const PROBE: &str = "
    SELECT e.id AS endpoint_id, e.partner_id, p.name AS partner_name,
           extract(epoch FROM now() - r.next_attempt_at)::float8 AS due_age,
           a.failed AS last_failed,
           (SELECT extract(epoch FROM now() - q.next_attempt_at)::float8 FROM delivery_queue q
            WHERE q.queue = 'arriving' ORDER BY q.arrival LIMIT 1) AS arriving_age
    FROM endpoints e
    JOIN partners p ON p.id = e.partner_id
    LEFT JOIN LATERAL (
        SELECT q.next_attempt_at FROM delivery_queue q
        WHERE q.endpoint_id = e.id AND q.queue = 'ready'
        ORDER BY q.next_attempt_at LIMIT 1) r ON true
    LEFT JOIN LATERAL (
        SELECT NOT coalesce(x.status_code BETWEEN 200 AND 299, false) AS failed
        FROM delivery_attempts x WHERE x.endpoint_id = e.id
        ORDER BY x.id DESC LIMIT 1) a ON true
    WHERE e.enabled AND e.deleted_at IS NULL AND p.deleted_at IS NULL
    ORDER BY e.partner_id, e.id";

/// The database gauges as Prometheus text; `callbackd_database_up 0` alone when the
/// database does not answer within [`DATABASE_TIMEOUT`].
pub async fn render(pool: &Db) -> String {
    let rows = tokio::time::timeout(DATABASE_TIMEOUT, probe(pool)).await;
    match rows {
        Ok(Ok(rows)) => exposition(&rows),
        Ok(Err(e)) => unavailable(&e.to_string()),
        Err(_) => unavailable("no answer within 500 ms"),
    }
}

/// Every enabled endpoint with its oldest ready delivery's age and its latest attempt's
/// outcome (the console's stats use it too).
pub async fn probe(pool: &Db) -> Result<Vec<EndpointRow>, sqlx::Error> {
    db::query_as::<EndpointRow>(PROBE).fetch_all(pool).await
}

/// The oldest due delivery's wait in seconds (0 when nothing is due): ready ones not yet
/// claimed, and arrivals not yet numbered.
pub fn oldest_due_age(rows: &[EndpointRow]) -> f64 {
    rows.iter()
        .flat_map(|r| [r.due_age, r.arriving_age])
        .filter_map(|age| age.filter(|a| *a >= 0.0))
        .fold(0.0_f64, f64::max)
}

fn unavailable(why: &str) -> String {
    tracing::warn!(error = %why, "metrics: database gauges unavailable");
    "# HELP callbackd_database_up Whether the database answered this scrape\n\
     # TYPE callbackd_database_up gauge\n\
     callbackd_database_up 0\n"
        .to_string()
}

fn exposition(rows: &[EndpointRow]) -> String {
    let due = rows
        .iter()
        .filter(|r| r.due_age.is_some_and(|age| age >= 0.0))
        .count();
    let oldest = oldest_due_age(rows);
    let mut out = format!(
        "# HELP callbackd_database_up Whether the database answered this scrape\n\
         # TYPE callbackd_database_up gauge\n\
         callbackd_database_up 1\n\
         # HELP callbackd_oldest_due_age_seconds How long the oldest due delivery has waited (ready and not claimed, of an enabled endpoint; or arrived and not numbered)\n\
         # TYPE callbackd_oldest_due_age_seconds gauge\n\
         callbackd_oldest_due_age_seconds {oldest:.3}\n\
         # HELP callbackd_endpoints_due Enabled endpoints with at least one delivery due now\n\
         # TYPE callbackd_endpoints_due gauge\n\
         callbackd_endpoints_due {due}\n"
    );
    out.push_str(
        "# HELP callbackd_endpoint_oldest_due_age_seconds Per enabled endpoint: how long its oldest due delivery has waited (0: none due)\n\
         # TYPE callbackd_endpoint_oldest_due_age_seconds gauge\n",
    );
    for r in rows {
        let age = r.due_age.unwrap_or(0.0).max(0.0);
        let _ = writeln!(
            out,
            "callbackd_endpoint_oldest_due_age_seconds{{partner_id=\"{}\",endpoint_id=\"{}\"}} {age:.3}",
            r.partner_id, r.endpoint_id
        );
    }
    out.push_str(
        "# HELP callbackd_endpoint_failing Per enabled endpoint: 1 when its latest attempt failed\n\
         # TYPE callbackd_endpoint_failing gauge\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "callbackd_endpoint_failing{{partner_id=\"{}\",endpoint_id=\"{}\"}} {}",
            r.partner_id,
            r.endpoint_id,
            u8::from(r.last_failed == Some(true))
        );
    }
    out.push_str(
        "# HELP callbackd_partner_info The name of each partner with an enabled endpoint (join on partner_id)\n\
         # TYPE callbackd_partner_info gauge\n",
    );
    let mut last = None;
    for r in rows {
        if last == Some(r.partner_id) {
            continue;
        }
        last = Some(r.partner_id);
        let _ = writeln!(
            out,
            "callbackd_partner_info{{partner_id=\"{}\",partner=\"{}\"}} 1",
            r.partner_id,
            label_value(&r.partner_name)
        );
    }
    out
}

/// A label value in the text format: backslash, double quote and line feed escaped.
fn label_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        partner: u128,
        endpoint: u128,
        due_age: Option<f64>,
        failed: Option<bool>,
    ) -> EndpointRow {
        EndpointRow {
            endpoint_id: Uuid::from_u128(endpoint),
            partner_id: Uuid::from_u128(partner),
            partner_name: "Acme \"Bank\"\n\\ Ltd".to_string(),
            due_age,
            arriving_age: None,
            last_failed: failed,
        }
    }

    #[test]
    fn only_due_deliveries_count_towards_the_lag() {
        let text = exposition(&[
            row(1, 1, Some(-30.0), Some(false)),
            row(1, 2, Some(12.5), Some(true)),
            row(2, 3, None, None),
        ]);
        assert!(
            text.contains("callbackd_oldest_due_age_seconds 12.500\n"),
            "{text}"
        );
        assert!(text.contains("callbackd_endpoints_due 1\n"), "{text}");
        assert!(text.contains(
            "callbackd_endpoint_oldest_due_age_seconds{partner_id=\"00000000-0000-0000-0000-000000000001\",endpoint_id=\"00000000-0000-0000-0000-000000000001\"} 0.000\n"
        ));
        assert!(text.contains(
            "callbackd_endpoint_failing{partner_id=\"00000000-0000-0000-0000-000000000001\",endpoint_id=\"00000000-0000-0000-0000-000000000002\"} 1\n"
        ));
        assert_eq!(text.matches("callbackd_partner_info{").count(), 2, "{text}");
    }

    #[test]
    fn unnumbered_arrivals_count_as_due() {
        let mut waiting = row(1, 1, None, None);
        waiting.arriving_age = Some(42.0);
        let text = exposition(&[waiting]);
        assert!(
            text.contains("callbackd_oldest_due_age_seconds 42.000\n"),
            "{text}"
        );
    }

    #[test]
    fn partner_names_are_escaped_in_labels() {
        let text = exposition(&[row(1, 1, None, None)]);
        assert!(
            text.contains("partner=\"Acme \\\"Bank\\\"\\n\\\\ Ltd\"} 1\n"),
            "{text}"
        );
        assert_eq!(text.lines().filter(|l| l.contains("Ltd")).count(), 1);
    }

    #[test]
    fn an_empty_database_reports_no_lag() {
        let text = exposition(&[]);
        assert!(text.contains("callbackd_oldest_due_age_seconds 0.000\n"));
        assert!(text.contains("callbackd_database_up 1\n"));
    }
}
