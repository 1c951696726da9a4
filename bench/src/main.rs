//! `callbackd-bench <scenario>` (`cargo run --release -p callbackd-bench -- burst`): the
//! delivery pipeline of callbackd measured end to end against the real PostgreSQL, with the
//! product's own binary as the worker (and API) process under test and a fast receiver on
//! 127.0.0.1. Prints one JSON line per scenario, then a table.
//!
//! It uses the product as anyone outside it would: the `callbackd` library for settings,
//! migrations and registering partners, and the `callbackd` binary next to this one in the
//! target directory (`cargo build --release --workspace` builds both; see process.rs).

mod database;
mod fleet;
mod ingest;
mod pgbouncer;
mod pgstat;
mod process;
mod receiver;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use serde::Serialize;

use callbackd::config::Settings;
use callbackd::startup::{StartupError, one_line};
use callbackd::telemetry::{self, LogFormat};
use scenarios::Burst;

/// callbackd-bench: measures callbackd's delivery pipeline (see docs/performance.md).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML file layered over callbackd's built-in defaults: its `database_url` names the
    /// server, and the bench works in `<name>_bench` beside that database.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log as text or as one JSON object per line.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(flatten)]
    args: BenchArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
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
struct BenchArgs {
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
    /// ingest: every call carries its own Idempotency-Key, as a careful platform sends them.
    #[arg(long)]
    keys: bool,
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
struct Report {
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The bench talks to a person on stdout: keep the log to warnings (and quiet sqlx's
    // slow-statement notes on the bulk enqueue) unless RUST_LOG says otherwise.
    if let Err(e) = telemetry::init(cli.log_format, "warn,sqlx=error", None) {
        eprintln!("callbackd-bench: log: {e:#}");
        return ExitCode::FAILURE;
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return fail(StartupError::from(e).into()),
    };
    match run(settings, cli.args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// One line a person can act on, on stderr, as callbackd says its own errors.
fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("callbackd-bench: {}", one_line(&e));
    ExitCode::FAILURE
}

async fn run(settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    // Before any database is made: the product binary must be there, and current.
    process::product_binary()?;
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

fn worker_env(args: &BenchArgs) -> Vec<(&'static str, String)> {
    let _ = args;
    vec![("CALLBACKD_SECRET_KEY", KEY.to_string())]
}

fn print_table(reports: &[Report]) {
    let mut t = table(&[
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

/// A table in the style of callbackd's operator commands.
fn table(headers: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(headers.to_vec());
    t
}
