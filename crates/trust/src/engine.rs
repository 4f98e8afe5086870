//! The trust engine's state: one robust baseline per device, and per device class a class baseline and a
//! Half-Space Trees forest. A window in, a verdict out: what departed from normal, how far, and the score.
//!
//! A device whose own baseline is still warming up is judged against its class (cold start): the class
//! baseline explains which features are off for a device of that kind, and the class forest flags unusual
//! combinations. Once its own baseline is ready, the device is judged against itself, and the forest still
//! watches for combinations.
//!
//! Each device also remembers its recent behaviour penalties, which decay over the engine's half-life
//! (`crate::memory`): the verdict's assessment holds the window's own reasons and what is left of earlier
//! ones, so a score recovers over several windows rather than jumping back after one.
//!
//! Discovery's sightings are judged too ([`TrustEngine::sight`]): the device's state as for a window, the
//! sighting's network penalties (`crate::network`) in full, and what is left of earlier behaviour and
//! network penalties; the network ones are then remembered, so the windows that follow carry them, decaying.
//!
//! Over 600 lines because the window and sighting paths share the device model and its two memories; most
//! of the length is the tests.
//!
//! Why one long file: the per-device and per-class state and the one `observe`/`sight` path over it
//! belong together (a third of the file is its tests); the pieces that stand alone (`baseline`, `hst`,
//! `memory`, `network`, `score`) are modules of their own.

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use vouch_types::{DeviceClass, DeviceId, NetworkSighting, Timestamp, TrafficWindow, TrustScore};

use crate::baseline::{Baseline, BaselineConfig, Deviation};
use crate::features::{Feature, Features};
use crate::hst::{HalfSpaceTrees, HstConfig};
use crate::memory::{BEHAVIOUR, HalfLife, Memory};
use crate::network::{NETWORK, Whereabouts};
use crate::score::{Assessment, FirmwareState, IdentityState, TrustInputs, assess};

/// What the engine knows about a device besides its behaviour, from the registry and the PKI.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceState {
    /// Its class (selects the class model).
    pub class: DeviceClass,
    /// Its identity.
    pub identity: IdentityState,
    /// Its firmware.
    pub firmware: FirmwareState,
    /// Where it is, when outside its expected zone.
    pub out_of_zone: Option<String>,
    /// Failed compliance controls.
    pub failed_controls: Vec<String>,
    /// Attestation result, if any.
    pub attestation_ok: Option<bool>,
    /// In quarantine (or otherwise restricted by policy): its publishes are refused by design.
    pub restricted: bool,
}

/// Features a quarantine changes by itself (refused publishes): not judged while the device is restricted.
const RESTRICTION_DISTORTS: [Feature; 5] = [
    Feature::PublishRate,
    Feature::BytesInRate,
    Feature::DistinctTopics,
    Feature::NewTopics,
    Feature::AuthFailures,
];

/// The engine's judgement of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whose window.
    pub device: DeviceId,
    /// When the window ended.
    pub at: Timestamp,
    /// Judged against its class, its own baseline still warming up.
    pub cold_start: bool,
    /// The class forest's anomaly, 0–1.
    pub class_anomaly: f64,
    /// The score and its reasons: the window's own, and the remembered penalties of earlier windows
    /// (decaying, [`crate::ScoreReason::remembered`]).
    pub assessment: Assessment,
    /// The score before this window, if there was one: the caller records a change only when they differ.
    pub previous: Option<TrustScore>,
}

impl Verdict {
    /// Whether the score moved (or is the first one).
    pub fn changed(&self) -> bool {
        self.previous != Some(self.assessment.score)
    }

    /// Whether the window's behaviour was judged anomalous (a feature off its baseline, or unusual for the
    /// class); remembered penalties of earlier windows do not make this one anomalous.
    pub fn anomalous(&self) -> bool {
        self.assessment
            .reasons
            .iter()
            .any(|r| r.component == "behaviour" && !r.remembered())
    }

    /// Whether this window by itself took points off (a remembered penalty alone does not flag a window):
    /// what a per-window detector evaluation counts as an alarm.
    pub fn flagged(&self) -> bool {
        self.assessment.reasons.iter().any(|r| !r.remembered())
    }

