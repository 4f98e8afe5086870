//! `vouch discover`: passive discovery from capture files.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vouch_discover::{Discovery, Limits, Report};
use vouch_store::Change;
use vouch_types::{Clock as _, Reason, SystemClock};

use crate::output::Output;
use vouch_runtime::config::Config;

/// Files at least this big get a progress bar.
const PROGRESS_FROM: u64 = 16 << 20;

/// Options of `vouch discover`.
#[derive(Args)]
pub struct DiscoverArgs {
    /// pcap or pcapng files, read in order as one capture.
    #[arg(required_unless_present = "interface", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Capture live from this interface instead (needs the `live` build feature and CAP_NET_RAW; never
    /// sends). Stops after --duration, --count packets, or Ctrl-C, then reports.
    #[arg(long, value_name = "IFACE", conflicts_with = "files")]
    interface: Option<String>,
    /// How long a live capture runs, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    duration: u64,
    /// Stop a live capture after this many packets.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Write the full report (devices, endpoints, map) as JSON to this file (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the communication map as Graphviz DOT to this file (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    dot: Option<PathBuf>,
    /// Compare with the JSON report of a previous run: new devices, new talkers, changes.
    #[arg(long, value_name = "FILE")]
    previous: Option<PathBuf>,
    /// Merge the result into the registry: new devices are created unmanaged (`discovered`), known ones get
    /// what changed and their last-seen time. Without --previous, the last merged run (kept in the data
    /// directory) is the one compared with.
    #[arg(long)]
    merge: bool,
    /// The most conversations held in memory at once (older ones are folded into the map).
    #[arg(long, default_value_t = Limits::default().max_flows, value_name = "N")]
    max_flows: usize,
}

/// Where a merged run's report is kept, to compare the next one with.
fn last_report_path(config: &Config) -> PathBuf {
    config.data_dir.join("discovery").join("last-report.json")
}

fn load_report(p: &std::path::Path) -> Result<Report> {
    serde_json::from_reader(BufReader::new(
        File::open(p).with_context(|| format!("opening {}", p.display()))?,
    ))
    .with_context(|| format!("{} is not a discovery report", p.display()))
}

/// Runs `vouch discover`. A file that cannot be read to its end is reported with the offset of the bad record,
/// after what came before it was kept; the exit status is then non-zero (and nothing is merged).
pub async fn run(args: DiscoverArgs, config: &Config, out: Output) -> Result<()> {
    let last = last_report_path(config);
    let previous: Option<Report> = match &args.previous {
        Some(p) => Some(load_report(p)?),
        None if args.merge && last.exists() => Some(load_report(&last)?),
        None => None,
    };
    let merge = args.merge;
    let (json, dot) = (args.json.clone(), args.dot.clone());
    let stop = Arc::new(AtomicBool::new(false));
    if args.interface.is_some() {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
            }
        });
    }
    let (mut report, failed) =
        tokio::task::spawn_blocking(move || read_all(&args, previous.as_ref(), stop))
            .await
            .context("discovery stopped")??;
    if !failed.is_empty() {
        // What was read before the bad record is still reported (and written), but not merged.
        write_outputs(&report, json.as_deref(), dot.as_deref(), out)?;
        anyhow::bail!(
            "{} (what came before was read and reported{})",
            failed.join("; "),
            if merge { "; nothing was merged" } else { "" }
        );
    }
    if merge {
        let store = vouch_runtime::open_store(config).await?;
        let change = Change {
            actor: crate::cli_actor(),
            reason: Reason::try_from("passive discovery".to_owned()).ok(),
            at: SystemClock.now(),
        };
        let summary = vouch_control::discovery::merge_report(&*store, &mut report, change).await?;
        if let Some(dir) = last.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = last.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&report)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &last).with_context(|| format!("writing {}", last.display()))?;
        eprintln!(
            "merged into the registry: {} new (unmanaged), {} known, {} of them changed; {} managed devices' \
             traffic queued for the trust service",
            summary.created, summary.matched, summary.changed, summary.sightings
        );
    }
    write_outputs(&report, json.as_deref(), dot.as_deref(), out)
}

/// Writes the JSON report and the DOT map where asked, and the summary (or the JSON) to standard output unless
/// one of them went there.
fn write_outputs(
    report: &Report,
    json: Option<&std::path::Path>,
    dot: Option<&std::path::Path>,
    out: Output,
) -> Result<()> {
    if let Some(path) = json {
        write_out(path, &serde_json::to_string_pretty(report)?)?;
    }
    if let Some(path) = dot {
        write_out(path, &report.to_dot())?;
    }
    let dash = Some(std::path::Path::new("-"));
    if json != dash && dot != dash {
        match out {
            Output::Json => println!("{}", serde_json::to_string_pretty(report)?),
            Output::Table => print_summary(report),
        }
    }
    Ok(())
}

/// Reads every file; returns the report and the files that could not be read whole.
fn read_all(
    args: &DiscoverArgs,
    previous: Option<&Report>,
    stop: Arc<AtomicBool>,
) -> Result<(Report, Vec<String>)> {
    let mut run = Discovery::new(Limits {
        max_flows: args.max_flows.max(1024),
        ..Limits::default()
    });
    let mut failed = Vec::new();
    if let Some(iface) = &args.interface {
        live(&mut run, iface, args, stop)?;
    }
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
    let report = run.finish(previous);
    Ok((report, failed))
}

#[cfg(feature = "live")]
fn live(
    run: &mut Discovery,
    iface: &str,
    args: &DiscoverArgs,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let n = crate::live::capture(
        run,
        iface,
        std::time::Duration::from_secs(args.duration),
        args.count,
        stop,
    )?;
    eprintln!("captured {n} packets on {iface}");
    Ok(())
}

#[cfg(not(feature = "live"))]
fn live(_: &mut Discovery, _: &str, _: &DiscoverArgs, _: Arc<AtomicBool>) -> Result<()> {
    anyhow::bail!(
        "this vouch was built without live capture: rebuild with `cargo build --release --features live` \
         (needs libpcap-dev), or capture with tcpdump and give vouch discover the file"
    )
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
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    println!(
        "{:<17} {:<17} {:<34} {:<4} {:<44} {:<9} RISKS",
        "ADDRESS", "MAC", "CLASS (ROLE)", "CONF", "IDENTITY", "REGISTRY"
    );
    for d in &r.devices {
        let addr = d.ips.first().map(|i| i.to_string()).unwrap_or_default();
        let mac = d.mac.map(|m| m.to_string()).unwrap_or_default();
        let ident = [
            d.model.as_deref(),
            d.hostname.as_deref(),
            d.vendor.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" / ");
        let registry = match &d.registry {
            Some(l) if l.managed => "managed",
            Some(_) => "unmanaged",
            None => "-",
        };
        let worst = d
            .risks
            .first()
            .map(|k| format!("{} ({:?})", d.risks.len(), k.severity).to_lowercase())
            .unwrap_or_else(|| "0".to_owned());
        println!(
            "{:<17} {:<17} {:<34} {:<4.2} {:<44} {:<9} {}",
            addr,
            mac,
            cut(&format!("{} ({})", d.class.as_str(), d.role), 34),
            d.confidence,
            cut(&ident, 44),
            registry,
            worst
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
}
