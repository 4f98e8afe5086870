//! What one device does in one window: its class's traffic with time-of-day modulation and noise, rare benign
//! events, and, in an attack's windows, the attack's signature on top.
//!
//! Rates are given per second and scaled by the window's length, so the same fleet can be simulated at 10 s
//! windows (live, through the gateway) or 300 s windows (a day of a large fleet, in memory). At 10 s, 300
//! devices publish about 700 messages/s in total.

use std::f64::consts::TAU;

use serde::Serialize;
use vouch_types::DeviceClass;

use crate::fleet::{Fleet, SimDevice, ZONES, firmware_policy, tag};
use crate::rng::{Rng, key};
use crate::scenario::Scenario;

/// Messages the device publishes to one topic in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publish {
    /// The topic: relative to the device's namespace when `own` (sent to `devices/<id>/<topic>`), absolute
    /// otherwise.
    pub topic: String,
    /// Whether the topic is in its own namespace (allowed); otherwise the policy refuses it.
    pub own: bool,
    /// Messages.
    pub count: u32,
    /// Payload bytes per message.
    pub payload: u32,
}

/// What one device does in one window: what a live driver sends, and what [`crate::observe`] turns into the
/// gateway's observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowPlan {
    /// Its publishes, one entry per topic.
    pub publishes: Vec<Publish>,
    /// SUBSCRIBE filters outside its namespace ("#", "$SYS/#", "devices/+/#"), refused by policy.
    pub subscribes_foreign: Vec<String>,
    /// Extra disconnect + connect cycles within the window.
    pub reconnects: u32,
    /// CONNECT attempts the gateway refuses (wrong client id with a valid certificate).
    pub bad_connects: u32,
    /// The same identity connected from a second place at once (clone).
    pub second_session: bool,
    /// The zone it connects from this window (its own unless it is playing Location).
    pub zone: String,
    /// The firmware it reports in its posture.
    pub firmware: String,
    /// The attack it plays in this window (the ground truth).
    pub attack: Option<Scenario>,
}

impl WindowPlan {
    /// Messages published to its own namespace.
    pub fn own_messages(&self) -> u64 {
        self.publishes
            .iter()
            .filter(|p| p.own)
            .map(|p| u64::from(p.count))
            .sum()
    }

    /// Payload bytes published to its own namespace.
    pub fn own_payload_bytes(&self) -> u64 {
        self.publishes
            .iter()
            .filter(|p| p.own)
            .map(|p| u64::from(p.count) * u64::from(p.payload))
            .sum()
    }

    fn idle() -> Self {
        WindowPlan {
            publishes: Vec::new(),
            subscribes_foreign: Vec::new(),
            reconnects: 0,
            bad_connects: 0,
            second_session: false,
            zone: String::new(),
            firmware: String::new(),
            attack: None,
        }
    }
}

/// Seconds in a day, for the time-of-day curve.
const DAY: f64 = 86_400.0;
/// Amplitude of the time-of-day modulation of rates (±30%, highest at noon, lowest at midnight).
const DIURNAL: f64 = 0.3;
/// Spread of the per-window "busy" factor (log-normal), on top of Poisson counts.
const BUSY_SIGMA: f64 = 0.1;
/// Mean seconds between benign events per device: a network blip (one reconnect), a reboot (a reconnect
/// and a burst of status messages), a configuration push (a burst of status messages).
const BLIP_EVERY: f64 = 12.0 * 3_600.0;
const REBOOT_EVERY: f64 = 3.0 * DAY;
const STATUS_BURST_EVERY: f64 = DAY;
/// The largest message an exfiltrating device sends: bulk data goes out in chunks of this size.
const CHUNK: u64 = 16 * 1024;

