//! A robust online baseline per device: for each feature, an exponentially weighted location and an
//! exponentially weighted mean absolute deviation (a streaming stand-in for median and MAD).
//!
//! Robust because a value is clipped to the baseline's band before it is learned: a burst moves the baseline
//! by at most a few deviations per window, so an attack that lasts is still seen as one, and a single spike
//! leaves almost no trace. Nothing here needs labels.

use serde::{Deserialize, Serialize};

use crate::features::{Feature, Features, N};

/// How the baseline learns and when it speaks.
#[derive(Debug, Clone, Copy)]
pub struct BaselineConfig {
    /// Weight of a new window (0–1): 0.1 remembers roughly the last 20 windows.
    pub alpha: f64,
    /// Windows learned before the baseline scores anything (a new device relies on its class until then).
    pub warmup: u32,
    /// Deviations, in robust sigmas, that make a feature anomalous.
    pub threshold: f64,
    /// Values are clipped to this many sigmas before they are learned.
    pub clip: f64,
    /// A volume (messages or bytes per second) must also be this many times its expectation to count: a
    /// camera's motion burst doubles its bytes, an exfiltration multiplies them.
    pub min_rise: f64,
    /// A window that was flagged is learned at this fraction of the usual weight, so that an attack takes
    /// many windows to become "normal" (a lasting change of behaviour still does, slowly).
    pub flagged_weight: f64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            alpha: 0.1,
            warmup: 6,
            threshold: 6.0,
            clip: 4.0,
            min_rise: 3.0,
            flagged_weight: 0.25,
        }
    }
}

/// The smallest scale per feature, so that a perfectly regular device does not turn noise into sigmas: half a
/// message per second, 64 bytes per second, one topic, one refusal, one connection, one session.
const FLOOR: [f64; N] = [0.5, 64.0, 64.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];

/// 1.4826 × MAD estimates a normal standard deviation; for a mean absolute deviation the factor is √(π/2).
const SIGMA_PER_MEAN_ABS_DEV: f64 = 1.253_314;

/// One feature that departs from normal, with how far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Deviation {
    /// Which feature.
    pub feature: Feature,
    /// Its value in this window.
    pub value: f64,
    /// What the baseline expected.
    pub expected: f64,
    /// How many robust sigmas away (positive: above).
    pub sigmas: f64,
}

impl std::fmt::Display for Deviation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} {}, {:.1}σ {} its baseline of {:.1}",
            self.value,
            self.feature.describe(),
            self.sigmas.abs(),
            if self.sigmas >= 0.0 { "above" } else { "below" },
            self.expected
        )
    }
}

/// One device's baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Windows learned.
    pub windows: u32,
    location: [f64; N],
    spread: [f64; N],
}

impl Default for Baseline {
    fn default() -> Self {
        Baseline {
            windows: 0,
            location: [0.0; N],
            spread: [0.0; N],
        }
    }
}

impl Baseline {
    /// What the baseline expects of feature `i` (its location), at least that feature's floor.
    pub fn expected(&self, i: usize) -> f64 {
        self.location[i].max(FLOOR[i])
    }

    /// The robust sigma of one feature.
    fn sigma(&self, i: usize) -> f64 {
        (self.spread[i] * SIGMA_PER_MEAN_ABS_DEV)
            .max(FLOOR[i])
            .max(0.05 * self.location[i].abs())
    }

    /// Whether it has learned enough to score.
    pub fn ready(&self, cfg: &BaselineConfig) -> bool {
        self.windows >= cfg.warmup
    }

