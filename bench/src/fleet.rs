//! `bench fleet`: the burst (`--deliveries` over `--endpoints` partners, ordered unless
//! `--unordered`, on a fresh database with no ANALYZE or VACUUM) drained by 1, 2 and 4 worker
//! processes (`--workers`), one fresh database per count. For each count: deliveries/s, the
//! workers' CPU per delivery, the PostgreSQL backends' CPU per delivery (from /proc), the
//! connections the database saw, WAL bytes per delivery, and the wait events of the active
//! backends (`pg_stat_activity` every 100 ms): what the database saturates on.
//!
//! `--via-pgbouncer` runs the same through a private PgBouncer (`--pool-mode`, session by
//! default), LISTEN and migrations direct (`session_database_url`), so that the pooled
//! throughput can be set beside the direct one.

use serde::Serialize;

use crate::database::{
    commits, db_now, drain_seconds, enqueue_bulk, latencies, setup, wait_delivered,
};
use crate::pgbouncer::PgBouncer;
use crate::pgstat::{self, Sampler};
use crate::process::{Usage, Worker, alive, all_postgres_cpu, total_usage};
use crate::{BenchArgs, Report, worker_env};
use callbackd::config::Settings;

/// PgBouncer's server connections in transaction mode, unless `--pool-size` says otherwise:
/// about what a 2-core database serves well, whatever the number of workers.
const TRANSACTION_POOL_SIZE: u32 = 10;

/// One worker count's result, printed as one JSON line.
#[derive(Debug, Serialize)]
struct Row {
    workers: usize,
    via_pgbouncer: Option<String>,
    deliveries: i64,
    deliveries_per_s: f64,
    worker_cpu_ms_per_delivery: f64,
    pg_backend_cpu_ms_per_delivery: f64,
    /// Every `postgres` process of the machine (WAL writer, checkpointer, other users too).
    pg_all_cpu_ms_per_delivery: f64,
    pgbouncer_cpu_ms_per_delivery: Option<f64>,
    /// Cores busy on average: the workers, the database's backends.
    worker_cores: f64,
    pg_backend_cores: f64,
    peak_connections: usize,
    distinct_backends: usize,
    wal_bytes_per_delivery: f64,
    db_transactions_per_delivery: f64,
    average_active_backends: f64,
    idle_in_transaction_average: f64,
    top_waits: Vec<(String, f64)>,
    load_average: String,
}

pub(super) async fn fleet(settings: &Settings, args: &BenchArgs) -> anyhow::Result<Vec<Report>> {
    let mut reports = Vec::new();
    let mut rows = Vec::new();
    for &n in &args.workers {
        let (row, report) = one(settings, args, n.max(1)).await?;
        println!("{}", serde_json::to_string(&row)?);
        rows.push(row);
        reports.push(report);
    }
    print_rows(&rows);
    Ok(reports)
}