    /// A continuous risk for ranking windows (ROC curves): the points this window's own reasons take off
    /// (what is remembered from earlier windows is not this window's), with the class model's anomaly (0–1)
    /// breaking ties between windows that lost the same points.
    pub fn risk(&self) -> f64 {
        let own: u32 = self
            .assessment
            .reasons
            .iter()
            .filter(|r| !r.remembered())
            .map(|r| u32::from(r.penalty))
            .sum();
        f64::from(own.min(100)) + self.class_anomaly.clamp(0.0, 1.0)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClassModel {
    baseline: Baseline,
    forest: HalfSpaceTrees,
    bursts: Bursts,
}

/// The volume features (messages and bytes per second), where bursts are normal for some classes.
const VOLUME: [Feature; 3] = [
    Feature::PublishRate,
    Feature::BytesOutRate,
    Feature::BytesInRate,
];

/// How far above its own baseline a device of the class normally goes, per volume feature: a streaming
/// estimate of the 99.9th percentile of value / expectation over the class's windows (on a log scale). A
/// camera's motion bursts teach the camera class that four times its usual bytes is normal; a sensor class
/// that never bursts keeps the baseline's minimum rise. Ratios are clipped before they are learned, so an
/// attack can lift the bar only so far, and it never rises above `MAX_RISE`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Bursts {
    log_q: [f64; 3],
}

/// The quantile of the ratio learned (one window in a thousand may exceed it).
const BURST_QUANTILE: f64 = 0.999;
/// Step of the streaming quantile, on the log scale.
const BURST_STEP: f64 = 0.05;
/// Ratios are clipped to this before they are learned.
const BURST_CLIP: f64 = 8.0;
/// A volume alarm needs at least this margin over the class's normal bursts.
const BURST_MARGIN: f64 = 2.0;
/// The largest rise ever required: beyond it, a volume is an alarm whatever the class does.
const MAX_RISE: f64 = 12.0;

impl Bursts {
    /// The rise a volume feature must reach to count, for this class.
    fn rise(&self, k: usize, min_rise: f64) -> f64 {
        (BURST_MARGIN * self.log_q[k].exp()).clamp(min_rise, MAX_RISE.max(min_rise))
    }

