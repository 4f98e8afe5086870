//! `vouch`: the server and the command line in one binary.
//!
//! This crate wires the library crates together: it parses the command line and the configuration, opens the
//! store, and runs a command. It is the only crate that uses `anyhow`; errors leave it with context an operator
//! can act on, and a non-zero exit code.

mod audit;
mod bench;
mod ca;
mod certs;
mod devices;
mod discover;
mod import;
#[cfg(feature = "live")]
mod live;
mod output;
mod policy;
mod serve;
mod sim;
mod tokens;
mod trust;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use vouch_runtime::config::{self, Config, LogFormat, StoreLocation};
use vouch_runtime::{Services, files, limits, open_store};
use vouch_types::Actor;

// glibc's allocator spent a sixth of a bulk import in malloc/free across threads; mimalloc halves that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crate::output::Output;

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

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per run")]
enum Command {
    /// Run the API server (zero configuration: ./vouch-data, 127.0.0.1:8080).
    Serve {
        /// Listen on this address instead of the configured one.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Keep data here instead of the configured directory.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Serve EST (HTTPS) on this address instead of the configured one.
        #[arg(long, value_name = "ADDR")]
        est_listen: Option<std::net::SocketAddr>,
    },
    /// Run the MQTT gateway alone (mTLS on 8883 in front of the broker on 1883); `vouch serve` runs it too
    /// when `[gateway] enabled = true`. Several gateways can serve one store.
    Gateway {
        /// Accept devices on this address instead of the configured one.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Forward to this broker instead of the configured one.
        #[arg(long, value_name = "ADDR")]
        upstream: Option<std::net::SocketAddr>,
    },
    /// Passive discovery: read pcap/pcapng captures and list every device seen, its identity, class, risks
    /// and who it talks to (sends nothing on the network).
    Discover(discover::DiscoverArgs),
    /// Manage devices.
    #[command(subcommand)]
    Device(devices::DeviceCommand),
    /// Inspect the tamper-evident event log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Manage operators' API tokens.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// The certificate authority: create it, show it.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Device certificates: enrollment tokens, issue, list, revoke, hold and release.
    #[command(subcommand)]
    Cert(certs::CertCommand),
    /// Policies: validate, add, list, show, mode, remove, and test against recorded decisions.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The trust engine offline: replay recorded traffic windows and print each device's score and reasons.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Measure Vouch's speed on this machine.
    #[command(subcommand)]
    Bench(vouch_bench::BenchCommand),
    /// The whole loop on a simulated fleet in one command: a server with its gateway and a Mosquitto of its
    /// own, a few hundred devices enrolling, publishing and attacking, detections and responses live.
    Demo(vouch_play::demo::DemoArgs),
    /// Play a simulated fleet (with attacks) against the running deployment: devices enroll over EST,
    /// connect through the gateway, publish; detections and responses are shown live, then a summary.
    Sim(vouch_play::sim::SimArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print the effective values (secrets redacted).
    Check,
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

/// The actor the event log records for someone using the command line on this host.
fn cli_actor() -> Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty() && u.len() <= 64 && u.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "local".to_owned());
    Actor::Cli(user)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let mut config = config::load(cli.config.as_deref())?;
    if let Command::Config(ConfigCommand::Check) = cli.command {
        return Ok(print_config(&config));
    }
    if let Command::Serve {
        listen,
        data_dir,
        est_listen,
    } = &cli.command
    {
        if let Some(l) = listen {
            config.listen = *l;
        }
        if let Some(l) = est_listen {
            config.est_listen = *l;
        }
        if let Some(d) = data_dir {
            if config.store == StoreLocation::Sqlite(config.data_dir.join("vouch.db")) {
                config.store = StoreLocation::Sqlite(d.join("vouch.db"));
            }
            config.data_dir = d.clone();
        }
    }
    if let Command::Gateway { listen, upstream } = &cli.command {
        if let Some(l) = listen {
            config.gateway.listen = *l;
        }
        if let Some(u) = upstream {
            config.gateway.upstream = *u;
        }
    }
    init_logging(&config);
    for var in config::unknown_env_vars() {
        tracing::warn!(variable = %var, "ignoring unknown VOUCH_ environment variable (a typo?)");
    }
    match cli.command {
        Command::Serve { .. } => {
            let services = Services::serve(&config);
            serve::run(config, services)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Gateway { .. } => serve::run(config, Services::gateway_alone())
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Bench(cmd) => vouch_bench::run(cmd, &bench::BinHost)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Discover(args) => discover::run(args, &config, cli.output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Config(_) => Ok(ExitCode::SUCCESS),
        Command::Trust(cmd) => {
            trust::run(cmd, &config.trust, cli.output).map(|()| ExitCode::SUCCESS)
        }
        Command::Demo(args) => vouch_play::demo::run(args)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Sim(args) => sim::run(args, &config).await.map(|()| ExitCode::SUCCESS),
        Command::Device(cmd) => {
            let store = open_store(&config).await?;
            devices::run(
                cmd,
                store,
                cli.output,
                config.pki.enrollment_token_ttl_hours,
            )
            .await
            .map(|()| ExitCode::SUCCESS)
        }
        Command::Token(cmd) => {
            let store = open_store(&config).await?;
            tokens::run(cmd, &*store, cli.output)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Audit(cmd) => audit::run(cmd, &config, cli.output).await,
        Command::Cert(cmd) => {
            let store = open_store(&config).await?;
            certs::run(cmd, &config, store, cli.output)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Policy(cmd) => {
            let store = open_store(&config).await?;
            policy::run(cmd, &*store, &config.data_dir, cli.output).await
        }
        Command::Ca(cmd) => {
            let store = open_store(&config).await?;
            ca::run(cmd, &config.data_dir, &*store, cli.output)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
    }
}

fn print_config(c: &Config) -> ExitCode {
    let source = c.source.as_ref().map_or_else(
        || "defaults (no file)".to_owned(),
        |p| p.display().to_string(),
    );
    println!("configuration OK (from {source}, then VOUCH_* overrides)");
    println!("data_dir                 = {}", c.data_dir.display());
    println!("server.listen            = {}", c.listen);
    println!("server.max_body_bytes    = {}", c.max_body_bytes);
    println!("store.url                = {}", c.store.redacted());
    println!("store.max_connections    = {}", c.max_connections);
    println!(
        "store.sqlite_durability  = {}",
        format!("{:?}", c.sqlite_durability).to_lowercase()
    );
    println!(
        "log.format               = {}",
        format!("{:?}", c.log_format).to_lowercase()
    );
    println!("log.level                = {}", c.log_level);
    println!("pki.trust_domain         = {}", c.pki.trust_domain);
    println!("pki.public_url           = {}", c.pki.public_url);
    println!("pki.device_lifetime_days = {}", c.pki.device_lifetime_days);
    println!("est.listen               = {}", c.est_listen);
    println!("audit.interval_secs      = {}", c.audit.interval_secs);
    if let Some(sink) = &c.audit.sink {
        println!("audit.sink               = {}", sink.display());
    }
    let fds = vouch_api::serve::open_files_limit();
    let l = limits::plan(c, limits::Role::Serve, fds);
    let gateway_alone = limits::plan(c, limits::Role::Gateway, fds);
    let auto = |set: bool| if set { "" } else { "  (derived)" };
    let descriptors = l
        .descriptors
        .map_or_else(|| "unlimited".to_owned(), |d| d.to_string());
    println!(
        "descriptor limit         = {descriptors}  (RLIMIT_NOFILE; {} for connections)",
        l.available
    );
    let (s, e) = (&c.server_connections, &c.est_connections);
    println!(
        "server.max_connections   = {}{}",
        l.api.max_connections,
        auto(s.max_connections.is_some())
    );
    println!(
        "server.max_connections_per_source = {}{}",
        l.api.max_connections_per_source,
        auto(s.max_connections_per_source.is_some())
    );
    println!(
        "server.header_timeout_secs = {}  (also the idle keep-alive timeout)",
        s.header_timeout_secs
    );
    println!("server.body_timeout_secs = {}", s.body_timeout_secs);
    println!("server.write_timeout_secs = {}", s.write_timeout_secs);
    println!(
        "est.max_connections      = {}{}",
        l.est.max_connections,
        auto(e.max_connections.is_some())
    );
    println!(
        "est.max_connections_per_source = {}{}",
        l.est.max_connections_per_source,
        auto(e.max_connections_per_source.is_some())
    );
    println!(
        "est.max_handshakes       = {}{}",
        l.est.max_handshakes,
        auto(e.max_handshakes.is_some())
    );
    println!("est.handshake_timeout_secs = {}", e.handshake_timeout_secs);
    // The gateway's share: inside `vouch serve` when enabled there, else as `vouch gateway` alone.
    let (g, with) = if c.gateway.enabled {
        (&l, "vouch serve")
    } else {
        (&gateway_alone, "vouch gateway")
    };
    let auto_g = |set: bool| {
        if set {
            String::new()
        } else {
            format!("  (derived, for `{with}`)")
        }
    };
    println!(
        "gateway.max_sessions     = {}{}",
        g.gateway_sessions,
        auto_g(c.gateway.max_sessions.is_some())
    );
    println!(
        "gateway.max_pending_per_source = {}{}",
        g.gateway_pending_per_source,
        auto_g(c.gateway.max_pending_per_source.is_some())
    );
    println!(
        "gateway.write_timeout_secs = {}",
        c.gateway.write_timeout_secs
    );
    let mut warnings: Vec<&String> = l.lowered.iter().collect();
    for w in &gateway_alone.lowered {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    for w in warnings {
        println!("warning: {w}");
    }
    for var in config::unknown_env_vars() {
        println!("warning: unknown environment variable {var} is ignored (a typo?)");
    }
    ExitCode::SUCCESS
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
