//! Who acts on Vouch: operators with roles, the system itself, and the local command line.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{TokenId, ValidationError};

/// An operator's role. What each may do is decided by Vouch's built-in Cedar policies (`vouch-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, including managing operators' tokens and policies.
    Admin,
    /// Day-to-day fleet work: register, update and move devices through their lifecycle; certificates.
    Operator,
    /// Read-only access to the fleet, the policies and the audit trail.
    Auditor,
    /// A policy enforcement point (a Vouch gateway, an EMQX cluster): asks for decisions, nothing else.
    Gateway,
}

/// Something an API route or command needs to be allowed to do: an operator action in the Cedar schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// Read device records and their events.
    DevicesRead,
    /// Create, update and transition devices.
    DevicesWrite,
    /// Read and verify the whole audit log.
    AuditRead,
    /// Create, list and revoke operators' API tokens.
    TokensManage,
    /// Scrape Prometheus metrics.
    MetricsRead,
    /// Issue enrollment tokens; list certificates.
    CertificatesManage,
    /// Revoke, hold and release certificates (privileged: needs a second factor).
    CertificatesRevoke,
    /// Sign a certificate from a request on a device's behalf (privileged: a CA operation).
    CaOperate,
    /// Read policies and their history.
    PoliciesRead,
    /// Add, change and remove policies in shadow mode.
    PoliciesWrite,
    /// Put a policy into enforce mode (privileged).
    PoliciesEnforce,
    /// Ask for access decisions (policy enforcement points).
    DecisionsRequest,
    /// Enroll one's own second factor.
    MfaEnroll,
    /// Unlock another token's second factor after failed codes and let its holder enroll a new one
    /// (privileged).
    MfaReset,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 14] = [
        Self::DevicesRead,
        Self::DevicesWrite,
        Self::AuditRead,
        Self::TokensManage,
        Self::MetricsRead,
        Self::CertificatesManage,
        Self::CertificatesRevoke,
        Self::CaOperate,
        Self::PoliciesRead,
        Self::PoliciesWrite,
        Self::PoliciesEnforce,
        Self::DecisionsRequest,
        Self::MfaEnroll,
        Self::MfaReset,
    ];

    /// The Cedar action that stands for it (`Vouch::Action::"devices.read"`).
    pub const fn action(self) -> &'static str {
        match self {
            Self::DevicesRead => "devices.read",
            Self::DevicesWrite => "devices.write",
            Self::AuditRead => "audit.read",
            Self::TokensManage => "tokens.manage",
            Self::MetricsRead => "metrics.read",
            Self::CertificatesManage => "certificates.manage",
            Self::CertificatesRevoke => "certificates.revoke",
            Self::CaOperate => "ca.operate",
            Self::PoliciesRead => "policies.read",
            Self::PoliciesWrite => "policies.write",
            Self::PoliciesEnforce => "policies.enforce",
            Self::DecisionsRequest => "decisions.request",
            Self::MfaEnroll => "mfa.enroll",
            Self::MfaReset => "mfa.reset",
        }
    }

    /// Whether the action needs a second factor shown with the request (the built-in `vouch.mfa.privileged`
    /// policy forbids it otherwise).
    pub const fn is_privileged(self) -> bool {
        matches!(
            self,
            Self::CertificatesRevoke | Self::CaOperate | Self::PoliciesEnforce | Self::MfaReset
        )
    }

    /// Whether a route needing this permission reads a one-time code sent with the request: the privileged
    /// ones, policy writes (which may put a policy into enforce mode) and enrollment (replacing a factor
    /// needs the current one). Every other route ignores the header, so it is no oracle for guessing codes.
    pub const fn reads_second_factor(self) -> bool {
        self.is_privileged() || matches!(self, Self::PoliciesWrite | Self::MfaEnroll)
    }
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Auditor, Role::Gateway];

    /// The role's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
            Self::Gateway => "gateway",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::parse_named("role", s, &Self::ALL, Self::as_str)
    }
}

/// Who made a change, as the event log records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// An operator through the API, named by the token they presented (the token record names the operator).
    Operator(TokenId),
    /// A Vouch component acting on its own (a playbook, discovery, enrollment).
    System(String),
    /// Someone on the server's host using the command line against the store directly.
    Cli(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operator(id) => write!(f, "operator:{id}"),
            Self::System(c) => write!(f, "system:{c}"),
            Self::Cli(user) => write!(f, "cli:{user}"),
        }
    }
}

impl FromStr for Actor {
    type Err = ValidationError;
    /// Parses the form [`Display`](fmt::Display) writes, as read back from the event log.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ValidationError::new(
                "actor",
                format!("`{s}` is not operator:ID, system:NAME or cli:USER"),
            )
        };
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        if rest.is_empty()
            || rest.len() > 128
            || rest
                .chars()
                .any(|c| c.is_control() || crate::is_invisible(c))
        {
            return Err(bad());
        }
        match kind {
            "operator" => Ok(Self::Operator(rest.parse()?)),
            "system" => Ok(Self::System(rest.to_owned())),
            "cli" => Ok(Self::Cli(rest.to_owned())),
            _ => Err(bad()),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_name_distinct_actions() {
        // What each role may do is decided by the policy engine's built-in policies (tested there).
        let names: std::collections::BTreeSet<&str> =
            Permission::ALL.iter().map(|p| p.action()).collect();
        assert_eq!(names.len(), Permission::ALL.len());
        assert_eq!("gateway".parse::<Role>(), Ok(Role::Gateway));
    }
}
