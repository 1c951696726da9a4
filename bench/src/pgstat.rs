//! What the database was doing during a fleet run: `pg_stat_activity` sampled every
//! [`INTERVAL`] on a connection of its own, giving the wait events of the active backends
//! (what the database saturates on), the connections in use, and each backend's CPU from
//! /proc (read at every sample, so a backend that comes and goes mid-run still counts).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::process::cpu_seconds;

pub const INTERVAL: Duration = Duration::from_millis(100);

/// The label of an active backend that waits on nothing: it is on a CPU (or in the run
/// queue for one, which `pg_stat_activity` cannot tell apart).
pub const ON_CPU: &str = "CPU (no wait event)";

#[derive(Debug, Default)]
pub struct Activity {
    pub samples: u64,
    /// Active backends seen per wait event (`type:event`, or [`ON_CPU`]), summed over samples.
    pub waits: HashMap<String, u64>,
    /// Backends idle inside an open transaction (the client is working), summed over samples.
    pub idle_in_transaction: u64,
    /// Most backends of the database at once, and how many distinct ones were seen.
    pub peak_connections: usize,
    pub distinct_backends: usize,
    /// CPU seconds used during the run by the backends seen.
    pub backend_cpu_seconds: f64,
}

impl Activity {
    /// Active backends on average (summed over wait events): above the database's cores,
    /// work queues for them.
    pub fn average_active(&self) -> f64 {
        self.waits.values().sum::<u64>() as f64 / self.samples.max(1) as f64
    }

    /// The `n` most seen wait events, each with its share of the active samples.
    pub fn top_waits(&self, n: usize) -> Vec<(String, f64)> {
        let total = self.waits.values().sum::<u64>().max(1) as f64;
        let mut v: Vec<_> = self.waits.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.into_iter()
            .take(n)
            .map(|(k, c)| (k.clone(), *c as f64 / total))
            .collect()
    }
}

/// pid, state, wait_event_type, wait_event of one backend.
type BackendRow = (i32, Option<String>, Option<String>, Option<String>);

pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<Activity>>,
}

impl Sampler {
    /// Starts sampling the database of `database_url` (a direct URL, not the pooler's).
    /// Backends in `exclude` (the benchmark's own) are left out.
    pub async fn start(database_url: &str, exclude: Vec<i32>) -> anyhow::Result<Sampler> {
        let mut conn = PgConnection::connect(database_url).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let exclude: HashSet<i32> = exclude.into_iter().collect();
            let mut a = Activity::default();
            // pid -> (CPU seconds when first seen, CPU seconds when last seen)
            let mut cpu: HashMap<i32, (f64, f64)> = HashMap::new();
            let mut interval = tokio::time::interval(INTERVAL);
            while !flag.load(Ordering::Relaxed) {
                interval.tick().await;
                let rows: Vec<BackendRow> = sqlx::query_as(
                    "SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity
                         WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_all(&mut conn)
                .await?;
                a.samples += 1;
                let mut here = 0;
                for (pid, state, wtype, wevent) in rows {
                    if exclude.contains(&pid) {
                        continue;
                    }
                    here += 1;
                    let now = cpu_seconds(pid as u32);
                    // A backend first seen mid-run started after the last sample: all its CPU
                    // is the run's. Those present at the first sample count from there.
                    let first = if a.samples == 1 { now } else { 0.0 };
                    let e = cpu.entry(pid).or_insert((first, now));
                    e.1 = e.1.max(now);
                    match state.as_deref() {
                        Some("active") => {
                            let key = match (wtype, wevent) {
                                (Some(t), Some(w)) => format!("{t}:{w}"),
                                _ => ON_CPU.to_string(),
                            };
                            *a.waits.entry(key).or_default() += 1;
                        }
                        Some(s) if s.starts_with("idle in transaction") => {
                            a.idle_in_transaction += 1
                        }
                        _ => {}
                    }
                }
                a.peak_connections = a.peak_connections.max(here);
            }
            a.distinct_backends = cpu.len();
            a.backend_cpu_seconds = cpu.values().map(|(first, last)| last - first).sum();
            let _ = conn.close().await;
            Ok(a)
        });
        Ok(Sampler { stop, task })
    }

    pub async fn finish(self) -> anyhow::Result<Activity> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await?
    }
}

/// The backends of the database right now (the benchmark's own, before the run).
pub async fn backends(pool: &sqlx::PgPool) -> anyhow::Result<Vec<i32>> {
    Ok(
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            .fetch_all(pool)
            .await?,
    )
}

/// The server's WAL insert position, in bytes.
pub async fn wal_position(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8")
            .fetch_one(pool)
            .await?,
    )
}
