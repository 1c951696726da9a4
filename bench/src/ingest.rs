//! `bench ingest`: the platform's real load shape. 32 keep-alive HTTP clients post one
//! notification at a time through the real API (token, JSON, validation) to one endpoint, a
//! worker delivers them to a receiver that answers at once. `--batch N` posts N per call to
//! the batch API instead; `--keys` gives every call an Idempotency-Key. Reports delivered/s end to end, API latency, and CPU per
//! notification of callbackd (API and worker processes) and of PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::database::{db_now, drain_seconds, setup, wait_delivered};
use crate::process::{Usage, Worker, all_postgres_cpu, cpu_seconds};
use crate::{BenchArgs, KEY, Report};
use callbackd::config::Settings;

const TOKEN: &str = "bench-ingest-token";

pub(super) async fn ingest(settings: &Settings, args: &BenchArgs) -> anyhow::Result<Report> {
    let (url, pool, partners, _) = setup(settings, args, &["ok"]).await?;
    let partner = partners[0];
    let listen = free_address()?;
    let mut env = vec![
        ("CALLBACKD_SECRET_KEY", KEY.to_string()),
        ("CALLBACKD_API_TOKEN", TOKEN.to_string()),
        ("CALLBACKD_LISTEN", listen.clone()),
    ];
    let api = Worker::spawn_role("api", &url, &env)?;
    env.truncate(1);
    let worker = Worker::spawn(&url, &env)?;
    eprintln!(
        "ingest: api pid {}, worker pid {}, {} clients, {}{}",
        api.pid(),
        worker.pid(),
        args.clients,
        match args.batch {
            Some(n) => format!("batches of {n}"),
            None => "single calls".into(),
        },
        if args.keys {
            ", each with an Idempotency-Key"
        } else {
            ""
        }
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;
    let base = format!("http://{listen}");
    wait_ready(&client, &base).await?;
    tokio::time::sleep(Duration::from_millis(500)).await; // the worker LISTENs

    let cpu_before = Cpu::read(&pool, &api, &worker).await?;
    let started = db_now(&pool).await?;
    let run = Load::run(&client, &base, partner, args).await?;
    let mut peak = Usage::default();
    wait_delivered(
        &pool,
        "%/ok/%",
        run.accepted as i64,
        || worker.usage(),
        &mut peak,
    )
    .await?;
    let cpu_after = Cpu::read(&pool, &api, &worker).await?;
    let elapsed = drain_seconds(&pool, "%/ok/%", started).await?;
    api.stop().await?;
    worker.stop().await?;

    let n = run.accepted.max(1) as f64;
    let per_ms = |s: f64| s * 1000.0 / n;
    let cpu = cpu_after.minus(&cpu_before);
    let detail = serde_json::json!({
        "scenario": "ingest",
        "batch": args.batch,
        "clients": args.clients,
        "idempotency_keys": args.keys,
        "notifications": run.accepted,
        "refused_calls": run.refused,
        "delivered_per_s": run.accepted as f64 / elapsed,
        "api_calls_per_s": run.calls as f64 / run.seconds,
        "api_latency_ms_p50": run.percentile(0.50),
        "api_latency_ms_p99": run.percentile(0.99),
        "cpu_ms_per_notification": {
            "callbackd_api": per_ms(cpu.api),
            "callbackd_worker": per_ms(cpu.worker),
            "postgres_backends": per_ms(cpu.backends),
            "postgres_all_processes": per_ms(cpu.postgres_all),
        },
    });
    println!("{detail}");
    Ok(Report {
        scenario: if args.batch.is_some() {
            "ingest-batch"
        } else {
            "ingest"
        },
        deliveries: run.accepted as i64,
        deliveries_per_s: run.accepted as f64 / elapsed,
        latency_ms_p50: run.percentile(0.50),
        latency_ms_p95: run.percentile(0.95),
        latency_ms_p99: run.percentile(0.99),
        latency_ms_max: run.percentile(1.0),
        cpu_s_per_1000: per_ms(cpu.api + cpu.worker),
        peak_rss_mb: peak.peak_rss_mb,
        db_transactions_per_delivery: 0.0,
        note: Some(format!(
            "latency columns are the API call's; CPU ms per notification: api {:.3}, worker \
             {:.3}, PostgreSQL backends {:.3} (all postgres processes {:.3}, the machine's \
             other users included)",
            per_ms(cpu.api),
            per_ms(cpu.worker),
            per_ms(cpu.backends),
            per_ms(cpu.postgres_all),
        )),
    })
}

/// A loopback address nobody listens on right now, for the API child process.
fn free_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the API did not start in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the clients did: notifications accepted, calls refused, each call's latency.
struct Load {
    accepted: u64,
    refused: u64,
    calls: u64,
    seconds: f64,
    latencies_ms: Vec<f64>,
}

impl Load {
    /// `args.clients` clients, each posting one call after the other for `args.seconds`.
    async fn run(
        client: &reqwest::Client,
        base: &str,
        partner: Uuid,
        args: &BenchArgs,
    ) -> anyhow::Result<Load> {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let (path, per_call) = match args.batch {
            Some(n) => ("/v1/notifications/batch", n.max(1)),
            None => ("/v1/notifications", 1),
        };
        let started = Instant::now();
        let tasks: Vec<_> = (0..args.clients)
            .map(|_| {
                let (client, url) = (client.clone(), format!("{base}{path}"));
                let (stop, accepted, refused) = (stop.clone(), accepted.clone(), refused.clone());
                let batch = args.batch.is_some();
                let keys = args.keys;
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let body = if batch {
                            let items: Vec<String> =
                                (0..per_call).map(|_| notification(partner)).collect();
                            format!("[{}]", items.join(","))
                        } else {
                            notification(partner)
                        };
                        let t = Instant::now();
                        let mut r = client
                            .post(&url)
                            .bearer_auth(TOKEN)
                            .header("content-type", "application/json");
                        if keys {
                            r = r.header("idempotency-key", Uuid::new_v4().to_string());
                        }
                        let r = r.body(body).send().await;
                        let ok = match r {
                            Ok(r) => r.status().as_u16() == 202 && r.bytes().await.is_ok(),
                            Err(_) => false,
                        };
                        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                        if ok {
                            accepted.fetch_add(per_call as u64, Ordering::Relaxed);
                        } else {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    latencies
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut latencies_ms = Vec::new();
        for t in tasks {
            latencies_ms.extend(t.await?);
        }
        latencies_ms.sort_by(f64::total_cmp);
        Ok(Load {
            accepted: accepted.load(Ordering::Relaxed),
            refused: refused.load(Ordering::Relaxed),
            calls: latencies_ms.len() as u64,
            seconds: started.elapsed().as_secs_f64(),
            latencies_ms,
        })
    }

    fn percentile(&self, q: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_ms.len() - 1) as f64 * q).round() as usize;
        self.latencies_ms[i]
    }
}

/// One status change of a fresh proposal, as the platform posts it.
fn notification(partner: Uuid) -> String {
    format!(
        r#"{{"partner_id":"{partner}","environment":"production","event_type":"proposal.status","proposal":"{}","status":2,"identifier":"INGEST","body":{{"DescricaoOcorrencia":"Em analise"}}}}"#,
        Uuid::new_v4()
    )
}

/// CPU seconds used so far: callbackd's two processes, the PostgreSQL backends serving the
/// bench database (per pid, so a backend that started mid-run counts whole), and every
/// `postgres` process of the machine (includes other users of the shared server).
#[derive(Debug, Default)]
struct Cpu {
    api: f64,
    worker: f64,
    backends: Vec<(u32, f64)>,
    postgres_all: f64,
}

struct CpuDelta {
    api: f64,
    worker: f64,
    backends: f64,
    postgres_all: f64,
}

impl Cpu {
    async fn read(pool: &PgPool, api: &Worker, worker: &Worker) -> anyhow::Result<Cpu> {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()",
        )
        .fetch_all(pool)
        .await?;
        Ok(Cpu {
            api: api.usage().cpu_seconds,
            worker: worker.usage().cpu_seconds,
            backends: pids
                .into_iter()
                .map(|p| (p as u32, cpu_seconds(p as u32)))
                .collect(),
            postgres_all: all_postgres_cpu(),
        })
    }

    fn minus(&self, before: &Cpu) -> CpuDelta {
        let backends = self
            .backends
            .iter()
            .map(|(pid, s)| {
                let was = before
                    .backends
                    .iter()
                    .find(|(p, _)| p == pid)
                    .map_or(0.0, |b| b.1);
                s - was
            })
            .sum();
        CpuDelta {
            api: self.api - before.api,
            worker: self.worker - before.worker,
            backends,
            postgres_all: self.postgres_all - before.postgres_all,
        }
    }
}
