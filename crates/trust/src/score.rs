//! The trust score: 100 less documented penalties, each with its reason, so that every score explains itself
//! ("−30: 40.0 new topics, 39.0σ above its baseline of 0.0").
//!
//! Weights (penalties), by component:
//!
//! | component | condition | penalty |
//! |---|---|---|
//! | identity | certificate revoked | score is 0 |
//! | identity | no valid Vouch certificate (unmanaged, expired) | 40 |
//! | identity | certificate past its renewal time (two thirds of its lifetime) / expiring within a day | 10 / 20 |
//! | identity | the same identity in use from two places at once | 60 |
//! | firmware | a known-vulnerable version | 30 |
//! | firmware | below the minimum supported version | 20 |
//! | firmware | version unknown | 5 |
//! | location | outside its expected zone | 25 |
//! | behaviour | anomalous window: 15 per 6σ of the worst feature (one threshold's worth), 10 more when several features are off | at most 70 |
//! | behaviour | no single feature stands out, but the window is unusual for its class (class model ≥ 0.5) | 20 |
//! | compliance | each failed control | 5, at most 25 |
//! | attestation | attestation failed | 40 |
//!
//! Behaviour penalties are remembered and decay over a half-life (`crate::memory`): the engine adds what is
//! left of earlier windows' penalties as reasons of their own, within the behaviour cap of 70.
//!
//! Penalties add up; the score never goes below 0. A missing input (no attestation yet, no compliance run)
//! costs nothing: trust is lowered by evidence, not by the absence of a check that never ran.

use serde::Serialize;
use vouch_types::{Timestamp, TrustScore};

use crate::baseline::Deviation;

/// What is known about a device's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityState {
    /// A valid certificate with this many whole days left.
    Valid {
        /// Days until it expires.
        days_left: i64,
        /// It is past its renewal time (two thirds of its lifetime) and was not renewed.
        renewal_overdue: bool,
    },
    /// No valid certificate (never enrolled, or expired).
    Missing,
    /// Its certificate was revoked.
    Revoked,
}

/// Firmware compared with the device model's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareState {
    /// Supported and not known to be vulnerable.
    Current,
    /// Below the minimum supported version.
    Unsupported,
    /// A version with a known vulnerability.
    Vulnerable,
    /// The version is not known.
    Unknown,
}

/// Everything the score is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustInputs {
    /// Identity state.
    pub identity: IdentityState,
    /// Whether the same identity is in use from two places at once.
    pub cloned: bool,
    /// Firmware state.
    pub firmware: FirmwareState,
    /// Whether it is outside its expected zone (`None`: no expectation or no location).
    pub out_of_zone: Option<String>,
    /// The latest window's behavioural deviations (empty: normal).
    pub deviations: Vec<Deviation>,
    /// The anomaly threshold the deviations were measured against, in sigmas.
    pub threshold: f64,
    /// Names of failed compliance controls.
    pub failed_controls: Vec<String>,
    /// Attestation result, if one was reported.
    pub attestation_ok: Option<bool>,
    /// The class model's anomaly and the class, when the window is unusual for its class.
    pub class_anomaly: Option<(f64, &'static str)>,
}

impl TrustInputs {
    /// A device with nothing against it (a valid certificate 200 days from expiry, current firmware, in its
    /// zone, no deviation), judged with deviation `threshold`: the starting point of benchmarks and tests.
    pub fn healthy(threshold: f64) -> Self {
        Self {
            identity: IdentityState::Valid {
                days_left: 200,
                renewal_overdue: false,
            },
            cloned: false,
            firmware: FirmwareState::Current,
            out_of_zone: None,
            deviations: Vec::new(),
            threshold,
            failed_controls: Vec::new(),
            attestation_ok: None,
            class_anomaly: None,
        }
    }
}

/// One reason the score moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScoreReason {
    /// Points taken off.
    pub penalty: u8,
    /// Which component.
    pub component: &'static str,
    /// Why, in words.
    pub why: String,
    /// When a remembered penalty was incurred (its points decay, see [`crate::memory`]); `None` for what
    /// the latest window and the device's state say now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incurred: Option<Timestamp>,
}

impl ScoreReason {
    /// Whether this is a remembered (decaying) penalty rather than one the latest window incurred.
    pub fn remembered(&self) -> bool {
        self.incurred.is_some()
    }
}

impl std::fmt::Display for ScoreReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "−{}: {}", self.penalty, self.why)
    }
}

/// A score and its reasons, largest penalty first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// The score.
    pub score: TrustScore,
    /// What took points off.
    pub reasons: Vec<ScoreReason>,
}

