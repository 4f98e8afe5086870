//! Playbooks: adaptive response as configuration. Each playbook is a condition on a device's latest verdict
//! and a list of steps (quarantine, revoke, re-enrollment, notify); the [`Responder`] turns verdicts into
//! [`Directive`]s, once per episode (idempotent), and lifts a quarantine it imposed once the device has been
//! healthy for `release_after_secs`. Shadow mode decides and logs without acting, as policies do.
//!
//! The responder is pure: it keeps per-device memory (how many anomalous windows in a row, since when the
//! device is healthy, which playbooks are firing) and the caller carries the directives out against the
//! store. The device's quarantine itself lives in the registry (the `quarantine` group and the
//! `response/quarantined-by` label), so a restart forgets nothing that matters.
//!
//! Why one long file: the playbook configuration and the responder that runs it change together; a fifth of
//! it is tests.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use vouch_types::{DeviceId, Timestamp};

use crate::score::FirmwareState;

/// The group a quarantined device is put in (the default policies let it reach only its update topic).
pub use vouch_types::QUARANTINE_GROUP;
/// The label naming the playbook that quarantined a device: only such quarantines are lifted automatically.
pub const QUARANTINED_BY: &str = vouch_types::QUARANTINED_BY_LABEL;

/// Whether playbooks act or only say what they would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Act.
    #[default]
    Enforce,
    /// Decide and log ("would quarantine"), change nothing.
    Shadow,
}

/// What a playbook does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Put the device in the quarantine group (lifted when it is healthy again).
    Quarantine,
    /// Revoke its certificates (key compromise): its sessions are cut and it cannot reconnect.
    Revoke,
    /// Revoke its certificates as superseded and demand a new enrollment. Spelled `re-enroll`, as the
    /// README and the events (`ResponseStep`) spell it; `reenroll`, which configurations could say before,
    /// is still read.
    #[serde(rename = "re-enroll", alias = "reenroll")]
    Reenroll,
    /// Raise a finding for SIEMs and webhooks.
    Notify,
}

/// Firmware states a condition can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirmwareCondition {
    /// A known-vulnerable version.
    Vulnerable,
    /// Below the minimum supported version.
    Unsupported,
    /// Version unknown.
    Unknown,
}

impl FirmwareCondition {
    fn holds(self, f: FirmwareState) -> bool {
        matches!(
            (self, f),
            (Self::Vulnerable, FirmwareState::Vulnerable)
                | (Self::Unsupported, FirmwareState::Unsupported)
                | (Self::Unknown, FirmwareState::Unknown)
        )
    }
}

/// When a playbook fires: every condition given must hold (at least one must be given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The trust score is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_below: Option<u8>,
    /// The same identity is in use from two places at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloned: Option<bool>,
    /// The device is seen outside its expected zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_zone: Option<bool>,
    /// Its firmware is in one of these states.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firmware: Vec<FirmwareCondition>,
    /// Its behaviour was anomalous in at least this many windows in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomalous_windows: Option<u32>,
}

/// A named condition and what to do when it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Its name, in events and on the quarantine label.
    pub name: String,
    /// When it fires.
    pub when: Condition,
    /// What it does, in order.
    pub then: Vec<Step>,
    /// Overrides the global mode for this playbook (shadow one new playbook while the others enforce).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// The response configuration (`[response]`): mode, release delay and playbooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    /// Enforce or shadow, for every playbook without its own mode.
    #[serde(default)]
    pub mode: Mode,
    /// A quarantine is lifted after the device was healthy this long.
    #[serde(default = "default_release")]
    pub release_after_secs: u64,
    /// The playbooks; the defaults when absent.
    #[serde(default = "default_playbooks", rename = "playbook")]
    pub playbooks: Vec<Playbook>,
}

fn default_release() -> u64 {
    600
}

impl Default for ResponseConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            release_after_secs: default_release(),
            playbooks: default_playbooks(),
        }
    }
}

fn playbook(name: &str, when: Condition, then: &[Step]) -> Playbook {
    Playbook {
        name: name.into(),
        when,
        then: then.to_vec(),
        mode: None,
    }
}

