//! Vouch's policy engine: every access — a device connecting, publishing, subscribing, acting on an OT asset;
//! an operator calling the API — is decided here, by Cedar policies over the live facts of the request.
//!
//! - [`Engine`] validates a policy set against Vouch's schema ([`Engine::schema_text`]), compiles it with an
//!   index that slices the set per request (so a decision costs the same with 10 or 10,000 policies), and
//!   swaps versions atomically while decisions continue.
//! - Policies run in *shadow* mode (evaluated, "would deny" reported, never enforced) or *enforce* mode.
//! - MQTT topics are matched by MQTT's own rules ([`TopicFilter`], §4.7), not by Cedar string patterns: a
//!   topic is made `in` every grant (`Vouch::TopicFilter::"plant/+/telemetry"`) that covers it.
//!
//! Architecture Invariant: pure — no I/O, no clock; time comes in with the request.

mod builtin;
mod engine;
mod grants;
pub mod limits;
mod request;
mod topic;

pub use builtin::{DEFAULTS, PRIVILEGED};
pub use engine::{
    Compiled, Decision, Engine, PolicyErrors, PolicyProblem, PolicySource, PreparedDevice,
    QUARANTINE_GROUP, ShadowOutcome, split_policies, with_candidates,
};
pub use grants::{DEVICE_ID_VAR, GrantFilter, GrantIndex};
pub use limits::PolicyLimit;
pub use request::{
    DeviceAction, DeviceContext, DeviceFacts, DeviceRequest, OperatorRequest, Resource,
    ResourceName,
};
pub use topic::{TopicError, TopicFilter, TopicName, TopicTemplate};