/// A device's steady traffic, drawn once per device from the seed.
struct Profile {
    /// Messages per second on its main topic(s), before modulation.
    rate: f64,
    /// Mean payload bytes per message.
    payload: u32,
    /// Shift of its time-of-day curve, in seconds (±1 h): devices do not all peak at once.
    phase: f64,
    /// A gateway's uplink topics (`uplink/<n>`).
    uplinks: Vec<u32>,
}

fn profile(seed: u64, d: &SimDevice) -> Profile {
    let mut r = Rng::new(key(&[seed, tag::PROFILE, u64::from(d.index)]));
    let phase = (r.unit() - 0.5) * 7_200.0;
    let (rate, payload) = match d.class {
        // One reading every 5–10 s.
        DeviceClass::Sensor => (1.0 / (5.0 + 5.0 * r.unit()), r.range(60, 120)),
        // A snapshot every ~2 s, 4–16 KiB.
        DeviceClass::Camera => (0.3 + 0.4 * r.unit(), r.range(4 * 1024, 16 * 1024)),
        // Tag updates at 2–5 Hz.
        DeviceClass::Plc => (2.0 + 3.0 * r.unit(), r.range(100, 200)),
        // Aggregated uplink at 10–20 messages/s.
        _ => (10.0 + 10.0 * r.unit(), r.range(200, 400)),
    };
    let mut uplinks = Vec::new();
    if d.class == DeviceClass::Gateway {
        let n = r.range(3, 6);
        while uplinks.len() < n as usize {
            let u = r.below(16);
            if !uplinks.contains(&u) {
                uplinks.push(u);
            }
        }
        uplinks.sort_unstable();
    }
    Profile {
        rate,
        payload,
        phase,
        uplinks,
    }
}

/// Extra snapshot-seconds a camera's motion events add to a window: about once an hour, motion lasts 30–120 s
/// and multiplies its snapshot rate by 2–4 meanwhile. Events are placed in time (one per hour slot, at a
/// random minute), not per window, so that a window of any length sees the share of an event that falls in
/// it, and an event may span several short windows.
fn motion_seconds(seed: u64, device: u32, window: u32, secs: f64) -> f64 {
    const SLOT: f64 = 3_600.0;
    let (from, to) = (f64::from(window) * secs, f64::from(window + 1) * secs);
    // The slot before may hold an event that runs into this window.
    let first = ((from / SLOT).floor() as u64).saturating_sub(1);
    let last = ((to / SLOT).ceil() as u64).max(first);
    (first..last)
        .map(|slot| {
            let mut r = Rng::new(key(&[seed, tag::MOTION, u64::from(device), slot]));
            let start = (slot as f64 + r.unit()) * SLOT;
            let end = start + 30.0 + 90.0 * r.unit();
            let boost = 1.0 + 2.0 * r.unit();
            (end.min(to) - start.max(from)).max(0.0) * boost
        })
        .sum()
}

/// Collects publishes, one entry per topic.
#[derive(Default)]
struct Publishes(Vec<Publish>);

impl Publishes {
    fn add(&mut self, topic: &str, own: bool, count: u32, payload: u32) {
        if count == 0 {
            return;
        }
        if let Some(p) = self.0.iter_mut().find(|p| p.own == own && p.topic == topic) {
            // Same topic twice (routine status and a burst): one entry, with the mean payload.
            let total =
                u64::from(p.count) * u64::from(p.payload) + u64::from(count) * u64::from(payload);
            p.count = p.count.saturating_add(count);
            p.payload = u32::try_from(total / u64::from(p.count.max(1))).unwrap_or(u32::MAX);
            return;
        }
        self.0.push(Publish {
            topic: topic.to_owned(),
            own,
            count,
            payload,
        });
    }
}