async fn one(settings: &Settings, args: &BenchArgs, n: usize) -> anyhow::Result<(Row, Report)> {
    let (url, pool, partners, _) = setup(settings, args, &vec!["ok"; args.endpoints]).await?;
    let per = args.deliveries / args.endpoints.max(1) as u64;
    enqueue_bulk(&pool, &partners, per).await?;
    let total = (per * partners.len() as u64) as i64;

    let mut env = worker_env(args);
    let bouncer = match &args.via_pgbouncer {
        Some(mode) => {
            // Session mode holds one server connection per client connection: room for every
            // worker's whole pool. Transaction mode shares a few (what it is for): the
            // workers then send unnamed statements (`database_pool_mode`).
            let size = args.pool_size.unwrap_or(if mode == "transaction" {
                TRANSACTION_POOL_SIZE
            } else {
                settings.database_max_connections * n as u32 + 4
            });
            let b = PgBouncer::start(&url, mode, size).await?;
            env.push(("CALLBACKD_SESSION_DATABASE_URL", url.clone()));
            if mode == "transaction" {
                env.push(("CALLBACKD_DATABASE_POOL_MODE", mode.clone()));
            }
            Some(b)
        }
        None => None,
    };
    let worker_url = match &bouncer {
        Some(b) => b.url(&url)?,
        None => url.clone(),
    };

    let own = pgstat::backends(&pool).await?;
    let before = commits(&pool).await?;
    let wal_before = pgstat::wal_position(&pool).await?;
    let pg_all_before = all_postgres_cpu();
    let bouncer_before = bouncer
        .as_ref()
        .map(|b| crate::process::cpu_seconds(b.pid()));
    let sampler = Sampler::start(&url, own).await?;
    let started = db_now(&pool).await?;
    let workers = (0..n)
        .map(|_| Worker::spawn(&worker_url, &env))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut peak = Usage::default();
    // A process that dies would leave the wait without an end: watch them meanwhile.
    let mut pids: Vec<(&str, u32)> = workers.iter().map(|w| ("a worker", w.pid())).collect();
    pids.extend(bouncer.as_ref().map(|b| ("pgbouncer", b.pid())));
    tokio::select! {
        done = wait_delivered(&pool, "%/ok/%", total, || total_usage(&workers), &mut peak) => done?,
        (who, pid) = watch(&pids) => anyhow::bail!(
            "{who} (pid {pid}) exited during the run{}",
            bouncer.as_ref().map(|b| format!("; pgbouncer's log:\n{}", b.log())).unwrap_or_default()
        ),
    }
    let activity = sampler.finish().await?;
    let used = total_usage(&workers);
    let pg_all = all_postgres_cpu() - pg_all_before;
    let bouncer_cpu = bouncer
        .as_ref()
        .zip(bouncer_before)
        .map(|(b, was)| crate::process::cpu_seconds(b.pid()) - was);
    let wal = pgstat::wal_position(&pool).await? - wal_before;
    let elapsed = drain_seconds(&pool, "%/ok/%", started).await?;
    for w in workers {
        w.stop().await?;
    }
    drop(bouncer);
    let after = commits(&pool).await?;
    let (delivered, l) = latencies(&pool, "%/ok/%").await?;

    let d = delivered.max(1) as f64;
    let ms = |s: f64| s * 1000.0 / d;
    let row = Row {
        workers: n,
        via_pgbouncer: args.via_pgbouncer.clone(),
        deliveries: delivered,
        deliveries_per_s: delivered as f64 / elapsed,
        worker_cpu_ms_per_delivery: ms(used.cpu_seconds),
        pg_backend_cpu_ms_per_delivery: ms(activity.backend_cpu_seconds),
        pg_all_cpu_ms_per_delivery: ms(pg_all),
        pgbouncer_cpu_ms_per_delivery: bouncer_cpu.map(ms),
        worker_cores: used.cpu_seconds / elapsed,
        pg_backend_cores: activity.backend_cpu_seconds / elapsed,
        peak_connections: activity.peak_connections,
        distinct_backends: activity.distinct_backends,
        wal_bytes_per_delivery: wal as f64 / d,
        db_transactions_per_delivery: (after - before) as f64 / d,
        average_active_backends: activity.average_active(),
        idle_in_transaction_average: activity.idle_in_transaction as f64
            / activity.samples.max(1) as f64,
        top_waits: activity.top_waits(5),
        load_average: std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    };
    let report = Report {
        scenario: scenario_name(n, args.via_pgbouncer.as_deref()),
        deliveries: delivered,
        deliveries_per_s: row.deliveries_per_s,
        latency_ms_p50: l[0],
        latency_ms_p95: l[1],
        latency_ms_p99: l[2],
        latency_ms_max: l[3],
        cpu_s_per_1000: row.worker_cpu_ms_per_delivery,
        peak_rss_mb: used.peak_rss_mb.max(peak.peak_rss_mb),
        db_transactions_per_delivery: row.db_transactions_per_delivery,
        note: Some(format!(
            "{n} worker(s){}; PostgreSQL backends {:.3} CPU ms/delivery; {} connections at \
             peak; {:.0} WAL bytes/delivery; top waits: {}",
            match args.via_pgbouncer.as_deref() {
                Some(mode) => format!(" through PgBouncer ({mode} mode)"),
                None => String::new(),
            },
            row.pg_backend_cpu_ms_per_delivery,
            row.peak_connections,
            row.wal_bytes_per_delivery,
            waits_text(&row.top_waits),
        )),
    };
    Ok((row, report))
}

/// Returns the first of `pids` that is no longer running.
async fn watch<'a>(pids: &[(&'a str, u32)]) -> (&'a str, u32) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if let Some(gone) = pids.iter().find(|(_, pid)| !alive(*pid)) {
            return *gone;
        }
    }
}

/// `fleet-<n>` (`fleet-pooled-<n>` through PgBouncer in session mode, `fleet-<mode>-<n>` in
/// another mode). The report keeps a `&'static str`; the handful of names one benchmark run
/// makes may live as long as the process.
fn scenario_name(n: usize, pool_mode: Option<&str>) -> &'static str {
    let name = match pool_mode {
        None => format!("fleet-{n}"),
        Some("session") => format!("fleet-pooled-{n}"),
        Some(mode) => format!("fleet-{mode}-{n}"),
    };
    Box::leak(name.into_boxed_str())
}

fn waits_text(waits: &[(String, f64)]) -> String {
    waits
        .iter()
        .map(|(w, share)| format!("{w} {:.0}%", share * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_rows(rows: &[Row]) {
    let mut t = crate::table(&[
        "workers",
        "per s",
        "worker CPU ms/d",
        "PG CPU ms/d",
        "worker cores",
        "PG cores",
        "conns",
        "WAL B/d",
        "active",
        "top waits",
    ]);
    for r in rows {
        t.add_row(vec![
            r.workers.to_string(),
            format!("{:.0}", r.deliveries_per_s),
            format!("{:.3}", r.worker_cpu_ms_per_delivery),
            format!("{:.3}", r.pg_backend_cpu_ms_per_delivery),
            format!("{:.2}", r.worker_cores),
            format!("{:.2}", r.pg_backend_cores),
            r.peak_connections.to_string(),
            format!("{:.0}", r.wal_bytes_per_delivery),
            format!("{:.1}", r.average_active_backends),
            waits_text(&r.top_waits[..r.top_waits.len().min(3)]),
        ]);
    }
    println!("{t}");
    println!(
        "machine: {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        rows.last().map_or("", |r| r.load_average.as_str())
    );
}
