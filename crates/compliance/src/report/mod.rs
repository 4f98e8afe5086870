//! Reports, pure: a scope's results in, bytes out. `oscal` writes OSCAL 1.1 assessment results (for
//! auditors' tools), `html` one self-contained page for people, `ocsf` OCSF Compliance Finding events (for
//! a SIEM). All three read the same [`Scope`] and the same tallies here, so their figures cannot disagree.
//! No clock: the generation time comes in with the scope; identifiers are name-based so a re-run of the same
//! inputs gives the same bytes.

pub mod html;
pub mod ocsf;
pub mod oscal;

use uuid::Uuid;
use vouch_types::{DeviceId, Timestamp};

use crate::catalogue::{Catalogue, Control, Framework};
use crate::eval::{ControlState, DeviceResult, severity_of};
use crate::rules::{Evidence, Exploited, Outcome, Severity};

/// The most devices one report covers (a larger fleet is reported in parts: a page beyond this is unreadable
/// and an OSCAL document beyond it too large for the usual tools).
pub const MAX_DEVICES: usize = 10_000;
/// The longest title or device name a report accepts, in bytes.
pub const MAX_TEXT_LEN: usize = 512;

/// The name-space of every report identifier (a v5 UUID of its own, so Vouch's ids collide with nobody's).
const NAMESPACE: Uuid = Uuid::from_u128(0x7c1d_62a8_3f0e_5b7a_9d41_0c2e_8a6f_1b35);

/// The name-based identifier of `parts`, joined so that no two different lists give the same name.
pub(crate) fn name_uuid(parts: &[&str]) -> Uuid {
    let mut name = String::new();
    for p in parts {
        name.push_str(&p.len().to_string());
        name.push(':');
        name.push_str(p);
    }
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// The time a report covers: results evaluated from `start` to `end`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Its first instant.
    pub start: Timestamp,
    /// Its last instant.
    pub end: Timestamp,
}

/// One device of a scope: its result and the name people know it by.
#[derive(Debug, Clone, Copy)]
pub struct Assessed<'a> {
    /// Its evaluation.
    pub result: &'a DeviceResult,
    /// Its display name (empty: its id is shown).
    pub name: &'a str,
}

impl Assessed<'_> {
    /// The name to show: the display name, else the id.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.result.device.to_string()
        } else {
            self.name.to_owned()
        }
    }
}

/// What a report covers: a set of devices evaluated against one catalogue within a period.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The report's title ("Plant 3, March").
    pub title: &'a str,
    /// The catalogue the results were evaluated against.
    pub catalogue: &'a Catalogue,
    /// The devices, in the order they are reported.
    pub devices: &'a [Assessed<'a>],
    /// The period the results fall in.
    pub period: Period,
    /// When the report is generated.
    pub generated: Timestamp,
    /// Vouch's version, for the reports' metadata.
    pub version: &'a str,
}

/// Why a report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The period ends before it starts.
    #[error("the period ends ({end}) before it starts ({start})")]
    BadPeriod {
        /// Its start.
        start: Timestamp,
        /// Its end.
        end: Timestamp,
    },
    /// A result was evaluated outside the period.
    #[error("device {device} was evaluated at {at}, outside the report's period")]
    OutsidePeriod {
        /// The device.
        device: DeviceId,
        /// When it was evaluated.
        at: Timestamp,
    },
    /// A result was not evaluated against this catalogue (its checks or controls do not line up).
    #[error("device {device}'s result was not evaluated against this catalogue")]
    OtherCatalogue {
        /// The device.
        device: DeviceId,
    },
    /// The same device is in the scope twice.
    #[error("device {device} is in the scope twice")]
    Duplicate {
        /// The device.
        device: DeviceId,
    },
    /// More devices than [`MAX_DEVICES`].
    #[error("{count} devices in one report (at most {MAX_DEVICES})")]
    TooManyDevices {
        /// How many were given.
        count: usize,
    },
    /// A title or name longer than [`MAX_TEXT_LEN`], or holding a control character.
    #[error("the {what} is longer than {MAX_TEXT_LEN} bytes or holds a control character")]
    BadText {
        /// Which text.
        what: &'static str,
    },
    /// Serialising failed (not expected for these types).
    #[error("serialising the report: {0}")]
    Serialise(String),
}

fn text_ok(s: &str) -> bool {
    s.len() <= MAX_TEXT_LEN && !s.chars().any(char::is_control)
}

