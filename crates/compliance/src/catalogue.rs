//! Controls as data: which rule (with which parameters) decides each control of each framework.
//!
//! The shipped catalogue (`catalogue/controls.toml`, embedded) covers every framework Vouch claims; an
//! operator's file adds controls or replaces one by its (framework, id), or drops one with `disabled = true`.
//! Loading validates everything at once and lists every problem, so a bad file is fixed in one go.
//!
//! One rule serves many controls: controls that name the same rule with the same parameters share one
//! [`Check`], evaluated once per device.

use std::fmt;

use foldhash::{HashMap, HashMapExt};
use serde::Deserialize;

/// The shipped catalogue.
pub const SHIPPED: &str = include_str!("../catalogue/controls.toml");
/// The largest catalogue file accepted.
pub const MAX_CATALOGUE_BYTES: usize = 1 << 20;
/// The most controls one catalogue may hold.
pub const MAX_CONTROLS: usize = 4096;
const MAX_ID_LEN: usize = 128;
const MAX_TITLE_LEN: usize = 512;

macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $v:ident = $s:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $v,)*
        }

        impl $name {
            /// Every value, in a stable order.
            pub const ALL: &[$name] = &[$(Self::$v,)*];

            /// The name used in catalogue files and reports.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$v => $s,)*
                }
            }

            /// The value named `s`, or why not.
            pub fn parse(s: &str) -> Result<Self, vouch_types::ValidationError> {
                vouch_types::parse_named($what, s, Self::ALL, Self::as_str)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// A framework whose controls the catalogue maps.
    Framework, "framework" {
        /// EU Cyber Resilience Act (Regulation (EU) 2024/2847).
        Cra = "eu-cra",
        /// ETSI EN 303 645, consumer IoT baseline.
        Etsi303645 = "etsi-en-303-645",
        /// NISTIR 8259A, the IoT device cybersecurity capability core baseline.
        Nistir8259a = "nistir-8259a",
        /// IEC 62443-4-2, technical security requirements for IACS components.
        Iec62443_4_2 = "iec-62443-4-2",
        /// ISO/SAE 21434, road-vehicle cybersecurity engineering (per device).
        Iso21434 = "iso-sae-21434",
        /// NIST SP 1800-32, securing distributed energy resources (as a reference architecture).
        NistSp1800_32 = "nist-sp-1800-32",
        /// AWS IoT Device Defender's audit checks, kept as a floor.
        AwsDeviceDefender = "aws-iot-device-defender",
    }
);

named_enum!(
    /// A machine-checkable rule; [`crate::rules`] has one function per rule.
    RuleId, "rule" {
        /// No certificate or key is shared with another device.
        UniqueIdentity = "unique-identity",
        /// No factory-default account was seen in use.
        NoDefaultCredentials = "no-default-credentials",
        /// Every certificate is unrevoked and valid beyond the expiry horizon.
        ValidCertificate = "valid-certificate",
        /// No certificate expires within the horizon (Device Defender's expiring check).
        CertificateExpiring = "certificate-expiring",
        /// Every key is of a strong algorithm and size.
        CryptoStrength = "crypto-strength",
        /// The firmware is at least its model's minimum.
        FirmwareCurrent = "firmware-current",
        /// Attestation verified, or the image is on the model's allow-list.
        FirmwareIntegrity = "firmware-integrity",
        /// No unsuppressed known vulnerability affects the firmware.
        NoKnownVulnerability = "no-known-vulnerability",
        /// No known-exploited (CISA KEV) vulnerability affects the firmware.
        NoKnownExploited = "no-known-exploited-vulnerability",
        /// An SBOM is held for the running firmware.
        SbomPresent = "sbom-present",
        /// The model is within its security support period.
        SupportPeriod = "support-period",
        /// Open ports are within the class's allow-list.
        AttackSurface = "attack-surface",
        /// The configuration hash is the model's golden baseline.
        ConfigDrift = "config-drift",
        /// Security logging is on, and logs and heartbeats are recent.
        Logging = "logging",
        /// The trust engine scored the device's behaviour recently.
        BehaviourMonitored = "behaviour-monitored",
        /// Updates are signed and delivered over an authenticated channel.
        SecureUpdate = "secure-update",
        /// The device can securely erase its data and settings.
        DataErasure = "data-erasure",
        /// No revoked certificate still has an open session.
        RevokedCertificateConnected = "revoked-certificate-connected",
        /// The device's client id is not used by another device.
        ConflictingClientIds = "conflicting-client-ids",
        /// The device's policy grants nothing beyond its own topics.
        OverlyPermissivePolicy = "overly-permissive-policy",
    }
);

