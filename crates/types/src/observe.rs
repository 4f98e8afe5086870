//! What enforcement points see devices do, as the trust engine reads it: typed observations, one per device
//! per time window, rather than a stream of raw packets.

use serde::{Deserialize, Serialize};

use crate::{DeviceId, Timestamp};

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
    /// Sessions open at the end of the window (more than one: the same identity from two places).
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
}
