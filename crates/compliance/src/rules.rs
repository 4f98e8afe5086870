//! The rules: one function each, reading a device's evidence (and the fleet's, the baselines, its matched
//! vulnerabilities) and saying pass, fail with the evidence, or not applicable and why.
//!
//! A rule never guesses: missing evidence that the rule needs is a failure that says what is missing,
//! except where the operator has set no reference value (no golden config, no port allow-list, no firmware
//! minimum for the model), which makes the rule not applicable rather than failing every device.

use std::sync::Arc;

use vouch_types::{Timestamp, compare_versions};

use crate::catalogue::{Params, RuleId};
use crate::evidence::{Attestation, Baselines, DeviceEvidence, FleetFacts, KeyAlgorithm};
use crate::vuln::{Suppression, VulnDb, VulnId, VulnMatch};

const DAY_MICROS: i64 = 86_400_000_000;
/// A certificate expiring within this many days fails, unless a control sets `expiry_horizon_days`.
pub const DEFAULT_EXPIRY_HORIZON_DAYS: u32 = 30;
/// The smallest RSA modulus accepted by default (NIST SP 800-131A: 112-bit security).
pub const DEFAULT_MIN_RSA_BITS: u32 = 2048;
/// The smallest EC field accepted by default.
pub const DEFAULT_MIN_EC_BITS: u32 = 256;
/// How old a device's latest log and heartbeat may be by default.
pub const DEFAULT_LOG_MAX_AGE_SECS: u64 = 86_400;
/// How old a device's latest scored traffic window may be by default.
pub const DEFAULT_MONITOR_MAX_AGE_SECS: u64 = 3_600;
/// CRA Art. 14(2)(a): an early warning within 24 hours of becoming aware of an actively exploited
/// vulnerability.
pub const ART14_EARLY_WARNING_HOURS: i64 = 24;
/// CRA Art. 14(2)(b): a vulnerability notification within 72 hours.
pub const ART14_NOTIFICATION_HOURS: i64 = 72;

/// How severe a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Hygiene.
    Low,
    /// Weakens a control.
    Medium,
    /// Opens the device to attack.
    High,
    /// Exploited now, or an obligation with a deadline (CRA Art. 14).
    Critical,
}

impl Severity {
    /// The CVSS v3 qualitative rating of a base score.
    pub fn from_cvss(score: f64) -> Self {
        if score >= 9.0 {
            Self::Critical
        } else if score >= 7.0 {
            Self::High
        } else if score >= 4.0 {
            Self::Medium
        } else {
            Self::Low
        }
    }

    /// The severity of a failure of `rule` when its evidence says no more.
    pub const fn of(rule: RuleId) -> Self {
        match rule {
            RuleId::NoKnownExploited => Self::Critical,
            RuleId::UniqueIdentity
            | RuleId::NoDefaultCredentials
            | RuleId::FirmwareIntegrity
            | RuleId::NoKnownVulnerability
            | RuleId::RevokedCertificateConnected
            | RuleId::OverlyPermissivePolicy
            | RuleId::ValidCertificate => Self::High,
            RuleId::Logging
            | RuleId::BehaviourMonitored
            | RuleId::SbomPresent
            | RuleId::DataErasure => Self::Low,
            _ => Self::Medium,
        }
    }
}

/// A known-exploited vulnerability on a device: the CRA Art. 14 trigger, with its reporting deadlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exploited {
    /// The CVE.
    pub cve: VulnId,
    /// When it was first seen on the device (the caller's record, else now).
    pub first_seen: Timestamp,
    /// The early warning is due by then (24 h).
    pub early_warning_due: Timestamp,
    /// The vulnerability notification is due by then (72 h).
    pub notification_due: Timestamp,
    /// Known to be used in ransomware campaigns.
    pub ransomware: bool,
}

/// One item of evidence for a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// What was found, in words (shared: a vulnerability's text is rendered once per SBOM, not per device).
    pub text: Arc<str>,
    /// How severe this item is, when it says more than the rule's default (a vulnerability's CVSS).
    pub severity: Option<Severity>,
    /// For a known-exploited vulnerability, the CRA Art. 14 deadlines.
    pub exploited: Option<Exploited>,
}

impl Evidence {
    fn text(text: String) -> Self {
        Self {
            text: text.into(),
            severity: None,
            exploited: None,
        }
    }
}