/// The playbooks a new installation runs: quarantine on low trust, anomalous behaviour, bad firmware or
/// a wrong zone; revoke a cloned identity or an untrusted device; demand re-enrollment after lasting anomaly.
pub fn default_playbooks() -> Vec<Playbook> {
    use Step::{Notify, Quarantine, Reenroll, Revoke};
    vec![
        playbook(
            "revoke-cloned-identity",
            Condition {
                cloned: Some(true),
                ..Condition::default()
            },
            &[Revoke, Notify],
        ),
        playbook(
            "revoke-untrusted",
            Condition {
                trust_below: Some(20),
                ..Condition::default()
            },
            &[Revoke, Notify],
        ),
        playbook(
            "quarantine-low-trust",
            Condition {
                trust_below: Some(40),
                ..Condition::default()
            },
            &[Quarantine, Notify],
        ),
        playbook(
            "quarantine-anomaly",
            Condition {
                anomalous_windows: Some(2),
                ..Condition::default()
            },
            &[Quarantine, Notify],
        ),
        playbook(
            "quarantine-bad-firmware",
            Condition {
                firmware: vec![
                    FirmwareCondition::Vulnerable,
                    FirmwareCondition::Unsupported,
                ],
                ..Condition::default()
            },
            &[Quarantine, Notify],
        ),
        playbook(
            "quarantine-out-of-zone",
            Condition {
                out_of_zone: Some(true),
                ..Condition::default()
            },
            &[Quarantine, Notify],
        ),
        playbook(
            "reenroll-sustained-anomaly",
            Condition {
                anomalous_windows: Some(30),
                ..Condition::default()
            },
            &[Reenroll, Notify],
        ),
    ]
}

impl ResponseConfig {
    /// Every problem with the configuration, at once; empty when it is valid.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(1..=30 * 86_400).contains(&self.release_after_secs) {
            out.push(format!(
                "release_after_secs must be between 1 and 2592000 (30 days), got {}",
                self.release_after_secs
            ));
        }
        let mut names = BTreeSet::new();
        for (i, p) in self.playbooks.iter().enumerate() {
            let at = format!("playbook {} ({:?})", i + 1, p.name);
            if p.name.trim().is_empty()
                || p.name.len() > 64
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                out.push(format!(
                    "{at}: a name is 1-64 characters of letters, digits, '-', '_' or '.'"
                ));
            }
            if !names.insert(p.name.as_str()) {
                out.push(format!("{at}: the name is used twice"));
            }
            let w = &p.when;
            if w.trust_below.is_none()
                && w.cloned.is_none()
                && w.out_of_zone.is_none()
                && w.firmware.is_empty()
                && w.anomalous_windows.is_none()
            {
                out.push(format!(
                    "{at}: `when` needs a condition (trust_below, cloned, out_of_zone, firmware, anomalous_windows)"
                ));
            }
            if let Some(t) = w.trust_below
                && !(1..=100).contains(&t)
            {
                out.push(format!("{at}: trust_below must be 1-100, got {t}"));
            }
            if let Some(n) = w.anomalous_windows
                && !(1..=10_000).contains(&n)
            {
                out.push(format!("{at}: anomalous_windows must be 1-10000, got {n}"));
            }
            if p.then.is_empty() {
                out.push(format!("{at}: `then` needs at least one step"));
            }
            let distinct: BTreeSet<_> = p.then.iter().collect();
            if distinct.len() != p.then.len() {
                out.push(format!("{at}: a step is listed twice"));
            }
        }
        out
    }

    fn mode_of(&self, p: &Playbook) -> Mode {
        p.mode.unwrap_or(self.mode)
    }
}

/// What the responder knows of a device after a window: the verdict's facts and the registry's.
#[derive(Debug, Clone, PartialEq)]
pub struct Situation {
    /// The trust score now.
    pub trust: u8,
    /// The window's behaviour was anomalous.
    pub anomalous: bool,
    /// The same identity is in use from two places.
    pub cloned: bool,
    /// Seen outside its zone.
    pub out_of_zone: bool,
    /// Its firmware state.
    pub firmware: FirmwareState,
    /// The playbook that quarantined it, per the registry (`None`: not quarantined by a playbook).
    pub quarantined_by: Option<String>,
    /// Its certificates are already revoked.
    pub revoked: bool,
    /// The reasons the score moved, for findings.
    pub reasons: Vec<String>,
    /// A traffic window (`false`: a discovery sighting, which says nothing of the window facts — anomaly,
    /// cloning, zone — nor of healthy time: it neither extends nor breaks an anomaly run, ends no episode
    /// and starts or ends no healthy period, so only what it can lower, the trust, fires a playbook).
    pub window: bool,
}

