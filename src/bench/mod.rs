//! `callbackd bench <scenario>`: the delivery pipeline measured end to end against the real
//! PostgreSQL, with a worker process under test and a fast receiver on 127.0.0.1.
//! Prints one JSON line per scenario, then a table.

mod fleet;
mod ingest;
mod pgbouncer;
mod pgstat;
mod process;
mod receiver;
mod scenarios;

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::model::{DeliveryOrder, Environment, Method};
use crate::store::{Endpoint, EndpointRecord, Partner};
use process::Usage;
use scenarios::Burst;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Burst,
    Steady,
    SlowPartner,
    OneEndpoint,
    DisabledBacklog,
    Backlog,
    /// Not part of `all`: HTTP clients through the real API (see ingest.rs).
    Ingest,
    /// Not part of `all`: the burst drained by 1, 2 and 4 worker processes (see fleet.rs).
    Fleet,
    All,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    scenario: Scenario,
    /// Deliveries for burst, slow-partner, one-endpoint, and the disabled backlog.
    #[arg(long, default_value_t = 100_000)]
    deliveries: u64,
    /// Pending rows for backlog.
    #[arg(long, default_value_t = 1_000_000)]
    backlog: u64,
    /// Offered rate for steady, per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Duration of steady, seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Deliver per proposal in order (the default for proposal.status endpoints); `--unordered`
    /// measures the same scenario without the ordering check.
    #[arg(long)]
    unordered: bool,
    /// Endpoints (one partner each).
    #[arg(long, default_value_t = 100)]
    endpoints: usize,
    /// ingest: notifications per call through the batch API (single calls without it).
    #[arg(long)]
    batch: Option<usize>,
    /// ingest: concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// fleet: the worker process counts to run, one fresh database each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    workers: Vec<usize>,
    /// fleet: through a private PgBouncer in this pool mode (`session` when given bare),
    /// LISTEN and migrations direct.
    #[arg(long, num_args = 0..=1, default_missing_value = "session", value_name = "POOL_MODE")]
    via_pgbouncer: Option<String>,
    /// fleet: PgBouncer's server connections (default: session mode, every worker's whole pool
    /// plus 4; transaction mode, 10).
    #[arg(long)]
    pool_size: Option<u32>,
}

#[derive(Debug, Serialize, Default)]
pub struct Report {
    scenario: &'static str,
    deliveries: i64,
    deliveries_per_s: f64,
    latency_ms_p50: f64,
    latency_ms_p95: f64,
    latency_ms_p99: f64,
    latency_ms_max: f64,
    cpu_s_per_1000: f64,
    peak_rss_mb: f64,
    db_transactions_per_delivery: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

const KEY: &str = "YmVuY2htYXJrLWtleS0wMTIzNDU2Nzg5MDEyMzQ1Njc="; // 32 bytes, bench only

pub async fn run(settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    let scenarios: Vec<Scenario> = match args.scenario {
        Scenario::All => vec![
            Scenario::Burst,
            Scenario::Steady,
            Scenario::SlowPartner,
            Scenario::OneEndpoint,
            Scenario::DisabledBacklog,
            Scenario::Backlog,
        ],
        one => vec![one],
    };
    let mut reports = Vec::new();
    for s in scenarios {
        let report = match s {
            Scenario::Burst => scenarios::burst(&settings, &args, Burst::Spread).await?,
            Scenario::SlowPartner => scenarios::burst(&settings, &args, Burst::SlowPartner).await?,
            Scenario::OneEndpoint => scenarios::burst(&settings, &args, Burst::OneEndpoint).await?,
            Scenario::DisabledBacklog => {
                scenarios::burst(&settings, &args, Burst::DisabledBacklog).await?
            }
            Scenario::Steady => scenarios::steady(&settings, &args).await?,
            Scenario::Ingest => ingest::ingest(&settings, &args).await?,
            Scenario::Fleet => {
                // One report per worker count, each printed by fleet as it ends.
                reports.extend(fleet::fleet(&settings, &args).await?);
                continue;
            }
            Scenario::Backlog | Scenario::All => scenarios::backlog(&settings, &args).await?,
        };
        println!("{}", serde_json::to_string(&report)?);
        reports.push(report);
    }
    print_table(&reports);
    Ok(())
}

/// A fresh `<name>_bench` database, migrated.
async fn fresh_database(settings: &Settings) -> anyhow::Result<(String, PgPool, SecretBox)> {
    let mut url = url::Url::parse(&settings.database_url)?;
    let name = format!("{}_bench", url.path().trim_start_matches('/'));
    url.set_path(&name);
    let mut admin_url = url.clone();
    admin_url.set_path("postgres");
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url.as_str()).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    let mut s = settings.clone();
    s.database_url = url.to_string();
    s.secret_key = KEY.into();
    let secrets = SecretBox::from_setting(KEY)?;
    let pool = crate::startup::prepare_database(&s, &secrets).await?;
    Ok((url.to_string(), pool.pool().clone(), secrets))
}

