//! `vouch audit`: verifying the event log against its hash chain, the token and policy replay and the signed
//! checkpoints (`vouch_runtime::checkpoint` keeps the key and writes them), and signing one now.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use vouch_events::{Checkpoint, PublicKey, SignedCheckpoint};
use vouch_runtime::checkpoint::{CheckpointKey, Paths, Writer, read_public_key};
use vouch_runtime::config::Config;
use vouch_store::{Store, StoreError};
use vouch_types::Clock;

use crate::output::Output;

/// Audit commands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain and name the first event that was altered, removed or reordered; compare the
    /// token and policy tables with what the log says; with --checkpoint, check the log against every signed
    /// checkpoint in the files given.
    Verify {
        /// A checkpoint file (each line a checkpoint, e.g. audit-checkpoints.jsonl or the external sink's
        /// copy); may be repeated. Every line is verified and checked.
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
        /// The public key that signed them (PEM); default: audit-checkpoint.pub beside the key file.
        #[arg(long, value_name = "PUB")]
        key: Option<PathBuf>,
    },
    /// Sign a checkpoint of the verified chain head now and append it where the server does.
    Checkpoint,
}

/// Runs an audit command.
pub async fn run(cmd: AuditCommand, config: &Config, output: Output) -> Result<ExitCode> {
    let store = vouch_runtime::open_store(config).await?;
    let paths = Paths::new(config);
    match cmd {
        AuditCommand::Verify { checkpoints, key } => {
            verify(&*store, &paths, &checkpoints, key.as_deref(), output).await
        }
        AuditCommand::Checkpoint => {
            let key = CheckpointKey::load_or_create(&paths.key, &paths.public)?;
            let clock: Arc<dyn Clock> = Arc::new(vouch_types::SystemClock);
            let mut writer = Writer::new(store, clock, key, paths)?;
            let signed = match writer.sign(true).await {
                Ok(Some(s)) => s,
                Ok(None) => bail!("the event log is empty: there is nothing to checkpoint"),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::from(3));
                }
            };
            writer.write(&signed)?;
            let line = signed.to_line();
            match output {
                Output::Json => println!("{line}"),
                Output::Table => println!(
                    "checkpoint of event {} signed (key {}), appended to {}:\n{line}",
                    signed.checkpoint.seq,
                    signed.key,
                    writer.paths.local.display()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The checkpoints of the files given whose signatures verify, and a finding for every line that does not.
fn read_checkpoints(
    files: &[PathBuf],
    key: &PublicKey,
    findings: &mut Vec<String>,
) -> Result<(Vec<Checkpoint>, usize)> {
    let mut good = Vec::new();
    let mut lines = 0;
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the checkpoint file {}", file.display()))?;
        let before = good.len();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            lines += 1;
            match SignedCheckpoint::parse(line).and_then(|c| c.verify(key).map(|()| c)) {
                Ok(c) => good.push(c.checkpoint),
                Err(e) => findings.push(format!(
                    "checkpoint forged or unreadable: line {} of {}: {e}",
                    n + 1,
                    file.display()
                )),
            }
        }
        if good.len() == before {
            findings.push(format!(
                "no valid checkpoint in {}: nothing anchors the log",
                file.display()
            ));
        }
    }
    Ok((good, lines))
}

/// `vouch audit verify`: exit 3 on any finding.
async fn verify(
    store: &dyn Store,
    paths: &Paths,
    files: &[PathBuf],
    key: Option<&Path>,
    output: Output,
) -> Result<ExitCode> {
    let mut findings = Vec::new();
    let (checkpoints, lines, key_id) = if files.is_empty() {
        (Vec::new(), 0, None)
    } else {
        let key = read_public_key(key.unwrap_or(&paths.public))?;
        let (c, n) = read_checkpoints(files, &key, &mut findings)?;
        (c, n, Some(key.id()))
    };
    // The first break (of the chain, or a row that no longer decodes) leads, as it always has.
    let mut first_break = None;
    let analysis = match vouch_store::verify_audit_full(store, &checkpoints).await {
        Ok(a) => Some(a),
        // A row that no longer decodes was edited outside Vouch: that is a finding, not a crash.
        Err(StoreError::Corrupt { table, why }) => {
            first_break = Some(format!("{table}: {why}"));
            None
        }
        Err(e) => return Err(e).context("reading the event log"),
    };
    let mut not_checkable = Vec::new();
    let mut notes = Vec::new();
    let mut verified = 0;
    if let Some(a) = &analysis {
        verified = a.chain.verified;
        first_break = a.chain.first_break.as_ref().map(ToString::to_string);
        match (&a.state, &a.state_skipped) {
            (Some(s), _) => {
                findings.extend(s.findings.iter().map(ToString::to_string));
                not_checkable.extend(s.not_checkable.iter().map(ToString::to_string));
                if s.findings.is_empty() {
                    notes.push(format!(
                        "tokens and policies match the log: {} tokens, {} policies",
                        s.tokens, s.policies
                    ));
                }
            }
            (None, Some(why)) => not_checkable.push(format!("tokens and policies: {why}")),
            (None, None) => {}
        }
        for c in &a.checkpoints {
            if !c.matches() {
                findings.push(c.to_string());
            }
        }
    }
    let matching = analysis
        .as_ref()
        .map_or(0, |a| a.checkpoints.iter().filter(|c| c.matches()).count());
    let newest = analysis.as_ref().and_then(|a| {
        a.checkpoints
            .iter()
            .filter(|c| c.matches())
            .map(|c| c.checkpoint)
            .max_by_key(|c| (c.seq, c.at))
    });
    if let Some(id) = key_id {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let mut note = format!(
            "checkpoints: {lines} in {} (every line checked, key {id}): {matching} match the log",
            names.join(", ")
        );
        if let Some(n) = newest {
            note.push_str(&format!("; the newest signed event {} at {}", n.seq, n.at));
            if let Some(a) = &analysis
                && a.chain.verified > n.seq.0
            {
                note.push_str(&format!(
                    " (events {} to {} are after it: not yet anchored)",
                    n.seq.0 + 1,
                    a.chain.verified
                ));
            }
        }
        notes.push(note);
    }
    let clean = first_break.is_none() && findings.is_empty();
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "intact": clean,
                "verified": verified,
                "first_break": first_break,
                "findings": findings,
                "not_checkable": not_checkable,
                "checkpoints": key_id.map(|id| serde_json::json!({
                    "key": id.to_string(),
                    "lines": lines,
                    "matching": matching,
                    "newest": newest.map(|n| serde_json::json!({
                        "seq": n.seq, "hash": n.hash, "at": n.at,
                    })),
                })),
            })
        ),
        Output::Table => {
            match (&first_break, clean) {
                (Some(b), _) => println!("audit log TAMPERED after {verified} good events: {b}"),
                (None, true) => println!("audit log intact: {verified} events verified"),
                (None, false) => println!("hash chain intact: {verified} events verified, but:"),
            }
            for f in &findings {
                println!("TAMPERED: {f}");
            }
            for n in &notes {
                println!("{n}");
            }
            for n in &not_checkable {
                println!("not checkable: {n}");
            }
        }
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
