//! The evaluator: every check of the catalogue for one device, each control's state from its checks, the
//! findings; and the fleet index that names the devices an import concerns, for incremental re-evaluation.

use foldhash::{HashMap, HashMapExt};
use vouch_types::{DeviceId, Timestamp};

use crate::catalogue::{Catalogue, Control, Framework, RuleId};
use crate::evidence::{Baselines, DeviceEvidence, FleetFacts};
use crate::rules::{Context, Evidence, Exploited, Outcome, Severity, check};
use crate::vuln::{FirmwareKey, ImportDelta, ProductKey, VulnDb, VulnMatch};

/// A control's state on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlState {
    /// Every rule passed (or did not apply, with at least one passing).
    Pass,
    /// A rule failed.
    Fail,
    /// No rule applied.
    NotApplicable,
}

/// One device's evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceResult {
    /// The device.
    pub device: DeviceId,
    /// When it was evaluated.
    pub at: Timestamp,
    /// Each check's outcome, by position in [`Catalogue::checks`].
    pub checks: Vec<Outcome>,
    /// Each control's state, by position in [`Catalogue::controls`].
    pub controls: Vec<ControlState>,
}

/// A failed check, with every control it fails.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding<'a> {
    /// The rule.
    pub rule: RuleId,
    /// The controls its failure fails.
    pub controls: Vec<&'a Control>,
    /// The highest severity among its evidence (or the rule's own).
    pub severity: Severity,
    /// What was found.
    pub evidence: &'a [Evidence],
    /// For a known-exploited vulnerability, the earliest CRA Art. 14 deadlines.
    pub art14: Option<&'a Exploited>,
}

impl DeviceResult {
    /// The state of control `id` of `framework`.
    pub fn state(&self, cat: &Catalogue, framework: Framework, id: &str) -> Option<ControlState> {
        cat.find(framework, id)
            .and_then(|i| self.controls.get(i).copied())
    }

    /// The controls that failed, in catalogue order.
    pub fn failed<'c>(&self, cat: &'c Catalogue) -> Vec<&'c Control> {
        cat.controls()
            .iter()
            .zip(&self.controls)
            .filter(|(_, s)| **s == ControlState::Fail)
            .map(|(c, _)| c)
            .collect()
    }

    /// One finding per failed check, most severe first (a CRA Art. 14 trigger first among equals).
    pub fn findings<'s>(&'s self, cat: &'s Catalogue) -> Vec<Finding<'s>> {
        let mut out: Vec<Finding<'s>> = cat
            .checks()
            .iter()
            .zip(&self.checks)
            .filter_map(|(c, o)| {
                let Outcome::Fail(ev) = o else { return None };
                let severity = severity_of(c.rule, ev);
                Some(Finding {
                    rule: c.rule,
                    controls: c
                        .controls
                        .iter()
                        .filter_map(|&i| cat.controls().get(i))
                        .collect(),
                    severity,
                    evidence: ev,
                    art14: ev
                        .iter()
                        .filter_map(|e| e.exploited.as_ref())
                        .min_by_key(|x| x.first_seen),
                })
            })
            .collect();
        out.sort_by_key(|f| (std::cmp::Reverse(f.severity), f.art14.is_none()));
        out
    }
}

/// A failure's severity: the highest among its evidence, else the rule's own.
pub(crate) fn severity_of(rule: RuleId, ev: &[Evidence]) -> Severity {
    ev.iter()
        .filter_map(|e| e.severity)
        .max()
        .unwrap_or(Severity::of(rule))
}

fn needs_vulns(rule: RuleId) -> bool {
    matches!(
        rule,
        RuleId::NoKnownVulnerability | RuleId::NoKnownExploited
    )
}

/// Evaluates every check of `cat` for `device` at `now`.
pub fn evaluate(
    cat: &Catalogue,
    baselines: &Baselines,
    db: &VulnDb,
    fleet: &FleetFacts,
    device: &DeviceEvidence,
    now: Timestamp,
) -> DeviceResult {
    let vulns: Vec<VulnMatch<'_>> = if cat.checks().iter().any(|c| needs_vulns(c.rule)) {
        db.matches(device)
    } else {
        Vec::new()
    };
    let cx = Context {
        baselines,
        fleet,
        device,
        db,
        vulns: &vulns,
        now,
    };
    let checks: Vec<Outcome> = cat
        .checks()
        .iter()
        .map(|c| check(c.rule, &c.params, &cx))
        .collect();
    let controls = (0..cat.controls().len())
        .map(|i| {
            let mut state = ControlState::NotApplicable;
            for &k in cat.checks_of(i) {
                match checks.get(k) {
                    Some(Outcome::Fail(_)) => return ControlState::Fail,
                    Some(Outcome::Pass) => state = ControlState::Pass,
                    _ => {}
                }
            }
            state
        })
        .collect();
    DeviceResult {
        device: device.id,
        at: now,
        checks,
        controls,
    }
}

/// Which devices each firmware and product concerns: an import's [`ImportDelta`] names the devices to
/// re-evaluate, the rest keep their results.
#[derive(Debug, Clone, Default)]
pub struct FleetIndex {
    by_firmware: HashMap<FirmwareKey, Vec<u32>>,
    by_product: HashMap<ProductKey, Vec<u32>>,
}

impl FleetIndex {
    /// Indexes `devices` by position (the caller's order).
    pub fn build<'a>(devices: impl IntoIterator<Item = &'a DeviceEvidence>) -> Self {
        let mut ix = Self {
            by_firmware: HashMap::new(),
            by_product: HashMap::new(),
        };
        for (i, d) in devices.into_iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            for k in FirmwareKey::of(d) {
                ix.by_firmware.entry(k).or_default().push(i);
            }
            if let (Some(v), Some(m)) = (&d.vendor, &d.model) {
                ix.by_product
                    .entry(ProductKey::new(v.as_str(), m.as_str()))
                    .or_default()
                    .push(i);
            }
        }
        ix
    }

    /// The positions of the devices `delta` concerns, ascending, each once.
    pub fn affected(&self, db: &VulnDb, delta: &ImportDelta) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let mut add =
            |v: Option<&Vec<u32>>| out.extend(v.into_iter().flatten().map(|&i| i as usize));
        for f in &delta.firmwares {
            add(self.by_firmware.get(f));
        }
        for p in &delta.packages {
            for f in db.firmwares_with(p) {
                add(self.by_firmware.get(f));
            }
        }
        for p in &delta.products {
            add(self.by_product.get(p));
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}
