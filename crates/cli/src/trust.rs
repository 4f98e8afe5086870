//! `vouch trust`: the trust engine offline. `vouch trust replay FILE` scores a JSON Lines file of recorded
//! windows (the `TrafficWindow` shape, optionally with the device's `class`; `vouch sim --windows-out`
//! writes one) with the engine, playbooks and `[trust]` settings the live service uses, and prints each
//! device's final score and reasons. The replay itself is `vouch_respond::replay_jsonl`; this is the adapter.

use std::io::{BufReader, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use vouch_respond::DeviceOutcome;

use crate::output::{self, Output};

/// `vouch trust …`
#[derive(Subcommand)]
pub enum TrustCommand {
    /// Score a JSON Lines file of traffic windows offline and print each device's final score and reasons
    /// (`--output json`: one JSON object a line). `-` reads standard input.
    Replay {
        /// The windows, one JSON object a line.
        file: PathBuf,
    },
}

/// Runs a `vouch trust` command with the configured `[trust]` settings.
pub fn run(cmd: TrustCommand, settings: &vouch_respond::TrustSettings, out: Output) -> Result<()> {
    match cmd {
        TrustCommand::Replay { file } => {
            let outcomes = if file.as_os_str() == "-" {
                vouch_respond::replay_jsonl(std::io::stdin().lock(), settings)
            } else {
                let f = std::fs::File::open(&file)
                    .with_context(|| format!("opening {}", file.display()))?;
                vouch_respond::replay_jsonl(BufReader::new(f), settings)
            }
            .with_context(|| format!("replaying {}", file.display()))?;
            print(&outcomes, out)
        }
    }
}

fn print(outcomes: &[DeviceOutcome], out: Output) -> Result<()> {
    match out {
        Output::Json => {
            let mut w = std::io::stdout().lock();
            for o in outcomes {
                serde_json::to_writer(&mut w, o)?;
                writeln!(w)?;
            }
            Ok(())
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = outcomes
                .iter()
                .map(|o| {
                    let reasons: Vec<String> = o.reasons.iter().map(ToString::to_string).collect();
                    vec![
                        o.device.to_string(),
                        o.class.as_str().to_owned(),
                        o.windows.to_string(),
                        o.score.get().to_string(),
                        o.band.as_str().to_owned(),
                        output::cell(o.quarantined_by.as_deref()),
                        if reasons.is_empty() {
                            "-".to_owned()
                        } else {
                            reasons.join("; ")
                        },
                    ]
                })
                .collect();
            output::table(
                &[
                    "DEVICE",
                    "CLASS",
                    "WINDOWS",
                    "SCORE",
                    "BAND",
                    "QUARANTINED BY",
                    "REASONS",
                ],
                &rows,
            );
            Ok(())
        }
    }
}
