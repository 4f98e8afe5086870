//! Compliance, pure: per-device rules over typed evidence, mapped to the controls of EU CRA Annex I, ETSI
//! EN 303 645, NISTIR 8259A, IEC 62443-4-2, ISO/SAE 21434, NIST SP 1800-32 and AWS IoT Device Defender's
//! audit checks by a catalogue that is data (`catalogue/controls.toml`, shipped and user-extendable).
//!
//! `evidence` is what the callers know about a device, its fleet and the operator's baselines; `catalogue`
//! maps controls to rules; `rules` has one function per rule; `vuln` reads SBOMs (CycloneDX, SPDX),
//! advisories (OSV, CSAF 2.0), the CISA KEV catalogue and VEX (CycloneDX, OpenVEX, CSAF) into a `VulnDb`;
//! `eval` evaluates a device and indexes the fleet for incremental re-evaluation after an import; `report`
//! writes a scope's results as OSCAL assessment results, an HTML page and OCSF Compliance Finding events.
//! No I/O (parsers read the bytes they are handed), no clock (time comes in), no randomness.

pub mod catalogue;
pub mod eval;
pub mod evidence;
pub mod report;
pub mod rules;
pub mod vuln;

pub use catalogue::{Catalogue, CatalogueError, Check, Control, Framework, Params, RuleId};
pub use eval::{ControlState, DeviceResult, Finding, FleetIndex, evaluate};
pub use evidence::{
    Attestation, Baselines, Certificate, ClearTextCredential, ConfigHash, DeviceEvidence,
    FleetFacts, ImageDigest, KeyAlgorithm, KeyDigest, Port, Transport, UpdateFacts,
};
pub use rules::{Evidence, Exploited, Outcome, Severity};
pub use vuln::{FirmwareKey, ImportDelta, VulnDb, VulnError, VulnId};
