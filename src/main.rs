use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use callbackd::cli::{OperatorCommand, Output};
use callbackd::config::Settings;
use callbackd::crypto::SecretBox;
use callbackd::startup::{Application, Role, StartupError, one_line, prepare_database};
use callbackd::telemetry::{self, LogFormat};

/// callbackd: sends your platform's notifications to your partners' callback URLs.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML file layered over the built-in defaults (config/default.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Operator commands print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Log as text or as one JSON object per line.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and/or the delivery workers (migrates first).
    Serve {
        #[arg(long, value_enum, default_value = "all")]
        role: Role,
    },
    /// Create the database if missing and apply the migrations.
    Migrate,
    /// A guided tour: callbackd with a sample partner, on a database of its own (<name>_demo).
    Demo,
    #[command(flatten)]
    Operator(OperatorCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo talks to a person on stdout: keep the log to warnings (and quiet sqlx's
    // slow-statement notes) unless RUST_LOG says otherwise.
    let default_filter = if matches!(cli.command, Command::Demo) {
        "warn,sqlx=error"
    } else {
        "info,sqlx=warn"
    };
    // Settings first: they say where traces go. A bad setting is reported once the log is
    // up, like any other error.
    let settings = Settings::load(cli.config.as_deref());
    let otlp = match (&cli.command, &settings) {
        (Command::Serve { .. }, Ok(s)) => s.otlp_endpoint(),
        _ => None,
    };
    let traces = match telemetry::init(cli.log_format, default_filter, otlp) {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("callbackd: traces (otlp_endpoint): {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let log_format = cli.log_format;
    let result = run(cli, settings).await;
    // Whatever was recorded until the end (the last attempts of a graceful stop) is sent.
    if let Some(traces) = traces {
        traces.shutdown().await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line a person can act on, on stderr. The text log (stdout) would only say
            // it again; a JSON log gets it too, for whatever collects those lines.
            let line = one_line(&e);
            if log_format == LogFormat::Json {
                tracing::error!("{line}");
            }
            eprintln!("callbackd: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    cli: Cli,
    settings: Result<Settings, callbackd::config::ConfigError>,
) -> anyhow::Result<()> {
    let settings = settings.map_err(StartupError::from)?;
    match cli.command {
        Command::Migrate => {
            let secrets = SecretBox::from_setting(settings.secret_key.expose_secret())
                .map_err(|_| StartupError::MalformedSecretKey)?;
            prepare_database(&settings, &secrets).await?;
            println!("callbackd: database is migrated");
            Ok(())
        }
        Command::Serve { role } => serve(settings, role).await,
        Command::Demo => callbackd::demo::run(settings).await,
        Command::Operator(command) => {
            callbackd::cli::run(&settings, command, Output { json: cli.json }).await
        }
    }
}

async fn serve(settings: Settings, role: Role) -> anyhow::Result<()> {
    callbackd::startup::raise_open_files_limit(&settings, role);
    let app = Application::build(settings, role).await?;
    if app.uses_dev_key() {
        tracing::warn!(
            "!!! CALLBACKD_SECRET_KEY is not set: partner credentials are encrypted with a PUBLIC \
             development key. Set a 32-byte base64 key (openssl rand -base64 32) before real use. !!!"
        );
    }
    if let Some(addr) = app.address() {
        println!("callbackd API listening on http://{addr}");
        if app.token_generated() {
            // Printed once, to the terminal only, never to the log.
            println!(
                "API token (generated for this run; set CALLBACKD_API_TOKEN to fix one): {}",
                app.api_token()
            );
        }
    }
    tracing::info!(?role, "callbackd started");
    let shutdown = CancellationToken::new();
    tokio::spawn(callbackd::startup::cancel_on_signal(shutdown.clone()));
    app.run_until(shutdown).await?;
    tracing::info!("callbackd stopped");
    Ok(())
}