/// A rule's parameters, as a control sets them (each rule reads only its own; defaults in [`crate::rules`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// How many days before expiry a certificate counts as expiring.
    pub expiry_horizon_days: Option<u32>,
    /// The smallest acceptable RSA modulus.
    pub min_rsa_bits: Option<u32>,
    /// The smallest acceptable elliptic-curve field size.
    pub min_ec_bits: Option<u32>,
    /// How old the latest log, heartbeat or scored window may be, in seconds.
    pub max_age_secs: Option<u64>,
}

impl Params {
    fn set_names(&self) -> impl Iterator<Item = &'static str> {
        [
            self.expiry_horizon_days.map(|_| "expiry_horizon_days"),
            self.min_rsa_bits.map(|_| "min_rsa_bits"),
            self.min_ec_bits.map(|_| "min_ec_bits"),
            self.max_age_secs.map(|_| "max_age_secs"),
        ]
        .into_iter()
        .flatten()
    }
}

impl RuleId {
    /// The parameters this rule reads.
    pub const fn params(self) -> &'static [&'static str] {
        match self {
            Self::ValidCertificate | Self::CertificateExpiring => &["expiry_horizon_days"],
            Self::CryptoStrength => &["min_rsa_bits", "min_ec_bits"],
            Self::Logging | Self::BehaviourMonitored => &["max_age_secs"],
            _ => &[],
        }
    }
}

/// One control of one framework.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// Its framework.
    pub framework: Framework,
    /// Its id within the framework (`annex-i.part-i.2.a`, `5.1`, `CR 1.2`).
    pub id: String,
    /// Its title.
    pub title: String,
    /// The rules that decide it: it fails when any fails.
    pub rules: Vec<RuleId>,
    /// The parameters its rules read.
    pub params: Params,
}

/// A rule with its parameters, evaluated once per device for all the controls that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The rule.
    pub rule: RuleId,
    /// Its parameters.
    pub params: Params,
    /// The controls it serves (positions in [`Catalogue::controls`]).
    pub controls: Vec<usize>,
}

/// A validated catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    controls: Vec<Control>,
    checks: Vec<Check>,
    /// For each control, the checks that decide it.
    control_checks: Vec<Vec<usize>>,
}

/// Why a catalogue file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    /// Some files or controls are wrong (too large, not TOML of the catalogue's shape, unknown framework or
    /// rule, …); every problem is listed.
    #[error("catalogue has {} problem(s): {}", .0.len(), .0.join("; "))]
    Invalid(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    control: Vec<RawControl>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    framework: String,
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    params: Params,
    #[serde(default)]
    disabled: bool,
}

/// A control as a file states it: `None` when the file disables it.
type Entry = ((Framework, String), Option<Control>);

fn parse_file(name: &str, text: &str, problems: &mut Vec<String>) -> Vec<Entry> {
    if text.len() > MAX_CATALOGUE_BYTES {
        problems.push(format!(
            "{name}: {} bytes, more than {MAX_CATALOGUE_BYTES}",
            text.len()
        ));
        return Vec::new();
    }
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("{name}: {}", e.message()));
            return Vec::new();
        }
    };
    if raw.control.len() > MAX_CONTROLS {
        problems.push(format!("{name}: more than {MAX_CONTROLS} controls"));
        return Vec::new();
    }
    let mut out: Vec<Entry> = Vec::new();
    for (n, c) in raw.control.into_iter().enumerate() {
        let at = format!("{name}: control {} (`{}` `{}`)", n + 1, c.framework, c.id);
        let framework =
            Framework::parse(&c.framework).map_err(|e| problems.push(format!("{at}: {e}")));
        if c.id.is_empty() || c.id.len() > MAX_ID_LEN || c.id.chars().any(char::is_control) {
            problems.push(format!(
                "{at}: id must be 1 to {MAX_ID_LEN} printable bytes"
            ));
        }
        let Ok(framework) = framework else { continue };
        let key = (framework, c.id.clone());
        if out.iter().any(|(k, _)| *k == key) {
            problems.push(format!("{at}: listed twice in this file"));
            continue;
        }
        if c.disabled {
            out.push((key, None));
            continue;
        }
        if c.title.is_empty()
            || c.title.len() > MAX_TITLE_LEN
            || c.title.chars().any(char::is_control)
        {
            problems.push(format!(
                "{at}: title must be 1 to {MAX_TITLE_LEN} printable bytes"
            ));
        }
        if c.rules.is_empty() {
            problems.push(format!("{at}: names no rule"));
        }
        let mut rules = Vec::new();
        for r in &c.rules {
            match RuleId::parse(r) {
                Ok(r) if rules.contains(&r) => problems.push(format!("{at}: rule `{r}` twice")),
                Ok(r) => rules.push(r),
                Err(e) => problems.push(format!("{at}: {e}")),
            }
        }
        for p in c.params.set_names() {
            if !rules.iter().any(|r| r.params().contains(&p)) {
                problems.push(format!(
                    "{at}: parameter `{p}` is read by none of its rules"
                ));
            }
        }
        out.push((
            key,
            Some(Control {
                framework,
                id: c.id,
                title: c.title,
                rules,
                params: c.params,
            }),
        ));
    }
    out
}

