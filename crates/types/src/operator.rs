//! Who acts on Vouch: operators with roles, the system itself, and the local command line.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{TokenId, ValidationError};

/// An operator's role: the permissions it grants are fixed here, least privilege first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, including managing operators' tokens.
    Admin,
    /// Day-to-day fleet work: register, update and move devices through their lifecycle.
    Operator,
    /// Read-only access to the fleet and the audit trail.
    Auditor,
}

/// Something an API route or command needs to be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Issue enrollment tokens and certificates; revoke, hold and release certificates.
    CertificatesManage,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Operator, Role::Auditor];

    /// The role's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
        }
    }

    /// Whether this role grants `p`.
    pub const fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Self::Admin => true,
            Self::Operator => matches!(
                p,
                DevicesRead | DevicesWrite | MetricsRead | CertificatesManage
            ),
            Self::Auditor => matches!(p, DevicesRead | AuditRead | MetricsRead),
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
        if rest.is_empty() || rest.len() > 128 || rest.chars().any(char::is_control) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_privilege() {
        assert!(Role::Admin.allows(Permission::TokensManage));
        assert!(!Role::Operator.allows(Permission::TokensManage));
        assert!(!Role::Operator.allows(Permission::AuditRead));
        assert!(!Role::Auditor.allows(Permission::DevicesWrite));
        assert!(Role::Auditor.allows(Permission::AuditRead));
    }
}
