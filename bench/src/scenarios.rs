//! The scenarios: a burst drained by a fresh worker (spread over many partners, with a slow
//! partner, all to one partner, or beside a disabled partner's backlog), a steady offered
//! rate, and a large backlog. No scenario runs ANALYZE or VACUUM: the worker meets the
//! database as a fresh deployment (or this machine, with autovacuum off) has it.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::database::{
    commits, db_now, drain_seconds, enqueue_bulk, latencies, setup, wait_delivered,
};
use crate::process::{Usage, Worker};
use crate::{BenchArgs, Report, worker_env};
use callbackd::config::Settings;

/// The shapes of a burst drained by a fresh worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Burst {
    /// `--deliveries` spread over `--endpoints` partners.
    Spread,
    /// The same, with one partner that hangs and one that fails.
    SlowPartner,
    /// `--deliveries` to a single (ordered, unless `--unordered`) endpoint: a nightly batch
    /// to one big partner, or one partner's backlog after its outage.
    OneEndpoint,
    /// The spread burst, beside `--deliveries` pending on a disabled endpoint.
    DisabledBacklog,
}

pub(super) async fn burst(
    settings: &Settings,
    args: &BenchArgs,
    shape: Burst,
) -> anyhow::Result<Report> {
    let endpoints = if shape == Burst::OneEndpoint {
        1
    } else {
        args.endpoints
    };
    let mut paths = vec!["ok"; endpoints];
    match shape {
        Burst::SlowPartner => {
            paths[0] = "hang";
            paths[1] = "fail";
        }
        Burst::DisabledBacklog => paths.push("off"),
        _ => {}
    }
    let (url, pool, partners, counts) = setup(settings, args, &paths).await?;
    let per = args.deliveries / endpoints as u64;
    if shape == Burst::DisabledBacklog {
        let (off, on) = partners.split_last().expect("the disabled partner is last");
        enqueue_bulk(&pool, std::slice::from_ref(off), args.deliveries).await?;
        // The backlog built up while its partner was down; the workers numbered it then.
        sqlx::query("SELECT callbackd_sequence_arrivals(2147483647)")
            .execute(&pool)
            .await?;
        sqlx::query("UPDATE endpoints SET enabled = false WHERE partner_id = $1")
            .bind(off)
            .execute(&pool)
            .await?;
        enqueue_bulk(&pool, on, per).await?;
    } else {
        enqueue_bulk(&pool, &partners, per).await?;
    }
    let healthy = (per as usize * paths.iter().filter(|p| **p == "ok").count()) as i64;

    let before = commits(&pool).await?;
    let started = db_now(&pool).await?;
    let worker = Worker::spawn(&url, &worker_env(args))?;
    let mut usage = Usage::default();
    wait_delivered(&pool, "%/ok/%", healthy, || worker.usage(), &mut usage).await?;
    let elapsed = drain_seconds(&pool, "%/ok/%", started).await?;
    let usage_end = worker.usage();
    worker.stop().await?;
    let after = commits(&pool).await?;
    let (n, l) = latencies(&pool, "%/ok/%").await?;
    let note = match shape {
        Burst::SlowPartner => Some(format!(
            "healthy endpoints only; the hanging one got {} requests, the failing one {}",
            counts.hang.load(AtomicOrdering::Relaxed),
            counts.fail.load(AtomicOrdering::Relaxed)
        )),
        Burst::DisabledBacklog => Some(format!(
            "{} pending on a disabled endpoint meanwhile",
            args.deliveries
        )),
        _ => None,
    };
    Ok(Report {
        scenario: match shape {
            Burst::Spread => "burst",
            Burst::SlowPartner => "slow-partner",
            Burst::OneEndpoint => "one-endpoint",
            Burst::DisabledBacklog => "disabled-backlog",
        },
        deliveries: n,
        deliveries_per_s: n as f64 / elapsed,
        latency_ms_p50: l[0],
        latency_ms_p95: l[1],
        latency_ms_p99: l[2],
        latency_ms_max: l[3],
        cpu_s_per_1000: usage_end.cpu_seconds.max(usage.cpu_seconds) * 1000.0 / n.max(1) as f64,
        peak_rss_mb: usage_end.peak_rss_mb.max(usage.peak_rss_mb),
        db_transactions_per_delivery: (after - before) as f64 / n.max(1) as f64,
        note,
    })
}

