//! MQTT 3.1.1 and 5.0 as Vouch's gateway needs them: where each packet ends in a byte stream, and the few
//! fields it authorizes — CONNECT's protocol level and client id, PUBLISH's topic and QoS, SUBSCRIBE's
//! filters — plus the answers it sends when it refuses something (CONNACK, SUBACK, PUBACK, DISCONNECT with
//! the reason codes each version allows).
//!
//! Hand-written rather than taken from a crate: the gateway forwards the client's bytes unchanged and must
//! read only what it decides on, bound every length before buffering, and refuse malformed input with a
//! reason. General-purpose codecs decode (and allocate) whole packets and re-encode them. Each parser here is
//! small and fuzzed (`fuzz/fuzz_targets/mqtt.rs`).
//!
//! Architecture Invariant: pure — no I/O; bytes in, typed views or typed errors out, never a panic.

mod frame;
mod packet;
mod reply;
mod rewrite;

pub use frame::{FrameError, Framer, MAX_REMAINING_LENGTH, PacketKind, RawPacket};
pub use packet::{Connect, Packet, ParseError, Protocol, Publish, Subscribe, parse};
pub use reply::{ReasonCode, connack, disconnect, frame, puback, publish_v311, suback};
pub use rewrite::{ack, packet_id, subscribe_subset, widen_suback};
