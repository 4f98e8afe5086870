//! What the vulnerability data is made of: SBOM components, VEX statements, firmware keys, advisories,
//! import deltas and matches.

use std::cmp::Ordering;
use std::sync::Arc;

use vouch_types::compare_versions;

use super::ids::{Format, PackageKey, ProductKey, Purl, VulnId, normalise_name};
use super::kev::KevEntry;
use crate::evidence::{DeviceEvidence, ImageDigest};
use crate::rules::Severity;

/// One component of a firmware's SBOM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// Its package URL, when it has one (matching is by purl).
    pub purl: Option<Purl>,
    /// Its CPE, kept for reports (CPE matching is not done).
    pub cpe: Option<String>,
}

/// A VEX status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VexStatus {
    /// The product is not affected: suppresses the finding.
    NotAffected,
    /// The product is affected.
    Affected,
    /// The product's version is fixed: suppresses the finding.
    Fixed,
    /// Not yet known.
    UnderInvestigation,
}

/// Where a VEX statement came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VexSource {
    /// A CycloneDX `vulnerabilities[].analysis`.
    CycloneDx,
    /// An OpenVEX statement.
    OpenVex,
    /// A CSAF `known_not_affected` status.
    Csaf,
}

/// A statement about one vulnerability in one package (or in the whole firmware, `product: None`, only
/// within the SBOM that carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexStatement {
    /// The vulnerability.
    pub vuln: VulnId,
    /// The package it concerns.
    pub product: Option<PackageKey>,
    /// The version it concerns (`None`: every version).
    pub version: Option<String>,
    /// Its status.
    pub status: VexStatus,
    /// Why, as the author says.
    pub justification: Option<String>,
    /// The format it came in.
    pub source: VexSource,
}

impl VexStatement {
    pub(super) fn suppresses(&self, package: Option<&PackageKey>, version: &str) -> bool {
        matches!(self.status, VexStatus::NotAffected | VexStatus::Fixed)
            && (self.product.is_none() || self.product.as_ref() == package)
            && self
                .version
                .as_deref()
                .is_none_or(|v| compare_versions(v, version) == Ordering::Equal)
    }
}

/// Which firmware an SBOM describes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FirmwareKey {
    /// One image, by digest.
    Image(ImageDigest),
    /// A model's release: normalised model name and version as written.
    Release {
        /// The model, normalised ([`normalise_name`]).
        model: String,
        /// The version.
        version: String,
    },
}

impl FirmwareKey {
    /// A model's release.
    pub fn release(model: &str, version: &str) -> Self {
        Self::Release {
            model: normalise_name(model, false),
            version: version.trim().to_owned(),
        }
    }

    /// The keys a device's firmware is known by: its image, then its model's release.
    pub fn of(device: &DeviceEvidence) -> impl Iterator<Item = FirmwareKey> {
        let image = device.image_digest.map(Self::Image);
        let release = device
            .model
            .as_ref()
            .zip(device.firmware.as_ref())
            .map(|(m, v)| Self::release(m.as_str(), v.as_str()));
        image.into_iter().chain(release)
    }
}

/// The SBOM of one firmware.
#[derive(Debug, Clone)]
pub struct Sbom {
    /// The format it came in.
    pub format: Format,
    /// Its components.
    pub components: Vec<Component>,
    /// Its own VEX statements.
    pub vex: Vec<VexStatement>,
}

/// One advisory: an OSV entry or one vulnerability of a CSAF document.
#[derive(Debug, Clone)]
pub struct Advisory {
    /// Its id (a CVE when the document gives one).
    pub id: VulnId,
    /// Its other ids.
    pub aliases: Vec<VulnId>,
    /// Its title or summary.
    pub title: String,
    /// The format it came in.
    pub source: Format,
    /// How severe it is (CVSS when given, else high).
    pub severity: Severity,
    /// Packages it affects (OSV).
    pub packages: Vec<PackageKey>,
    /// Products it names (CSAF).
    pub products: Vec<ProductKey>,
    /// Replaced by a later import of the same id.
    pub(super) superseded: bool,
    /// The KEV catalogue lists one of its names (kept so that matching hashes nothing for the rest).
    pub(super) known_exploited: bool,
    /// A VEX statement outside any SBOM names one of its names.
    pub(super) has_vex: bool,
}

impl Advisory {
    /// Its id and aliases.
    pub fn names(&self) -> impl Iterator<Item = &VulnId> {
        std::iter::once(&self.id).chain(&self.aliases)
    }
}

/// What an import touched: the devices to re-evaluate are those these reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportDelta {
    /// Firmware whose SBOM changed.
    pub firmwares: Vec<FirmwareKey>,
    /// Packages an advisory or statement concerns.
    pub packages: Vec<PackageKey>,
    /// Products an advisory concerns.
    pub products: Vec<ProductKey>,
}

impl ImportDelta {
    pub(super) fn extend_from(&mut self, a: &Advisory) {
        self.packages.extend(a.packages.iter().cloned());
        self.products.extend(a.products.iter().cloned());
    }
}

/// How a vulnerability reached a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via<'a> {
    /// A component of its firmware's SBOM.
    Component {
        /// The package.
        package: &'a PackageKey,
        /// The component's version.
        version: &'a str,
    },
    /// Its vendor, model and firmware version (CSAF).
    Product {
        /// The product.
        product: &'a ProductKey,
        /// The device's firmware version.
        version: &'a str,
    },
}

/// What suppressed a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppression<'a> {
    /// A VEX statement (CycloneDX, OpenVEX).
    Vex(&'a VexStatement),
    /// A CSAF advisory's `known_not_affected`.
    CsafNotAffected,
}

/// A vulnerability that affects a device.
#[derive(Debug, Clone)]
pub struct VulnMatch<'a> {
    /// The advisory, where and in what it was found, in words (`CVE-… in pkg 1.2 [OSV]: title`).
    pub summary: Arc<str>,
    /// The advisory.
    pub advisory: &'a Advisory,
    /// How it reached the device.
    pub via: Via<'a>,
    /// Its KEV entry, when it is known exploited.
    pub kev: Option<&'a KevEntry>,
    /// What suppresses it, if anything.
    pub suppressed: Option<Suppression<'a>>,
}
