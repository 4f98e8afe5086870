//! What enforcement points see devices do, as the trust engine reads it: typed observations, one per device
//! per time window, rather than a stream of raw packets; and what passive discovery saw them do
//! ([`NetworkSighting`]).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{DeviceId, FirmwareVersion, NetworkSighting, Timestamp};

/// Source addresses kept per window: enough to see a device in two places, bounded against a flood.
pub const MAX_REMOTES: usize = 8;

/// A device's MQTT traffic through one gateway during one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficWindow {
    /// Whose traffic.
    pub device: DeviceId,
    /// Start of the window.
    pub start: Timestamp,
    /// End of the window.
    pub end: Timestamp,
    /// Sessions opened.
    pub connects: u32,
    /// Sessions closed (by either side).
    pub disconnects: u32,
    /// Sessions open at the end of the window, or the most distinct addresses the device was live from at
    /// once during it if more (more than one: the same identity from two places).
    pub sessions: u32,
    /// Requests the policy refused (CONNECT, PUBLISH, SUBSCRIBE filters, deliveries).
    pub auth_failures: u32,
    /// PUBLISH packets from the device that reached the broker.
    pub msgs_in: u64,
    /// PUBLISH packets delivered to the device.
    pub msgs_out: u64,
    /// Bytes from the device forwarded to the broker.
    pub bytes_in: u64,
    /// Bytes delivered to the device.
    pub bytes_out: u64,
    /// Distinct topics it published to.
    pub distinct_topics: u32,
    /// Of those, topics this gateway never saw it publish to before.
    pub new_topics: u32,
    /// The distinct addresses its sessions came from (at most [`MAX_REMOTES`]): where it is on the network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<IpAddr>,
}

impl TrafficWindow {
    /// Messages published per second over the window.
    pub fn publish_rate(&self) -> f64 {
        let micros = self.end.unix_micros() - self.start.unix_micros();
        if micros > 0 {
            self.msgs_in as f64 * 1e6 / micros as f64
        } else {
            0.0
        }
    }
}

/// Something an enforcement point observed about a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    /// Traffic through a gateway over one window.
    Traffic(TrafficWindow),
    /// What a device reported about itself (or an operator's tooling on its behalf).
    Posture(PostureReport),
    /// What passive discovery saw a registry device do over a capture.
    Network(NetworkSighting),
}

/// A device's posture report, checked at the edge (API): what it runs and how it is configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostureReport {
    /// Whose posture.
    pub device: DeviceId,
    /// When it was received.
    pub at: Timestamp,
    /// The firmware version it runs, if reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareVersion>,
    /// SHA-256 of its configuration, if reported (64 lower-case hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// The ports it listens on, ascending, without duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_ports: Vec<u16>,
    /// Whether its attestation (secure boot measurement, TPM quote) was verified, if one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation_ok: Option<bool>,
}
