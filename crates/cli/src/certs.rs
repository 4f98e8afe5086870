//! `vouch cert`: device certificates from the server's host (the store directly; issuing also needs the CA).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;
use vouch_store::{CertStatus, CertificateRecord, Change, Store};
use vouch_types::{Clock, DeviceId, Reason, RevocationReason, Serial, SystemClock};

use crate::output::{self, Output};
use vouch_runtime::config::Config;

/// Certificate commands.
#[derive(Subcommand)]
pub enum CertCommand {
    /// Issue a one-time enrollment token for a device (printed once).
    Token {
        /// The device.
        device: DeviceId,
    },
    /// Issue a certificate for a device from its request (PEM or base64 DER); needs the CA passphrase.
    Issue {
        /// The device.
        device: DeviceId,
        /// The PKCS#10 request file.
        #[arg(long)]
        csr: PathBuf,
        /// Write the certificate (PEM) here instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a certificate an existing PKI already issued to a device (PEM).
    Import {
        /// The certificate file.
        file: PathBuf,
        /// The device it belongs to.
        #[arg(long)]
        device: DeviceId,
    },
    /// List a device's certificates, or all certificates expiring within N days.
    List {
        /// Only this device's.
        #[arg(long, conflicts_with = "expiring_within")]
        device: Option<DeviceId>,
        /// Only unrevoked certificates expiring within this many days.
        #[arg(long, value_name = "DAYS")]
        expiring_within: Option<u32>,
    },
    /// Revoke a certificate (RFC 5280 reason; certificateHold to hold it).
    Revoke {
        /// The serial number (hex).
        serial: Serial,
        /// keyCompromise, superseded, cessationOfOperation, certificateHold, …
        #[arg(long, default_value = "unspecified")]
        reason: RevocationReason,
        /// Why, for the event log.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Release a certificate from hold.
    Release {
        /// The serial number (hex).
        serial: Serial,
        /// Why, for the event log.
        #[arg(long)]
        comment: Option<String>,
    },
}

fn status(c: &CertificateRecord) -> String {
    match c.status {
        CertStatus::Good => "good".into(),
        CertStatus::Revoked {
            reason: RevocationReason::CertificateHold,
            ..
        } => "on hold".into(),
        CertStatus::Revoked { reason, .. } => format!("revoked ({reason})"),
    }
}

fn print(certs: &[CertificateRecord], out: Output) -> Result<()> {
    match out {
        Output::Json => output::json(
            &certs
                .iter()
                .map(|c| {
                    json!({
                        "serial": c.serial, "device_id": c.device_id, "fingerprint": c.fingerprint,
                        "not_before": c.not_before, "not_after": c.not_after, "status": status(c),
                    })
                })
                .collect::<Vec<_>>(),
        ),
        Output::Table => {
            let rows: Vec<Vec<String>> = certs
                .iter()
                .map(|c| {
                    vec![
                        c.serial.to_string(),
                        c.device_id.to_string(),
                        c.not_after.to_string(),
                        status(c),
                    ]
                })
                .collect();
            output::table(&["SERIAL", "DEVICE", "EXPIRES", "STATUS"], &rows);
            Ok(())
        }
    }
}

fn comment(c: Option<String>) -> Result<Option<Reason>> {
    Ok(c.map(Reason::try_from).transpose()?)
}

/// Runs a certificate command.
pub async fn run(
    cmd: CertCommand,
    config: &Config,
    store: Arc<dyn Store>,
    out: Output,
) -> Result<()> {
    let clock = SystemClock;
    match cmd {
        CertCommand::Token { device } => {
            let (record, secret) = vouch_identity::issue_enrollment_token(
                &*store,
                clock.now(),
                device,
                config.pki.enrollment_token_ttl_hours,
                crate::cli_actor(),
                None,
            )
            .await?;
            match out {
                Output::Json => output::json(&json!({
                    "id": record.id, "device_id": device, "expires_at": record.expires_at, "token": secret.expose(),
                }))?,
                Output::Table => println!(
                    "enrollment token for {device}, single use, valid until {}; shown only this once:\n\n    {}\n",
                    record.expires_at,
                    secret.expose()
                ),
            }
        }
        CertCommand::Issue {
            device,
            csr,
            out: file,
        } => {
            let (ca, root) = vouch_runtime::ca::load_issuing(
                &config.data_dir,
                config.pki.passphrase_file.as_deref(),
            )?
            .context("there is no CA in the data directory: run `vouch ca init` first")?;
            let svc = vouch_identity::IdentityService::new(
                store,
                Arc::new(clock),
                ca,
                root,
                config.pki.settings(),
            );
            let text = std::fs::read_to_string(&csr)
                .with_context(|| format!("reading {}", csr.display()))?;
            let der = vouch_pki::csr_der_from_text(&text)?;
            let cert = svc
                .issue_for_device(device, &der, crate::cli_actor(), None)
                .await?;
            match file {
                Some(f) => {
                    std::fs::write(&f, cert.pem())
                        .with_context(|| format!("writing {}", f.display()))?;
                    println!(
                        "certificate {} for {device} written to {}",
                        cert.serial,
                        f.display()
                    );
                }
                None => print!("{}", cert.pem()),
            }
        }
        CertCommand::Import { file, device } => {
            let pem = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let reason = Reason::try_from("imported from an existing PKI".to_owned())?;
            let change = Change {
                actor: crate::cli_actor(),
                reason: Some(reason),
                at: clock.now(),
            };
            let issuers = vouch_runtime::ca::import_issuers(config)?;
            let record =
                vouch_control::certs::import(&*store, &pem, device, &issuers, change).await?;
            print(&[record], out)?;
        }
        CertCommand::List {
            device,
            expiring_within,
        } => {
            let certs = match (device, expiring_within) {
                (Some(d), _) => store.device_certificates(d).await?,
                (None, Some(days)) => {
                    let before = clock.now().plus_micros(i64::from(days) * 86_400_000_000);
                    store
                        .expiring_certificates(before, vouch_store::MAX_PAGE)
                        .await?
                }
                (None, None) => anyhow::bail!("pass --device ID or --expiring-within DAYS"),
            };
            print(&certs, out)?;
        }
        CertCommand::Revoke {
            serial,
            reason,
            comment: c,
        } => {
            let change = Change {
                actor: crate::cli_actor(),
                reason: comment(c)?,
                at: clock.now(),
            };
            let cert = store.revoke_certificate(serial, reason, change).await?;
            print(&[cert], out)?;
        }
        CertCommand::Release { serial, comment: c } => {
            let change = Change {
                actor: crate::cli_actor(),
                reason: comment(c)?,
                at: clock.now(),
            };
            let cert = store.release_certificate(serial, change).await?;
            print(&[cert], out)?;
        }
    }
    Ok(())
}