impl Fleet {
    /// What device `device` does in `window`: deterministic from (seed, device, window). A device outside the
    /// fleet does nothing.
    pub fn plan(&self, device: u32, window: u32) -> WindowPlan {
        let Some(d) = self.devices.get(device as usize) else {
            return WindowPlan::idle();
        };
        let seed = self.config.seed;
        let secs = f64::from(self.config.window_secs.max(1));
        let p = profile(seed, d);
        let mut r = Rng::new(key(&[
            seed,
            tag::PLAN,
            u64::from(device),
            u64::from(window),
        ]));
        // The chance that an event which happens once every `period` seconds happens in this window.
        let per = |period: f64| (secs / period).min(1.0);
        let t = f64::from(window) * secs + secs / 2.0 + p.phase;
        let diurnal = 1.0 + DIURNAL * (TAU * (t / DAY - 0.25)).sin();
        let busy = (BUSY_SIGMA * r.normal()).exp();
        let mean = p.rate * secs * diurnal * busy;
        let mut out = Publishes::default();
        match d.class {
            DeviceClass::Sensor => {
                let n = r.poisson(mean);
                out.add("telemetry", true, n, r.mean_size(p.payload, 0.1, n));
                if r.chance(per(600.0)) {
                    out.add("status", true, 1, r.range(40, 80));
                }
            }
            DeviceClass::Camera => {
                // Motion in view adds snapshots for as long as it lasts (see `motion_seconds`).
                let extra = motion_seconds(seed, d.index, window, secs);
                let n = r.poisson(mean * (1.0 + extra / secs));
                out.add("snapshot", true, n, r.mean_size(p.payload, 0.25, n));
                if r.chance(per(900.0)) {
                    out.add("status", true, 1, r.range(100, 200));
                }
            }
            DeviceClass::Plc => {
                let n = r.poisson(mean);
                out.add("tags", true, n, r.mean_size(p.payload, 0.1, n));
                if r.chance(per(3_600.0)) {
                    out.add("alarms", true, r.range(1, 3), r.range(80, 150));
                }
            }
            _ => {
                let share = mean / p.uplinks.len().max(1) as f64;
                for n in &p.uplinks {
                    let count = r.poisson(share);
                    let size = r.mean_size(p.payload, 0.15, count);
                    out.add(&format!("uplink/{n}"), true, count, size);
                }
                if r.chance(per(900.0)) {
                    out.add("status", true, 1, r.range(100, 200));
                }
            }
        }
        let mut reconnects = 0;
        if r.chance(per(BLIP_EVERY)) {
            reconnects += 1;
        }
        if r.chance(per(REBOOT_EVERY)) {
            reconnects += 1;
            out.add("status", true, r.range(3, 10), r.range(40, 120));
        }
        if r.chance(per(STATUS_BURST_EVERY)) {
            out.add("status", true, r.range(5, 20), r.range(40, 120));
        }
        // Moving to another zone takes a new connection: when a Location attack starts, and when it ends.
        if window > 0 && self.zone_of(device, window) != self.zone_of(device, window - 1) {
            reconnects += 1;
        }
        let mut plan = WindowPlan {
            publishes: Vec::new(),
            subscribes_foreign: Vec::new(),
            reconnects,
            bad_connects: 0,
            second_session: false,
            zone: self.zone_of(device, window).to_owned(),
            firmware: d.firmware.clone(),
            attack: None,
        };
        if let Some(a) = self.attack_at(device, window) {
            self.play(a, window, d, &p, secs, &mut out, &mut plan);
        }
        plan.publishes = out.0;
        plan
    }

    /// The zone `device` connects from in `window`.
    fn zone_of(&self, device: u32, window: u32) -> &str {
        let Some(d) = self.devices.get(device as usize) else {
            return "";
        };
        match self.attack_at(device, window) {
            Some(a) if a.scenario == Scenario::Location => {
                let home = ZONES.iter().position(|z| *z == d.zone).unwrap_or(0);
                let step = 1 + (self.param(a) % 2) as usize;
                ZONES[(home + step) % ZONES.len()]
            }
            _ => &d.zone,
        }
    }

