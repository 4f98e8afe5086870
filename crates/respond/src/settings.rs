//! The trust service's configuration (`[trust]` in vouch.toml): firmware policies per model, which network
//! addresses belong to which zone, how fast behaviour penalties fade (`half_life_secs`), and the response
//! playbooks. Checked whole at start: every problem is
//! listed, and a configuration with any is refused.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use vouch_trust::{
    DEFAULT_HALF_LIFE_SECS, FirmwareRule, HalfLife, Responder, ResponseConfig, TrustEngine,
};

use crate::judge::Judge;

/// Why the trust settings were refused: every problem found.
#[derive(Debug, thiserror::Error)]
#[error("the trust settings are invalid:\n  - {}", .0.join("\n  - "))]
pub struct SettingsError(pub Vec<String>);

/// The trust service's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSettings {
    /// Firmware policy by device model (`[trust.firmware."SIM-CAM-2"]`).
    #[serde(default)]
    pub firmware: BTreeMap<String, FirmwareRule>,
    /// Networks by zone (`[trust.zones] plant-a = ["10.1.0.0/16"]`): a device whose sessions come from
    /// another zone's network is out of its zone.
    #[serde(default)]
    pub zones: BTreeMap<String, Vec<IpNet>>,
    /// Seconds after which a behaviour penalty costs half its points (`half_life_secs`, default 600): an
    /// anomaly lowers the score at once and its cost fades over several half-lives.
    #[serde(default = "default_half_life")]
    pub half_life_secs: u64,
    /// The playbooks (`[trust.response]`, `[[trust.response.playbook]]`).
    #[serde(default)]
    pub response: ResponseConfig,
}

fn default_half_life() -> u64 {
    DEFAULT_HALF_LIFE_SECS
}

impl Default for TrustSettings {
    fn default() -> Self {
        Self {
            firmware: BTreeMap::new(),
            zones: BTreeMap::new(),
            half_life_secs: default_half_life(),
            response: ResponseConfig::default(),
        }
    }
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
        if !(1..=7 * 86_400).contains(&self.half_life_secs) {
            out.push(format!(
                "half_life_secs must be between 1 and 604800 (7 days), got {}",
                self.half_life_secs
            ));
        }
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

    /// The models these settings ask for: a fresh engine with the configured half-life, and the playbooks.
    /// The live service and the offline replay both start from here.
    pub(crate) fn judge(&self) -> Judge {
        Judge {
            engine: TrustEngine::default().with_half_life(HalfLife::from_secs(self.half_life_secs)),
            responder: Responder::new(self.response.clone()),
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
