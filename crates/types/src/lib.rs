//! Vouch's domain vocabulary: the device record and its lifecycle, operators and their roles, time.
//!
//! Everything here is a plain value: no I/O, no clock reads except through [`Clock`], no randomness except
//! where an identifier is minted (`DeviceId::new`). Values that come from outside the process are parsed into
//! these types once, at the edge (`TryFrom<String>`/`FromStr`), so the rest of Vouch can rely on their rules.

mod clock;
mod device;
mod document;
mod id;
mod ident;
mod lifecycle;
mod observe;
mod operator;
mod pki;
mod policy;
mod sighting;
mod standing;
mod text;
mod version;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use device::{Device, DevicePatch, Identifiers, MAX_IPS, NewDevice};
pub use document::{DocumentKind, DocumentRecord, MAX_DOCUMENT_BYTES};
pub use id::{DeviceId, TokenId};
pub use ident::{CertFingerprint, DeviceClass, HardwareSerial, MacAddr};
pub use lifecycle::{DeviceState, IllegalTransition};
pub use observe::{MAX_REMOTES, Observation, PostureReport, TrafficWindow};
pub use operator::{Actor, Permission, Role};
pub use pki::{KeyFamily, RevocationReason, Serial};
pub use policy::{MAX_POLICY_BYTES, PolicyId, PolicyMode, PolicyRecord, TrustBand, TrustScore};
pub use sighting::{
    Bounded, MAX_PEERS, MAX_PROTOCOLS, MAX_RISKS, NetworkRisk, NetworkSighting, OtCommand, Peer,
    Protocol, Side,
};
pub use standing::{QUARANTINE_GROUP, Quarantine};
pub use text::{
    ConsumerId, CredentialUser, DocumentKey, FirmwareVersion, GroupName, Groups, LabelKey,
    LabelValue, Labels, Model, OperatorName, ProtocolName, QUARANTINED_BY_LABEL,
    RESERVED_LABEL_PREFIXES, Reason, TRUST_BAND_LABEL, TRUST_SCORE_LABEL, Vendor, Zone,
    is_invisible,
};
pub use version::compare_versions;

/// Why a value from outside could not become a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {why}")]
pub struct ValidationError {
    /// The kind of value that was rejected, e.g. `MAC address`.
    pub what: &'static str,
    /// What is wrong with it, in words an operator can act on.
    pub why: String,
}

/// Parses `s` as the one of `all` whose `name` it is, or says which names there are.
pub fn parse_named<T: Copy>(
    what: &'static str,
    s: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, ValidationError> {
    all.iter().copied().find(|v| name(*v) == s).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
        ValidationError::new(what, format!("`{s}` is not one of {}", names.join(", ")))
    })
}

impl ValidationError {
    /// Builds an error for the value kind `what`.
    pub fn new(what: &'static str, why: impl Into<String>) -> Self {
        Self {
            what,
            why: why.into(),
        }
    }
}
