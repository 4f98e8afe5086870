//! Vouch's built-in policies, always enforced and never stored: what each operator role may do, the second
//! factor for privileged actions, and that a device outside the active lifecycle states may do nothing.
//! Also the least-privilege defaults a new installation starts with (stored, so operators may change them).

use vouch_types::{Permission, PolicyId, PolicyMode, Role};

use crate::engine::PolicySource;

/// Operator actions each role is granted (beyond `admin`, which has all).
const OPERATOR: &[&str] = &[
    "devices.read",
    "devices.write",
    "metrics.read",
    "certificates.manage",
    "certificates.revoke",
    "policies.read",
    "mfa.enroll",
];
const AUDITOR: &[&str] = &[
    "devices.read",
    "audit.read",
    "metrics.read",
    "policies.read",
    "mfa.enroll",
];
const GATEWAY: &[&str] = &["decisions.request"];
/// Actions that need a second factor shown with the request: [`Permission::is_privileged`].
pub const PRIVILEGED: &[&str] = &privileged();

const fn privileged() -> [&'static str; 4] {
    let mut out = [""; 4];
    let (mut i, mut n) = (0, 0);
    while i < Permission::ALL.len() {
        if Permission::ALL[i].is_privileged() {
            out[n] = Permission::ALL[i].action();
            n += 1;
        }
        i += 1;
    }
    out
}

fn action_list(actions: &[&str]) -> String {
    actions
        .iter()
        .map(|a| format!("Vouch::Action::\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn role_policy(role: Role, actions: &[&str]) -> (String, String) {
    let name = format!("roles.{}", role.as_str());
    let text = format!(
        "permit(principal in Vouch::Role::\"{}\", action in [{}], resource is Vouch::Fleet);",
        role.as_str(),
        action_list(actions)
    );
    (name, text)
}

/// The built-in policies.
pub fn policies() -> Vec<PolicySource> {
    let mut out = vec![
        (
            "roles.admin".to_owned(),
            "permit(principal in Vouch::Role::\"admin\", action, resource is Vouch::Fleet);"
                .to_owned(),
        ),
        role_policy(Role::Operator, OPERATOR),
        role_policy(Role::Auditor, AUDITOR),
        role_policy(Role::Gateway, GATEWAY),
        (
            "mfa.privileged".to_owned(),
            format!(
                "forbid(principal is Vouch::Operator, action in [{}], resource) unless {{ context.mfa }};",
                action_list(PRIVILEGED)
            ),
        ),
        (
            "devices.lifecycle".to_owned(),
            "forbid(principal is Vouch::Device, action, resource) \
             unless { principal.state == \"active\" || principal.state == \"restricted\" };"
                .to_owned(),
        ),
    ];
    out.drain(..)
        .filter_map(|(name, text)| {
            Some(PolicySource {
                id: PolicyId::builtin(&name).ok()?,
                text,
                mode: PolicyMode::Enforce,
            })
        })
        .collect()
}

/// The policies a new installation starts with, in enforce mode: a device may connect, publish and subscribe
/// under its own tree `devices/<its id>/…` and nowhere else; a quarantined device only to its update topics.
pub const DEFAULTS: &str = r#"@id("device-connect")
permit(principal is Vouch::Device, action == Vouch::Action::"connect", resource);

@id("own-topics")
permit(
  principal is Vouch::Device,
  action in [Vouch::Action::"publish", Vouch::Action::"subscribe"],
  resource in Vouch::TopicFilter::"devices/${device.id}/#"
);

@id("quarantine-update-only")
forbid(
  principal in Vouch::DeviceGroup::"quarantine",
  action in [Vouch::Action::"publish", Vouch::Action::"subscribe"],
  resource
) unless { resource in Vouch::TopicFilter::"devices/${device.id}/update/#" };
"#;

#[cfg(test)]
mod tests {
    /// The Cedar text cannot name a constant: it must spell the one the engine and the playbooks use.
    #[test]
    fn the_default_quarantine_policy_names_the_quarantine_group() {
        let group = format!("Vouch::DeviceGroup::\"{}\"", vouch_types::QUARANTINE_GROUP);
        assert!(super::DEFAULTS.contains(&group), "{group}");
    }
}
