//! The bench's own statements on its database: a fresh `<name>_bench` database, partners and
//! endpoints registered through the product's store, the bulk enqueue, and what it reads to
//! measure (commits, latencies, what is left). Plain sqlx on a direct connection: this is the
//! measuring side, not the product, and the statements read what the product wrote.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use callbackd::config::Settings;
use callbackd::crypto::SecretBox;
use callbackd::model::{DeliveryOrder, Environment, Method};
use callbackd::store::{Endpoint, EndpointRecord, Partner, SigningChange};

use crate::process::Usage;
use crate::{BenchArgs, KEY, receiver};

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
    let pool = callbackd::startup::prepare_database(&s, &secrets).await?;
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
                signing: SigningChange::Clear,
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
pub async fn enqueue_bulk(
    pool: &PgPool,
    partners: &[Uuid],
    per_partner: u64,
) -> anyhow::Result<()> {
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

pub async fn commits(pool: &PgPool) -> anyhow::Result<i64> {
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
pub async fn latencies(pool: &PgPool, like: &str) -> anyhow::Result<(i64, [f64; 4])> {
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
pub async fn wait_delivered(
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
pub async fn drain_seconds(
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

pub async fn db_now(pool: &PgPool) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(pool).await?)
}

/// A fresh database, the receiver, and one partner per path.
pub async fn setup(
    settings: &Settings,
    args: &BenchArgs,
    paths: &[&str],
) -> anyhow::Result<(String, PgPool, Vec<Uuid>, std::sync::Arc<receiver::Counts>)> {
    let (url, pool, secrets) = fresh_database(settings).await?;
    let (base, counts) = receiver::start().await?;
    let partners = register(&pool, &secrets, &base, paths, !args.unordered).await?;
    Ok((url, pool, partners, counts))
}
