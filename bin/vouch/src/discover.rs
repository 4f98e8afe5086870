//! `vouch discover`: passive discovery from capture files.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vouch_discover::{Discovery, Limits, Report};

/// Files at least this big get a progress bar.
const PROGRESS_FROM: u64 = 16 << 20;

/// Options of `vouch discover`.
#[derive(Args)]
pub struct DiscoverArgs {
    /// pcap or pcapng files, read in order as one capture.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Write the full report (devices, endpoints, map) as JSON to this file (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the communication map as Graphviz DOT to this file (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    dot: Option<PathBuf>,
    /// Compare with the JSON report of a previous run: new devices, new talkers, changes.
    #[arg(long, value_name = "FILE")]
    previous: Option<PathBuf>,
    /// The most conversations held in memory at once (older ones are folded into the map).
    #[arg(long, default_value_t = Limits::default().max_flows, value_name = "N")]
    max_flows: usize,
}

/// Runs `vouch discover`. A file that cannot be read to its end is reported with the offset of the bad record,
/// after what came before it was kept; the exit status is then non-zero.
pub fn run(args: DiscoverArgs) -> Result<()> {
    let previous: Option<Report> = match &args.previous {
        Some(p) => Some(
            serde_json::from_reader(BufReader::new(
                File::open(p).with_context(|| format!("opening {}", p.display()))?,
            ))
            .with_context(|| format!("{} is not a discovery report", p.display()))?,
        ),
        None => None,
    };
    let mut run = Discovery::new(Limits {
        max_flows: args.max_flows.max(1024),
        ..Limits::default()
    });
    let mut failed = Vec::new();
    for path in &args.files {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bar = if size >= PROGRESS_FROM {
            let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(path.display().to_string());
            bar
        } else {
            ProgressBar::hidden()
        };
        let reader = bar.wrap_read(BufReader::with_capacity(1 << 20, file));
        let name = path.display().to_string();
        if let Err(e) = run.read(&name, reader) {
            failed.push(format!("{name}: {e}"));
        }
        bar.finish_and_clear();
    }
    let report = run.finish(previous.as_ref());
    if let Some(out) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        write_out(out, &text)?;
    }
    if let Some(out) = &args.dot {
        write_out(out, &report.to_dot())?;
    }
    if args.json.as_deref() != Some(std::path::Path::new("-"))
        && args.dot.as_deref() != Some(std::path::Path::new("-"))
    {
        print_summary(&report);
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} (what came before was read and reported)",
            failed.join("; ")
        );
    }
    Ok(())
}

fn write_out(path: &std::path::Path, text: &str) -> Result<()> {
    if path == std::path::Path::new("-") {
        println!("{text}");
        Ok(())
    } else {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

fn print_summary(r: &Report) {
    let c = &r.capture;
    println!(
        "{} frames, {} bytes, {} devices, {} IP endpoints, {} map edges, {} conversations",
        c.frames,
        c.wire_bytes,
        r.devices.len(),
        r.endpoints.len(),
        r.map.len(),
        c.flows
    );
    println!(
        "{:<24} {:<18} {:<20} {:<5} {:<28} RISKS",
        "DEVICE", "ADDRESS", "CLASS", "CONF", "IDENTITY"
    );
    for d in &r.devices {
        let addr = d
            .ips
            .first()
            .map(|i| i.to_string())
            .or(d.mac.map(|m| m.to_string()))
            .unwrap_or_default();
        let ident = [
            d.vendor.as_deref(),
            d.model.as_deref(),
            d.hostname.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" / ");
        let ident: String = ident.chars().take(28).collect();
        println!(
            "{:<24} {:<18} {:<20} {:<5.2} {:<28} {}",
            d.key.chars().take(24).collect::<String>(),
            addr,
            format!("{} ({})", d.class.as_str(), d.role)
                .chars()
                .take(20)
                .collect::<String>(),
            d.confidence,
            ident,
            d.risks.len()
        );
    }
    if let Some(ch) = &r.changes {
        println!(
            "since the previous run: {} new devices, {} gone, {} new talkers, {} changed",
            ch.new_devices.len(),
            ch.gone_devices.len(),
            ch.new_talkers.len(),
            ch.changed.len()
        );
    }
    for e in &c.errors {
        eprintln!("error: {e}");
    }
}
