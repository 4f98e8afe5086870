//! `vouch bench discover`: passive discovery's speed on a capture of at least a million packets, built by
//! repeating a real trace, beside `tshark -q -z conv,tcp` on the same file in the same run.
//!
//! Discovery runs on one thread in this process, with full identity parsing (every dissector, classification,
//! risks, the map), reading the file through the same path as `vouch discover`. Both read the file from the
//! page cache (it is read once before the first round). Peak memory is this process's high-water mark.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use vouch_discover::{Discovery, Limits};

/// Options of `vouch bench discover`.
#[derive(Args)]
pub struct DiscoverArgs {
    /// The trace to repeat (pcap).
    #[arg(long, default_value = "../shared/data/pcaps/iti_modbus_big.pcap")]
    trace: PathBuf,
    /// Repeat it until the capture holds at least this many packets.
    #[arg(long, default_value_t = 1_000_000)]
    packets: u64,
    /// Rounds of each peer (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Skip the tshark peer.
    #[arg(long)]
    no_tshark: bool,
    /// The most conversations held at once.
    #[arg(long, default_value_t = Limits::default().max_flows)]
    max_flows: usize,
}

/// Runs the benchmark and prints its table.
pub fn run(args: DiscoverArgs) -> Result<()> {
    let trace = std::fs::read(&args.trace).with_context(|| {
        format!(
            "reading {} (run from the repository root)",
            args.trace.display()
        )
    })?;
    let dir = tempfile::tempdir().context("creating the bench directory")?;
    let file = dir.path().join("repeated.pcap");
    let (packets, bytes) = repeat(&trace, args.packets, &file)?;
    eprintln!(
        "built {} ({packets} packets, {:.1} MB) from {}",
        file.display(),
        bytes as f64 / 1e6,
        args.trace.display()
    );
    // Warm the page cache so that neither peer pays for the disk.
    std::io::copy(&mut std::fs::File::open(&file)?, &mut std::io::sink())?;

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut last = None;
    for round in 1..=args.rounds.max(1) {
        let t = Instant::now();
        let mut run = Discovery::new(Limits {
            max_flows: args.max_flows,
            ..Limits::default()
        });
        run.read(
            "bench",
            BufReader::with_capacity(1 << 20, std::fs::File::open(&file)?),
        )
        .context("reading the bench capture")?;
        let report = run.finish(None);
        let took = t.elapsed();
        eprintln!(
            "round {round}: vouch discover {:.3} s ({} devices, {} edges)",
            took.as_secs_f64(),
            report.devices.len(),
            report.map.len()
        );
        ours.push(took);
        last = Some(report);
        if !args.no_tshark {
            let t = Instant::now();
            let out = Command::new("tshark")
                .args(["-n", "-q", "-z", "conv,tcp", "-r"])
                .arg(&file)
                .output()
                .context("running tshark (apt-get install tshark, or pass --no-tshark)")?;
            anyhow::ensure!(out.status.success(), "tshark failed");
            let took = t.elapsed();
            eprintln!(
                "round {round}: tshark -z conv,tcp {:.3} s",
                took.as_secs_f64()
            );
            theirs.push(took);
        }
    }
    let report = last.context("no round ran")?;
    anyhow::ensure!(
        report.capture.frames == packets,
        "read {} of {packets} packets",
        report.capture.frames
    );
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let ours = median(&mut ours);
    let pps = packets as f64 / ours.as_secs_f64();
    let gbps = report.capture.wire_bytes as f64 * 8.0 / ours.as_secs_f64() / 1e9;
    println!(
        "capture: {packets} packets, {} wire bytes, {} repetitions of {}",
        report.capture.wire_bytes,
        packets / trace_packets(&trace).max(1),
        args.trace.display()
    );
    println!(
        "{:<34} {:>10} {:>14} {:>10}",
        "peer (median of rounds)", "seconds", "packets/s", "Gbit/s"
    );
    println!(
        "{:<34} {:>10.3} {:>14.0} {:>10.2}",
        "vouch discover (1 thread)",
        ours.as_secs_f64(),
        pps,
        gbps
    );
    if !theirs.is_empty() {
        let t = median(&mut theirs);
        println!(
            "{:<34} {:>10.3} {:>14.0} {:>10.2}",
            "tshark -q -z conv,tcp",
            t.as_secs_f64(),
            packets as f64 / t.as_secs_f64(),
            report.capture.wire_bytes as f64 * 8.0 / t.as_secs_f64() / 1e9
        );
        println!(
            "vouch discover is {:.1}x tshark",
            t.as_secs_f64() / ours.as_secs_f64()
        );
    }
    println!(
        "peak memory (this process): {:.1} MiB; conversations: {} opened, {} at most at once, {} evicted",
        crate::harness::peak_rss_mib(),
        report.capture.flows,
        report.capture.flows_peak,
        report.capture.flows_evicted
    );
    Ok(())
}

/// Writes a pcap holding `trace`'s packets repeated until there are at least `min` of them, each repetition
/// shifted in time to follow the previous one. Returns the packets and bytes written.
fn repeat(trace: &[u8], min: u64, out: &std::path::Path) -> Result<(u64, u64)> {
    anyhow::ensure!(trace.len() >= 24, "the trace is not a pcap file");
    let magic = u32::from_le_bytes([trace[0], trace[1], trace[2], trace[3]]);
    anyhow::ensure!(
        magic == 0xa1b2_c3d4,
        "the trace must be a little-endian microsecond pcap (got magic {magic:#x})"
    );
    let records = &trace[24..];
    let n = trace_packets(trace);
    anyhow::ensure!(n > 0, "the trace holds no packets");
    let span = span_secs(records) + 1;
    let reps = min.div_ceil(n);
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    w.write_all(&trace[..24])?;
    let mut written = 24u64;
    for r in 0..reps {
        let mut rest = records;
        while rest.len() >= 16 {
            let caplen = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
            let Some(rec) = rest.get(..16 + caplen) else {
                break;
            };
            let sec = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
            let shifted = sec.wrapping_add((r as u32).wrapping_mul(span));
            w.write_all(&shifted.to_le_bytes())?;
            w.write_all(&rec[4..])?;
            written += rec.len() as u64;
            rest = &rest[16 + caplen..];
        }
    }
    w.flush()?;
    Ok((reps * n, written))
}

fn trace_packets(trace: &[u8]) -> u64 {
    let mut rest = trace.get(24..).unwrap_or_default();
    let mut n = 0;
    while rest.len() >= 16 {
        let caplen = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
        if rest.len() < 16 + caplen {
            break;
        }
        n += 1;
        rest = &rest[16 + caplen..];
    }
    n
}

fn span_secs(records: &[u8]) -> u32 {
    let (mut first, mut last, mut rest) = (None, 0, records);
    while rest.len() >= 16 {
        let sec = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        first.get_or_insert(sec);
        last = sec;
        let caplen = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
        rest = rest.get(16 + caplen..).unwrap_or_default();
    }
    last.saturating_sub(first.unwrap_or(last))
}