/// What a rule concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The device meets it.
    Pass,
    /// The device does not; why.
    Fail(Vec<Evidence>),
    /// The rule does not apply to it; why.
    NotApplicable(&'static str),
}

/// What a rule reads.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The operator's baselines.
    pub baselines: &'a Baselines,
    /// The fleet's shared identities.
    pub fleet: &'a FleetFacts,
    /// The device.
    pub device: &'a DeviceEvidence,
    /// The vulnerability data.
    pub db: &'a VulnDb,
    /// The vulnerabilities matched to the device (empty unless a vulnerability rule is evaluated).
    pub vulns: &'a [VulnMatch<'a>],
    /// The time of the evaluation.
    pub now: Timestamp,
}

fn verdict(fails: Vec<Evidence>) -> Outcome {
    if fails.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(fails)
    }
}

fn fail(text: String) -> Outcome {
    Outcome::Fail(vec![Evidence::text(text)])
}

fn older_than(t: Option<Timestamp>, now: Timestamp, max_secs: u64) -> bool {
    let max = i64::try_from(max_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    t.is_none_or(|t| t < now.plus_micros(-max))
}

/// Evaluates `rule` with `params` for the device in `cx`.
pub fn check(rule: RuleId, params: &Params, cx: &Context<'_>) -> Outcome {
    let d = cx.device;
    match rule {
        RuleId::UniqueIdentity => unique_identity(cx),
        RuleId::NoDefaultCredentials => verdict(
            d.credentials
                .iter()
                .filter_map(|c| {
                    let user = c.user.as_deref()?;
                    cx.baselines.is_default_user(user).then(|| {
                        Evidence::text(format!(
                            "default account `{user}` seen in clear text over {}",
                            c.protocol
                        ))
                    })
                })
                .collect(),
        ),
        RuleId::ValidCertificate => certificates(cx, params, true),
        RuleId::CertificateExpiring => certificates(cx, params, false),
        RuleId::CryptoStrength => crypto_strength(cx, params),
        RuleId::FirmwareCurrent => firmware_current(cx),
        RuleId::FirmwareIntegrity => firmware_integrity(cx),
        RuleId::NoKnownVulnerability => known_vulnerabilities(cx, false),
        RuleId::NoKnownExploited => known_vulnerabilities(cx, true),
        RuleId::SbomPresent => match cx.db.sbom_for(d) {
            Some(_) => Outcome::Pass,
            None => fail(format!(
                "no SBOM is held for its firmware ({} {}{})",
                d.model.as_ref().map_or("unknown model", |m| m.as_str()),
                d.firmware
                    .as_ref()
                    .map_or("unknown version", |f| f.as_str()),
                d.image_digest
                    .map(|i| format!(", image {i}"))
                    .unwrap_or_default()
            )),
        },
        RuleId::SupportPeriod => {
            let Some(model) = &d.model else {
                return fail("its model is unknown, so is its support period".into());
            };
            match cx.baselines.support_end.get(model) {
                None => fail(format!("no support period is declared for {model}")),
                Some(end) if *end < cx.now => fail(format!("support for {model} ended at {end}")),
                Some(_) => Outcome::Pass,
            }
        }
        RuleId::AttackSurface => {
            let Some(allowed) = cx.baselines.allowed_ports.get(&d.class) else {
                return Outcome::NotApplicable("no port allow-list for its class");
            };
            verdict(
                d.open_ports
                    .iter()
                    .filter(|p| !allowed.contains(p))
                    .map(|p| {
                        Evidence::text(format!("{p} is open, not allowed for class {}", d.class))
                    })
                    .collect(),
            )
        }
        RuleId::ConfigDrift => {
            let Some(golden) = d
                .model
                .as_ref()
                .and_then(|m| cx.baselines.golden_config.get(m))
            else {
                return Outcome::NotApplicable("no golden configuration for its model");
            };
            match d.config_hash {
                None => fail("it reports no configuration hash".into()),
                Some(h) if h != *golden => fail(format!(
                    "configuration {h} differs from the golden {golden}"
                )),
                Some(_) => Outcome::Pass,
            }
        }
        RuleId::Logging => {
            let max = params.max_age_secs.unwrap_or(DEFAULT_LOG_MAX_AGE_SECS);
            let mut fails = Vec::new();
            if !d.logging_enabled {
                fails.push(Evidence::text("security logging is disabled".into()));
            }
            if older_than(d.last_log, cx.now, max) {
                fails.push(Evidence::text(format!(
                    "no security log in the last {max} s"
                )));
            }
            if older_than(d.last_heartbeat, cx.now, max) {
                fails.push(Evidence::text(format!("no heartbeat in the last {max} s")));
            }
            verdict(fails)
        }
        RuleId::BehaviourMonitored => {
            let max = params.max_age_secs.unwrap_or(DEFAULT_MONITOR_MAX_AGE_SECS);
            if older_than(d.last_scored, cx.now, max) {
                fail(format!("its behaviour was not scored in the last {max} s"))
            } else {
                Outcome::Pass
            }
        }
        RuleId::SecureUpdate => match d.update {
            None => fail("its update mechanism is unknown".into()),
            Some(u) => {
                let mut fails = Vec::new();
                if !u.signed {
                    fails.push(Evidence::text("updates are not signature-checked".into()));
                }
                if !u.authenticated_channel {
                    fails.push(Evidence::text(
                        "updates travel over an unauthenticated channel".into(),
                    ));
                }
                verdict(fails)
            }
        },
        RuleId::DataErasure => match d.secure_erase {
            Some(true) => Outcome::Pass,
            Some(false) => fail("it cannot securely erase its data and settings".into()),
            None => fail("secure erasure is not declared".into()),
        },
        RuleId::RevokedCertificateConnected => {
            if d.certificates.is_empty() {
                return Outcome::NotApplicable("it holds no certificate");
            }
            verdict(
                d.certificates
                    .iter()
                    .filter(|c| c.revoked && c.connected)
                    .map(|c| {
                        Evidence::text(format!(
                            "revoked certificate {} still has an open session",
                            c.fingerprint
                        ))
                    })
                    .collect(),
            )
        }
        RuleId::ConflictingClientIds => match d.client_id.as_deref() {
            None => Outcome::NotApplicable("it has no client id"),
            Some(c) if cx.fleet.conflicting_client_ids.contains(c) => {
                fail(format!("client id `{c}` is also used by another device"))
            }
            Some(_) => Outcome::Pass,
        },
        RuleId::OverlyPermissivePolicy => verdict(
            d.permissive_grants
                .iter()
                .map(|g| Evidence::text(format!("its policy grants `{g}`")))
                .collect(),
        ),
    }
}

fn unique_identity(cx: &Context<'_>) -> Outcome {
    let d = cx.device;
    if d.certificates.is_empty() {
        return Outcome::NotApplicable("it holds no certificate");
    }
    let mut fails = Vec::new();
    for c in &d.certificates {
        if cx.fleet.shared_fingerprints.contains(&c.fingerprint) {
            fails.push(Evidence::text(format!(
                "certificate {} is also held by another device",
                c.fingerprint
            )));
        }
        if let Some(k) = c.key
            && cx.fleet.shared_keys.contains(&k)
        {
            fails.push(Evidence::text(format!(
                "key {k} is also held by another device"
            )));
        }
    }
    verdict(fails)
}

fn certificates(cx: &Context<'_>, params: &Params, revocation: bool) -> Outcome {
    let d = cx.device;
    if d.certificates.is_empty() {
        return if revocation {
            fail("it holds no certificate".into())
        } else {
            Outcome::NotApplicable("it holds no certificate")
        };
    }
    let days = params
        .expiry_horizon_days
        .unwrap_or(DEFAULT_EXPIRY_HORIZON_DAYS);
    let horizon = cx.now.plus_micros(i64::from(days) * DAY_MICROS);
    let mut fails = Vec::new();
    for c in &d.certificates {
        if revocation && c.revoked {
            fails.push(Evidence::text(format!(
                "certificate {} is revoked",
                c.fingerprint
            )));
        }
        if c.not_after <= cx.now {
            fails.push(Evidence::text(format!(
                "certificate {} expired at {}",
                c.fingerprint, c.not_after
            )));
        } else if c.not_after <= horizon {
            fails.push(Evidence::text(format!(
                "certificate {} expires at {}, within {days} days",
                c.fingerprint, c.not_after
            )));
        }
    }
    verdict(fails)
}

fn crypto_strength(cx: &Context<'_>, params: &Params) -> Outcome {
    let d = cx.device;
    if d.certificates.is_empty() {
        return Outcome::NotApplicable("it holds no certificate");
    }
    let rsa = params.min_rsa_bits.unwrap_or(DEFAULT_MIN_RSA_BITS);
    let ec = params.min_ec_bits.unwrap_or(DEFAULT_MIN_EC_BITS);
    verdict(
        d.certificates
            .iter()
            .filter_map(|c| {
                let weak = match c.algorithm {
                    KeyAlgorithm::Rsa if c.key_bits < rsa => {
                        format!("RSA-{} (< {rsa})", c.key_bits)
                    }
                    KeyAlgorithm::Ec if c.key_bits < ec => format!("EC-{} (< {ec})", c.key_bits),
                    KeyAlgorithm::Dsa => "DSA (deprecated)".to_owned(),
                    KeyAlgorithm::Other => "an algorithm not known to be strong".to_owned(),
                    _ => return None,
                };
                Some(Evidence::text(format!(
                    "certificate {} has a weak key: {weak}",
                    c.fingerprint
                )))
            })
            .collect(),
    )
}

fn firmware_current(cx: &Context<'_>) -> Outcome {
    let d = cx.device;
    let Some(min) = d
        .model
        .as_ref()
        .and_then(|m| cx.baselines.min_firmware.get(m))
    else {
        return Outcome::NotApplicable("no minimum firmware for its model");
    };
    match &d.firmware {
        None => fail("it reports no firmware version".into()),
        Some(v) if compare_versions(v.as_str(), min.as_str()).is_lt() => {
            fail(format!("firmware {v} is below the minimum {min}"))
        }
        Some(_) => Outcome::Pass,
    }
}

fn firmware_integrity(cx: &Context<'_>) -> Outcome {
    let d = cx.device;
    match d.attestation {
        Attestation::Verified => return Outcome::Pass,
        Attestation::Failed => return fail("attestation of its firmware failed".into()),
        Attestation::None => {}
    }
    let allowed = d
        .model
        .as_ref()
        .and_then(|m| cx.baselines.allowed_images.get(m));
    match (allowed, d.image_digest) {
        (Some(list), Some(i)) if list.contains(&i) => Outcome::Pass,
        (Some(_), Some(i)) => fail(format!("image {i} is not on its model's allow-list")),
        (Some(_), None) => fail("no attestation, and it reports no image digest".into()),
        (None, _) => fail("no attestation, and no image allow-list for its model".into()),
    }
}

fn known_vulnerabilities(cx: &Context<'_>, exploited_only: bool) -> Outcome {
    let mut fails = Vec::new();
    for m in cx.vulns.iter().filter(|m| m.suppressed.is_none()) {
        if exploited_only {
            let Some(k) = m.kev else { continue };
            let first_seen = cx
                .device
                .first_seen
                .get(&k.cve)
                .or_else(|| m.advisory.names().find_map(|n| cx.device.first_seen.get(n)))
                .copied()
                .unwrap_or(cx.now);
            let hours = |h: i64| first_seen.plus_micros(h * 3_600_000_000);
            // The deadlines are in `exploited`; the text stays the same for every device on this firmware.
            fails.push(Evidence {
                text: format!(
                    "{}: known exploited (CISA KEV{}), a CRA Art. 14 reporting trigger",
                    m.summary,
                    if k.ransomware {
                        ", used in ransomware"
                    } else {
                        ""
                    },
                )
                .into(),
                severity: Some(Severity::Critical),
                exploited: Some(Exploited {
                    cve: k.cve.clone(),
                    first_seen,
                    early_warning_due: hours(ART14_EARLY_WARNING_HOURS),
                    notification_due: hours(ART14_NOTIFICATION_HOURS),
                    ransomware: k.ransomware,
                }),
            });
        } else {
            fails.push(Evidence {
                text: m.summary.clone(),
                severity: Some(if m.kev.is_some() {
                    Severity::Critical
                } else {
                    m.advisory.severity
                }),
                exploited: None,
            });
        }
    }
    verdict(fails)
}

/// Why a matched vulnerability is not a finding, in words (for reports of suppressed matches).
pub fn suppression_text(m: &VulnMatch<'_>) -> Option<String> {
    Some(match m.suppressed? {
        Suppression::Vex(s) => format!(
            "{}: {:?} per {:?} VEX{}",
            m.advisory.id,
            s.status,
            s.source,
            s.justification
                .as_deref()
                .map(|j| format!(" ({j})"))
                .unwrap_or_default()
        ),
        Suppression::CsafNotAffected => {
            format!(
                "{}: known not affected per its CSAF advisory",
                m.advisory.id
            )
        }
    })
}
