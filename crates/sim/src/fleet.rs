//! The simulated fleet: its devices (class, model, firmware, zone), the firmware policy of each model, where
//! each zone connects from, and the attack schedule that is the ground truth.

use std::net::Ipv4Addr;

use serde::Serialize;
use vouch_trust::{FirmwareRule, FirmwareState};
use vouch_types::{DeviceClass, DeviceId, Timestamp};

use crate::rng::{Rng, key};
use crate::scenario::Scenario;

/// The zones devices live in; a device's zone is where it is expected to connect from.
pub const ZONES: [&str; 3] = ["plant-a", "plant-b", "plant-c"];

/// Windows of normal behaviour kept after each attack when the run is long enough, so that a detector's
/// return to normal (and its false alarms right after an attack) is measured too.
pub const REST_AFTER_ATTACK: u32 = 12;

/// When window 0 starts: a Monday at 00:00 UTC, so that a window's time of day is `window × window_secs`.
pub const RUN_START: Timestamp = Timestamp::from_unix_micros(1_736_121_600_000_000);

/// Where a zone's devices connect from, for the live driver: zone i is 127.0.(10+i).0/24.
pub fn zone_network(zone: &str) -> Option<(Ipv4Addr, u8)> {
    let i = zone_index(zone)?;
    Some((Ipv4Addr::new(127, 0, 10 + i as u8, 0), 24))
}

/// The address device `index` connects from when it is in `zone`: 127.0.(10+i).(2 + index % 250).
pub fn device_addr(zone: &str, index: u32) -> Option<Ipv4Addr> {
    let i = zone_index(zone)?;
    Some(Ipv4Addr::new(127, 0, 10 + i as u8, 2 + (index % 250) as u8))
}

fn zone_index(zone: &str) -> Option<usize> {
    ZONES.iter().position(|z| *z == zone)
}

/// One device of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimDevice {
    /// Its position in the fleet (0-based).
    pub index: u32,
    /// Its id: `DeviceId::derived("sim:{seed}:{index}")`, the same on every run with the same seed.
    pub id: DeviceId,
    /// Its class, which decides its traffic.
    pub class: DeviceClass,
    /// Its model (one per class), with a [`FirmwarePolicy`].
    pub model: &'static str,
    /// Its vendor.
    pub vendor: &'static str,
    /// The firmware it runs: the current version of its model.
    pub firmware: String,
    /// The zone it belongs to (one of [`ZONES`]).
    pub zone: String,
}

/// One model's firmware: what it ships now, the lowest supported version, and the known-vulnerable ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FirmwarePolicy {
    /// The model.
    pub model: &'static str,
    /// The version devices run when nothing is wrong.
    pub current: &'static str,
    /// The lowest supported version.
    pub minimum: &'static str,
    /// Versions with a known vulnerability, all older than `current` (a downgrade target).
    pub vulnerable: &'static [&'static str],
}

impl FirmwarePolicy {
    /// The policy as the trust service reads it (`[trust.firmware."MODEL"]`).
    pub fn rule(&self) -> FirmwareRule {
        FirmwareRule {
            minimum: Some(self.minimum.to_owned()),
            vulnerable: self.vulnerable.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    /// How `version` fares under this policy, by the trust service's own rule.
    pub fn status(&self, version: &str) -> FirmwareState {
        self.rule().state(Some(version))
    }
}

/// The simulated models, one per class: (class, model, vendor).
const MODELS: [(DeviceClass, &str, &str); 4] = [
    (DeviceClass::Sensor, "SIM-TH-100", "Simsense"),
    (DeviceClass::Camera, "SIM-CAM-4K", "Simvision"),
    (DeviceClass::Plc, "SIM-PLC-1200", "Simcontrol"),
    (DeviceClass::Gateway, "SIM-GW-8", "Simedge"),
];

static POLICIES: [FirmwarePolicy; 4] = [
    FirmwarePolicy {
        model: "SIM-TH-100",
        current: "2.4.1",
        minimum: "2.2.0",
        vulnerable: &["2.1.3", "2.3.0"],
    },
    FirmwarePolicy {
        model: "SIM-CAM-4K",
        current: "5.2.0",
        minimum: "5.0.0",
        vulnerable: &["4.8.2", "5.1.1"],
    },
    FirmwarePolicy {
        model: "SIM-PLC-1200",
        current: "3.1.4",
        minimum: "3.0.0",
        vulnerable: &["2.9.7", "3.0.2"],
    },
    FirmwarePolicy {
        model: "SIM-GW-8",
        current: "1.12.0",
        minimum: "1.10.0",
        vulnerable: &["1.9.5", "1.11.2"],
    },
];

/// The firmware policy of every simulated model.
pub fn firmware_policies() -> &'static [FirmwarePolicy] {
    &POLICIES
}

/// The firmware policy of one model, if it is a simulated one.
pub fn firmware_policy(model: &str) -> Option<&'static FirmwarePolicy> {
    POLICIES.iter().find(|p| p.model == model)
}

/// One attack: a scenario played by one device over consecutive windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Attack {
    /// The device's index.
    pub device: u32,
    /// What it plays.
    pub scenario: Scenario,
    /// Its first window.
    pub start: u32,
    /// How many windows it lasts.
    pub windows: u32,
}

impl Attack {
    /// Whether `window` is one of the attack's.
    pub fn covers(&self, window: u32) -> bool {
        window >= self.start && window - self.start < self.windows
    }
}

