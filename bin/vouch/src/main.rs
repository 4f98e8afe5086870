//! `vouch`: the server and the command line in one binary.
//!
//! Only wiring: the command line is parsed into `vouch-cli`'s [`Command`], the configuration loaded
//! (`vouch-runtime`), logging set up, and the command run; `serve` and `gateway` are plans of the runtime,
//! every other command an adapter in `vouch-cli`. Errors leave with context an operator can act on, and a
//! non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use vouch_cli::{Command, Output};
use vouch_runtime::config::{self, Config, LogFormat};
use vouch_runtime::files;

// glibc's allocator spent a sixth of a bulk import in malloc/free across threads; mimalloc halves that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Vouch: a zero-trust control plane for IoT and OT device fleets.
#[derive(Parser)]
#[command(name = "vouch", version, about, propagate_version = true)]
struct Cli {
    /// Configuration file (default: ./vouch.toml if it exists; VOUCH_* variables override it).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How results are printed.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

fn init_logging(config: &Config) {
    // rustls warns about every client that sends an IP address as SNI (mosquitto's clients do): noise
    // unless asked for by name.
    let level = if config.log_level.contains("rustls") {
        config.log_level.clone()
    } else {
        format!("{},rustls=error", config.log_level)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colours only for a person at a terminal: escape codes in a log file or collector are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let mut config = config::load(cli.config.as_deref())?;
    cli.command.configure(&mut config);
    if !cli.command.is_config_check() {
        init_logging(&config);
        for var in config::unknown_env_vars() {
            tracing::warn!(variable = %var, "ignoring unknown VOUCH_ environment variable (a typo?)");
        }
    }
    vouch_cli::run(cli.command, config, cli.output).await
}

fn main() -> ExitCode {
    // Before anything is created: the database, its WAL, keys, logs and tokens are the service's alone.
    files::private_umask();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
