//! Live capture for `vouch discover --interface` (cargo feature `live`, which links libpcap): frames are read
//! from the interface without ever sending, and fed to discovery until the duration, the packet count or
//! Ctrl-C ends the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vouch_discover::{Discovery, Frame, Link};

/// Reads `interface` into `run` for at most `duration` or `max_packets` frames, or until `stop` is set.
pub fn capture(
    run: &mut Discovery,
    interface: &str,
    duration: Duration,
    max_packets: Option<u64>,
    stop: Arc<AtomicBool>,
) -> Result<u64> {
    let mut cap = pcap::Capture::from_device(interface)
        .with_context(|| format!("no capture device {interface}"))?
        .promisc(false)
        .snaplen(65_535)
        .immediate_mode(true)
        .timeout(100)
        .open()
        .with_context(|| {
            format!("opening {interface} for capture (needs CAP_NET_RAW, e.g. root or setcap)")
        })?
        // Non-blocking, so that a quiet interface does not hold the run past its duration.
        .setnonblock()
        .context("setting the capture non-blocking")?;
    let link = Link::from_dlt(cap.get_datalink().0);
    let deadline = Instant::now() + duration;
    let mut n = 0u64;
    while Instant::now() < deadline
        && !stop.load(Ordering::Relaxed)
        && max_packets.is_none_or(|m| n < m)
    {
        match cap.next_packet() {
            Ok(p) => {
                n += 1;
                // time_t and suseconds_t are i64 here but narrower on some platforms.
                #[allow(clippy::useless_conversion)]
                let ts = i64::from(p.header.ts.tv_sec) * 1_000_000 + i64::from(p.header.ts.tv_usec);
                run.frame(Frame {
                    ts_micros: ts,
                    link,
                    wire_len: p.header.len,
                    data: p.data,
                });
            }
            Err(pcap::Error::TimeoutExpired) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e).context("reading the capture"),
        }
    }
    Ok(n)
}
