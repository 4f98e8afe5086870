//! Trust: what a device's behaviour and state say about whether it still deserves access.
//!
//! `features` turns an observation window into a fixed vector; `baseline` learns each device's normal online,
//! without labels, and names the features that depart from it and by how far; `hst` is the multivariate
//! streaming detector (Half-Space Trees) kept per device class for cold starts; `score` combines identity,
//! firmware, location, behaviour, compliance and attestation into the 0–100 trust score with its reasons;
//! `memory` remembers behaviour penalties and lets them decay over a half-life (time from the windows);
//! `network` turns discovery's sightings (peers, protocols, clear-text credentials, industrial commands)
//! into penalties, remembered the same way;
//! `recorded` is the line format of recorded windows (offline replay); `playbook` turns verdicts into response directives (quarantine, revoke, re-enroll, notify, release).
//! Pure: no I/O, no clock; the caller feeds windows and stores what comes out.

pub mod baseline;
pub mod engine;
pub mod features;
pub mod firmware;
pub mod hst;
pub mod memory;
pub mod network;
pub mod playbook;
pub mod recorded;
pub mod score;

pub use baseline::{Baseline, BaselineConfig, Deviation};
pub use engine::{DeviceState, Learned, TrustEngine, Verdict};
pub use features::{Feature, Features};
pub use firmware::FirmwareRule;
pub use hst::{HalfSpaceTrees, HstConfig};
pub use memory::{BEHAVIOUR_CAP, DEFAULT_HALF_LIFE_SECS, HalfLife};
pub use network::{NETWORK_CAP, Whereabouts};
pub use playbook::{
    Directive, Mode, Playbook, QUARANTINE_GROUP, QUARANTINED_BY, Responder, ResponderMemory,
    ResponseConfig, Situation, Step,
};
pub use recorded::RecordedWindow;
pub use score::{Assessment, FirmwareState, IdentityState, ScoreReason, TrustInputs, assess};
