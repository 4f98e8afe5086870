//! Vouch's policy engine. This first part decides MQTT topics: which topic names are valid, which filters are
//! valid, and which names a filter matches, exactly as MQTT 3.1.1 (§4.7) and 5.0 (§4.7) define them, including
//! the rule that wildcards at the first level never match `$`-topics (`$SYS/…`). Least-privilege templates
//! (`devices/${device.id}/#`) expand to a filter for one device.
//!
//! Architecture Invariant: pure — no I/O, no clock.

mod topic;

pub use topic::{TopicError, TopicFilter, TopicName, TopicTemplate};
