//! Compliance documents an operator imports (SBOMs, advisories, the KEV catalogue, VEX): kept whole in the
//! store, as they came, so the evaluator can be rerun over them and an auditor can see what it read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{DocumentKey, Timestamp, ValidationError};

/// The largest document kept: the whole CISA KEV catalogue is about 1.5 MB, a vendor's CSAF feed file a few.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// What an imported document is, so it is read back with the parser it was checked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentKind {
    /// A CycloneDX JSON SBOM of one firmware (its `vulnerabilities[].analysis` is VEX for it).
    #[serde(rename = "cyclonedx-sbom")]
    CycloneDxSbom,
    /// An SPDX 2.3 JSON SBOM of one firmware.
    SpdxSbom,
    /// An OSV advisory (JSON).
    Osv,
    /// A CSAF 2.0 advisory (JSON), CISA ICS style or a vendor's.
    Csaf,
    /// The CISA Known Exploited Vulnerabilities catalogue (JSON).
    Kev,
    /// A CycloneDX VEX document.
    #[serde(rename = "cyclonedx-vex")]
    CycloneDxVex,
    /// An OpenVEX document.
    #[serde(rename = "openvex")]
    OpenVex,
}

impl DocumentKind {
    /// Every kind, in the order they are read back (SBOMs first, then advisories, KEV, VEX).
    pub const ALL: [DocumentKind; 7] = [
        Self::CycloneDxSbom,
        Self::SpdxSbom,
        Self::Osv,
        Self::Csaf,
        Self::Kev,
        Self::CycloneDxVex,
        Self::OpenVex,
    ];

    /// The kind's name, as stored and as the CLI and API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CycloneDxSbom => "cyclonedx-sbom",
            Self::SpdxSbom => "spdx-sbom",
            Self::Osv => "osv",
            Self::Csaf => "csaf",
            Self::Kev => "kev",
            Self::CycloneDxVex => "cyclonedx-vex",
            Self::OpenVex => "openvex",
        }
    }

    /// Whether it is an SBOM (keyed by the firmware it describes).
    pub fn is_sbom(self) -> bool {
        matches!(self, Self::CycloneDxSbom | Self::SpdxSbom)
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DocumentKind {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::parse_named("document kind", s, &Self::ALL, Self::as_str)
    }
}

/// An imported document as stored: the bytes as they came and their SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct DocumentRecord {
    /// What it is.
    pub kind: DocumentKind,
    /// The name it is kept under (unique per kind; importing under the same name replaces it).
    pub key: DocumentKey,
    /// SHA-256 of `body`.
    pub digest: [u8; 32],
    /// The document, byte for byte (at most [`MAX_DOCUMENT_BYTES`]).
    pub body: Vec<u8>,
    /// When it was last imported.
    pub imported_at: Timestamp,
}

impl fmt::Debug for DocumentRecord {
    // Documents run to megabytes: a debug line names it and its size, not its bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentRecord")
            .field("kind", &self.kind)
            .field("key", &self.key)
            .field("bytes", &self.body.len())
            .field("imported_at", &self.imported_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name_and_refuse_others() {
        for k in DocumentKind::ALL {
            assert_eq!(k.as_str().parse::<DocumentKind>().unwrap(), k);
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert!("CSAF".parse::<DocumentKind>().is_err());
        assert!("".parse::<DocumentKind>().is_err());
    }
}