impl Catalogue {
    /// The shipped catalogue alone.
    pub fn shipped() -> Result<Self, CatalogueError> {
        Self::load(&[("shipped", SHIPPED)])
    }

    /// The shipped catalogue with an operator's file over it.
    pub fn shipped_with(user: &str) -> Result<Self, CatalogueError> {
        Self::load(&[("shipped", SHIPPED), ("user", user)])
    }

    /// Catalogue files in order, each adding controls or replacing earlier ones by (framework, id).
    pub fn load(files: &[(&str, &str)]) -> Result<Self, CatalogueError> {
        let mut problems = Vec::new();
        let mut controls: Vec<Control> = Vec::new();
        for (name, text) in files {
            for (key, control) in parse_file(name, text, &mut problems) {
                let at = controls
                    .iter()
                    .position(|c| c.framework == key.0 && c.id == key.1);
                match (at, control) {
                    (Some(i), Some(c)) => controls[i] = c,
                    (Some(i), None) => {
                        controls.remove(i);
                    }
                    (None, Some(c)) => controls.push(c),
                    (None, None) => problems.push(format!(
                        "{name}: disables `{}` `{}`, which no earlier file has",
                        key.0, key.1
                    )),
                }
            }
        }
        if controls.len() > MAX_CONTROLS {
            problems.push(format!("more than {MAX_CONTROLS} controls in all"));
        }
        if !problems.is_empty() {
            return Err(CatalogueError::Invalid(problems));
        }
        Ok(Self::index(controls))
    }

    fn index(controls: Vec<Control>) -> Self {
        let mut checks: Vec<Check> = Vec::new();
        let mut by_key: HashMap<(RuleId, Params), usize> = HashMap::new();
        let mut control_checks = Vec::with_capacity(controls.len());
        for (ci, c) in controls.iter().enumerate() {
            let mut mine = Vec::with_capacity(c.rules.len());
            for &rule in &c.rules {
                // Parameters a rule does not read do not split its check.
                let params = Params {
                    expiry_horizon_days: c
                        .params
                        .expiry_horizon_days
                        .filter(|_| rule.params().contains(&"expiry_horizon_days")),
                    min_rsa_bits: c
                        .params
                        .min_rsa_bits
                        .filter(|_| rule == RuleId::CryptoStrength),
                    min_ec_bits: c
                        .params
                        .min_ec_bits
                        .filter(|_| rule == RuleId::CryptoStrength),
                    max_age_secs: c
                        .params
                        .max_age_secs
                        .filter(|_| rule.params().contains(&"max_age_secs")),
                };
                let k = *by_key.entry((rule, params)).or_insert_with(|| {
                    checks.push(Check {
                        rule,
                        params,
                        controls: Vec::new(),
                    });
                    checks.len() - 1
                });
                checks[k].controls.push(ci);
                mine.push(k);
            }
            control_checks.push(mine);
        }
        Self {
            controls,
            checks,
            control_checks,
        }
    }

    /// Every control, in file order.
    pub fn controls(&self) -> &[Control] {
        &self.controls
    }

    /// Every distinct (rule, parameters) check.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The checks that decide control `i`.
    pub fn checks_of(&self, control: usize) -> &[usize] {
        self.control_checks.get(control).map_or(&[], Vec::as_slice)
    }

