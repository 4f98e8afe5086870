//! `vouch compliance`: import the documents the evaluator reads, see each device's state against the
//! catalogue, and write the reports (OSCAL assessment results, HTML, OCSF findings) — on this host's store.
//! The rules and the evidence are `vouch_control::compliance`'s and `vouch-compliance`'s; this parses,
//! calls and renders.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::Serialize;
use vouch_compliance::report::{Period, Scope, html, ocsf, oscal};
use vouch_compliance::{ControlState, Severity};
use vouch_control::compliance::{Assessment, assess};
use vouch_runtime::Config;
use vouch_store::{Change, Store};
use vouch_types::{Clock, DeviceId, DocumentKey, DocumentKind, MAX_DOCUMENT_BYTES, SystemClock};

use crate::output::{self, Output};

/// `vouch compliance …`
#[derive(Subcommand)]
pub enum ComplianceCommand {
    /// Import a document the evaluator reads: an SBOM (cyclonedx-sbom, spdx-sbom) of one firmware, an
    /// advisory (osv, csaf), the CISA KEV catalogue (kev) or VEX (cyclonedx-vex, openvex). Checked before it
    /// is kept; importing under the same name replaces it.
    Import {
        /// What it is.
        kind: DocumentKind,
        /// The file.
        file: PathBuf,
        /// The name it is kept under: for an SBOM the firmware it describes, `MODEL@VERSION` or the image's
        /// `sha256:…` (required); for others, default the file's name.
        #[arg(long)]
        name: Option<DocumentKey>,
    },
    /// Every device's state against the catalogue: controls failed and the most severe finding (exit 3 when
    /// any device fails a control); `--device` for one device's failed controls and evidence.
    Status {
        /// Only this device, with each failed control and its evidence.
        #[arg(long)]
        device: Option<DeviceId>,
    },
    /// Evaluate the fleet now and write the reports asked for.
    Report {
        /// OSCAL 1.1.2 assessment results (JSON).
        #[arg(long, value_name = "FILE")]
        oscal: Option<PathBuf>,
        /// A self-contained HTML report for people.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// OCSF Compliance Finding events (class 2003), one JSON object a line.
        #[arg(long, value_name = "FILE")]
        ocsf: Option<PathBuf>,
        /// The reports' title.
        #[arg(long, default_value = "Vouch compliance assessment")]
        title: String,
    },
}

/// One device's line of `status`.
#[derive(Serialize)]
struct StatusRow {
    device: DeviceId,
    name: Option<String>,
    failed: usize,
    passed: usize,
    not_applicable: usize,
    worst: Option<String>,
    failed_controls: Vec<String>,
}

