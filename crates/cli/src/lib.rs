//! The terminal adapter: every `vouch` command but the wiring, as the API is the HTTP one.
//!
//! Each module parses its command's arguments, calls the use case (`vouch-control`, the store's write rules,
//! the runtime for `serve`/`gateway`) and renders the answer as a table or JSON (`output`). Like the API, it
//! holds no rule: the CLI and HTTP cannot disagree because neither decides anything. `bin/vouch` parses the
//! command line into [`Command`], loads the configuration, sets up logging and calls [`run`]. An adapter at the
//! edge, whose errors are only ever shown to the person at the terminal, so it uses `anyhow` like the binary
//! and the tools.

mod audit;
mod bench;
mod ca;
mod certs;
mod compliance;
mod config_check;
mod devices;
mod discover;
mod import;
#[cfg(feature = "live")]
mod live;
pub mod output;
mod policy;
mod serve;
mod sim;
mod tokens;
mod trust;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use vouch_runtime::config::{Config, StoreLocation};
use vouch_runtime::{Services, open_store};
use vouch_types::Actor;

pub use crate::output::Output;

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per run")]
/// A `vouch` command.
pub enum Command {
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
    /// Continuous compliance: import SBOMs, advisories, the KEV catalogue and VEX; each device's state
    /// against the catalogue's controls; OSCAL, HTML and OCSF reports.
    #[command(subcommand)]
    Compliance(compliance::ComplianceCommand),
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

/// `vouch config` commands.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective values (secrets redacted).
    Check,
}

impl Command {
    /// Applies the command's own options (`serve --listen`, `gateway --upstream`, …) over the configuration.
    pub fn configure(&self, config: &mut Config) {
        if let Command::Serve {
            listen,
            data_dir,
            est_listen,
        } = self
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
        if let Command::Gateway { listen, upstream } = self {
            if let Some(l) = listen {
                config.gateway.listen = *l;
            }
            if let Some(u) = upstream {
                config.gateway.upstream = *u;
            }
        }
    }

    /// Whether the command only checks the configuration (it prints its own warnings; no logging needed).
    pub fn is_config_check(&self) -> bool {
        matches!(self, Command::Config(ConfigCommand::Check))
    }
}

/// The actor the event log records for someone using the command line on this host.
pub(crate) fn cli_actor() -> Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty() && u.len() <= 64 && u.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "local".to_owned());
    Actor::Cli(user)
}

/// Runs `command` with the loaded `config`, printing results as `output` says.
pub async fn run(command: Command, config: Config, output: Output) -> Result<ExitCode> {
    match command {
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
        Command::Discover(args) => discover::run(args, &config, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Config(ConfigCommand::Check) => Ok(config_check::print(&config)),
        Command::Compliance(cmd) => {
            let store = open_store(&config).await?;
            compliance::run(cmd, &config, &*store, output).await
        }
        Command::Trust(cmd) => trust::run(cmd, &config.trust, output).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => vouch_play::demo::run(args)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Sim(args) => sim::run(args, &config).await.map(|()| ExitCode::SUCCESS),
        Command::Device(cmd) => {
            let store = open_store(&config).await?;
            devices::run(cmd, store, output, config.pki.enrollment_token_ttl_hours)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Token(cmd) => {
            let store = open_store(&config).await?;
            tokens::run(cmd, &*store, output)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Audit(cmd) => audit::run(cmd, &config, output).await,
        Command::Cert(cmd) => {
            let store = open_store(&config).await?;
            certs::run(cmd, &config, store, output)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Policy(cmd) => {
            let store = open_store(&config).await?;
            policy::run(cmd, &*store, &config.data_dir, output).await
        }
        Command::Ca(cmd) => {
            let store = open_store(&config).await?;
            ca::run(cmd, &config.data_dir, &*store, output)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
    }
}