impl Scope<'_> {
    /// Refuses a scope whose parts do not fit together; every report checks it first.
    pub fn validate(&self) -> Result<(), ReportError> {
        let Period { start, end } = self.period;
        if end < start {
            return Err(ReportError::BadPeriod { start, end });
        }
        if self.devices.len() > MAX_DEVICES {
            return Err(ReportError::TooManyDevices {
                count: self.devices.len(),
            });
        }
        if !text_ok(self.title) {
            return Err(ReportError::BadText { what: "title" });
        }
        if !text_ok(self.version) || self.version.is_empty() {
            return Err(ReportError::BadText { what: "version" });
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in self.devices {
            let r = a.result;
            if !text_ok(a.name) {
                return Err(ReportError::BadText {
                    what: "device name",
                });
            }
            if r.at < start || r.at > end {
                return Err(ReportError::OutsidePeriod {
                    device: r.device,
                    at: r.at,
                });
            }
            if r.checks.len() != self.catalogue.checks().len()
                || r.controls.len() != self.catalogue.controls().len()
            {
                return Err(ReportError::OtherCatalogue { device: r.device });
            }
            if !seen.insert(r.device) {
                return Err(ReportError::Duplicate { device: r.device });
            }
        }
        Ok(())
    }

    /// The tallies every report shows.
    pub fn summary(&self) -> Summary<'_> {
        let mut s = Summary {
            devices: self.devices.len(),
            controls: self.catalogue.controls().len(),
            passed: 0,
            failed: 0,
            not_applicable: 0,
            kev: Vec::new(),
        };
        for a in self.devices {
            for st in &a.result.controls {
                match st {
                    ControlState::Pass => s.passed += 1,
                    ControlState::Fail => s.failed += 1,
                    ControlState::NotApplicable => s.not_applicable += 1,
                }
            }
            for f in a.result.findings(self.catalogue) {
                if let Some(x) = f.art14 {
                    s.kev.push(KevTrigger {
                        device: *a,
                        exploited: x,
                    });
                }
            }
        }
        s.kev
            .sort_by_key(|k| (k.exploited.early_warning_due, k.device.result.device));
        s
    }

    /// Each framework with its controls' positions, in the order frameworks are declared.
    pub fn frameworks(&self) -> Vec<(Framework, Vec<usize>)> {
        Framework::ALL
            .iter()
            .filter_map(|&f| {
                let ix: Vec<usize> = self
                    .catalogue
                    .controls()
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.framework == f)
                    .map(|(i, _)| i)
                    .collect();
                (!ix.is_empty()).then_some((f, ix))
            })
            .collect()
    }

    /// How many devices pass, fail and do not apply control `i`.
    pub fn counts(&self, i: usize) -> Counts {
        let mut c = Counts::default();
        for a in self.devices {
            match a.result.controls.get(i) {
                Some(ControlState::Pass) => c.passed += 1,
                Some(ControlState::Fail) => c.failed += 1,
                _ => c.not_applicable += 1,
            }
        }
        c
    }
}

/// A control's tallies over the scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Devices that pass it.
    pub passed: usize,
    /// Devices that fail it.
    pub failed: usize,
    /// Devices it does not apply to.
    pub not_applicable: usize,
}

/// A known-exploited vulnerability on a device of the scope: a CRA Art. 14 reporting obligation.
#[derive(Debug, Clone, Copy)]
pub struct KevTrigger<'a> {
    /// The device.
    pub device: Assessed<'a>,
    /// The vulnerability and its deadlines.
    pub exploited: &'a Exploited,
}

/// The figures at the top of every report.
#[derive(Debug, Clone)]
pub struct Summary<'a> {
    /// Devices in the scope.
    pub devices: usize,
    /// Controls in the catalogue.
    pub controls: usize,
    /// (device, control) pairs that passed.
    pub passed: usize,
    /// (device, control) pairs that failed.
    pub failed: usize,
    /// (device, control) pairs that did not apply.
    pub not_applicable: usize,
    /// The CRA Art. 14 triggers, earliest deadline first.
    pub kev: Vec<KevTrigger<'a>>,
}

impl Summary<'_> {
    /// (device, control) pairs evaluated.
    pub const fn evaluated(&self) -> usize {
        self.passed + self.failed + self.not_applicable
    }

    /// The share of applicable pairs that passed, in tenths of a percent (none applicable: none).
    pub fn pass_rate_permille(&self) -> Option<u64> {
        let applicable = (self.passed + self.failed) as u64;
        (applicable > 0).then(|| (self.passed as u64 * 1000 + applicable / 2) / applicable)
    }

    /// The pass rate as people read it ("87.5%", "n/a").
    pub fn pass_rate_text(&self) -> String {
        self.pass_rate_permille()
            .map_or_else(|| "n/a".to_owned(), |p| format!("{}.{}%", p / 10, p % 10))
    }
}

