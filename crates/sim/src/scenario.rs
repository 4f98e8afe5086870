//! The attack scenarios the simulator can play, each with the traffic signature it leaves.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use vouch_types::ValidationError;

/// An attack on one device over consecutive windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Mirai-like: connection churn, wildcard subscriptions and publishes into other devices' topics.
    Scan,
    /// Bulk upload of data on a topic of its own, 20–100× its usual byte volume.
    Exfiltration,
    /// Dozens of never-used topics probed in its own namespace, and some outside it.
    TopicEnumeration,
    /// Repeated CONNECT attempts the gateway refuses.
    CredentialStuffing,
    /// Firmware rolled back to a known-vulnerable version; traffic unchanged.
    FirmwareDowngrade,
    /// The same identity connected from a second place at once.
    Clone,
    /// The device connects from another zone than its own.
    Location,
}

impl Scenario {
    /// Every scenario, in a stable order.
    pub const ALL: [Scenario; 7] = [
        Self::Scan,
        Self::Exfiltration,
        Self::TopicEnumeration,
        Self::CredentialStuffing,
        Self::FirmwareDowngrade,
        Self::Clone,
        Self::Location,
    ];

    /// The scenario's name on the command line and in reports (`topic-enumeration`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Scan => "scan",
            Self::Exfiltration => "exfiltration",
            Self::TopicEnumeration => "topic-enumeration",
            Self::CredentialStuffing => "credential-stuffing",
            Self::FirmwareDowngrade => "firmware-downgrade",
            Self::Clone => "clone",
            Self::Location => "location",
        }
    }

    /// One line for people: what the scenario plays.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Scan => "Mirai-like scanning and connection bursts",
            Self::Exfiltration => "bulk upload of 20-100x its usual bytes on a topic of its own",
            Self::TopicEnumeration => "30-80 never-used topics probed, some outside its namespace",
            Self::CredentialStuffing => "20-100 refused CONNECT attempts per window",
            Self::FirmwareDowngrade => "firmware rolled back to a known-vulnerable version",
            Self::Clone => "the same identity connected from a second place at once",
            Self::Location => "connects from another zone than its own",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scenario {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        vouch_types::parse_named("scenario", s, &Self::ALL, Self::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for s in Scenario::ALL {
            assert_eq!(s.as_str().parse::<Scenario>().ok(), Some(s));
            assert_eq!(s.to_string(), s.as_str());
            assert!(!s.describe().is_empty());
        }
        let err = "ddos".parse::<Scenario>().err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("credential-stuffing")),
            "{err:?}"
        );
        assert_eq!(
            serde_json::to_string(&Scenario::TopicEnumeration)
                .ok()
                .as_deref(),
            Some("\"topic-enumeration\"")
        );
    }
}