/// One partner per endpoint; paths say how the receiver answers.
async fn register(
    pool: &PgPool,
    secrets: &SecretBox,
    base: &str,
    paths: &[&str],
    ordered: bool,
) -> anyhow::Result<Vec<Uuid>> {
    let ordering = if ordered {
        DeliveryOrder::PerProposal
    } else {
        DeliveryOrder::None
    };
    let mut partners = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let p = Partner::create(pool, &format!("bench-{i}")).await?;
        let id = Uuid::now_v7();
        Endpoint::insert(
            pool,
            &EndpointRecord {
                id,
                partner_id: p.id,
                environment: Environment::Production,
                url: format!("{base}/{path}/{i}"),
                method: Method::Post,
                event_types: vec!["proposal.status".into()],
                ordering,
                signing: crate::store::SigningChange::Clear,
                auth_type: "none".into(),
                auth_public: serde_json::json!({"type": "none"}),
                auth_sealed: secrets.seal(br#"{"type":"none"}"#, id.as_bytes()),
                timeout_ms: if *path == "hang" { 2000 } else { 15000 },
                max_attempts: 10,
                enabled: true,
                auto_replay_dead_on_recovery: false,
                auto_replay_window_s: 86_400,
                rate_limit_per_s: None,
                statuses: None,
                schedule_types: None,
                propagate_trace_context: false,
            },
        )
        .await?;
        partners.push(p.id);
    }
    Ok(partners)
}

/// `per_partner` proposal.status notifications for each partner, interleaved across partners
/// (as a platform's batch of status changes is), in statements of up to 20,000.
async fn enqueue_bulk(pool: &PgPool, partners: &[Uuid], per_partner: u64) -> anyhow::Result<()> {
    let rounds_per_statement = (20_000 / partners.len().max(1)).max(1) as i64;
    let mut start = 1i64;
    while start <= per_partner as i64 {
        let end = (start + rounds_per_statement - 1).min(per_partner as i64);
        sqlx::query(
            "SELECT count(callbackd_enqueue(p, 'production', 'proposal.status', gen_random_uuid(),
                                           (g % 12)::int, 'BENCH-' || g))
             FROM generate_series($2::int8, $3::int8) g, unnest($1::uuid[]) p",
        )
        .bind(partners)
        .bind(start)
        .bind(end)
        .execute(pool)
        .await?;
        start = end + 1;
    }
    Ok(())
}