    /// The position of the control `id` of `framework`.
    pub fn find(&self, framework: Framework, id: &str) -> Option<usize> {
        self.controls
            .iter()
            .position(|c| c.framework == framework && c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every control the issue names, by framework.
    const REQUIRED: &[(Framework, &[&str])] = &[
        (
            Framework::Cra,
            &[
                "annex-i.part-i.2.a",
                "annex-i.part-i.2.b",
                "annex-i.part-i.2.c",
                "annex-i.part-i.2.d",
                "annex-i.part-i.2.e",
                "annex-i.part-i.2.f",
                "annex-i.part-i.2.g",
                "annex-i.part-i.2.h",
                "annex-i.part-i.2.i",
                "annex-i.part-i.2.j",
                "annex-i.part-i.2.k",
                "annex-i.part-i.2.l",
                "annex-i.part-i.2.m",
                "annex-i.part-ii.1",
                "art-14",
            ],
        ),
        (
            Framework::Etsi303645,
            &["5.1", "5.3", "5.4", "5.5", "5.6", "5.7", "5.10"],
        ),
        (
            Framework::Nistir8259a,
            &[
                "device-identification",
                "device-configuration",
                "data-protection",
                "logical-access-to-interfaces",
                "software-update",
                "cybersecurity-state-awareness",
            ],
        ),
        (
            Framework::Iec62443_4_2,
            &[
                "CR 1.2", "CR 1.5", "CR 1.8", "CR 1.9", "CR 2.8", "CR 3.4", "CR 3.10", "CR 4.3",
                "CR 7.7",
            ],
        ),
        (
            Framework::Iso21434,
            &["clause-8", "clause-12", "clause-13", "clause-14"],
        ),
        (
            Framework::NistSp1800_32,
            &["behaviour-monitoring", "audit-trail"],
        ),
        (
            Framework::AwsDeviceDefender,
            &[
                "DEVICE_CERTIFICATE_EXPIRING_CHECK",
                "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK",
                "DEVICE_CERTIFICATE_SHARED_CHECK",
                "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
                "CONFLICTING_CLIENT_IDS_CHECK",
                "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
                "LOGGING_DISABLED_CHECK",
            ],
        ),
    ];

    #[test]
    fn the_shipped_catalogue_has_every_listed_control_and_uses_every_rule() {
        let cat = Catalogue::shipped().unwrap();
        for (fw, ids) in REQUIRED {
            for id in *ids {
                assert!(cat.find(*fw, id).is_some(), "{fw} {id} missing");
            }
        }
        for rule in RuleId::ALL {
            assert!(
                cat.checks().iter().any(|c| c.rule == *rule),
                "{rule} serves no control"
            );
        }
        // One rule serves many controls.
        let unique = cat
            .checks()
            .iter()
            .find(|c| c.rule == RuleId::UniqueIdentity)
            .unwrap();
        assert!(unique.controls.len() >= 4);
    }

    #[test]
    fn a_user_file_adds_replaces_and_disables() {
        let user = r#"
            [[control]]
            framework = "eu-cra"
            id = "annex-i.part-i.2.g"
            disabled = true

            [[control]]
            framework = "etsi-en-303-645"
            id = "5.5"
            title = "Communicate securely (stricter)"
            rules = ["valid-certificate"]
            params = { expiry_horizon_days = 90 }

            [[control]]
            framework = "iec-62443-4-2"
            id = "CR 7.6"
            title = "Network and security configuration settings"
            rules = ["config-drift"]
        "#;
        let base = Catalogue::shipped().unwrap();
        let cat = Catalogue::shipped_with(user).unwrap();
        assert_eq!(cat.controls().len(), base.controls().len());
        assert!(cat.find(Framework::Cra, "annex-i.part-i.2.g").is_none());
        let c = &cat.controls()[cat.find(Framework::Etsi303645, "5.5").unwrap()];
        assert_eq!(c.params.expiry_horizon_days, Some(90));
        assert!(cat.find(Framework::Iec62443_4_2, "CR 7.6").is_some());
    }

    #[test]
    fn every_problem_is_listed() {
        let bad = r#"
            [[control]]
            framework = "hipaa"
            id = "x"
            title = "t"
            rules = ["unique-identity"]

            [[control]]
            framework = "eu-cra"
            id = "new"
            title = ""
            rules = ["telepathy", "logging"]
            params = { min_rsa_bits = 2048 }

            [[control]]
            framework = "eu-cra"
            id = "gone"
            disabled = true
        "#;
        let Err(CatalogueError::Invalid(p)) = Catalogue::shipped_with(bad) else {
            panic!("accepted")
        };
        let all = p.join("\n");
        assert_eq!(p.len(), 5, "{all}");
        for needle in ["hipaa", "title", "telepathy", "min_rsa_bits", "gone"] {
            assert!(all.contains(needle), "{needle} not in {all}");
        }
        assert!(matches!(
            Catalogue::shipped_with("[[control]]\nframework = 1"),
            Err(CatalogueError::Invalid(_))
        ));
        assert!(Catalogue::shipped_with("nonsense = [").is_err());
    }
}
