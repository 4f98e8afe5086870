//! The trust service's configuration (`[trust]` in vouch.toml): firmware policies per model, which network
//! addresses belong to which zone, and the response playbooks. Checked whole at start: every problem is
//! listed, and a configuration with any is refused.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use vouch_trust::{FirmwareRule, ResponseConfig};

/// Why the trust settings were refused: every problem found.
#[derive(Debug, thiserror::Error)]
#[error("the trust settings are invalid:\n  - {}", .0.join("\n  - "))]
pub struct SettingsError(pub Vec<String>);

/// The trust service's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSettings {
    /// Firmware policy by device model (`[trust.firmware."SIM-CAM-2"]`).
    #[serde(default)]
    pub firmware: BTreeMap<String, FirmwareRule>,
    /// Networks by zone (`[trust.zones] plant-a = ["10.1.0.0/16"]`): a device whose sessions come from
    /// another zone's network is out of its zone.
    #[serde(default)]
    pub zones: BTreeMap<String, Vec<IpNet>>,
    /// The playbooks (`[trust.response]`, `[[trust.response.playbook]]`).
    #[serde(default)]
    pub response: ResponseConfig,
}

impl TrustSettings {
    /// Every problem with the settings; empty when valid.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .response
            .problems()
            .into_iter()
            .map(|p| format!("response: {p}"))
            .collect();
        if self.firmware.len() > 10_000 {
            out.push("firmware: at most 10000 models".into());
        }
        for (model, rule) in &self.firmware {
            if model.is_empty() || model.len() > 128 {
                out.push(format!(
                    "firmware: the model name {model:?} must be 1-128 characters"
                ));
            }
            if rule.minimum.is_none() && rule.vulnerable.is_empty() {
                out.push(format!(
                    "firmware.{model:?}: give a minimum or vulnerable versions"
                ));
            }
            if rule.vulnerable.len() > 1000 {
                out.push(format!(
                    "firmware.{model:?}: at most 1000 vulnerable versions"
                ));
            }
        }
        let mut seen: Vec<(IpNet, &str)> = Vec::new();
        for (zone, nets) in &self.zones {
            if zone.is_empty() || zone.len() > 128 {
                out.push(format!(
                    "zones: the zone name {zone:?} must be 1-128 characters"
                ));
            }
            if nets.is_empty() {
                out.push(format!("zones.{zone}: list at least one network"));
            }
            for n in nets {
                if let Some((_, other)) = seen
                    .iter()
                    .find(|(m, z)| *z != zone && (m.contains(n) || n.contains(m)))
                {
                    out.push(format!(
                        "zones.{zone}: {n} overlaps a network of zone {other}"
                    ));
                }
                seen.push((*n, zone));
            }
        }
        out
    }

    /// The settings if they are valid.
    pub fn check(self) -> Result<Self, SettingsError> {
        let p = self.problems();
        if p.is_empty() {
            Ok(self)
        } else {
            Err(SettingsError(p))
        }
    }

    /// The zone whose network holds `ip` (the most specific one).
    pub fn zone_of(&self, ip: IpAddr) -> Option<&str> {
        self.zones
            .iter()
            .flat_map(|(z, nets)| nets.iter().map(move |n| (n, z)))
            .filter(|(n, _)| n.contains(&ip))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(_, z)| z.as_str())
    }
}
