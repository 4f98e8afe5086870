//! The device lifecycle: which state a device is in and which moves between states are legal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Where a device is in its life with Vouch.
///
/// ```text
/// discovered ──▶ onboarding ──▶ active ◀──▶ restricted
///      │             │            ▲  │          │
///      │             │            │  ▼          │
///      │             │          suspended ◀─────┘
///      └─────────────┴──────────────┴──────▶ retired (final)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceState {
    /// Seen on the network (or registered) but holds no Vouch identity.
    Discovered,
    /// Approved for enrollment; waiting for the device to enroll.
    Onboarding,
    /// Holds a valid identity and acts under policy.
    Active,
    /// Quarantined: identity kept, access narrowed to what the quarantine policy allows.
    Restricted,
    /// Identity suspended (e.g. certificate revoked or held): no access.
    Suspended,
    /// Decommissioned. Final: the record stays for the audit trail.
    Retired,
}

impl DeviceState {
    /// Every state, in lifecycle order.
    pub const ALL: [DeviceState; 6] = [
        Self::Discovered,
        Self::Onboarding,
        Self::Active,
        Self::Restricted,
        Self::Suspended,
        Self::Retired,
    ];

    /// The state's name as stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Discovered => "discovered",
            Self::Onboarding => "onboarding",
            Self::Active => "active",
            Self::Restricted => "restricted",
            Self::Suspended => "suspended",
            Self::Retired => "retired",
        }
    }

    /// Whether a device in this state is managed: it has been given a Vouch identity and Vouch governs it.
    ///
    /// This is the only definition of "managed": there is no flag to fall out of step with the state.
    pub const fn is_managed(self) -> bool {
        matches!(self, Self::Active | Self::Restricted | Self::Suspended)
    }

    /// Whether a new device record may start in this state.
    pub const fn is_initial(self) -> bool {
        matches!(self, Self::Discovered | Self::Onboarding)
    }

    /// The states this one may move to.
    pub const fn successors(self) -> &'static [DeviceState] {
        use DeviceState::*;
        match self {
            Discovered => &[Onboarding, Retired],
            // Back to discovered when an onboarding is abandoned (token expired, operator cancelled).
            Onboarding => &[Active, Discovered, Retired],
            Active => &[Restricted, Suspended, Retired],
            Restricted => &[Active, Suspended, Retired],
            // Reinstated directly, or into quarantine first.
            Suspended => &[Active, Restricted, Retired],
            Retired => &[],
        }
    }

    /// Checks the move `self → to`.
    pub fn check_transition(self, to: DeviceState) -> Result<(), IllegalTransition> {
        if self.successors().contains(&to) {
            Ok(())
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceState {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::parse_named("device state", s, &Self::ALL, Self::as_str)
    }
}

/// A lifecycle move that the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a device cannot go from {from} to {to}{}", allowed(*from))]
pub struct IllegalTransition {
    /// The state the device is in.
    pub from: DeviceState,
    /// The state that was asked for.
    pub to: DeviceState,
}

fn allowed(from: DeviceState) -> String {
    let next = from.successors();
    if next.is_empty() {
        format!(" ({from} is final)")
    } else {
        let names: Vec<&str> = next.iter().map(|s| s.as_str()).collect();
        format!(" (from {from} it may go to: {})", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_follows_from_state() {
        let managed: Vec<_> = DeviceState::ALL
            .into_iter()
            .filter(|s| s.is_managed())
            .collect();
        assert_eq!(
            managed,
            [
                DeviceState::Active,
                DeviceState::Restricted,
                DeviceState::Suspended
            ]
        );
    }

    #[test]
    fn the_documented_path_is_legal() {
        use DeviceState::*;
        for (a, b) in [
            (Discovered, Onboarding),
            (Onboarding, Active),
            (Active, Restricted),
            (Restricted, Suspended),
            (Suspended, Retired),
        ] {
            assert!(a.check_transition(b).is_ok(), "{a} -> {b}");
        }
    }

    #[test]
    fn illegal_moves_are_typed_errors() {
        use DeviceState::*;
        let e = Discovered.check_transition(Active).unwrap_err();
        assert_eq!(
            e,
            IllegalTransition {
                from: Discovered,
                to: Active
            }
        );
        assert!(
            e.to_string().contains("may go to: onboarding, retired"),
            "{e}"
        );
        assert!(
            Retired
                .check_transition(Active)
                .unwrap_err()
                .to_string()
                .contains("final")
        );
        for s in DeviceState::ALL {
            assert!(
                s.check_transition(s).is_err(),
                "{s} -> {s} must not be a transition"
            );
            assert!(Retired.check_transition(s).is_err());
        }
    }
}