async fn commits(pool: &PgPool) -> anyhow::Result<i64> {
    // Statistics are flushed lazily: give them a moment.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let _ = sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(pool)
        .await;
    Ok(sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}

/// Latency percentiles (ms) of delivered deliveries whose endpoint URL matches `like`.
async fn latencies(pool: &PgPool, like: &str) -> anyhow::Result<(i64, [f64; 4])> {
    let row: (i64, Option<f64>, Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT count(*),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
                percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
                max(ms)
         FROM (SELECT (extract(epoch FROM d.delivered_at - n.created_at) * 1000)::float8 AS ms
               FROM deliveries d JOIN notifications n ON n.id = d.notification_id
               JOIN endpoints e ON e.id = d.endpoint_id
               WHERE d.state = 'delivered' AND e.url LIKE $1) x",
    )
    .bind(like)
    .fetch_one(pool)
    .await?;
    Ok((
        row.0,
        [
            row.1.unwrap_or(0.0),
            row.2.unwrap_or(0.0),
            row.3.unwrap_or(0.0),
            row.4.unwrap_or(0.0),
        ],
    ))
}

/// Waits until the endpoints whose URL matches `like` have nothing pending and at least `want`
/// delivered, sampling the worker's memory meanwhile. Polls whether anything is pending only,
/// so the benchmark's own queries stay out of the way of the workload.
async fn wait_delivered(
    pool: &PgPool,
    like: &str,
    want: i64,
    usage: impl Fn() -> Usage,
    peak: &mut Usage,
) -> anyhow::Result<()> {
    let endpoints: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM endpoints WHERE url LIKE $1")
        .bind(like)
        .fetch_all(pool)
        .await?;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let u = usage();
        if u.peak_rss_mb > 0.0 {
            *peak = u;
        }
        // Whether anything is left, not how much: counting a backlog of a million queue rows
        // five times a second took a core of the machine under test.
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM delivery_queue WHERE endpoint_id = ANY($1))",
        )
        .bind(&endpoints)
        .fetch_one(pool)
        .await?;
        if pending {
            continue;
        }
        let delivered: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries WHERE state = 'delivered' AND endpoint_id = ANY($1)",
        )
        .bind(&endpoints)
        .fetch_one(pool)
        .await?;
        if delivered >= want {
            return Ok(());
        }
    }
}

/// Seconds from `since` (database time) to the last delivery to endpoints matching `like`.
async fn drain_seconds(
    pool: &PgPool,
    like: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<f64> {
    let last: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT max(d.delivered_at) FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id
         WHERE e.url LIKE $1",
    )
    .bind(like)
    .fetch_one(pool)
    .await?;
    Ok(last
        .map(|l| (l - since).num_milliseconds() as f64 / 1000.0)
        .unwrap_or(f64::NAN))
}

async fn db_now(pool: &PgPool) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(pool).await?)
}

/// A fresh database, the receiver, and one partner per path.
async fn setup(
    settings: &Settings,
    args: &BenchArgs,
    paths: &[&str],
) -> anyhow::Result<(String, PgPool, Vec<Uuid>, std::sync::Arc<receiver::Counts>)> {
    let (url, pool, secrets) = fresh_database(settings).await?;
    let (base, counts) = receiver::start().await?;
    let partners = register(&pool, &secrets, &base, paths, !args.unordered).await?;
    Ok((url, pool, partners, counts))
}

fn worker_env(args: &BenchArgs) -> Vec<(&'static str, String)> {
    let _ = args;
    vec![("CALLBACKD_SECRET_KEY", KEY.to_string())]
}

fn print_table(reports: &[Report]) {
    let mut t = crate::cli::table_for_bench(&[
        "scenario",
        "deliveries",
        "per s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "CPU s/1000",
        "peak RSS MB",
        "tx/delivery",
    ]);
    for r in reports {
        t.add_row(vec![
            r.scenario.to_string(),
            r.deliveries.to_string(),
            format!("{:.0}", r.deliveries_per_s),
            format!("{:.1}", r.latency_ms_p50),
            format!("{:.1}", r.latency_ms_p95),
            format!("{:.1}", r.latency_ms_p99),
            format!("{:.1}", r.latency_ms_max),
            format!("{:.3}", r.cpu_s_per_1000),
            format!("{:.1}", r.peak_rss_mb),
            format!("{:.2}", r.db_transactions_per_delivery),
        ]);
    }
    println!("{t}");
    for r in reports {
        if let Some(n) = &r.note {
            println!("{}: {n}", r.scenario);
        }
    }
}
