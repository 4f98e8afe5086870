//! Trust with memory: behaviour penalties fade over a half-life instead of vanishing with the next window.
//! Discovery's network penalties (`crate::network`) are remembered the same way, in a memory of their own
//! with its own cap ([`Pool`]), so neither kind crowds the other out.
//!
//! A penalty `p` incurred at time `t` still costs `p × 2^(−(now − t) / half_life)` at `now`. The fresh
//! window's penalty counts in full at once (an anomaly takes the score down immediately); what is remembered
//! from earlier windows is added to it, so a second anomaly during the decay compounds; the sum is capped at
//! [`BEHAVIOUR_CAP`], the most behaviour alone can take off, so a long attack does not leave a debt that
//! outlasts it. With no new anomaly the remembered penalties only shrink, so the score recovers
//! monotonically over several windows, to within a point of normal after about seven half-lives.
//!
//! Time is the windows' own (their end), never a clock read here: replaying recorded windows gives the
//! scores the live service gave.

use serde::{Deserialize, Serialize};
use vouch_types::Timestamp;

use crate::score::ScoreReason;

/// The most points behaviour (fresh and remembered together) can take off the score: the cap of one
/// window's behaviour penalty in the score table.
pub const BEHAVIOUR_CAP: f64 = 70.0;
/// The half-life of a behaviour penalty when the configuration does not say: ten minutes.
pub const DEFAULT_HALF_LIFE_SECS: u64 = 600;
/// Remembered penalties kept per device at most; past that the smallest is forgotten (the cap keeps the
/// sum bounded anyway, and a reason per window would say nothing a few can't).
const MAX_REMEMBERED: usize = 8;
/// A remembered penalty worth less than this is forgotten: it would round to zero points.
const NEGLIGIBLE: f64 = 0.5;

/// How fast behaviour penalties fade: the time after which one costs half its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HalfLife {
    micros: i64,
}

impl HalfLife {
    /// A half-life of `secs` seconds (at least one).
    pub fn from_secs(secs: u64) -> Self {
        let secs = i64::try_from(secs.max(1)).unwrap_or(i64::MAX / 1_000_000);
        Self {
            micros: secs.saturating_mul(1_000_000),
        }
    }

    /// The half-life in whole seconds.
    pub fn secs(self) -> i64 {
        self.micros / 1_000_000
    }

    /// What is left of one point after `age_micros` (1 for no or negative age: time does not run back).
    pub(crate) fn factor(self, age_micros: i64) -> f64 {
        if age_micros <= 0 {
            return 1.0;
        }
        (-(age_micros as f64) / self.micros as f64).exp2()
    }
}

impl Default for HalfLife {
    fn default() -> Self {
        Self::from_secs(DEFAULT_HALF_LIFE_SECS)
    }
}

/// What one memory holds: the component its reasons are given under, and the most they may take off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pool {
    /// The score component of its penalties.
    pub component: &'static str,
    /// The most its penalties, fresh and remembered, take off together.
    pub cap: f64,
}

/// Behaviour penalties (traffic windows).
pub(crate) const BEHAVIOUR: Pool = Pool {
    component: "behaviour",
    cap: BEHAVIOUR_CAP,
};

/// One remembered penalty: what it was for, when it was incurred, and what it is worth as of the memory's
/// last update. Its component is its memory's ([`Pool`]), not stored: a snapshot written when only
/// behaviour was remembered reads back unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    why: String,
    incurred: Timestamp,
    value: f64,
}

/// A device's remembered behaviour penalties.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Memory {
    updated: Option<Timestamp>,
    items: Vec<Remembered>,
}