/// One thing to do about a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// The playbook that asks for it.
    pub playbook: String,
    /// The step; `None` for a release.
    pub step: Option<Step>,
    /// Log only.
    pub shadow: bool,
    /// Why, in words.
    pub why: String,
}

impl Directive {
    /// Whether this lifts a quarantine.
    pub fn is_release(&self) -> bool {
        self.step.is_none()
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Memory {
    anomalous_run: u32,
    /// Playbooks whose condition held at the last window: they fire again only after it stopped holding.
    firing: BTreeSet<usize>,
    healthy_since: Option<Timestamp>,
}

/// What a [`Responder`] remembers of each device, serializable so that a restart does not act twice on one
/// episode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponderMemory(HashMap<DeviceId, Memory>);

/// Turns situations into directives, remembering what it already did.
#[derive(Debug, Clone)]
pub struct Responder {
    config: ResponseConfig,
    memory: HashMap<DeviceId, Memory>,
}

impl Responder {
    /// A responder running `config` (validate it first with [`ResponseConfig::problems`]).
    pub fn new(config: ResponseConfig) -> Self {
        Self {
            config,
            memory: HashMap::new(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &ResponseConfig {
        &self.config
    }

    /// Devices it remembers.
    pub fn devices(&self) -> usize {
        self.memory.len()
    }

    /// A copy of what it remembers of each device (anomaly runs, playbooks firing, healthy since), to
    /// persist.
    pub fn memory(&self) -> ResponderMemory {
        ResponderMemory(self.memory.clone())
    }

    /// Takes up what an earlier responder remembered, in place of what this one did.
    pub fn restore(&mut self, memory: ResponderMemory) {
        self.memory = memory.0;
    }

    /// Forgets a device (retired, removed).
    pub fn forget(&mut self, device: DeviceId) {
        self.memory.remove(&device);
    }

    /// The directives for `device` after a window ending at `now`.
    pub fn decide(&mut self, device: DeviceId, s: &Situation, now: Timestamp) -> Vec<Directive> {
        let m = self.memory.entry(device).or_default();
        if s.window {
            m.anomalous_run = if s.anomalous {
                m.anomalous_run.saturating_add(1)
            } else {
                0
            };
        }
        let mut out = Vec::new();
        let mut quarantine_holds = false;
        for (i, p) in self.config.playbooks.iter().enumerate() {
            let Some(why) = holds(&p.when, s, m.anomalous_run) else {
                if s.window {
                    m.firing.remove(&i);
                }
                continue;
            };
            if p.then.contains(&Step::Quarantine) {
                quarantine_holds = true;
            }
            if !m.firing.insert(i) {
                continue; // still the same episode: already acted on
            }
            let shadow = self.config.mode_of(p) == Mode::Shadow;
            for &step in &p.then {
                let redundant = match step {
                    Step::Quarantine => s.quarantined_by.is_some(),
                    Step::Revoke | Step::Reenroll => s.revoked,
                    Step::Notify => false,
                };
                if !redundant || shadow {
                    out.push(Directive {
                        playbook: p.name.clone(),
                        step: Some(step),
                        shadow,
                        why: why.clone(),
                    });
                }
            }
        }
        match (&s.quarantined_by, quarantine_holds) {
            // A sighting's time is its capture's, not the device's present: it says nothing of healthy time.
            (_, false) if !s.window => {}
            (Some(by), false) => {
                let since = *m.healthy_since.get_or_insert(now);
                let healthy = now.unix_micros() - since.unix_micros();
                let after = i64::try_from(self.config.release_after_secs)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1_000_000);
                if healthy >= after {
                    let shadow = self
                        .config
                        .playbooks
                        .iter()
                        .find(|p| &p.name == by)
                        .is_some_and(|p| self.config.mode_of(p) == Mode::Shadow);
                    out.push(Directive {
                        playbook: by.clone(),
                        step: None,
                        shadow,
                        why: format!(
                            "healthy for {} s (trust {}): the quarantine is lifted",
                            healthy / 1_000_000,
                            s.trust
                        ),
                    });
                    m.healthy_since = None;
                }
            }
            _ => m.healthy_since = None,
        }
        out
    }
}

/// Why the condition holds, or `None`.
fn holds(c: &Condition, s: &Situation, anomalous_run: u32) -> Option<String> {
    let mut why = Vec::new();
    if let Some(t) = c.trust_below {
        if s.trust >= t {
            return None;
        }
        why.push(format!("trust {} is below {t}", s.trust));
    }
    if let Some(want) = c.cloned {
        if s.cloned != want {
            return None;
        }
        why.push(if want {
            "its identity is in use from two places at once".into()
        } else {
            "its identity is in use once".into()
        });
    }
    if let Some(want) = c.out_of_zone {
        if s.out_of_zone != want {
            return None;
        }
        why.push(if want {
            "it is outside its expected zone".into()
        } else {
            "it is in its zone".into()
        });
    }
    if !c.firmware.is_empty() {
        if !c.firmware.iter().any(|f| f.holds(s.firmware)) {
            return None;
        }
        why.push(format!("its firmware is {:?}", s.firmware).to_lowercase());
    }
    if let Some(n) = c.anomalous_windows {
        if anomalous_run < n {
            return None;
        }
        why.push(format!(
            "anomalous behaviour for {anomalous_run} windows in a row"
        ));
    }
    let mut text = why.join(" and ");
    if let Some(first) = s.reasons.first() {
        text.push_str(&format!(" ({first})"));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Situation {
        Situation {
            trust: 95,
            anomalous: false,
            cloned: false,
            out_of_zone: false,
            firmware: FirmwareState::Current,
            quarantined_by: None,
            revoked: false,
            reasons: Vec::new(),
            window: true,
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_700_000_000_000_000 + secs * 1_000_000)
    }

    fn steps(d: &[Directive]) -> Vec<(String, Option<Step>)> {
        d.iter().map(|d| (d.playbook.clone(), d.step)).collect()
    }

    #[test]
    fn the_defaults_are_valid_and_bad_configs_list_every_problem() {
        assert!(ResponseConfig::default().problems().is_empty());
        let bad: ResponseConfig = toml_like(
            r#"{"release_after_secs": 0, "playbook": [
                {"name": "a b", "when": {}, "then": []},
                {"name": "x", "when": {"trust_below": 200}, "then": ["notify", "notify"]},
                {"name": "x", "when": {"anomalous_windows": 0}, "then": ["quarantine"]}
            ]}"#,
        );
        let p = bad.problems();
        assert_eq!(p.len(), 8, "{p:#?}");
        assert!(p.iter().any(|m| m.contains("release_after_secs")));
        assert!(p.iter().any(|m| m.contains("needs a condition")));
        assert!(p.iter().any(|m| m.contains("trust_below must be 1-100")));
        assert!(p.iter().any(|m| m.contains("used twice")));
        let unknown = serde_json::from_str::<ResponseConfig>(
            r#"{"playbook": [{"name": "a", "when": {"trust_under": 3}, "then": ["notify"]}]}"#,
        );
        assert!(unknown.is_err());
        let step = serde_json::from_str::<ResponseConfig>(
            r#"{"playbook": [{"name": "a", "when": {"cloned": true}, "then": ["explode"]}]}"#,
        );
        assert!(step.is_err());
    }

    #[test]
    fn re_enroll_is_spelled_as_the_readme_and_the_events_spell_it() {
        for spelling in ["re-enroll", "reenroll"] {
            let c = toml_like(&format!(
                r#"{{"playbook": [{{"name": "a", "when": {{"cloned": true}}, "then": ["{spelling}"]}}]}}"#
            ));
            assert_eq!(c.playbooks[0].then, vec![Step::Reenroll], "{spelling}");
        }
        // As `vouch_events::ResponseStep` names it in `response.taken`.
        assert_eq!(
            serde_json::to_string(&Step::Reenroll).unwrap(),
            r#""re-enroll""#
        );
    }

    fn toml_like(json: &str) -> ResponseConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn anomaly_quarantines_once_and_release_follows_healthy_time() {
        let mut r = Responder::new(ResponseConfig {
            release_after_secs: 60,
            ..ResponseConfig::default()
        });
        let d = DeviceId::derived("t:1");
        let mut s = healthy();
        s.anomalous = true;
        s.trust = 45;
        assert!(
            r.decide(d, &s, at(0)).is_empty(),
            "one window is not sustained"
        );
        let got = r.decide(d, &s, at(10));
        assert_eq!(
            steps(&got),
            vec![
                ("quarantine-anomaly".into(), Some(Step::Quarantine)),
                ("quarantine-anomaly".into(), Some(Step::Notify)),
            ]
        );
        // Quarantined now (the registry says so): the same episode does nothing more.
        s.quarantined_by = Some("quarantine-anomaly".into());
        assert!(r.decide(d, &s, at(20)).is_empty());
        // Healthy again: released only after 60 s of health.
        let mut ok = healthy();
        ok.quarantined_by = s.quarantined_by.clone();
        assert!(r.decide(d, &ok, at(30)).is_empty());
        assert!(r.decide(d, &ok, at(80)).is_empty());
        let got = r.decide(d, &ok, at(90));
        assert_eq!(got.len(), 1);
        assert!(got[0].is_release() && !got[0].shadow);
        assert_eq!(got[0].playbook, "quarantine-anomaly");
        // A relapse while healthy-but-quarantined restarts the clock.
        let mut r2 = Responder::new(ResponseConfig {
            release_after_secs: 60,
            ..ResponseConfig::default()
        });
        assert!(r2.decide(d, &ok, at(0)).is_empty());
        let mut bad = ok.clone();
        bad.firmware = FirmwareState::Vulnerable;
        assert!(
            r2.decide(d, &bad, at(50))
                .iter()
                .all(|x| x.step == Some(Step::Notify))
        );
        assert!(
            r2.decide(d, &ok, at(70)).is_empty(),
            "the clock restarted at 70"
        );
        assert_eq!(r2.decide(d, &ok, at(130)).len(), 1);
    }

    #[test]
    fn a_clone_is_revoked_once_and_shadow_mode_only_says_so() {
        let mut r = Responder::new(ResponseConfig::default());
        let d = DeviceId::derived("t:2");
        let mut s = healthy();
        s.cloned = true;
        s.trust = 0;
        s.reasons = vec!["−60: its identity is in use from two places at once".into()];
        let got = r.decide(d, &s, at(0));
        let names: Vec<_> = steps(&got);
        assert!(names.contains(&("revoke-cloned-identity".into(), Some(Step::Revoke))));
        assert!(names.contains(&("quarantine-low-trust".into(), Some(Step::Quarantine))));
        assert!(got[0].why.contains("two places"));
        s.revoked = true;
        assert!(r.decide(d, &s, at(10)).is_empty());

        let mut shadow = Responder::new(ResponseConfig {
            mode: Mode::Shadow,
            ..ResponseConfig::default()
        });
        let mut s = healthy();
        s.out_of_zone = true;
        s.trust = 75;
        let got = shadow.decide(d, &s, at(0));
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|x| x.shadow));
    }

    #[test]
    fn a_sighting_neither_breaks_a_run_nor_ends_an_episode_nor_counts_as_healthy_time() {
        let mut r = Responder::new(ResponseConfig {
            release_after_secs: 60,
            ..ResponseConfig::default()
        });
        let d = DeviceId::derived("t:3");
        let mut bad = healthy();
        bad.anomalous = true;
        bad.trust = 45;
        let sighting = Situation {
            window: false,
            ..healthy()
        };
        assert!(r.decide(d, &bad, at(0)).is_empty());
        assert!(r.decide(d, &sighting, at(5)).is_empty());
        // The run went on through the sighting: the second anomalous window quarantines.
        assert_eq!(r.decide(d, &bad, at(10)).len(), 2);
        let mut cloned = healthy();
        cloned.cloned = true;
        cloned.trust = 35;
        cloned.quarantined_by = Some("quarantine-anomaly".into());
        assert!(!r.decide(d, &cloned, at(20)).is_empty());
        // A sighting that cannot see the clone does not end its episode: the next cloned window does nothing.
        let quiet = Situation {
            quarantined_by: cloned.quarantined_by.clone(),
            ..sighting.clone()
        };
        assert!(r.decide(d, &quiet, at(25)).is_empty());
        assert!(r.decide(d, &cloned, at(30)).is_empty());
        // A sighting from long ago starts no healthy period: the release waits for 60 s of healthy windows.
        let mut ok = healthy();
        ok.quarantined_by = cloned.quarantined_by.clone();
        assert!(r.decide(d, &quiet, at(-10_000)).is_empty());
        assert!(r.decide(d, &ok, at(40)).is_empty());
        assert!(r.decide(d, &ok, at(90)).is_empty());
        assert_eq!(r.decide(d, &ok, at(100)).len(), 1);
        // What a sighting can say, low trust, fires like a window's.
        let mut r = Responder::new(ResponseConfig::default());
        let low = Situation {
            trust: 10,
            ..sighting
        };
        assert!(!r.decide(d, &low, at(0)).is_empty());
    }
}