    fn learn(&mut self, x: &Features, b: &Baseline) {
        for (k, f) in VOLUME.iter().enumerate() {
            let i = *f as usize;
            let r = (x.0[i] / b.expected(i)).clamp(1e-3, BURST_CLIP).ln();
            let above = if r > self.log_q[k] { 1.0 } else { 0.0 };
            self.log_q[k] += BURST_STEP * (above - (1.0 - BURST_QUANTILE));
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DeviceModel {
    baseline: Baseline,
    last: Option<TrustScore>,
    memory: Memory,
    /// Remembered network penalties (discovery's sightings), absent from snapshots written before them.
    #[serde(default)]
    network: Memory,
    /// The end of the last sighting judged: one that ends no later was judged already (a report merged
    /// again), and is passed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sighted: Option<Timestamp>,
}

/// What a [`TrustEngine`] learned, serializable (serde) so that a restart does not reset it
/// ([`TrustEngine::learned`], [`TrustEngine::restore`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Learned {
    devices: HashMap<DeviceId, DeviceModel>,
    classes: HashMap<DeviceClass, ClassModel>,
}

impl Learned {
    /// Devices with a model.
    pub fn devices(&self) -> usize {
        self.devices.len()
    }
}

/// Baselines and class models for a fleet, fed window by window.
#[derive(Debug, Clone)]
pub struct TrustEngine {
    baseline: BaselineConfig,
    forest: HstConfig,
    /// Class-forest anomaly from which a window counts as unusual for its class.
    pub class_threshold: f64,
    half_life: HalfLife,
    devices: HashMap<DeviceId, DeviceModel>,
    classes: HashMap<DeviceClass, ClassModel>,
}

impl Default for TrustEngine {
    fn default() -> Self {
        Self::new(BaselineConfig::default(), HstConfig::default())
    }
}

impl TrustEngine {
    /// An engine with these model settings.
    pub fn new(baseline: BaselineConfig, forest: HstConfig) -> Self {
        TrustEngine {
            baseline,
            forest,
            class_threshold: 0.5,
            half_life: HalfLife::default(),
            devices: HashMap::default(),
            classes: HashMap::default(),
        }
    }

    /// The same engine with behaviour penalties decaying over `half_life`.
    pub fn with_half_life(mut self, half_life: HalfLife) -> Self {
        self.half_life = half_life;
        self
    }

    /// How fast behaviour penalties decay.
    pub fn half_life(&self) -> HalfLife {
        self.half_life
    }

    /// Devices with a model.
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// Whether `device` is judged against its class (no baseline of its own ready yet).
    pub fn cold_start(&self, device: DeviceId) -> bool {
        self.devices
            .get(&device)
            .is_none_or(|d| !d.baseline.ready(&self.baseline))
    }

    /// A copy of what the engine learned (each device's baseline, last score and remembered penalties, each
    /// class's baseline, forest and bursts), to persist; its settings are not part of it.
    pub fn learned(&self) -> Learned {
        Learned {
            devices: self.devices.clone(),
            classes: self.classes.clone(),
        }
    }

    /// Takes up what an earlier engine learned, in place of what this one did; its own settings stay.
    pub fn restore(&mut self, learned: Learned) {
        self.devices = learned.devices;
        self.classes = learned.classes;
    }

    /// Judges one window of `state`'s device, then learns from it.
    pub fn observe(&mut self, w: &TrafficWindow, state: &DeviceState) -> Verdict {
        let x = Features::of(w);
        let forest_cfg = self.forest;
        let class = self
            .classes
            .entry(state.class)
            .or_insert_with(|| ClassModel {
                baseline: Baseline::default(),
                forest: HalfSpaceTrees::new(forest_cfg),
                bursts: Bursts::default(),
            });
        let device = self.devices.entry(w.device).or_default();
        let cold_start = !device.baseline.ready(&self.baseline);
        let mut deviations: Vec<Deviation> = if cold_start {
            class.baseline.deviations(&x, &self.baseline)
        } else {
            device.baseline.deviations(&x, &self.baseline)
        };
        // A volume counts only beyond what the class's normal bursts reach.
        let min_rise = self.baseline.min_rise;
        deviations.retain(|d| match VOLUME.iter().position(|f| *f == d.feature) {
            Some(k) => d.sigmas < 0.0 || d.value >= class.bursts.rise(k, min_rise) * d.expected,
            None => true,
        });
        if !cold_start && !state.restricted {
            class.bursts.learn(&x, &device.baseline);
        }
        let class_anomaly = if state.restricted {
            // A restricted device's publishes are refused by design: what the restriction distorts is not
            // held against it, only what it still controls (connections, sessions, deliveries), and nothing
            // it does while restricted is learned as normal.
            deviations.retain(|d| !RESTRICTION_DISTORTS.contains(&d.feature));
            0.0
        } else {
            let a = class.forest.observe(&x);
            // Learn only from windows that look normal for the class, so that one device's attack does not
            // teach the whole class that it is normal.
            if deviations.is_empty() && a < self.class_threshold {
                class.baseline.learn(&x, &self.baseline);
            }
            // Its own baseline learns (clipped once ready): a flagged window at a fraction of the weight, so
            // an attack takes long to become normal; while it warms up, only windows its class finds normal,
            // so that a device which starts out misbehaving does not learn it as normal.
            if deviations.is_empty() {
                device.baseline.learn(&x, &self.baseline);
            } else if !cold_start {
                device.baseline.learn_flagged(&x, &self.baseline);
            }
            a
        };
        let inputs = TrustInputs {
            identity: state.identity,
            cloned: w.sessions > 1,
            firmware: state.firmware,
            out_of_zone: state.out_of_zone.clone(),
            deviations,
            threshold: self.baseline.threshold,
            failed_controls: state.failed_controls.clone(),
            attestation_ok: state.attestation_ok,
            class_anomaly: (class_anomaly >= self.class_threshold)
                .then(|| (class_anomaly, state.class.as_str())),
        };
        let fresh = assess(&inputs);
        let behaviour: Vec<_> = fresh
            .reasons
            .iter()
            .filter(|r| r.component == "behaviour")
            .cloned()
            .collect();
        let remembered = device
            .memory
            .update(w.end, &behaviour, self.half_life, BEHAVIOUR);
        let network = device.network.update(w.end, &[], self.half_life, NETWORK);
        let mut reasons = fresh.reasons;
        reasons.extend(remembered);
        reasons.extend(network);
        let assessment = Assessment::from_reasons(reasons);
        let previous = device.last.replace(assessment.score);
        Verdict {
            device: w.device,
            at: w.end,
            cold_start,
            class_anomaly,
            assessment,
            previous,
        }
    }
}

impl TrustEngine {
    /// Judges what discovery saw `state`'s device do (see the module's doc), at `now` (the caller's clock,
    /// so that a capture uploaded long after it was taken costs what is left of its penalties, not all of
    /// them); `None` for a sighting that ends no later than the last one judged for the device. Learns
    /// nothing of its behaviour: a capture says nothing of its MQTT traffic.
    pub fn sight(
        &mut self,
        s: &NetworkSighting,
        state: &DeviceState,
        at: &Whereabouts<'_>,
        now: Timestamp,
    ) -> Option<Verdict> {
        let cold_start = self.cold_start(s.device);
        let half_life = self.half_life;
        let device = self.devices.entry(s.device).or_default();
        if device.sighted.is_some_and(|last| s.end <= last) {
            return None;
        }
        device.sighted = Some(s.end);
        let inputs = TrustInputs {
            identity: state.identity,
            cloned: false,
            firmware: state.firmware,
            out_of_zone: state.out_of_zone.clone(),
            deviations: Vec::new(),
            threshold: self.baseline.threshold,
            failed_controls: state.failed_controls.clone(),
            attestation_ok: state.attestation_ok,
            class_anomaly: None,
        };
        let age = now.unix_micros() - s.end.unix_micros();
        let judged_at = if age > 0 { now } else { s.end };
        let fresh = aged(
            crate::network::penalties(s, state.class, at),
            age,
            half_life,
        );
        let mut reasons = assess(&inputs).reasons;
        reasons.extend(device.memory.update(judged_at, &[], half_life, BEHAVIOUR));
        reasons.extend(device.network.update(judged_at, &fresh, half_life, NETWORK));
        reasons.extend(fresh);
        let assessment = Assessment::from_reasons(reasons);
        let previous = device.last.replace(assessment.score);
        Some(Verdict {
            device: s.device,
            at: judged_at,
            cold_start,
            class_anomaly: 0.0,
            assessment,
            previous,
        })
    }
}

/// Penalties incurred `age` before they are judged, at what is left of them then (those worth less than a
/// point dropped), each that lost points saying why.
fn aged(
    reasons: Vec<crate::ScoreReason>,
    age: i64,
    half_life: HalfLife,
) -> Vec<crate::ScoreReason> {
    let factor = half_life.factor(age);
    reasons
        .into_iter()
        .filter_map(|mut r| {
            let left = (f64::from(r.penalty) * factor).round().clamp(0.0, 100.0) as u8;
            if left == 0 {
                return None;
            }
            if left != r.penalty {
                r.why = format!(
                    "{} (in a capture that ended {} before it was judged)",
                    r.why,
                    crate::memory::span(age)
                );
                r.penalty = left;
            }
            Some(r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_types::TrustBand;

    fn state(class: DeviceClass) -> DeviceState {
        DeviceState {
            class,
            identity: IdentityState::Valid {
                days_left: 300,
                renewal_overdue: false,
            },
            firmware: FirmwareState::Current,
            out_of_zone: None,
            failed_controls: Vec::new(),
            attestation_ok: None,
            restricted: false,
        }
    }

    fn window(
        device: DeviceId,
        n: u32,
        msgs: u64,
        new_topics: u32,
        sessions: u32,
    ) -> TrafficWindow {
        let start = Timestamp::from_unix_micros(1_700_000_000_000_000 + i64::from(n) * 10_000_000);
        let jitter = u64::from((n * 7919) % 7);
        TrafficWindow {
            device,
            start,
            end: start.plus_micros(10_000_000),
            connects: 0,
            disconnects: 0,
            sessions,
            auth_failures: 0,
            msgs_in: msgs + jitter,
            msgs_out: 1,
            bytes_in: (msgs + jitter) * 64,
            bytes_out: 64,
            distinct_topics: 2,
            new_topics,
            remotes: Vec::new(),
        }
    }

    fn warm_class(e: &mut TrustEngine, class: DeviceClass, devices: u32, windows: u32) {
        for n in 0..windows {
            for d in 0..devices {
                let id = DeviceId::derived(&format!("warm:{d}"));
                e.observe(&window(id, n, 20, 0, 1), &state(class));
            }
        }
    }

    #[test]
    fn a_new_device_is_judged_by_its_class_until_its_own_baseline_is_ready() {
        // A half-life of one window: the remembered penalty is gone by the end of the warm-up.
        let mut e = TrustEngine::default().with_half_life(HalfLife::from_secs(10));
        warm_class(&mut e, DeviceClass::Sensor, 20, 30);
        let newcomer = DeviceId::derived("new sensor");
        let v = e.observe(&window(newcomer, 0, 20, 40, 1), &state(DeviceClass::Sensor));
        assert!(v.cold_start);
        assert!(v.assessment.score.get() < 100, "{v:?}");
        let why = &v.assessment.reasons[0].why;
        assert!(why.contains("new topics"), "{why}");
        // Normal from then on: its own baseline takes over after the warm-up, and the score recovers.
        let mut last = v;
        for n in 1..10 {
            last = e.observe(&window(newcomer, n, 20, 0, 1), &state(DeviceClass::Sensor));
        }
        assert!(!last.cold_start);
        assert_eq!(last.assessment.score.get(), 100);
        assert!(last.previous.is_some());
    }

    #[test]
    fn a_device_that_starts_out_misbehaving_does_not_learn_it_as_normal() {
        let mut e = TrustEngine::default();
        warm_class(&mut e, DeviceClass::Sensor, 20, 30);
        let rogue = DeviceId::derived("rogue sensor");
        for n in 0..20 {
            let v = e.observe(&window(rogue, n, 20, 40, 1), &state(DeviceClass::Sensor));
            assert!(v.cold_start, "window {n}: judged by its class still");
            assert!(v.assessment.score.get() < 100, "window {n}: {v:?}");
        }
    }

    /// An engine with a 60 s half-life (six of the tests' windows) and a sensor that knows its normal.
    fn warmed(half_life_secs: u64) -> (TrustEngine, DeviceId, DeviceState) {
        let mut e = TrustEngine::default().with_half_life(HalfLife::from_secs(half_life_secs));
        let id = DeviceId::derived("sensor-mem");
        let s = state(DeviceClass::Sensor);
        for n in 0..30 {
            e.observe(&window(id, n, 20, 0, 1), &s);
        }
        (e, id, s)
    }

    #[test]
    fn after_a_burst_the_score_recovers_gradually_and_monotonically() {
        let (mut e, id, s) = warmed(60);
        let burst = e.observe(&window(id, 30, 20, 40, 1), &s);
        let low = burst.assessment.score.get();
        assert!(low <= 40 && burst.anomalous(), "{burst:?}");
        let mut scores = vec![low];
        for n in 31..61 {
            let v = e.observe(&window(id, n, 20, 0, 1), &s);
            assert!(
                !v.anomalous() && !v.flagged(),
                "window {n}: remembered is not anomalous: {v:?}"
            );
            scores.push(v.assessment.score.get());
        }
        assert!(
            scores.windows(2).all(|p| p[0] <= p[1]),
            "monotonic: {scores:?}"
        );
        // Not back in one window: one window (10 s) of a 60 s half-life leaves nine tenths of the penalty.
        assert!(scores[1] < low + 15, "{scores:?}");
        assert!(
            scores[6] < 90,
            "one half-life on, half the penalty: {scores:?}"
        );
        // Five half-lives on: within a few points of normal, and the reason says why.
        assert!(scores[30] >= 97, "{scores:?}");
        let v = e.observe(&window(id, 61, 20, 0, 1), &s);
        let r = v.assessment.reasons.first().filter(|r| r.remembered());
        if let Some(r) = r {
            assert!(r.why.contains("decaying (half-life 60 s)"), "{r}");
        }
        let mid = {
            let (mut e, id, s) = warmed(60);
            e.observe(&window(id, 30, 20, 40, 1), &s);
            for n in 31..33 {
                e.observe(&window(id, n, 20, 0, 1), &s);
            }
            e.observe(&window(id, 33, 20, 0, 1), &s)
        };
        let why = &mid.assessment.reasons[0];
        assert!(why.remembered(), "{why:?}");
        assert!(why.why.contains("new topics"), "{why}");
        assert!(
            why.why.contains("30 s ago, decaying (half-life 60 s)"),
            "{why}"
        );
    }

    #[test]
    fn a_second_anomaly_during_the_decay_compounds() {
        // Without memory of a first burst, a milder anomaly costs what it costs alone.
        let (mut fresh, id, s) = warmed(600);
        for n in 30..40 {
            fresh.observe(&window(id, n, 20, 0, 1), &s);
        }
        let alone = fresh.observe(&window(id, 40, 20, 8, 1), &s);
        // After a burst ten windows earlier, the same anomaly costs more: what is left of the first is added.
        let (mut e, id, s) = warmed(600);
        e.observe(&window(id, 30, 20, 40, 1), &s);
        for n in 31..39 {
            e.observe(&window(id, n, 20, 0, 1), &s);
        }
        let before = e.observe(&window(id, 39, 20, 0, 1), &s).assessment.score;
        let again = e.observe(&window(id, 40, 20, 8, 1), &s);
        assert!(
            alone.anomalous() && again.anomalous(),
            "{alone:?} {again:?}"
        );
        assert!(
            again.assessment.score < alone.assessment.score,
            "compounded: {again:?} vs alone {alone:?}"
        );
        assert!(
            again.assessment.score < before,
            "{again:?} after {before:?}"
        );
        assert!(again.assessment.reasons.iter().any(|r| r.remembered()));
        assert!(again.assessment.reasons.iter().any(|r| !r.remembered()));
    }

    #[test]
    fn the_half_life_sets_the_pace_of_recovery() {
        let after = |half_life: u64| {
            let (mut e, id, s) = warmed(half_life);
            e.observe(&window(id, 30, 20, 40, 1), &s);
            let mut last = None;
            for n in 31..37 {
                last = Some(e.observe(&window(id, n, 20, 0, 1), &s));
            }
            last.map(|v| v.assessment.score.get()).unwrap_or_default()
        };
        let (quick, slow) = (after(20), after(600));
        // 60 s on: three half-lives of 20 s leave an eighth; a tenth of one of 600 s leaves nearly all.
        assert!(quick >= 90, "{quick}");
        assert!(slow <= 40, "{slow}");
        assert_eq!(TrustEngine::default().half_life(), HalfLife::from_secs(600));
    }

    #[test]
    fn a_cloned_identity_drops_the_band_and_changes_are_reported_once() {
        let mut e = TrustEngine::default();
        let id = DeviceId::derived("plc-7");
        let s = state(DeviceClass::Plc);
        let first = e.observe(&window(id, 0, 20, 0, 1), &s);
        assert!(first.changed());
        let same = e.observe(&window(id, 1, 20, 0, 1), &s);
        assert!(!same.changed());
        let cloned = e.observe(&window(id, 2, 20, 0, 2), &s);
        assert!(cloned.changed());
        assert_eq!(cloned.assessment.score.band(), TrustBand::Medium);
        assert!(cloned.assessment.reasons[0].why.contains("two places"));
    }

    #[test]
    fn what_was_learned_survives_a_round_trip_through_json() {
        let (mut e, id, s) = warmed(600);
        e.observe(&window(id, 30, 20, 40, 1), &s);
        let json = serde_json::to_vec(&e.learned()).unwrap();
        // The figure ARCHITECTURE.md quotes: a class costs about 300 KB (its forest: 10 trees of 511 nodes).
        assert!(json.len() < 400_000, "{} bytes", json.len());
        let mut fresh = TrustEngine::default().with_half_life(HalfLife::from_secs(600));
        assert!(fresh.cold_start(id));
        fresh.restore(serde_json::from_slice(&json).unwrap());
        assert!(!fresh.cold_start(id));
        // The restored engine judges the next window exactly as the original: baseline, memory, forest.
        let a = e.observe(&window(id, 31, 20, 0, 1), &s);
        let b = fresh.observe(&window(id, 31, 20, 0, 1), &s);
        assert_eq!(a, b);
        assert!(b.assessment.reasons.iter().any(|r| r.remembered()), "{b:?}");
    }

    #[test]
    fn a_device_costs_little_in_what_was_learned() {
        let mut e = TrustEngine::default();
        warm_class(&mut e, DeviceClass::Sensor, 1, 30);
        let one = serde_json::to_vec(&e.learned()).unwrap().len();
        warm_class(&mut e, DeviceClass::Sensor, 1001, 30);
        let more = serde_json::to_vec(&e.learned()).unwrap().len();
        let per_device = (more - one) / 1000;
        // The bound ARCHITECTURE.md quotes for snapshots (a warmed device, no remembered penalty).
        assert!(per_device < 1024, "{per_device} bytes per device");
    }

    #[test]
    fn classes_do_not_teach_each_other() {
        let mut e = TrustEngine::default();
        warm_class(&mut e, DeviceClass::Camera, 10, 30);
        // A camera-sized stream is new for a sensor: no sensor has been seen, so there is nothing to compare.
        let v = e.observe(
            &window(DeviceId::derived("s"), 0, 2_000, 0, 1),
            &state(DeviceClass::Sensor),
        );
        assert!(v.cold_start && v.assessment.reasons.is_empty(), "{v:?}");
        assert_eq!(e.devices(), 11);
    }

    #[test]
    fn a_class_that_bursts_learns_its_bursts_and_still_sees_exfiltration() {
        let mut e = TrustEngine::default();
        let bytes = |id: DeviceId, n: u32, factor: u64| {
            let mut w = window(id, n, 5, 0, 1);
            w.bytes_in = 40_000 * factor + u64::from(n % 7) * 100;
            w
        };
        let cams: Vec<DeviceId> = (0..20)
            .map(|i| DeviceId::derived(&format!("cam-{i}")))
            .collect();
        let sensor = DeviceId::derived("sensor-1");
        let flagged = |v: &Verdict| v.anomalous();
        // Cameras: a 4× motion burst in one window of twenty, for a while.
        for n in 0..400 {
            for (i, c) in cams.iter().enumerate() {
                let burst = (n + i as u32) % 20 == 0;
                e.observe(
                    &bytes(*c, n, if burst { 4 } else { 1 }),
                    &state(DeviceClass::Camera),
                );
            }
            e.observe(&bytes(sensor, n, 1), &state(DeviceClass::Sensor));
        }
        let v = e.observe(&bytes(cams[3], 400, 4), &state(DeviceClass::Camera));
        assert!(!flagged(&v), "a burst like the class's own: {v:?}");
        let v = e.observe(&bytes(cams[4], 400, 40), &state(DeviceClass::Camera));
        assert!(flagged(&v), "exfiltration: {v:?}");
        // A sensor never bursts: four times its bytes is already too much.
        let v = e.observe(&bytes(sensor, 400, 4), &state(DeviceClass::Sensor));
        assert!(flagged(&v), "{v:?}");
    }

    fn end(secs: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_700_000_000_000_000 + secs * 1_000_000)
    }

    fn credential_sighting(id: DeviceId, end_secs: i64) -> NetworkSighting {
        use vouch_types::{Bounded, NetworkRisk};
        NetworkSighting {
            device: id,
            start: Timestamp::from_unix_micros(1_700_000_000_000_000),
            end: Timestamp::from_unix_micros(1_700_000_000_000_000 + end_secs * 1_000_000),
            peers: Bounded::default(),
            peers_left_out: 0,
            client_of: Bounded::default(),
            server_of: Bounded::default(),
            risks: vec![NetworkRisk::CleartextCredential {
                protocol: "telnet".parse().unwrap(),
                user: Some("root".parse().unwrap()),
            }]
            .try_into()
            .unwrap(),
        }
    }

    #[test]
    fn a_sighting_takes_its_points_off_once_and_the_windows_after_it_remember_them() {
        let (mut e, id, s) = warmed(60);
        let nowhere = Whereabouts {
            zone: None,
            zone_of: &|_| None,
        };
        // The warm-up's windows end at 300 s; the capture ends at 305 s.
        let v = e
            .sight(&credential_sighting(id, 305), &s, &nowhere, end(305))
            .unwrap();
        assert_eq!(v.assessment.score.get(), 80, "{v:?}");
        assert!(v.changed() && !v.anomalous());
        assert_eq!(
            v.assessment.reasons[0].to_string(),
            "−20: it sent credentials in clear text over telnet (user \"root\")"
        );
        // The same capture judged later, by an engine that never saw it: what is left of it, saying so; ten
        // half-lives on, nothing.
        let late = |secs: i64| {
            let (mut e, id, s) = warmed(60);
            e.sight(&credential_sighting(id, 305), &s, &nowhere, end(305 + secs))
                .unwrap()
        };
        let v60 = late(60);
        assert_eq!(v60.assessment.score.get(), 90, "{v60:?}");
        assert!(
            v60.assessment.reasons[0]
                .why
                .ends_with("(in a capture that ended 60 s before it was judged)"),
            "{v60:?}"
        );
        let v600 = late(600);
        assert!(v600.assessment.reasons.is_empty(), "{v600:?}");
        // The same report merged again: judged already.
        assert!(
            e.sight(&credential_sighting(id, 305), &s, &nowhere, end(305))
                .is_none()
        );
        // The next window carries what is left of it, decaying, and is not itself anomalous.
        let w = e.observe(&window(id, 30, 20, 0, 1), &s);
        let r = &w.assessment.reasons[0];
        assert!(r.remembered() && r.component == "network", "{w:?}");
        assert!(r.why.contains("decaying (half-life 60 s)"), "{r}");
        assert!(!w.anomalous() && !w.flagged());
        assert!(w.assessment.score.get() > 80 && w.assessment.score.get() < 100);
        // The penalty survives a snapshot, as a network one.
        let mut fresh = TrustEngine::default().with_half_life(HalfLife::from_secs(60));
        fresh.restore(serde_json::from_slice(&serde_json::to_vec(&e.learned()).unwrap()).unwrap());
        let a = e.observe(&window(id, 31, 20, 0, 1), &s);
        let b = fresh.observe(&window(id, 31, 20, 0, 1), &s);
        assert_eq!(a, b);
        assert!(
            b.assessment
                .reasons
                .iter()
                .any(|r| r.component == "network")
        );
    }

    #[test]
    fn a_snapshot_from_before_sightings_reads_back() {
        let (mut e, id, s) = warmed(600);
        e.observe(&window(id, 30, 20, 40, 1), &s);
        let mut json: serde_json::Value = serde_json::to_value(e.learned()).unwrap();
        // What an earlier build wrote: no network memory, no last sighting.
        for (_, d) in json["devices"].as_object_mut().unwrap() {
            let d = d.as_object_mut().unwrap();
            d.remove("network");
            d.remove("sighted");
        }
        let mut old = TrustEngine::default().with_half_life(HalfLife::from_secs(600));
        old.restore(serde_json::from_value(json).unwrap());
        let a = e.observe(&window(id, 31, 20, 0, 1), &s);
        let b = old.observe(&window(id, 31, 20, 0, 1), &s);
        assert_eq!(a, b);
        assert!(
            b.assessment
                .reasons
                .iter()
                .any(|r| r.component == "behaviour" && r.remembered())
        );
    }
}
