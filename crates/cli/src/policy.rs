//! `vouch policy`: validate, add, list, show, switch modes, remove, and test candidate policies against
//! recorded decisions — from the server's host, on the store directly (as the other commands).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::Serialize;
use vouch_decide::{PolicyWriteError, seed_defaults, write_policies};
use vouch_policy::{DeviceRequest, Engine, PolicySource, split_policies, with_candidates};
use vouch_store::{Change, PolicyOp, PolicyWrite, Store};
use vouch_types::{Clock, PolicyId, PolicyMode, Reason, SystemClock};

use crate::output::{self, Output};

/// Policy commands.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check files of policies (each with an @id("name") annotation) against the schema and the stored set;
    /// stores nothing. Exit code 1 when invalid.
    Validate {
        /// Cedar files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Store every policy of a file, in one transaction (shadow mode unless --mode enforce).
    Add {
        /// A Cedar file.
        file: PathBuf,
        /// shadow (observe first: the default) or enforce.
        #[arg(long, default_value = "shadow")]
        mode: String,
        /// Why, for the event log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// List the stored policies.
    List,
    /// Show a policy and its history.
    Show {
        /// The policy's id.
        id: String,
    },
    /// Switch a policy between shadow and enforce.
    Mode {
        /// The policy's id.
        id: String,
        /// shadow or enforce.
        mode: String,
        /// Why, for the event log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Remove a policy (its history stays).
    Remove {
        /// The policy's id.
        id: String,
        /// Why, for the event log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Replay recorded decisions against the stored set with a candidate file applied (as if enforced),
    /// and report what would change.
    Test {
        /// The candidate Cedar file (policies with the same @id replace stored ones).
        candidate: PathBuf,
        /// Recorded decisions (JSON lines); default: decisions.jsonl in the data directory.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Mode the candidate policies are tested in.
        #[arg(long, default_value = "enforce")]
        mode: String,
        /// How many changed requests to list per direction.
        #[arg(long, default_value_t = 20)]
        show: usize,
    },
    /// Print the Cedar schema policies are validated against.
    Schema,
}

fn parse_mode(s: &str) -> Result<PolicyMode> {
    s.parse().map_err(|e| anyhow::anyhow!("{e}"))
}

/// A policy file, refused unread past the size every policy text is held to (`vouch_policy::limits`: the
/// nesting and depth limits follow when it is split).
fn read(file: &Path) -> Result<String> {
    let meta = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
    let limit = vouch_policy::limits::MAX_TEXT_BYTES;
    if meta.len() > limit as u64 {
        let too_long = vouch_policy::PolicyLimit::TextBytes {
            bytes: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            limit,
        };
        bail!("{}: {too_long}", file.display());
    }
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

fn change(reason: Option<String>) -> Result<Change> {
    Ok(Change {
        actor: crate::cli_actor(),
        reason: reason.map(Reason::try_from).transpose()?,
        at: SystemClock.now(),
    })
}

fn stored_sources(records: &[vouch_types::PolicyRecord]) -> Vec<PolicySource> {
    records.iter().map(Into::into).collect()
}

/// Runs a policy command against `store`; `data_dir` locates the decision log.
pub async fn run(
    cmd: PolicyCommand,
    store: &dyn Store,
    data_dir: &Path,
    out: Output,
) -> Result<std::process::ExitCode> {
    let engine = Engine::new().map_err(|e| anyhow::anyhow!("{e}"))?;
    seed_defaults(store, &engine, &SystemClock)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("writing the default policies")?;
    match cmd {
        PolicyCommand::Schema => print!("{}", Engine::schema_text()),
        PolicyCommand::Validate { files } => {
            let stored = store.policies().await?;
            let mut bad = false;
            for file in files {
                let text = read(&file)?;
                let result = engine
                    .check_text(&stored_sources(&stored), &text, PolicyMode::Shadow)
                    .map(|candidate| candidate.len());
                match result {
                    Ok(n) => println!("{}: OK ({n} policies)", file.display()),
                    Err(e) => {
                        bad = true;
                        println!("{}: INVALID", file.display());
                        for p in e.0 {
                            match p.policy {
                                Some(id) => println!("  {id}: {}", p.message),
                                None => println!("  {}", p.message),
                            }
                        }
                    }
                }
            }
            if bad {
                return Ok(std::process::ExitCode::from(1));
            }
        }
        PolicyCommand::Add { file, mode, reason } => {
            let mode = parse_mode(&mode)?;
            let sources =
                split_policies(&read(&file)?, mode).map_err(|e| anyhow::anyhow!("{e}"))?;
            let writes = sources
                .into_iter()
                .map(|s| PolicyWrite {
                    id: s.id,
                    op: PolicyOp::Put {
                        text: s.text,
                        mode: s.mode,
                    },
                    expected_version: None,
                })
                .collect();
            let written = write(store, &engine, writes, change(reason)?).await?;
            report_written(&written, out)?;
        }
        PolicyCommand::List => {
            let policies = store.policies().await?;
            match out {
                Output::Json => output::json(&policies)?,
                Output::Table => output::table(
                    &["ID", "VERSION", "MODE", "AUTHOR", "WRITTEN"],
                    &policies
                        .iter()
                        .map(|p| {
                            vec![
                                p.id.to_string(),
                                p.version.to_string(),
                                p.mode.to_string(),
                                p.author.to_string(),
                                p.at.to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        PolicyCommand::Show { id } => {
            let id: PolicyId = id.parse()?;
            let history = store.policy_history(&id).await?;
            let Some(current) = history.last() else {
                bail!("policy {id} does not exist");
            };
            match out {
                Output::Json => output::json(&history)?,
                Output::Table => {
                    println!(
                        "{} v{} ({}{})\n\n{}\n",
                        current.id,
                        current.version,
                        current.mode,
                        if current.removed { ", removed" } else { "" },
                        current.text.trim()
                    );
                    for v in &history {
                        println!(
                            "  v{}  {}  {}  {}{}",
                            v.version,
                            v.at,
                            v.mode,
                            v.author,
                            if v.removed { "  removed" } else { "" }
                        );
                    }
                }
            }
        }
        PolicyCommand::Mode { id, mode, reason } => {
            let one = PolicyWrite {
                id: id.parse()?,
                op: PolicyOp::SetMode(parse_mode(&mode)?),
                expected_version: None,
            };
            let written = write(store, &engine, vec![one], change(reason)?).await?;
            report_written(&written, out)?;
        }
        PolicyCommand::Remove { id, reason } => {
            let one = PolicyWrite {
                id: id.parse()?,
                op: PolicyOp::Remove,
                expected_version: None,
            };
            let written = write(store, &engine, vec![one], change(reason)?).await?;
            report_written(&written, out)?;
        }
        PolicyCommand::Test {
            candidate,
            log,
            mode,
            show,
        } => {
            let log = log.unwrap_or_else(|| data_dir.join("decisions.jsonl"));
            let report = replay(store, &read(&candidate)?, parse_mode(&mode)?, &log, show).await?;
            match out {
                Output::Json => output::json(&report)?,
                Output::Table => report.print(),
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn write(
    store: &dyn Store,
    engine: &Engine,
    writes: Vec<PolicyWrite>,
    change: Change,
) -> Result<Vec<vouch_types::PolicyRecord>> {
    match write_policies(store, engine, writes, change).await {
        Ok(w) => Ok(w),
        Err(PolicyWriteError::Invalid(e)) => {
            let lines: Vec<String> =
                e.0.iter()
                    .map(|p| match &p.policy {
                        Some(id) => format!("  {id}: {}", p.message),
                        None => format!("  {}", p.message),
                    })
                    .collect();
            bail!(
                "the policies are invalid; nothing was stored:\n{}",
                lines.join("\n")
            )
        }
        Err(PolicyWriteError::Store(e)) => Err(e).context("storing the policies"),
    }
}

fn report_written(written: &[vouch_types::PolicyRecord], out: Output) -> Result<()> {
    match out {
        Output::Json => output::json(&written)?,
        Output::Table if written.is_empty() => println!("nothing changed"),
        Output::Table => {
            for p in written {
                let what = if p.removed { "removed" } else { "stored" };
                println!("{what} {} v{} ({})", p.id, p.version, p.mode);
            }
        }
    }
    Ok(())
}

/// What replaying recorded decisions against a candidate set found.
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    /// Requests replayed.
    pub replayed: usize,
    /// Lines that could not be read (malformed, or from an older format).
    pub unreadable: usize,
    /// Requests whose decision stays the same.
    pub unchanged: usize,
    /// Allowed now, denied with the candidate.
    pub newly_denied: Vec<ChangedDecision>,
    /// Denied now, allowed with the candidate.
    pub newly_allowed: Vec<ChangedDecision>,
    /// How many in each direction (the lists are cut at `--show`).
    pub counts: BTreeMap<&'static str, usize>,
}

/// One request whose decision changes.
#[derive(Debug, Serialize)]
pub struct ChangedDecision {
    /// The device.
    pub device: String,
    /// The action.
    pub action: String,
    /// The resource.
    pub resource: String,
    /// The policies that decide it with the candidate.
    pub by: Vec<String>,
}

impl ReplayReport {
    fn print(&self) {
        println!(
            "replayed {} recorded requests ({} unreadable lines skipped): {} unchanged, {} allowed → denied, \
             {} denied → allowed",
            self.replayed,
            self.unreadable,
            self.unchanged,
            self.counts.get("newly_denied").copied().unwrap_or(0),
            self.counts.get("newly_allowed").copied().unwrap_or(0),
        );
        for (title, list) in [
            ("would be DENIED", &self.newly_denied),
            ("would be ALLOWED", &self.newly_allowed),
        ] {
            if !list.is_empty() {
                println!("\n{title}:");
                for c in list {
                    println!(
                        "  {} {} {}  (by {})",
                        c.device,
                        c.action,
                        c.resource,
                        if c.by.is_empty() {
                            "no permit".to_owned()
                        } else {
                            c.by.join(", ")
                        }
                    );
                }
            }
        }
    }
}

async fn replay(
    store: &dyn Store,
    candidate_text: &str,
    mode: PolicyMode,
    log: &Path,
    show: usize,
) -> Result<ReplayReport> {
    let stored = stored_sources(&store.policies().await?);
    let candidate = split_policies(candidate_text, mode).map_err(|e| anyhow::anyhow!("{e}"))?;
    let next = with_candidates(&stored, candidate);
    let now_engine = Engine::new().map_err(|e| anyhow::anyhow!("{e}"))?;
    now_engine.install(
        now_engine
            .compile(&stored, 1)
            .map_err(|e| anyhow::anyhow!("the stored set: {e}"))?,
    );
    let next_engine = Engine::new().map_err(|e| anyhow::anyhow!("{e}"))?;
    next_engine.install(
        next_engine
            .compile(&next, 2)
            .map_err(|e| anyhow::anyhow!("the candidate set is invalid: {e}"))?,
    );
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "no recorded decisions at {} (the server records them as it decides)",
                log.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", log.display())),
    };
    let mut report = ReplayReport {
        replayed: 0,
        unreadable: 0,
        unchanged: 0,
        newly_denied: Vec::new(),
        newly_allowed: Vec::new(),
        counts: BTreeMap::new(),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let req: Option<DeviceRequest> = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| serde_json::from_value(v.get("request").cloned().unwrap_or(v)).ok());
        let Some(req) = req else {
            report.unreadable += 1;
            continue;
        };
        report.replayed += 1;
        let before = now_engine.decide_device(&req);
        let after = next_engine.decide_device(&req);
        if before.allowed == after.allowed {
            report.unchanged += 1;
            continue;
        }
        let (key, list) = if before.allowed {
            ("newly_denied", &mut report.newly_denied)
        } else {
            ("newly_allowed", &mut report.newly_allowed)
        };
        *report.counts.entry(key).or_default() += 1;
        if list.len() < show {
            list.push(ChangedDecision {
                device: req.device.id.to_string(),
                action: req.action.to_string(),
                resource: req.resource.id().to_owned(),
                by: after.policies,
            });
        }
    }
    Ok(report)
}
