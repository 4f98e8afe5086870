//! `vouch ca`: the certificate authority's files under the data directory.
//!
//! `<data_dir>/ca/` holds `root.pem`, `root.key.pem`, `issuing.pem` and `issuing.key.pem`; the keys are
//! encrypted PKCS#8 (passphrase from `--passphrase-file` or `VOUCH_CA_PASSPHRASE`) and readable by their owner
//! only.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;
use vouch_events::{Action, EventDraft};
use vouch_pki::{CaSubject, CertSummary, KeyAlgorithm, init_ca, summarize_pem};
use vouch_store::Store;
use vouch_types::{Clock, SystemClock};

use crate::output::{self, Output};
use vouch_runtime::ca::{HSM_FILE, hsm_pin, passphrase};

/// CA commands.
#[derive(Subcommand)]
pub enum CaCommand {
    /// Create the root and issuing CA (keys encrypted with the CA passphrase).
    Init {
        /// Key algorithm: p256 (default), ed25519 or rsa3072.
        #[arg(long, default_value = "p256")]
        algorithm: KeyAlgorithm,
        /// The organisation named in the CA certificates.
        #[arg(long, default_value = "Vouch")]
        organization: String,
        /// Read the passphrase from this file instead of VOUCH_CA_PASSPHRASE.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Keep the CA keys in an HSM: the PKCS#11 module (the PIN comes from VOUCH_HSM_PIN).
        #[arg(long, value_name = "PATH", requires = "hsm_token")]
        hsm_module: Option<PathBuf>,
        /// The HSM token's label.
        #[arg(long, value_name = "LABEL")]
        hsm_token: Option<String>,
    },
    /// Bring your own PKI, step 1: create the issuing CA key and a request (issuing.csr.pem) for your
    /// enterprise root to sign.
    Request {
        /// Key algorithm: p256 (default), ed25519 or rsa3072.
        #[arg(long, default_value = "p256")]
        algorithm: KeyAlgorithm,
        /// The organisation named in the request.
        #[arg(long, default_value = "Vouch")]
        organization: String,
        /// Read the passphrase from this file instead of VOUCH_CA_PASSPHRASE.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Bring your own PKI, step 2: install the issuing CA certificate your enterprise root signed.
    Import {
        /// The signed issuing CA certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// The enterprise root certificate (PEM) it chains to.
        #[arg(long)]
        root: PathBuf,
        /// Read the passphrase from this file instead of VOUCH_CA_PASSPHRASE.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Show the CA certificates.
    Show,
}

const FILES: [&str; 4] = ["root.pem", "root.key.pem", "issuing.pem", "issuing.key.pem"];

fn write_new(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Refuses to touch an existing CA, then creates `dir` (owner-only).
fn fresh_ca_dir(dir: &Path, extra: &[&str]) -> Result<()> {
    if let Some(existing) = FILES
        .iter()
        .chain(extra)
        .map(|f| dir.join(f))
        .find(|p| p.exists())
    {
        bail!(
            "a CA exists already ({}): refusing to replace it",
            existing.display()
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Logs the new CA (`details` plus both certificates' summaries) in the event chain and prints it.
async fn record_ca(
    store: &dyn Store,
    mut details: serde_json::Value,
    root_pem: &str,
    issuing_pem: &str,
    out: Output,
) -> Result<()> {
    let (root, issuing) = (summarize_pem(root_pem)?, summarize_pem(issuing_pem)?);
    if let serde_json::Value::Object(m) = &mut details {
        m.insert("root".into(), summary_json(&root));
        m.insert("issuing".into(), summary_json(&issuing));
    }
    let draft = EventDraft {
        device_id: None,
        actor: crate::cli_actor(),
        action: Action::CaInitialized,
        before: None,
        after: Some(details.to_string()),
        reason: None,
    };
    store
        .append_event(draft, SystemClock.now())
        .await
        .context("recording the CA in the event log")?;
    print(&root, &issuing, out)
}

fn summary_json(s: &CertSummary) -> serde_json::Value {
    json!({
        "subject": s.subject, "issuer": s.issuer, "serial": s.serial,
        "not_before": s.not_before, "not_after": s.not_after, "fingerprint": s.fingerprint,
    })
}

fn print(root: &CertSummary, issuing: &CertSummary, out: Output) -> Result<()> {
    match out {
        Output::Json => {
            output::json(&json!({ "root": summary_json(root), "issuing": summary_json(issuing) }))
        }
        Output::Table => {
            for (name, s) in [("root", root), ("issuing", issuing)] {
                println!("{name} CA");
                println!("  subject      {}", s.subject);
                println!("  issuer       {}", s.issuer);
                println!("  serial       {}", s.serial);
                println!("  valid        {} to {}", s.not_before, s.not_after);
                println!("  sha-256      {}", s.fingerprint);
            }
            Ok(())
        }
    }
}

fn read_summary(dir: &Path, file: &str) -> Result<CertSummary> {
    let path = dir.join(file);
    let pem = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (has `vouch ca init` run?)", path.display()))?;
    Ok(summarize_pem(&pem)?)
}

/// Runs a CA command; the CA lives in `<data_dir>/ca`.
pub async fn run(cmd: CaCommand, data_dir: &Path, store: &dyn Store, out: Output) -> Result<()> {
    let dir = data_dir.join("ca");
    match cmd {
        CaCommand::Init {
            hsm_module: Some(module),
            hsm_token: Some(token),
            organization,
            ..
        } => {
            fresh_ca_dir(&dir, &[HSM_FILE])?;
            let pin = hsm_pin()?;
            let loc = |key: &str| vouch_pki::hsm::HsmLocation {
                module: module.clone(),
                token: token.clone(),
                key: key.into(),
            };
            let root_key = vouch_pki::hsm::HsmKey::generate(&loc("vouch-root"), &pin)?;
            let issuing_key = vouch_pki::hsm::HsmKey::generate(&loc("vouch-issuing"), &pin)?;
            let (root_pem, issuing_pem) = vouch_pki::ca_certificates(
                &root_key,
                &issuing_key,
                &CaSubject { organization },
                SystemClock.now(),
            )?;
            let location = format!(
                "module={}\ntoken={token}\nkey=vouch-issuing\n",
                module.display()
            );
            write_new(&dir.join(HSM_FILE), &location, 0o600)?;
            write_new(&dir.join("root.pem"), &root_pem, 0o644)?;
            write_new(&dir.join("issuing.pem"), &issuing_pem, 0o644)?;
            record_ca(
                store,
                json!({ "algorithm": "p256", "hsm_token": token }),
                &root_pem,
                &issuing_pem,
                out,
            )
            .await?;
            if out == Output::Table {
                println!(
                    "keys generated in the HSM token `{token}`; certificates written to {}",
                    dir.display()
                );
            }
            Ok(())
        }
        CaCommand::Init {
            algorithm,
            organization,
            passphrase_file,
            ..
        } => {
            fresh_ca_dir(&dir, &[])?;
            let pass = passphrase(passphrase_file.as_deref())?;
            let m = init_ca(
                algorithm,
                &CaSubject { organization },
                SystemClock.now(),
                &pass,
            )?;
            // Keys first: if anything fails half-way, no certificate points at a key that is not there.
            write_new(&dir.join("root.key.pem"), &m.root_key_pem, 0o600)?;
            write_new(&dir.join("issuing.key.pem"), &m.issuing_key_pem, 0o600)?;
            write_new(&dir.join("root.pem"), &m.root_cert_pem, 0o644)?;
            write_new(&dir.join("issuing.pem"), &m.issuing_cert_pem, 0o644)?;
            let details = json!({ "algorithm": algorithm.as_str() });
            record_ca(store, details, &m.root_cert_pem, &m.issuing_cert_pem, out).await?;
            if out == Output::Table {
                println!("written to {} (keys encrypted, owner-only)", dir.display());
            }
            Ok(())
        }
        CaCommand::Request {
            algorithm,
            organization,
            passphrase_file,
        } => {
            fresh_ca_dir(&dir, &[])?;
            let pass = passphrase(passphrase_file.as_deref())?;
            let (key_pem, csr_pem) =
                vouch_pki::intermediate_request(algorithm, &CaSubject { organization }, &pass)?;
            write_new(&dir.join("issuing.key.pem"), &key_pem, 0o600)?;
            let csr_path = dir.join("issuing.csr.pem");
            std::fs::write(&csr_path, csr_pem)
                .with_context(|| format!("writing {}", csr_path.display()))?;
            println!(
                "issuing CA key created (encrypted); have your enterprise root sign {} as a CA certificate \
                 (basicConstraints CA:TRUE, pathlen 0), then run `vouch ca import --cert SIGNED --root ROOT`",
                csr_path.display()
            );
            Ok(())
        }
        CaCommand::Import {
            cert,
            root,
            passphrase_file,
        } => {
            if dir.join("issuing.pem").exists() {
                bail!(
                    "a CA exists already ({}): refusing to replace it",
                    dir.join("issuing.pem").display()
                );
            }
            let key_path = dir.join("issuing.key.pem");
            let key_pem = std::fs::read_to_string(&key_path).with_context(|| {
                format!(
                    "reading {} (run `vouch ca request` first)",
                    key_path.display()
                )
            })?;
            let pass = passphrase(passphrase_file.as_deref())?;
            let cert_pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("reading {}", cert.display()))?;
            let root_pem = std::fs::read_to_string(&root)
                .with_context(|| format!("reading {}", root.display()))?;
            vouch_pki::import_intermediate(&cert_pem, &key_pem, &pass, &root_pem)?;
            write_new(&dir.join("root.pem"), &root_pem, 0o644)?;
            write_new(&dir.join("issuing.pem"), &cert_pem, 0o644)?;
            record_ca(
                store,
                json!({ "external_root": true }),
                &root_pem,
                &cert_pem,
                out,
            )
            .await
        }
        CaCommand::Show => print(
            &read_summary(&dir, "root.pem")?,
            &read_summary(&dir, "issuing.pem")?,
            out,
        ),
    }
}
