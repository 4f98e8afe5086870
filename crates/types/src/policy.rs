//! Policies as the store keeps them (id, version, mode, author), and the trust score the policy context
//! carries.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Actor, Timestamp, ValidationError};

/// A policy's stable name, chosen by its author (`own-topics`, `plant.telemetry-v2`).
///
/// Lowercase letters, digits, `.`, `_`, `-`; at most 64 bytes. Names starting `vouch.` belong to Vouch's own
/// built-in policies and cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PolicyId(String);

impl PolicyId {
    /// The longest id accepted, in bytes.
    pub const MAX_LEN: usize = 64;
    /// The prefix of built-in policies' ids.
    pub const RESERVED_PREFIX: &'static str = "vouch.";

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this names one of Vouch's built-in policies.
    pub fn is_builtin(&self) -> bool {
        self.0.starts_with(Self::RESERVED_PREFIX)
    }

    /// A built-in policy's id (`vouch.` + `name`).
    pub fn builtin(name: &str) -> Result<Self, ValidationError> {
        Self::check(&format!("{}{name}", Self::RESERVED_PREFIX))
    }

    fn check(s: &str) -> Result<Self, ValidationError> {
        let ok_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "policy id",
                format!("must be 1 to {} bytes", Self::MAX_LEN),
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) || !s.chars().all(ok_char) {
            return Err(ValidationError::new(
                "policy id",
                format!("`{s}` must be lowercase letters, digits, `.`, `_` or `-`"),
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl FromStr for PolicyId {
    type Err = ValidationError;
    /// Parses an id an operator may store: the `vouch.` prefix is refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = Self::check(s)?;
        if id.is_builtin() {
            return Err(ValidationError::new(
                "policy id",
                format!("`{s}`: ids starting `vouch.` are reserved for built-in policies"),
            ));
        }
        Ok(id)
    }
}

impl TryFrom<String> for PolicyId {
    type Error = ValidationError;
    /// Reads an id back (built-in ids included, as the event log and decisions name them).
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::check(&s)
    }
}

impl From<PolicyId> for String {
    fn from(v: PolicyId) -> String {
        v.0
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a policy's decisions are applied or only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyMode {
    /// Evaluated and logged ("would deny", "would allow") but never changes a decision: adoption without
    /// breaking anything on day one.
    Shadow,
    /// Part of every decision.
    Enforce,
}

impl PolicyMode {
    /// Every mode.
    pub const ALL: [PolicyMode; 2] = [PolicyMode::Shadow, PolicyMode::Enforce];

    /// The mode's name as stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Shadow => "shadow",
            Self::Enforce => "enforce",
        }
    }
}

impl fmt::Display for PolicyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyMode {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::parse_named("policy mode", s, &Self::ALL, Self::as_str)
    }
}

/// The longest policy text accepted, in bytes: policies are rules, not data.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// One version of one stored policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Its name.
    pub id: PolicyId,
    /// 1 for the first version, then one more per change (text, mode or removal).
    pub version: u32,
    /// The Cedar source of exactly one policy.
    pub text: String,
    /// Shadow or enforce.
    pub mode: PolicyMode,
    /// Whether this version removed the policy (its history stays).
    pub removed: bool,
    /// Who wrote this version.
    pub author: Actor,
    /// When this version was written.
    pub at: Timestamp,
}

/// A device's trust: 0 (none) to 100 (full), as the trust engine computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct TrustScore(u8);

impl TrustScore {
    /// The highest score.
    pub const MAX: TrustScore = TrustScore(100);

    /// A score, if within 0–100.
    pub fn new(v: u8) -> Result<Self, ValidationError> {
        if v > 100 {
            return Err(ValidationError::new(
                "trust score",
                format!("{v} is above 100"),
            ));
        }
        Ok(Self(v))
    }

    /// The score as a number.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The band this score falls in.
    pub const fn band(self) -> TrustBand {
        match self.0 {
            70.. => TrustBand::High,
            40..=69 => TrustBand::Medium,
            20..=39 => TrustBand::Low,
            _ => TrustBand::Untrusted,
        }
    }
}

impl TryFrom<u8> for TrustScore {
    type Error = ValidationError;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl From<TrustScore> for u8 {
    fn from(v: TrustScore) -> u8 {
        v.0
    }
}

impl fmt::Display for TrustScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Coarse trust bands that policies and playbooks name: high ≥ 70, medium 40–69, low 20–39, untrusted < 20.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustBand {
    /// Below 20.
    Untrusted,
    /// 20–39.
    Low,
    /// 40–69.
    Medium,
    /// 70 and above.
    High,
}

impl TrustBand {
    /// The band's name as policies read it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Untrusted => "untrusted",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_ids() {
        assert!("own-topics".parse::<PolicyId>().is_ok());
        assert!("vouch.mine".parse::<PolicyId>().is_err());
        assert!(
            PolicyId::try_from("vouch.mine".to_owned())
                .unwrap()
                .is_builtin()
        );
        for bad in ["", "Own", "-x", "a b", &"a".repeat(65)] {
            assert!(bad.parse::<PolicyId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn trust_bands() {
        let band = |v| TrustScore::new(v).unwrap().band();
        assert_eq!(band(100), TrustBand::High);
        assert_eq!(band(70), TrustBand::High);
        assert_eq!(band(69), TrustBand::Medium);
        assert_eq!(band(39), TrustBand::Low);
        assert_eq!(band(19), TrustBand::Untrusted);
        assert!(TrustScore::new(101).is_err());
    }
}
