//! Operator commands that talk to the database directly, so they work while the API is down.
//! Tables for people by default, `--json` for scripts.

mod deliveries;
mod inventory;
mod table;

use clap::Subcommand;

use crate::config::Settings;
use crate::store::Db;
pub use deliveries::DeliveriesCommand;

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Inspect, replay and cancel deliveries.
    Deliveries {
        #[command(subcommand)]
        command: DeliveriesCommand,
    },
    /// Partners.
    Partners {
        #[command(subcommand)]
        command: ListOnly,
    },
    /// Endpoints with their health.
    Endpoints {
        #[command(subcommand)]
        command: EndpointsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ListOnly {
    /// List them.
    List,
}

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// List endpoints (of one partner with --partner) with their health.
    List {
        #[arg(long)]
        partner: Option<uuid::Uuid>,
    },
}

/// Output style shared by every operator command.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

pub async fn run(settings: &Settings, command: OperatorCommand, out: Output) -> anyhow::Result<()> {
    let pool = connect(settings).await?;
    match command {
        OperatorCommand::Deliveries { command } => deliveries::run(&pool, command, out).await,
        OperatorCommand::Partners {
            command: ListOnly::List,
        } => inventory::partners(&pool, out).await,
        OperatorCommand::Endpoints {
            command: EndpointsCommand::List { partner },
        } => inventory::endpoints(&pool, partner, out).await,
    }
}

async fn connect(settings: &Settings) -> anyhow::Result<Db> {
    crate::startup::apply_pool_mode(settings);
    let options: sqlx::postgres::PgConnectOptions = settings.database_url.parse()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|e| crate::startup::StartupError::database(&settings.database_url, e))?;
    Ok(Db::new(pool))
}

/// Prints `value` as pretty JSON.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
