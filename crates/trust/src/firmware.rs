//! Firmware currency: a device model's minimum supported version and its known-vulnerable versions, and
//! how a reported version compares with them.
//!
//! Versions are compared by their numeric components (`vouch_types::compare_versions`, which compliance
//! shares): "V3.2.6" < "3.10".

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::score::FirmwareState;

/// One model's firmware policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareRule {
    /// The lowest supported version, if the vendor names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<String>,
    /// Versions with a known vulnerability (exact matches, compared numerically).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vulnerable: Vec<String>,
}

impl FirmwareRule {
    /// The state of `version` under this rule.
    pub fn state(&self, version: Option<&str>) -> FirmwareState {
        let Some(v) = version else {
            return FirmwareState::Unknown;
        };
        if self
            .vulnerable
            .iter()
            .any(|x| compare(x, v) == Ordering::Equal)
        {
            FirmwareState::Vulnerable
        } else if self
            .minimum
            .as_deref()
            .is_some_and(|m| compare(v, m) == Ordering::Less)
        {
            FirmwareState::Unsupported
        } else {
            FirmwareState::Current
        }
    }
}

/// Compares two versions by their numeric components (the shared comparison, kept here under its old name).
pub use vouch_types::compare_versions as compare;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_their_numbers() {
        assert_eq!(compare("V3.2.6", "3.10"), Ordering::Less);
        assert_eq!(compare("4.03", "4.3.0"), Ordering::Equal);
        assert_eq!(compare("2.1.0-rc1", "2.1.0"), Ordering::Greater);
        assert_eq!(compare("", "0"), Ordering::Equal);
        let rule = FirmwareRule {
            minimum: Some("2.0".into()),
            vulnerable: vec!["1.4.2".into(), "2.0.1".into()],
        };
        assert_eq!(rule.state(Some("2.1.0")), FirmwareState::Current);
        assert_eq!(rule.state(Some("2.0.1")), FirmwareState::Vulnerable);
        assert_eq!(rule.state(Some("1.4.2")), FirmwareState::Vulnerable);
        assert_eq!(rule.state(Some("1.9")), FirmwareState::Unsupported);
        assert_eq!(rule.state(None), FirmwareState::Unknown);
    }
}
