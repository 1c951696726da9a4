//! The gauges read from the database at scrape time: one statement,
//! [`EndpointProbe::enabled`], whose cost is two index probes per enabled endpoint and
//! nothing per delivery (store/probe.rs says which). This file only shapes its rows into the
//! text format.
//!
//! Totals (delivered, dead, failed) are counters recorded by the workers, not table counts:
//! `rate()` and `increase()` in PromQL answer "how many" without reading a table.

use std::fmt::Write;
use std::time::Duration;

use crate::store::{Db, EndpointProbe, oldest_due_age};

/// A scrape never waits longer than this for the database: Prometheus's own scrape timeout
/// is often 1–10 s, and an unreachable database must show as `callbackd_database_up 0`, not
/// as a failed scrape.
const DATABASE_TIMEOUT: Duration = Duration::from_millis(500);

/// The database gauges as Prometheus text; `callbackd_database_up 0` alone when the
/// database does not answer within [`DATABASE_TIMEOUT`].
pub async fn render(pool: &Db) -> String {
    let rows = tokio::time::timeout(DATABASE_TIMEOUT, EndpointProbe::enabled(pool)).await;
    match rows {
        Ok(Ok(rows)) => exposition(&rows),
        Ok(Err(e)) => unavailable(&e.to_string()),
        Err(_) => unavailable("no answer within 500 ms"),
    }
}

fn unavailable(why: &str) -> String {
    tracing::warn!(error = %why, "metrics: database gauges unavailable");
    "# HELP callbackd_database_up Whether the database answered this scrape\n\
     # TYPE callbackd_database_up gauge\n\
     callbackd_database_up 0\n"
        .to_string()
}

fn exposition(rows: &[EndpointProbe]) -> String {
    let due = rows.iter().filter(|r| r.is_due()).count();
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
        let age = r.due_wait();
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
    use uuid::Uuid;

    fn row(
        partner: u128,
        endpoint: u128,
        due_age: Option<f64>,
        failed: Option<bool>,
    ) -> EndpointProbe {
        EndpointProbe {
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