    /// A number fixed for the whole of one attack (its strength, the version or zone it moves to).
    fn param(&self, a: &crate::fleet::Attack) -> u64 {
        key(&[
            self.config.seed,
            tag::ATTACK_PARAM,
            u64::from(a.device),
            u64::from(a.start),
        ])
    }

    /// `count` distinct other devices' ids (fewer in a small fleet), for topics outside this device's
    /// namespace: consecutive devices from a random place, so that no topic repeats.
    fn other_devices(&self, device: u32, count: u32, r: &mut Rng) -> Vec<String> {
        let n = self.devices.len() as u32;
        if n < 2 {
            return vec!["00000000-0000-0000-0000-000000000000".to_owned()];
        }
        let from = r.below(n - 1);
        (0..count.min(n - 1))
            .filter_map(|k| {
                let other = (device + 1 + (from + k) % (n - 1)) % n;
                self.devices.get(other as usize).map(|d| d.id.to_string())
            })
            .collect()
    }

    /// Adds an attack's signature to a window's normal traffic.
    #[allow(clippy::too_many_arguments)]
    fn play(
        &self,
        a: &crate::fleet::Attack,
        window: u32,
        d: &SimDevice,
        p: &Profile,
        secs: f64,
        out: &mut Publishes,
        plan: &mut WindowPlan,
    ) {
        // Its own stream, so that the normal part of the window is the same as without the attack.
        let mut r = Rng::new(key(&[
            self.config.seed,
            tag::ATTACK,
            u64::from(a.device),
            u64::from(window),
        ]));
        plan.attack = Some(a.scenario);
        match a.scenario {
            Scenario::Scan => {
                plan.reconnects += r.range(20, 60);
                plan.subscribes_foreign = ["#", "$SYS/#", "devices/+/#"]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
                let targets = r.range(10, 30);
                for other in self.other_devices(d.index, targets, &mut r) {
                    let (count, size) = (r.range(1, 3), r.range(16, 128));
                    out.add(&format!("devices/{other}/cmd"), false, count, size);
                }
            }
            Scenario::Exfiltration => {
                // 20–100× what the device usually sends, fixed per attack, ±20% per window.
                let factor = 20.0 + (self.param(a) % 81) as f64;
                let usual = p.rate * secs * f64::from(p.payload);
                let total = (usual * factor * (0.8 + 0.4 * r.unit())).max(1.0) as u64;
                let count = total.div_ceil(CHUNK).max(1);
                let payload = u32::try_from(total / count).unwrap_or(u32::MAX);
                out.add(
                    "data/bulk",
                    true,
                    u32::try_from(count).unwrap_or(u32::MAX),
                    payload,
                );
            }
            Scenario::TopicEnumeration => {
                for k in 0..r.range(30, 80) {
                    let size = r.range(1, 32);
                    out.add(&format!("probe/{window}/{k}"), true, 1, size);
                }
                // Outside its namespace too: other devices' telemetry and the broker's own topics.
                let foreign = r.range(5, 15);
                let others = self.other_devices(d.index, foreign.div_ceil(2), &mut r);
                for (k, other) in others.iter().enumerate() {
                    out.add(
                        &format!("devices/{other}/telemetry"),
                        false,
                        1,
                        r.range(1, 32),
                    );
                    if (2 * k + 1) < foreign as usize {
                        out.add(&format!("$SYS/broker/probe/{k}"), false, 1, r.range(1, 32));
                    }
                }
            }
            Scenario::CredentialStuffing => plan.bad_connects = r.range(20, 100),
            Scenario::FirmwareDowngrade => {
                if let Some(policy) = firmware_policy(d.model)
                    && !policy.vulnerable.is_empty()
                {
                    let i = (self.param(a) % policy.vulnerable.len() as u64) as usize;
                    plan.firmware = policy.vulnerable[i].to_owned();
                }
            }
            Scenario::Clone => plan.second_session = true,
            // The zone was chosen with the rest of the plan (it also costs a reconnect when it changes).
            Scenario::Location => {}
        }
    }
}
