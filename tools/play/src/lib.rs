//! `vouch sim` and `vouch demo`, outside the binary: the fleet player (`sim`), which enrolls simulated
//! devices over EST, connects them through the gateway and plays their behaviour and attacks while following
//! the event log, and the demo (`demo`), which makes a throw-away deployment by running the `vouch` binary
//! itself (`ca init`, `serve` with its gateway, a Mosquitto of its own) and plays a fleet against it.
//!
//! The binary passes in what only it knows (the configured store and listeners, for `vouch sim`); nothing
//! here reads a configuration file.

pub mod demo;
pub mod sim;