/// The shape of a simulated run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetConfig {
    /// Devices in the fleet.
    pub devices: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// Length of one observation window, in seconds.
    pub window_secs: u32,
    /// Windows in the run.
    pub windows: u32,
    /// Attack-free windows at the start.
    pub warmup: u32,
    /// Attacks per scenario (each on its own device; fewer when the fleet is smaller than the attacks).
    pub attacks_per_scenario: u32,
    /// Windows each attack lasts.
    pub attack_windows: u32,
    /// The scenarios played.
    pub scenarios: Vec<Scenario>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            devices: 300,
            seed: 7,
            window_secs: 10,
            windows: 120,
            warmup: 30,
            attacks_per_scenario: 1,
            attack_windows: 6,
            scenarios: Scenario::ALL.to_vec(),
        }
    }
}

/// Purposes of the generator keys: each random choice draws from its own stream.
pub(crate) mod tag {
    pub(crate) const DEVICE: u64 = 1;
    pub(crate) const PROFILE: u64 = 2;
    pub(crate) const SCHEDULE: u64 = 3;
    pub(crate) const PLAN: u64 = 4;
    pub(crate) const ATTACK: u64 = 5;
    pub(crate) const ATTACK_PARAM: u64 = 6;
    pub(crate) const MOTION: u64 = 7;
}

/// A simulated fleet: its devices and its attacks (the ground truth).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fleet {
    /// The run's shape.
    pub config: FleetConfig,
    /// The devices, by index.
    pub devices: Vec<SimDevice>,
    /// The attacks, by start window.
    pub attacks: Vec<Attack>,
}

impl Fleet {
    /// Makes the fleet and its attack schedule from the config (deterministic from its seed).
    pub fn new(config: FleetConfig) -> Fleet {
        let devices = (0..config.devices)
            .map(|i| make_device(config.seed, i))
            .collect();
        let attacks = schedule(&config);
        Fleet {
            config,
            devices,
            attacks,
        }
    }

    /// The attack device `device` is playing in `window`, if any: the ground truth.
    pub fn attack(&self, device: u32, window: u32) -> Option<Scenario> {
        self.attack_at(device, window).map(|a| a.scenario)
    }

    /// The attack covering (`device`, `window`), if any.
    pub fn attack_at(&self, device: u32, window: u32) -> Option<&Attack> {
        self.attacks
            .iter()
            .find(|a| a.device == device && a.covers(window))
    }

    /// When `window` starts.
    pub fn window_start(&self, window: u32) -> Timestamp {
        RUN_START.plus_micros(i64::from(window) * i64::from(self.config.window_secs) * 1_000_000)
    }

    /// When `window` ends (the next one starts).
    pub fn window_end(&self, window: u32) -> Timestamp {
        self.window_start(window.saturating_add(1))
    }
}

fn make_device(seed: u64, index: u32) -> SimDevice {
    let mut r = Rng::new(key(&[seed, tag::DEVICE, u64::from(index)]));
    // Roughly half sensors, a fifth cameras, a fifth PLCs and a tenth gateways, as on a plant floor.
    let u = r.unit();
    let m = match u {
        u if u < 0.5 => 0,
        u if u < 0.7 => 1,
        u if u < 0.9 => 2,
        _ => 3,
    };
    let (class, model, vendor) = MODELS[m];
    SimDevice {
        index,
        id: DeviceId::derived(&format!("sim:{seed}:{index}")),
        class,
        model,
        vendor,
        firmware: POLICIES[m].current.to_owned(),
        zone: ZONES[r.below(ZONES.len() as u32) as usize].to_owned(),
    }
}

/// Places the attacks: on distinct devices, after the warm-up, spread over the run in a shuffled order of
/// scenarios, each followed by [`REST_AFTER_ATTACK`] normal windows when the run is long enough.
fn schedule(c: &FleetConfig) -> Vec<Attack> {
    if c.windows == 0 || c.devices == 0 {
        return Vec::new();
    }
    let mut r = Rng::new(key(&[c.seed, tag::SCHEDULE]));
    let per = c.attacks_per_scenario as usize;
    let wanted: Vec<Scenario> = c
        .scenarios
        .iter()
        .flat_map(|s| std::iter::repeat_n(*s, per))
        .take(c.devices as usize)
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let mut victims: Vec<u32> = (0..c.devices).collect();
    shuffle(&mut victims, &mut r);
    let mut slots: Vec<u32> = (0..wanted.len() as u32).collect();
    shuffle(&mut slots, &mut r);
    let len = c.attack_windows.clamp(1, c.windows);
    let first = c.warmup.min(c.windows - 1);
    let last = c.windows.saturating_sub(len + REST_AFTER_ATTACK).max(first);
    let span = u64::from(last - first + 1);
    let k = wanted.len() as u64;
    let mut attacks: Vec<Attack> = wanted
        .iter()
        .zip(victims)
        .zip(slots)
        .map(|((scenario, device), slot)| {
            // Stratified: each attack gets its own stretch of the run, and a random start within it.
            let from = u64::from(slot) * span / k;
            let to = (u64::from(slot) + 1) * span / k;
            let jitter = u64::from(r.below(u32::try_from((to - from).max(1)).unwrap_or(1)));
            let start = (first + u32::try_from(from + jitter).unwrap_or(0)).min(last);
            Attack {
                device,
                scenario: *scenario,
                start,
                windows: len.min(c.windows - start),
            }
        })
        .collect();
    attacks.sort_by_key(|a| (a.start, a.device));
    attacks
}

fn shuffle<T>(v: &mut [T], r: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = r.below(i as u32 + 1) as usize;
        v.swap(i, j);
    }
}
