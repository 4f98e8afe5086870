//! `vouch bench`: speed measured on this machine, beside a peer measured in the same run, printed as a table
//! (or JSON).
//!
//! A tool, not a library of the product: like the binary it reports with `anyhow` and its context, because
//! every error goes straight to the person who ran the benchmark. Each benchmark has its module; what only the
//! binary knows (how `vouch device import` reads a file, where the CA's keys are kept, the gateway's
//! connection limits) comes in through [`Host`], so the benchmarks measure the product's own paths without
//! holding a copy of them.
//!
//! Some modules run long (`policy`, `detect`, `gateway`): each is one benchmark's fixture, peer and report, read
//! top to bottom; split, one measurement would be scattered over files.

pub mod detect;
pub mod discover;
pub mod gateway;
pub mod harness;
pub mod pki;
pub mod policy;
pub mod registry;
pub mod trust;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use vouch_store::Store;

/// What a bulk import did, as the benchmark reports it.
#[derive(Debug, Clone, Copy)]
pub struct Imported {
    /// Devices created.
    pub created: u64,
    /// How long it took.
    pub elapsed: std::time::Duration,
}

/// The binary's paths the benchmarks measure or start from.
#[async_trait::async_trait]
pub trait Host: Send + Sync {
    /// Imports a CSV file of devices into `store` exactly as `vouch device import` does.
    async fn import_csv(&self, file: &Path, batch: u32, store: Arc<dyn Store>) -> Result<Imported>;
    /// The issuing CA of a data directory made by `vouch ca init`, and the root's DER.
    fn load_issuing(
        &self,
        data_dir: &Path,
        passphrase_file: &Path,
    ) -> Result<(vouch_pki::IssuingCa, Vec<u8>)>;
    /// The sessions one `vouch gateway` holds by default under a descriptor limit of `descriptors`.
    fn gateway_sessions(&self, descriptors: u64) -> usize;
}

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Bulk import rate and get-by-id latency of the device registry.
    Registry(registry::RegistryArgs),
    /// Issuance, EST, OCSP and CRL speed.
    Pki(crate::pki::PkiArgs),
    /// Policy decisions per second and latency on one thread, beside the same policies in Rego (regorus).
    Policy(crate::policy::PolicyArgs),
    /// The MQTT gateway beside Mosquitto: held sessions and memory, messages per second, handshakes.
    Gateway(crate::gateway::GatewayArgs),
    /// Passive discovery on a capture of at least 1M packets (a real trace repeated), beside tshark.
    Discover(crate::discover::DiscoverArgs),
    /// Trust: observation windows scored per second (features, baseline, score with reasons) on one thread.
    Trust(crate::trust::TrustArgs),
    /// Detection on a simulated fleet with known attacks: ROC-AUC, precision, recall, delay and false alarms
    /// of the trust engine beside IsolationForest and HalfSpaceTrees.
    Detect(crate::detect::DetectArgs),
}

/// Runs a benchmark.
pub async fn run(cmd: BenchCommand, host: &dyn Host) -> Result<()> {
    match cmd {
        BenchCommand::Registry(args) => crate::registry::run(args, host).await,
        BenchCommand::Pki(args) => crate::pki::run(args).await,
        BenchCommand::Gateway(args) => crate::gateway::run(args, host).await,
        BenchCommand::Trust(args) => tokio::task::spawn_blocking(move || crate::trust::run(args))
            .await
            .context("the trust benchmark's thread")?,
        BenchCommand::Detect(args) => tokio::task::spawn_blocking(move || crate::detect::run(args))
            .await
            .context("the detection benchmark's thread")?,
        BenchCommand::Discover(args) => {
            tokio::task::spawn_blocking(move || crate::discover::run(args))
                .await
                .context("the discovery benchmark's thread")?
        }
        BenchCommand::Policy(args) => tokio::task::spawn_blocking(move || crate::policy::run(args))
            .await
            .context("the policy benchmark's thread")?,
    }
}