    /// The features of `x` beyond the threshold, largest first (empty while warming up). Only departures
    /// that mean risk count: more of anything, or a device that stopped publishing.
    pub fn deviations(&self, x: &Features, cfg: &BaselineConfig) -> Vec<Deviation> {
        if !self.ready(cfg) {
            return Vec::new();
        }
        let mut out: Vec<Deviation> = Feature::ALL
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let sigmas = (x.0[i] - self.location[i]) / self.sigma(i);
                let silent = *f == Feature::PublishRate && sigmas <= -cfg.threshold;
                let volume = matches!(
                    f,
                    Feature::PublishRate | Feature::BytesOutRate | Feature::BytesInRate
                );
                let risen = !volume || x.0[i] >= cfg.min_rise * self.location[i];
                ((sigmas >= cfg.threshold && risen) || silent).then_some(Deviation {
                    feature: *f,
                    value: x.0[i],
                    expected: self.location[i],
                    sigmas,
                })
            })
            .collect();
        out.sort_by(|a, b| b.sigmas.abs().total_cmp(&a.sigmas.abs()));
        out
    }

    /// Learns one window (clipped to the current band once warmed up).
    pub fn learn(&mut self, x: &Features, cfg: &BaselineConfig) {
        self.learn_weighted(x, cfg, 1.0);
    }

    /// Learns a window that was flagged, at `cfg.flagged_weight` of the usual weight.
    pub fn learn_flagged(&mut self, x: &Features, cfg: &BaselineConfig) {
        self.learn_weighted(x, cfg, cfg.flagged_weight.clamp(0.0, 1.0));
    }

    fn learn_weighted(&mut self, x: &Features, cfg: &BaselineConfig, weight: f64) {
        if self.windows == 0 {
            self.location = x.0;
            self.windows = 1;
            return;
        }
        // While warming up the weight is 1/n (a plain mean), so the first windows count equally.
        let a = if self.ready(cfg) {
            cfg.alpha * weight
        } else {
            1.0 / f64::from(self.windows + 1)
        };
        for i in 0..N {
            let s = self.sigma(i);
            let v = if self.ready(cfg) {
                x.0[i].clamp(
                    self.location[i] - cfg.clip * s,
                    self.location[i] + cfg.clip * s,
                )
            } else {
                x.0[i]
            };
            let dev = (v - self.location[i]).abs();
            self.location[i] += a * (v - self.location[i]);
            self.spread[i] += a * (dev - self.spread[i]);
        }
        self.windows = self.windows.saturating_add(1);
    }

    /// Scores a window, then learns it: the order a live stream needs.
    pub fn observe(&mut self, x: &Features, cfg: &BaselineConfig) -> Vec<Deviation> {
        let d = self.deviations(x, cfg);
        self.learn(x, cfg);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(rate: f64, new_topics: f64) -> Features {
        Features([rate, rate * 60.0, 10.0, 3.0, new_topics, 0.0, 0.0, 0.0, 0.0])
    }

    /// A small deterministic jitter, so that tests need no random source.
    fn jitter(i: u32) -> f64 {
        f64::from((i * 7919) % 13) / 13.0 - 0.5
    }

    #[test]
    fn quiet_while_learning_then_flags_a_burst_with_its_reason() {
        let cfg = BaselineConfig::default();
        let mut b = Baseline::default();
        for i in 0..cfg.warmup {
            assert!(b.observe(&window(2.0 + jitter(i), 0.0), &cfg).is_empty());
        }
        for i in 0..100 {
            let d = b.observe(&window(2.0 + jitter(i), 0.0), &cfg);
            assert!(d.is_empty(), "window {i}: {d:?}");
        }
        let d = b.deviations(&window(2.0, 40.0), &cfg);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].feature, Feature::NewTopics);
        assert!(d[0].sigmas > 30.0, "{}", d[0]);
        assert!(
            d[0].to_string().starts_with("40.0 new topics, "),
            "{}",
            d[0]
        );
    }

    #[test]
    fn a_lasting_attack_is_not_learned_away_quickly() {
        let cfg = BaselineConfig::default();
        let mut b = Baseline::default();
        for i in 0..50 {
            b.observe(&window(2.0 + jitter(i), 0.0), &cfg);
        }
        // Exfiltration: 50 times the usual rate, window after window.
        let flagged = (0..10)
            .filter(|_| !b.observe(&window(100.0, 0.0), &cfg).is_empty())
            .count();
        assert_eq!(flagged, 10);
    }

    #[test]
    fn a_volume_must_multiply_not_just_wobble() {
        let cfg = BaselineConfig::default();
        let mut b = Baseline::default();
        for i in 0..50 {
            b.observe(&window(20.0 + 0.01 * jitter(i), 0.0), &cfg);
        }
        // Very regular, so twice the rate is many sigmas away, but a doubling is not an attack.
        let d = b.deviations(&window(40.0, 0.0), &cfg);
        assert!(d.is_empty(), "{d:?}");
        let d = b.deviations(&window(70.0, 0.0), &cfg);
        assert_eq!(d[0].feature, Feature::PublishRate, "{d:?}");
    }

    #[test]
    fn a_device_that_goes_silent_is_flagged() {
        let cfg = BaselineConfig::default();
        let mut b = Baseline::default();
        for i in 0..50 {
            b.observe(&window(20.0 + jitter(i), 0.0), &cfg);
        }
        let d = b.deviations(&window(0.0, 0.0), &cfg);
        assert!(
            d.iter()
                .any(|d| d.feature == Feature::PublishRate && d.sigmas < 0.0),
            "{d:?}"
        );
    }
}