/// Computes a device's trust score from its inputs.
pub fn assess(i: &TrustInputs) -> Assessment {
    let mut reasons = Vec::new();
    let mut take = |penalty: u8, component: &'static str, why: String| {
        reasons.push(ScoreReason {
            penalty,
            component,
            why,
            incurred: None,
        })
    };
    match i.identity {
        IdentityState::Revoked => take(100, "identity", "its certificate is revoked".into()),
        IdentityState::Missing => {
            take(40, "identity", "it holds no valid Vouch certificate".into())
        }
        IdentityState::Valid { days_left, .. } if days_left < 1 => take(
            20,
            "identity",
            "its certificate expires within a day".into(),
        ),
        IdentityState::Valid {
            days_left,
            renewal_overdue: true,
        } => take(
            10,
            "identity",
            format!("its certificate is overdue for renewal ({days_left} days left)"),
        ),
        IdentityState::Valid { .. } => {}
    }
    if i.cloned {
        take(
            60,
            "identity",
            "its identity is in use from two places at once".into(),
        );
    }
    match i.firmware {
        FirmwareState::Vulnerable => take(
            30,
            "firmware",
            "its firmware has a known vulnerability".into(),
        ),
        FirmwareState::Unsupported => take(
            20,
            "firmware",
            "its firmware is below the minimum supported version".into(),
        ),
        FirmwareState::Unknown => take(5, "firmware", "its firmware version is unknown".into()),
        FirmwareState::Current => {}
    }
    if let Some(where_) = &i.out_of_zone {
        take(
            25,
            "location",
            format!("it is outside its expected zone ({where_})"),
        );
    }
    if let Some(worst) = i.deviations.first() {
        let steps = (worst.sigmas.abs() / i.threshold.max(1.0)).floor().max(1.0);
        // Several features off at once is a stronger sign than one far off.
        let several = if i.deviations.len() > 1 { 10.0 } else { 0.0 };
        let penalty = (15.0 * steps + several).min(70.0) as u8;
        let more = match i.deviations.len() {
            1 => String::new(),
            n => format!(" (and {} more features)", n - 1),
        };
        take(penalty, "behaviour", format!("{worst}{more}"));
    }
    if let (None, Some((a, class))) = (i.deviations.first(), i.class_anomaly) {
        take(
            20,
            "behaviour",
            format!("its traffic is unusual for a {class} (class model anomaly {a:.2})"),
        );
    }
    if !i.failed_controls.is_empty() {
        let penalty = (5 * i.failed_controls.len()).min(25) as u8;
        take(
            penalty,
            "compliance",
            format!("fails {}", i.failed_controls.join(", ")),
        );
    }
    if i.attestation_ok == Some(false) {
        take(40, "attestation", "its attestation failed".into());
    }
    Assessment::from_reasons(reasons)
}

impl Assessment {
    /// The score these reasons leave (100 less their penalties, at least 0), reasons largest first.
    pub fn from_reasons(mut reasons: Vec<ScoreReason>) -> Self {
        reasons.sort_by_key(|r| std::cmp::Reverse(r.penalty));
        let total: u32 = reasons.iter().map(|r| u32::from(r.penalty)).sum();
        let score = 100u32.saturating_sub(total) as u8;
        Assessment {
            score: TrustScore::new(score).unwrap_or(TrustScore::MAX),
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Feature;
    use vouch_types::TrustBand;

    fn healthy() -> TrustInputs {
        TrustInputs::healthy(6.0)
    }

    #[test]
    fn a_healthy_device_is_fully_trusted_and_says_nothing() {
        let a = assess(&healthy());
        assert_eq!(a.score.get(), 100);
        assert!(a.reasons.is_empty());
    }

    #[test]
    fn each_penalty_carries_its_reason() {
        let mut i = healthy();
        i.deviations = vec![Deviation {
            feature: Feature::NewTopics,
            value: 40.0,
            expected: 0.0,
            sigmas: 40.0,
        }];
        let a = assess(&i);
        assert_eq!(a.score.get(), 30);
        assert_eq!(
            a.reasons[0].to_string(),
            "−70: 40.0 new topics, 40.0σ above its baseline of 0.0"
        );
        i.firmware = FirmwareState::Vulnerable;
        i.out_of_zone = Some("plant-2".into());
        let a = assess(&i);
        assert_eq!(a.score.get(), 0);
        assert_eq!(a.score.band(), TrustBand::Untrusted);
        assert_eq!(a.reasons.len(), 3);
    }

    #[test]
    fn revocation_and_cloning_drive_trust_to_the_floor() {
        let mut i = healthy();
        i.identity = IdentityState::Revoked;
        assert_eq!(assess(&i).score.get(), 0);
        let mut i = healthy();
        i.cloned = true;
        assert_eq!(assess(&i).score.band(), TrustBand::Medium);
        i.attestation_ok = Some(false);
        assert_eq!(assess(&i).score.get(), 0);
    }

    #[test]
    fn an_unusual_combination_for_the_class_costs_twenty() {
        let mut i = healthy();
        i.class_anomaly = Some((0.62, "sensor"));
        let a = assess(&i);
        assert_eq!(a.score.get(), 80);
        assert_eq!(
            a.reasons[0].to_string(),
            "−20: its traffic is unusual for a sensor (class model anomaly 0.62)"
        );
    }

    #[test]
    fn small_things_add_up_within_their_caps() {
        let mut i = healthy();
        i.identity = IdentityState::Valid {
            days_left: 3,
            renewal_overdue: true,
        };
        i.firmware = FirmwareState::Unknown;
        i.failed_controls = (0..9).map(|n| format!("C{n}")).collect();
        let a = assess(&i);
        assert_eq!(a.score.get(), 100 - 10 - 5 - 25);
        assert_eq!(a.score.band(), TrustBand::Medium);
        assert!(
            a.reasons
                .iter()
                .any(|r| r.why.contains("overdue for renewal (3 days"))
        );
        // Three days left on a certificate not yet due for renewal costs nothing.
        i.identity = IdentityState::Valid {
            days_left: 3,
            renewal_overdue: false,
        };
        assert_eq!(assess(&i).score.get(), 100 - 5 - 25);
    }
}
