//! `vouch bench trust`: observation windows scored per second on one thread (features, the device's robust
//! baseline, and the trust score with its reasons), on generated windows for many devices.
//!
//! The windows are made by a fixed-seed generator before the clock starts: steady telemetry with jitter, and
//! one device in a hundred bursting now and then, so that both the quiet path and the explaining path run.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use vouch_trust::{Baseline, BaselineConfig, Features, FirmwareState, TrustInputs, assess};
use vouch_types::{DeviceId, Timestamp, TrafficWindow};

/// Options of `vouch bench trust`.
#[derive(Args)]
pub struct TrustArgs {
    /// Devices.
    #[arg(long, default_value_t = 10_000)]
    devices: u32,
    /// Windows per device.
    #[arg(long, default_value_t = 100)]
    windows: u32,
}

/// A small fixed-seed generator (xorshift): the same windows on every run, no dependency.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs the benchmark and prints its figures.
pub fn run(a: TrustArgs) -> Result<()> {
    anyhow::ensure!(
        a.devices > 0 && a.windows > 0,
        "--devices and --windows must be positive"
    );
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let ids: Vec<DeviceId> = (0..a.devices)
        .map(|i| DeviceId::derived(&format!("bench:{i}")))
        .collect();
    let mut windows: Vec<(usize, Features)> = Vec::with_capacity((a.devices * a.windows) as usize);
    let mut raw: Vec<TrafficWindow> = Vec::with_capacity((a.devices * a.windows) as usize);
    for w in 0..a.windows {
        let start = Timestamp::from_unix_micros(1_700_000_000_000_000 + i64::from(w) * 10_000_000);
        for (d, id) in ids.iter().enumerate() {
            let burst = d % 100 == 7 && w % 25 == 24;
            let rate = 2.0 + g.unit();
            let msgs = if burst { 5_000 } else { (rate * 10.0) as u64 };
            let tw = TrafficWindow {
                device: *id,
                start,
                end: start.plus_micros(10_000_000),
                connects: u32::from(g.unit() < 0.01),
                disconnects: 0,
                sessions: 1,
                auth_failures: 0,
                msgs_in: msgs,
                msgs_out: 1,
                bytes_in: msgs * 64,
                bytes_out: 64,
                distinct_topics: 3,
                new_topics: if burst { 40 } else { 0 },
                remotes: Vec::new(),
            };
            windows.push((d, Features::of(&tw)));
            raw.push(tw);
        }
    }
    let cfg = BaselineConfig::default();
    let mut baselines = vec![Baseline::default(); ids.len()];
    let healthy = TrustInputs::healthy(cfg.threshold);
    let t = Instant::now();
    let (mut anomalous, mut lowest) = (0u64, 100u8);
    let mut inputs = healthy.clone();
    for (d, x) in &windows {
        inputs.deviations = baselines[*d].observe(x, &cfg);
        if !inputs.deviations.is_empty() {
            anomalous += 1;
        }
        lowest = lowest.min(assess(&inputs).score.get());
    }
    let took = t.elapsed();
    let n = windows.len() as f64;
    println!(
        "{} windows ({} devices × {}) scored in {:.3} s on one thread: {:.0} observations/s, {:.0} ns each",
        windows.len(),
        a.devices,
        a.windows,
        took.as_secs_f64(),
        n / took.as_secs_f64(),
        took.as_secs_f64() * 1e9 / n
    );
    println!("{anomalous} windows flagged as anomalous; lowest score {lowest}");
    // The class model (cold start), scored then learned like the per-device baselines.
    let hst = vouch_trust::HstConfig::default();
    let mut forest = vouch_trust::HalfSpaceTrees::new(hst);
    let t = Instant::now();
    let mut worst = 0.0f64;
    for (_, x) in &windows {
        worst = worst.max(forest.observe(x));
    }
    let took = t.elapsed();
    println!(
        "class model (Half-Space Trees, {} trees of depth {}): {:.0} windows/s, {:.0} ns each; highest anomaly {worst:.2}",
        hst.trees,
        hst.depth,
        n / took.as_secs_f64(),
        took.as_secs_f64() * 1e9 / n
    );
    // The whole judgement the trust service runs per window: features, the device's baseline (its class's
    // while it warms up), the class forest, and the score with its reasons.
    let mut engine = vouch_trust::TrustEngine::default();
    let state = vouch_trust::DeviceState {
        class: vouch_types::DeviceClass::Sensor,
        identity: healthy.identity,
        firmware: FirmwareState::Current,
        out_of_zone: None,
        failed_controls: Vec::new(),
        attestation_ok: None,
        restricted: false,
    };
    let t = Instant::now();
    let mut changed = 0u64;
    for w in &raw {
        if engine.observe(w, &state).changed() {
            changed += 1;
        }
    }
    let took = t.elapsed();
    println!(
        "whole engine (TrustEngine::observe: features, baseline, class forest, score): {:.0} observations/s on one \
         thread, {:.0} ns each; {changed} score changes",
        n / took.as_secs_f64(),
        took.as_secs_f64() * 1e9 / n
    );
    Ok(())
}
