//! Prometheus metrics. Counters and histograms are recorded where things happen (the
//! dispatcher) through the `metrics` facade. The few gauges read from the database are index
//! probes per enabled endpoint ([`gauges`]), never a count over the delivery tables, so a
//! scrape costs the same at ten rows and at millions.
//!
//! Labels are bounded: `partner_id` (one per partner), `endpoint_id` (one per enabled
//! endpoint, on the database gauges only), `outcome`, `error_kind` (fixed sets). Never a
//! delivery id. The README's "Operating callbackd" section lists every series.

mod gauges;

use crate::store::Db;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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
            // Exported from the start at 0: Prometheus's increase() cannot see the first
            // failure of a series that appears with the value 1.
            ::metrics::counter!(COMPLETION_FAILURES).increment(0);
            handle
        })
        .clone()
}

/// The text exposition: recorded metrics, then the database gauges, then this process's pool.
pub async fn render(pool: &Db) -> String {
    let handle = install();
    handle.run_upkeep();
    let mut out = handle.render();
    out.push_str(&gauges::render(pool).await);
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

/// Outcomes a partner's attempts can have; all three exist from its first attempt on.
const OUTCOME_LABELS: [&str; 3] = ["delivered", "failed_attempt", "dead"];

/// Records one attempt's outcome and duration.
pub fn record_attempt(partner_id: &uuid::Uuid, outcome: &'static str, duration: Duration) {
    let partner = partner_id.to_string();
    // The other outcomes are registered at 0, so the first `dead` of a partner is an
    // increase Prometheus can see (a series that appears at 1 has no increase).
    for other in OUTCOME_LABELS {
        let by = u64::from(other == outcome);
        ::metrics::counter!(OUTCOMES, "partner_id" => partner.clone(), "outcome" => other)
            .increment(by);
    }
    ::metrics::histogram!(ATTEMPT_SECONDS, "partner_id" => partner).record(duration.as_secs_f64());
}

/// Counts one failed attempt by its kind (`crate::model::ErrorKind`: a fixed set).
pub fn record_failed_attempt(partner_id: &uuid::Uuid, error_kind: &'static str) {
    ::metrics::counter!(
        FAILED_ATTEMPTS,
        "partner_id" => partner_id.to_string(),
        "error_kind" => error_kind
    )
    .increment(1);
}