/// The name a framework goes by in reports.
pub const fn framework_title(f: Framework) -> &'static str {
    match f {
        Framework::Cra => "EU Cyber Resilience Act",
        Framework::Etsi303645 => "ETSI EN 303 645",
        Framework::Nistir8259a => "NISTIR 8259A",
        Framework::Iec62443_4_2 => "IEC 62443-4-2",
        Framework::Iso21434 => "ISO/SAE 21434",
        Framework::NistSp1800_32 => "NIST SP 1800-32",
        Framework::AwsDeviceDefender => "AWS IoT Device Defender audit",
    }
}

/// A control's identifier as one token (`eu-cra_annex-i.part-i.2.a`, `iec-62443-4-2_CR_1.2`): OSCAL's
/// control ids and target ids must be tokens (a letter first; letters, digits, `.`, `-`, `_`).
pub fn control_token(c: &Control) -> String {
    let mut t = String::from(c.framework.as_str());
    t.push('_');
    t.extend(c.id.chars().map(|ch| {
        if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_') {
            ch
        } else {
            '_'
        }
    }));
    t
}

/// The evidence of control `i`'s failing checks on a device, in catalogue order.
pub fn failing_evidence<'r>(
    cat: &Catalogue,
    result: &'r DeviceResult,
    i: usize,
) -> Vec<&'r Evidence> {
    cat.checks_of(i)
        .iter()
        .filter_map(|&k| match result.checks.get(k) {
            Some(Outcome::Fail(ev)) => Some(ev.iter()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The severity of control `i`'s failure on a device: its worst failing check's (none when it does not fail).
pub fn control_severity(cat: &Catalogue, result: &DeviceResult, i: usize) -> Option<Severity> {
    cat.checks_of(i)
        .iter()
        .filter_map(|&k| {
            let Some(Outcome::Fail(ev)) = result.checks.get(k) else {
                return None;
            };
            Some(severity_of(cat.checks().get(k)?.rule, ev))
        })
        .max()
}

/// The known-exploited vulnerability behind control `i`'s failure on a device, earliest first seen.
pub fn control_kev<'r>(
    cat: &Catalogue,
    result: &'r DeviceResult,
    i: usize,
) -> Option<&'r Exploited> {
    failing_evidence(cat, result, i)
        .into_iter()
        .filter_map(|e| e.exploited.as_ref())
        .min_by_key(|x| x.first_seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(framework: Framework, id: &str) -> Control {
        Control {
            framework,
            id: id.to_owned(),
            title: String::new(),
            rules: Vec::new(),
            params: crate::catalogue::Params::default(),
        }
    }

    #[test]
    fn control_tokens_are_oscal_tokens() {
        assert_eq!(
            control_token(&control(Framework::Iec62443_4_2, "CR 1.2")),
            "iec-62443-4-2_CR_1.2"
        );
        assert_eq!(
            control_token(&control(Framework::Etsi303645, "5.1")),
            "etsi-en-303-645_5.1"
        );
        assert_eq!(
            control_token(&control(Framework::Cra, "annex-i/ü")),
            "eu-cra_annex-i__"
        );
    }

    #[test]
    fn name_uuids_do_not_confuse_where_the_parts_split() {
        assert_ne!(name_uuid(&["ab", "c"]), name_uuid(&["a", "bc"]));
        assert_eq!(name_uuid(&["a", "b"]), name_uuid(&["a", "b"]));
        assert_eq!(name_uuid(&["a"]).get_version_num(), 5);
    }

    #[test]
    fn the_pass_rate_rounds_to_a_tenth_and_is_none_with_nothing_applicable() {
        let s = |passed, failed| Summary {
            devices: 1,
            controls: 3,
            passed,
            failed,
            not_applicable: 1,
            kev: Vec::new(),
        };
        assert_eq!(s(2, 1).pass_rate_text(), "66.7%");
        assert_eq!(s(1, 2).pass_rate_text(), "33.3%");
        assert_eq!(s(145, 8).pass_rate_text(), "94.8%");
        assert_eq!(s(3, 0).pass_rate_text(), "100.0%");
        assert_eq!(s(0, 0).pass_rate_text(), "n/a");
        assert_eq!(s(0, 0).evaluated(), 1);
    }
}