pub(super) async fn steady(settings: &Settings, args: &BenchArgs) -> anyhow::Result<Report> {
    let (url, pool, partners, _) = setup(settings, args, &vec!["ok"; args.endpoints]).await?;
    let worker = Worker::spawn(&url, &worker_env(args))?;
    tokio::time::sleep(Duration::from_secs(1)).await; // let it start and LISTEN
    let before = commits(&pool).await?;

    // One small transaction every 10 ms, like a platform committing status changes.
    let per_tick = (args.rate / 100).max(1);
    let ticks = args.seconds * 100;
    let mut interval = tokio::time::interval(Duration::from_millis(10));
    let mut next = 0usize;
    for _ in 0..ticks {
        interval.tick().await;
        let batch: Vec<Uuid> = (0..per_tick)
            .map(|_| {
                next = (next + 1) % partners.len();
                partners[next]
            })
            .collect();
        let pool = pool.clone();
        tokio::spawn(async move {
            sqlx::query(
                "SELECT count(callbackd_enqueue(p, 'production', 'proposal.status',
                                                gen_random_uuid(), 2, 'STEADY'))
                 FROM unnest($1::uuid[]) p",
            )
            .bind(batch)
            .execute(&pool)
            .await
        });
    }
    let total = (per_tick * ticks) as i64;
    let mut usage = Usage::default();
    wait_delivered(&pool, "%/ok/%", total, || worker.usage(), &mut usage).await?;
    let usage_end = worker.usage();
    worker.stop().await?;
    let after = commits(&pool).await?;
    let (n, l) = latencies(&pool, "%/ok/%").await?;
    Ok(Report {
        scenario: "steady",
        deliveries: n,
        deliveries_per_s: n as f64 / args.seconds as f64,
        latency_ms_p50: l[0],
        latency_ms_p95: l[1],
        latency_ms_p99: l[2],
        latency_ms_max: l[3],
        cpu_s_per_1000: usage_end.cpu_seconds * 1000.0 / n.max(1) as f64,
        peak_rss_mb: usage_end.peak_rss_mb.max(usage.peak_rss_mb),
        // Includes the enqueue transactions (one per 10 notifications).
        db_transactions_per_delivery: (after - before) as f64 / n.max(1) as f64,
        note: Some(format!(
            "offered {} per s for {} s",
            args.rate, args.seconds
        )),
    })
}

pub(super) async fn backlog(settings: &Settings, args: &BenchArgs) -> anyhow::Result<Report> {
    let (url, pool, partners, _) = setup(settings, args, &vec!["ok"; args.endpoints]).await?;
    let per = args.backlog / args.endpoints as u64;
    let staging = Instant::now();
    enqueue_bulk(&pool, &partners, per).await?;
    eprintln!(
        "backlog of {} staged in {:.1} s",
        per * args.endpoints as u64,
        staging.elapsed().as_secs_f64()
    );
    let total = (per * args.endpoints as u64) as i64;

    let before = commits(&pool).await?;
    let started = Instant::now();
    let worker = Worker::spawn(&url, &worker_env(args))?;
    // Throughput and memory per tenth of the backlog: neither may degrade as it drains.
    let mut segments: Vec<(f64, f64)> = Vec::new();
    let mut last = (Instant::now(), 0i64);
    let mut peak;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Counting what is left reads the narrow queue table, not the growing delivered set.
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_queue")
            .fetch_one(&pool)
            .await?;
        let n = total - pending;
        let u = worker.usage();
        peak = u;
        let rate = (n - last.1) as f64 / last.0.elapsed().as_secs_f64();
        segments.push((rate, u.rss_mb));
        eprintln!("  {n:>8} delivered  {rate:>8.0}/s  rss {:.0} MB", u.rss_mb);
        last = (Instant::now(), n);
        if n >= total {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    worker.stop().await?;
    let after = commits(&pool).await?;
    let mid = &segments[1.min(segments.len() - 1)..segments.len().saturating_sub(1).max(1)];
    let first = mid.first().map(|s| s.0).unwrap_or(0.0);
    let lastr = mid.last().map(|s| s.0).unwrap_or(0.0);
    Ok(Report {
        scenario: "backlog",
        deliveries: total,
        deliveries_per_s: total as f64 / elapsed,
        cpu_s_per_1000: peak.cpu_seconds * 1000.0 / total.max(1) as f64,
        peak_rss_mb: peak.peak_rss_mb,
        db_transactions_per_delivery: (after - before) as f64 / total.max(1) as f64,
        note: Some(format!(
            "throughput early {first:.0}/s, late {lastr:.0}/s; rss early {:.0} MB, late {:.0} MB",
            mid.first().map(|s| s.1).unwrap_or(0.0),
            mid.last().map(|s| s.1).unwrap_or(0.0)
        )),
        ..Report::default()
    })
}