impl Memory {
    /// Decays what is remembered to `now`, returns it as reasons of `pool`'s component (newest first,
    /// trimmed so that with the `fresh` reasons it stays within `pool`'s cap), then remembers the fresh ones.
    pub(crate) fn update(
        &mut self,
        now: Timestamp,
        fresh: &[ScoreReason],
        half_life: HalfLife,
        pool: Pool,
    ) -> Vec<ScoreReason> {
        let elapsed = self
            .updated
            .map_or(0, |u| now.unix_micros() - u.unix_micros());
        let factor = half_life.factor(elapsed);
        if elapsed > 0 || self.updated.is_none() {
            self.updated = Some(now);
        }
        for r in &mut self.items {
            r.value *= factor;
        }
        self.items.retain(|r| r.value >= NEGLIGIBLE);
        let fresh_total: f64 = fresh.iter().map(|r| f64::from(r.penalty)).sum();
        // The room left under the cap goes to the newest remembered penalties first; older ones are
        // trimmed (for good: the cap is a bound on the debt, not only on what is shown).
        let mut room = (pool.cap - fresh_total).max(0.0);
        for r in self.items.iter_mut().rev() {
            r.value = r.value.min(room);
            room -= r.value;
        }
        self.items.retain(|r| r.value >= NEGLIGIBLE);
        let reasons = self
            .items
            .iter()
            .rev()
            .map(|r| ScoreReason {
                penalty: r.value.round().clamp(0.0, 100.0) as u8,
                component: pool.component,
                why: format!(
                    "{}, {} ago, decaying (half-life {})",
                    r.why,
                    span(now.unix_micros() - r.incurred.unix_micros()),
                    span(half_life.micros)
                ),
                incurred: Some(r.incurred),
            })
            .collect();
        self.items.extend(fresh.iter().map(|r| Remembered {
            why: r.why.clone(),
            incurred: now,
            value: f64::from(r.penalty),
        }));
        while self.items.len() > MAX_REMEMBERED {
            let smallest = self
                .items
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.value.total_cmp(&b.1.value))
                .map_or(0, |(i, _)| i);
            self.items.remove(smallest);
        }
        reasons
    }
}

/// A duration in the largest unit that keeps it readable ("40 s", "3 min", "2 h").
pub(crate) fn span(micros: i64) -> String {
    let secs = micros.max(0) / 1_000_000;
    match secs {
        0..120 => format!("{secs} s"),
        120..7_200 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3_600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_800_000_000_000_000 + secs * 1_000_000)
    }

    fn reason(penalty: u8) -> ScoreReason {
        ScoreReason {
            penalty,
            component: "behaviour",
            why: "exfiltration".into(),
            incurred: None,
        }
    }

    fn total(r: &[ScoreReason]) -> u32 {
        r.iter().map(|r| u32::from(r.penalty)).sum()
    }

    #[test]
    fn a_penalty_halves_every_half_life_and_says_so() {
        let h = HalfLife::from_secs(600);
        let mut m = Memory::default();
        assert!(m.update(at(0), &[reason(40)], h, BEHAVIOUR).is_empty());
        let r = m.update(at(180), &[], h, BEHAVIOUR);
        assert_eq!(r.len(), 1);
        // 40 × 2^(−0.3) = 32.5
        assert_eq!(r[0].penalty, 32);
        assert_eq!(
            r[0].to_string(),
            "−32: exfiltration, 3 min ago, decaying (half-life 10 min)"
        );
        assert_eq!(r[0].incurred, Some(at(0)));
        assert_eq!(total(&m.update(at(600), &[], h, BEHAVIOUR)), 20);
        assert_eq!(total(&m.update(at(1200), &[], h, BEHAVIOUR)), 10);
        // Seven half-lives on, less than half a point: forgotten.
        assert!(m.update(at(600 * 8), &[], h, BEHAVIOUR).is_empty());
        assert!(m.items.is_empty());
    }

    #[test]
    fn penalties_compound_within_the_cap() {
        let h = HalfLife::from_secs(600);
        let mut m = Memory::default();
        m.update(at(0), &[reason(30)], h, BEHAVIOUR);
        let r = m.update(at(600), &[reason(30)], h, BEHAVIOUR);
        assert_eq!(total(&r), 15, "the first, halved, on top of the fresh 30");
        // A long attack: 70 each window; the debt never exceeds the cap.
        for n in 1..20 {
            let r = m.update(at(600 + n * 10), &[reason(70)], h, BEHAVIOUR);
            assert_eq!(total(&r), 0, "no room beside a fresh 70");
        }
        let after = m.update(at(600 + 200), &[], h, BEHAVIOUR);
        assert!(total(&after) <= 70, "{after:?}");
        assert!(total(&after) >= 69, "{after:?}");
        assert!(m.items.len() <= MAX_REMEMBERED);
    }

    #[test]
    fn time_running_back_neither_decays_nor_grows() {
        let h = HalfLife::from_secs(60);
        let mut m = Memory::default();
        m.update(at(100), &[reason(20)], h, BEHAVIOUR);
        assert_eq!(total(&m.update(at(50), &[], h, BEHAVIOUR)), 20);
    }
}
