//! Prometheus metrics. Counters and histograms are recorded where things happen (the
//! dispatcher) through the `metrics` facade; queue and pool gauges are read from the
//! database at scrape time, so every API process reports the same truth.
//!
//! Labels are bounded: `partner_id` (one per partner), `outcome`, `state`, `error_kind`
//! (a fixed set). Never a delivery id.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

pub const OUTCOMES: &str = "callbackd_delivery_outcomes_total";
pub const ATTEMPT_SECONDS: &str = "callbackd_attempt_duration_seconds";
pub const IN_FLIGHT: &str = "callbackd_in_flight_requests";
pub const FAILED_ATTEMPTS: &str = "callbackd_failed_attempts_total";
pub const COMPLETION_FAILURES: &str = "callbackd_completion_write_failures_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (later calls reuse it).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(ATTEMPT_SECONDS.to_string()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .expect("bucket list is not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            ::metrics::describe_counter!(
                OUTCOMES,
                "Attempts by outcome: delivered, failed_attempt (will retry), dead (gave up)"
            );
            ::metrics::describe_histogram!(ATTEMPT_SECONDS, "Duration of one delivery attempt");
            ::metrics::describe_gauge!(IN_FLIGHT, "Callback requests in flight in this process");
            ::metrics::describe_counter!(
                FAILED_ATTEMPTS,
                "Failed attempts (retried or dead) by error_kind (CONTRACT §7)"
            );
            ::metrics::describe_counter!(
                COMPLETION_FAILURES,
                "Failed writes of attempt outcomes (retried while the database is down; \
                 an outcome the database refuses is isolated and stored stripped)"
            );
            handle
        })
        .clone()
}

/// The text exposition: recorded metrics, then the database-derived gauges.
pub async fn render(pool: &PgPool) -> String {
    let handle = install();
    handle.run_upkeep();
    let mut out = handle.render();
    match queue_gauges(pool).await {
        Ok(text) => out.push_str(&text),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: queue gauges unavailable");
            out.push_str(
                "# queue gauges unavailable: database unreachable\ncallbackd_database_up 0\n",
            );
        }
    }
    let idle = pool.num_idle() as u32;
    let size = pool.size();
    out.push_str(&format!(
        "# HELP callbackd_db_pool_connections Connections of this process's PostgreSQL pool\n\
         # TYPE callbackd_db_pool_connections gauge\n\
         callbackd_db_pool_connections{{state=\"idle\"}} {idle}\n\
         callbackd_db_pool_connections{{state=\"in_use\"}} {}\n\
         # HELP callbackd_db_pool_max_connections Pool size limit\n\
         # TYPE callbackd_db_pool_max_connections gauge\n\
         callbackd_db_pool_max_connections {}\n",
        size.saturating_sub(idle),
        pool.options().get_max_connections(),
    ));
    out
}

async fn queue_gauges(pool: &PgPool) -> Result<String, sqlx::Error> {
    let (pending, due, dead, canceled, oldest): (i64, i64, i64, i64, f64) = sqlx::query_as(
        "SELECT
             (SELECT count(*) FROM deliveries WHERE state = 'pending'),
             (SELECT count(*) FROM deliveries WHERE queue = 'ready'
                AND next_attempt_at <= now()),
             (SELECT count(*) FROM deliveries WHERE state = 'dead'),
             (SELECT count(*) FROM deliveries WHERE state = 'canceled'),
             coalesce((SELECT extract(epoch FROM now() - min(next_attempt_at))
                       FROM deliveries WHERE queue = 'ready' AND next_attempt_at <= now()),
                      0)::float8",
    )
    .fetch_one(pool)
    .await?;
    Ok(format!(
        "# HELP callbackd_queue_depth Deliveries by state (delivered is not counted: it only grows)\n\
         # TYPE callbackd_queue_depth gauge\n\
         callbackd_queue_depth{{state=\"pending\"}} {pending}\n\
         callbackd_queue_depth{{state=\"dead\"}} {dead}\n\
         callbackd_queue_depth{{state=\"canceled\"}} {canceled}\n\
         # HELP callbackd_queue_due Pending deliveries that are due now (not leased, not waiting for a retry)\n\
         # TYPE callbackd_queue_due gauge\n\
         callbackd_queue_due {due}\n\
         # HELP callbackd_oldest_due_age_seconds How long the oldest due delivery has been waiting\n\
         # TYPE callbackd_oldest_due_age_seconds gauge\n\
         callbackd_oldest_due_age_seconds {oldest:.3}\n\
         # HELP callbackd_database_up Whether the database answered the scrape\n\
         # TYPE callbackd_database_up gauge\n\
         callbackd_database_up 1\n"
    ))
}

/// Records one attempt's outcome and duration.
pub fn record_attempt(partner_id: &uuid::Uuid, outcome: &'static str, duration: Duration) {
    let partner = partner_id.to_string();
    ::metrics::counter!(OUTCOMES, "partner_id" => partner.clone(), "outcome" => outcome)
        .increment(1);
    ::metrics::histogram!(ATTEMPT_SECONDS, "partner_id" => partner).record(duration.as_secs_f64());
}

/// Counts one failed attempt by its kind (`crate::model::error_kind`: a fixed set).
pub fn record_failed_attempt(partner_id: &uuid::Uuid, error_kind: &'static str) {
    ::metrics::counter!(
        FAILED_ATTEMPTS,
        "partner_id" => partner_id.to_string(),
        "error_kind" => error_kind
    )
    .increment(1);
}
