//! The behaviour model of a simulated IoT fleet, with attack scenarios and their ground truth.
//!
//! A [`Fleet`] is made from a [`FleetConfig`]: devices of four classes (sensors, cameras, PLCs, gateways) in
//! three zones, and attacks placed on distinct devices after a warm-up. [`Fleet::plan`] says what a device does
//! in a window ([`WindowPlan`]: publishes, refused requests, reconnects, a second session, where it connects
//! from, the firmware it reports); [`observe`] says what the gateway would observe of it ([`TrafficWindow`]).
//! [`Fleet::recorded`] is the whole run as recorded windows (JSON Lines for `vouch trust replay`).
//! `vouch bench detect` feeds those observations to the trust engine and to peer detectors; `vouch sim` plays
//! the same plans over real MQTT through the gateway.
//!
//! Pure: no I/O, no clock. Every choice is a function of the seed and of (device, window), so any window can
//! be recomputed alone, in any order, and the same seed gives the same run.

mod fleet;
mod observe;
mod plan;
mod record;
mod rng;
mod scenario;

pub use fleet::{
    Attack, FirmwarePolicy, Fleet, FleetConfig, REST_AFTER_ATTACK, RUN_START, SimDevice, ZONES,
    device_addr, firmware_policies, firmware_policy, zone_network,
};
pub use observe::{Seen, observe, publish_bytes};
pub use plan::{Publish, WindowPlan};
pub use scenario::Scenario;

#[cfg(test)]
mod tests;