/// Runs a `vouch compliance` command on this host's store.
pub async fn run(
    cmd: ComplianceCommand,
    config: &Config,
    store: &dyn Store,
    out: Output,
) -> Result<ExitCode> {
    let clock = SystemClock;
    match cmd {
        ComplianceCommand::Import { kind, file, name } => {
            let name = match name {
                Some(n) => n,
                None if kind.is_sbom() => bail!(
                    "an SBOM needs --name MODEL@VERSION (or the image's sha256:…): the firmware it describes"
                ),
                None => file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("the file has no name: give one with --name")?
                    .parse()
                    .context("the file's name is not a document name: give one with --name")?,
            };
            let body = read_bounded(&file)?;
            let change = Change {
                actor: crate::cli_actor(),
                reason: None,
                at: clock.now(),
            };
            let written =
                vouch_control::compliance::import(store, kind, name.clone(), body, change).await?;
            match out {
                Output::Json => output::json(&serde_json::json!({
                    "kind": kind, "name": name, "written": written
                }))?,
                Output::Table if written => println!("imported {kind} {name}"),
                Output::Table => {
                    println!("{kind} {name} is already kept with these bytes: nothing changed")
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ComplianceCommand::Status { device } => {
            let (catalogue, baselines) = vouch_runtime::compliance::inputs(config)?;
            let a = assess(store, &catalogue, &baselines, clock.now()).await?;
            warn_problems(&a);
            if let Some(id) = device {
                return device_status(&a, &catalogue, id, out);
            }
            let rows: Vec<StatusRow> = a
                .devices
                .iter()
                .map(|(d, _, r)| {
                    let count = |s| r.controls.iter().filter(|c| **c == s).count();
                    let findings = r.findings(&catalogue);
                    StatusRow {
                        device: d.id,
                        name: d.identifiers.serial.as_ref().map(ToString::to_string),
                        failed: count(ControlState::Fail),
                        passed: count(ControlState::Pass),
                        not_applicable: count(ControlState::NotApplicable),
                        worst: findings
                            .first()
                            .map(|f| format!("{} {}", severity(f.severity), f.rule)),
                        failed_controls: r
                            .failed(&catalogue)
                            .iter()
                            .map(|c| format!("{} {}", c.framework, c.id))
                            .collect(),
                    }
                })
                .collect();
            let any_failed = rows.iter().any(|r| r.failed > 0);
            match out {
                Output::Json => output::json(&rows)?,
                Output::Table => output::table(
                    &["DEVICE", "SERIAL", "FAILED", "PASSED", "N/A", "MOST SEVERE"],
                    &rows
                        .iter()
                        .map(|r| {
                            vec![
                                r.device.to_string(),
                                output::cell(r.name.as_ref()),
                                r.failed.to_string(),
                                r.passed.to_string(),
                                r.not_applicable.to_string(),
                                output::cell(r.worst.as_ref()),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
            Ok(if any_failed {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
        ComplianceCommand::Report {
            oscal: oscal_file,
            html: html_file,
            ocsf: ocsf_file,
            title,
        } => {
            if oscal_file.is_none() && html_file.is_none() && ocsf_file.is_none() {
                bail!("say which report to write: --oscal FILE, --html FILE, --ocsf FILE");
            }
            let (catalogue, baselines) = vouch_runtime::compliance::inputs(config)?;
            let now = clock.now();
            let a = assess(store, &catalogue, &baselines, now).await?;
            warn_problems(&a);
            let devices = a.assessed();
            let scope = Scope {
                title: &title,
                catalogue: &catalogue,
                devices: &devices,
                period: Period {
                    start: now,
                    end: now,
                },
                generated: now,
                version: env!("CARGO_PKG_VERSION"),
            };
            if let Some(f) = &oscal_file {
                write(f, &oscal::to_json(&scope)?)?;
            }
            if let Some(f) = &html_file {
                write(f, html::render(&scope)?.as_bytes())?;
            }
            if let Some(f) = &ocsf_file {
                write(f, &ocsf::to_json_lines(&scope)?)?;
            }
            let s = scope.summary();
            eprintln!(
                "{} devices, {} controls: pass rate {}",
                devices.len(),
                catalogue.controls().len(),
                s.pass_rate_text()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One device's failed controls with their evidence.
fn device_status(
    a: &Assessment,
    catalogue: &vouch_compliance::Catalogue,
    id: DeviceId,
    out: Output,
) -> Result<ExitCode> {
    let Some((_, _, r)) = a.devices.iter().find(|(d, _, _)| d.id == id) else {
        bail!("no device {id}");
    };
    let findings = r.findings(catalogue);
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            let controls: Vec<String> = f
                .controls
                .iter()
                .map(|c| format!("{} {}", c.framework, c.id))
                .collect();
            let mut evidence: Vec<String> = f.evidence.iter().map(|e| e.text.to_string()).collect();
            if let Some(x) = f.art14 {
                evidence.push(format!(
                    "CRA Art. 14: early warning due {}, notification due {}",
                    x.early_warning_due, x.notification_due
                ));
            }
            vec![
                severity(f.severity).to_owned(),
                f.rule.to_string(),
                controls.join(", "),
                evidence.join("; "),
            ]
        })
        .collect();
    match out {
        Output::Json => output::json(
            &rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "severity": r[0], "rule": r[1], "controls": r[2], "evidence": r[3]
                    })
                })
                .collect::<Vec<_>>(),
        )?,
        Output::Table => output::table(&["SEVERITY", "RULE", "CONTROLS", "EVIDENCE"], &rows),
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

fn warn_problems(a: &Assessment) {
    for p in &a.problems {
        eprintln!("warning: a kept document was left out: {p}");
    }
}

/// The file, refused past the largest document kept (before reading it whole).
fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > MAX_DOCUMENT_BYTES as u64 {
        bail!(
            "{} is {len} bytes: documents are kept up to {MAX_DOCUMENT_BYTES}",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
