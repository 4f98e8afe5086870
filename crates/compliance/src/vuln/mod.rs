//! Vulnerability data, offline: SBOMs per firmware (CycloneDX, SPDX), advisories (OSV, CSAF 2.0), the
//! CISA KEV catalogue and VEX (CycloneDX analysis, OpenVEX, CSAF `known_not_affected`), indexed in a
//! [`VulnDb`] that says which vulnerabilities affect a device and which of them a VEX statement suppresses.
//!
//! A device is matched two ways: the SBOM of the firmware it runs (by image digest, else by model and
//! version) lists components whose purl and version an OSV entry covers; and its vendor, model and firmware
//! version fall in a CSAF product's version range. Every import returns an [`ImportDelta`] naming what it
//! touched, so the caller re-evaluates only the devices it concerns ([`crate::FleetIndex`]).

pub mod csaf;
pub mod cyclonedx;
pub mod ids;
pub mod kev;
mod model;
pub mod openvex;
pub mod osv;
pub mod range;
pub mod spdx;

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::Arc;

use foldhash::HashMap;
use vouch_types::compare_versions;

pub use ids::{
    Format, MAX_DOCUMENT_BYTES, MAX_ENTRIES, PackageKey, ProductKey, Purl, VulnError, VulnId,
    normalise_name,
};
pub use kev::KevEntry;
pub use model::{
    Advisory, Component, FirmwareKey, ImportDelta, Sbom, Suppression, VexSource, VexStatement,
    VexStatus, Via, VulnMatch,
};
pub use range::VersionRange;

use crate::evidence::DeviceEvidence;
use crate::rules::Severity;
use csaf::CsafStatus;
use osv::OsvAffected;

fn summary(a: &Advisory, via: &Via<'_>) -> Arc<str> {
    let mut s = a.id.to_string();
    if !a.aliases.is_empty() {
        let aliases: Vec<&str> = a.aliases.iter().map(VulnId::as_str).collect();
        let _ = write!(s, " ({})", aliases.join(", "));
    }
    let _ = match via {
        Via::Component { package, version } => write!(s, " in {package} {version}"),
        Via::Product { product, version } => write!(s, " in {product} {version}"),
    };
    let _ = write!(s, " [{}]: {}", a.source, a.title);
    s.into()
}

/// An advisory that covers a component of an SBOM, found when either was imported.
#[derive(Debug, Clone)]
struct Hit {
    advisory: u32,
    component: u32,
    summary: Arc<str>,
}

struct CsafEntry {
    advisory: u32,
    versions: VersionRange,
    status: CsafStatus,
}

/// The indexed vulnerability data.
#[derive(Default)]
pub struct VulnDb {
    advisories: Vec<Advisory>,
    by_name: HashMap<VulnId, Vec<u32>>,
    /// Advisories by the package they affect (OSV entries, CSAF products named by purl).
    by_package: HashMap<PackageKey, Vec<(u32, OsvAffected)>>,
    csaf: HashMap<ProductKey, Vec<CsafEntry>>,
    kev: HashMap<VulnId, KevEntry>,
    vex: HashMap<VulnId, Vec<VexStatement>>,
    sboms: Vec<(Sbom, Vec<Hit>)>,
    by_firmware: HashMap<FirmwareKey, usize>,
    firmwares_by_package: HashMap<PackageKey, Vec<FirmwareKey>>,
    sboms_by_package: HashMap<PackageKey, Vec<usize>>,
}

impl std::fmt::Debug for VulnDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VulnDb")
            .field("advisories", &self.advisories.len())
            .field("kev", &self.kev.len())
            .field("sboms", &self.sboms.len())
            .finish_non_exhaustive()
    }
}

impl VulnDb {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an advisory, superseding an earlier one of the same id and source.
    fn add(&mut self, mut a: Advisory) -> u32 {
        let at = u32::try_from(self.advisories.len()).unwrap_or(u32::MAX);
        let known_exploited = a.names().any(|n| self.kev.contains_key(n));
        let has_vex = a.names().any(|n| self.vex.contains_key(n));
        a.known_exploited = known_exploited;
        a.has_vex = has_vex;
        if let Some(old) = self.by_name.get(&a.id) {
            for &o in old {
                if let Some(prev) = self.advisories.get_mut(o as usize)
                    && prev.id == a.id
                    && prev.source == a.source
                {
                    prev.superseded = true;
                }
            }
        }
        for n in a.names() {
            self.by_name.entry(n.clone()).or_default().push(at);
        }
        self.advisories.push(a);
        at
    }

    fn add_sbom(&mut self, sbom: Sbom, keys: &[FirmwareKey]) -> ImportDelta {
        let at = self.sboms.len();
        for c in &sbom.components {
            if let Some(p) = &c.purl {
                let fws = self.firmwares_by_package.entry(p.key.clone()).or_default();
                for k in keys {
                    if !fws.contains(k) {
                        fws.push(k.clone());
                    }
                }
                let sboms = self.sboms_by_package.entry(p.key.clone()).or_default();
                if sboms.last() != Some(&at) {
                    sboms.push(at);
                }
            }
        }
        let hits = self.hits(&sbom);
        self.sboms.push((sbom, hits));
        for k in keys {
            self.by_firmware.insert(k.clone(), at);
        }
        ImportDelta {
            firmwares: keys.to_vec(),
            ..ImportDelta::default()
        }
    }

    /// Imports a CycloneDX SBOM as the SBOM of the firmware `keys` name (its analyses are its VEX).
    pub fn import_cyclonedx_sbom(
        &mut self,
        bytes: &[u8],
        keys: &[FirmwareKey],
    ) -> Result<ImportDelta, VulnError> {
        let doc = cyclonedx::parse(bytes)?;
        let sbom = Sbom {
            format: Format::CycloneDx,
            components: doc.components,
            vex: doc.vex,
        };
        Ok(self.add_sbom(sbom, keys))
    }

    /// Imports an SPDX 2.3 SBOM as the SBOM of the firmware `keys` name.
    pub fn import_spdx_sbom(
        &mut self,
        bytes: &[u8],
        keys: &[FirmwareKey],
    ) -> Result<ImportDelta, VulnError> {
        let sbom = Sbom {
            format: Format::Spdx,
            components: spdx::parse(bytes)?,
            vex: Vec::new(),
        };
        Ok(self.add_sbom(sbom, keys))
    }

    fn add_vex(&mut self, statements: Vec<VexStatement>) -> ImportDelta {
        let mut delta = ImportDelta::default();
        for s in statements {
            // A statement about no package applies only inside the SBOM that carries it.
            let Some(p) = s.product.clone() else { continue };
            delta.packages.push(p);
            for &a in self.by_name.get(&s.vuln).map_or(&[][..], Vec::as_slice) {
                if let Some(a) = self.advisories.get_mut(a as usize) {
                    a.has_vex = true;
                }
            }
            self.vex.entry(s.vuln.clone()).or_default().push(s);
        }
        delta
    }

    /// Imports a CycloneDX VEX document (its analyses, by the purls they name).
    pub fn import_cyclonedx_vex(&mut self, bytes: &[u8]) -> Result<ImportDelta, VulnError> {
        let doc = cyclonedx::parse(bytes)?;
        Ok(self.add_vex(doc.vex))
    }

    /// Imports an OpenVEX document.
    pub fn import_openvex(&mut self, bytes: &[u8]) -> Result<ImportDelta, VulnError> {
        let statements = openvex::parse(bytes)?;
        Ok(self.add_vex(statements))
    }

    /// Imports OSV entries.
    pub fn import_osv(&mut self, bytes: &[u8]) -> Result<ImportDelta, VulnError> {
        let mut delta = ImportDelta::default();
        for e in osv::parse(bytes)? {
            let a = Advisory {
                id: e.id,
                aliases: e.aliases,
                title: e.summary,
                source: Format::Osv,
                severity: Severity::High,
                packages: e.affected.iter().map(|a| a.package.clone()).collect(),
                products: Vec::new(),
                superseded: false,
                known_exploited: false,
                has_vex: false,
            };
            delta.extend_from(&a);
            let at = self.add(a);
            for af in e.affected {
                self.by_package
                    .entry(af.package.clone())
                    .or_default()
                    .push((at, af));
            }
        }
        self.refresh(&delta.packages);
        Ok(delta)
    }

    /// The SBOMs that list one of `packages` find their advisories again.
    fn refresh(&mut self, packages: &[PackageKey]) {
        let mut touched: Vec<usize> = packages
            .iter()
            .flat_map(|p| self.sboms_by_package.get(p).into_iter().flatten().copied())
            .collect();
        touched.sort_unstable();
        touched.dedup();
        for i in touched {
            if let Some((sbom, _)) = self.sboms.get(i) {
                let hits = self.hits(sbom);
                if let Some(entry) = self.sboms.get_mut(i) {
                    entry.1 = hits;
                }
            }
        }
    }

    /// The live OSV advisories that cover a component of `sbom`, each once (at its first component).
    fn hits(&self, sbom: &Sbom) -> Vec<Hit> {
        let mut out: Vec<Hit> = Vec::new();
        for (ci, c) in sbom.components.iter().enumerate() {
            let (Some(p), Some(v)) = (&c.purl, c.version.as_deref()) else {
                continue;
            };
            for (ai, af) in self.by_package.get(&p.key).map_or(&[][..], Vec::as_slice) {
                let Some(a) = self.live(*ai) else { continue };
                let hit = af
                    .versions
                    .iter()
                    .any(|x| compare_versions(x, v) == Ordering::Equal)
                    || af.ranges.iter().any(|r| range::osv_affected(r, v));
                if hit && !out.iter().any(|h| h.advisory == *ai) {
                    let via = Via::Component {
                        package: &p.key,
                        version: v,
                    };
                    out.push(Hit {
                        advisory: *ai,
                        component: u32::try_from(ci).unwrap_or(u32::MAX),
                        summary: summary(a, &via),
                    });
                }
            }
        }
        out
    }

    /// Imports a CSAF 2.0 advisory.
    pub fn import_csaf(&mut self, bytes: &[u8]) -> Result<ImportDelta, VulnError> {
        let doc = csaf::parse(bytes)?;
        let mut delta = ImportDelta::default();
        for v in doc.vulns {
            let named = |affected_only: bool| {
                let mut keys: Vec<_> = v
                    .status
                    .iter()
                    .filter(|(_, s)| !affected_only || *s == CsafStatus::Affected)
                    .filter_map(|(p, _)| doc.products.get(*p))
                    .collect();
                keys.dedup_by(|a, b| a.id == b.id);
                keys
            };
            let mut products: Vec<ProductKey> =
                named(false).iter().filter_map(|p| p.key.clone()).collect();
            products.sort();
            products.dedup();
            let mut packages: Vec<PackageKey> = named(true)
                .iter()
                .filter_map(|p| p.purl.as_ref().map(|u| u.key.clone()))
                .collect();
            packages.sort();
            packages.dedup();
            let a = Advisory {
                id: v.id,
                aliases: v.aliases,
                title: v.title,
                source: Format::Csaf,
                severity: v.cvss.map_or(Severity::High, Severity::from_cvss),
                packages,
                products,
                superseded: false,
                known_exploited: false,
                has_vex: false,
            };
            delta.extend_from(&a);
            let at = self.add(a);
            let mut statements = Vec::new();
            for (p, status) in v.status {
                let Some(p) = doc.products.get(p) else {
                    continue;
                };
                if let Some(key) = &p.key {
                    self.csaf.entry(key.clone()).or_default().push(CsafEntry {
                        advisory: at,
                        versions: p.versions.clone(),
                        status,
                    });
                }
                let Some(purl) = &p.purl else { continue };
                match status {
                    CsafStatus::Affected => {
                        // A purl without a version: every version of the package.
                        let (ranges, versions) = match &purl.version {
                            Some(v) => (Vec::new(), vec![v.clone()]),
                            None => (
                                vec![vec![range::OsvEvent::Introduced("0".into())]],
                                Vec::new(),
                            ),
                        };
                        self.by_package.entry(purl.key.clone()).or_default().push((
                            at,
                            OsvAffected {
                                package: purl.key.clone(),
                                ranges,
                                versions,
                            },
                        ));
                    }
                    CsafStatus::Fixed | CsafStatus::NotAffected => statements.push(VexStatement {
                        vuln: self.advisories[at as usize].id.clone(),
                        product: Some(purl.key.clone()),
                        version: purl.version.clone(),
                        status: if status == CsafStatus::Fixed {
                            VexStatus::Fixed
                        } else {
                            VexStatus::NotAffected
                        },
                        justification: None,
                        source: VexSource::Csaf,
                    }),
                }
            }
            let vex = self.add_vex(statements);
            delta.packages.extend(vex.packages);
        }
        delta.packages.sort();
        delta.packages.dedup();
        self.refresh(&delta.packages);
        Ok(delta)
    }

    /// Imports the KEV catalogue (entries replace earlier ones of the same CVE).
    pub fn import_kev(&mut self, bytes: &[u8]) -> Result<ImportDelta, VulnError> {
        let mut delta = ImportDelta::default();
        for e in kev::parse(bytes)? {
            for &a in self.by_name.get(&e.cve).map_or(&[][..], Vec::as_slice) {
                if let Some(a) = self.advisories.get_mut(a as usize) {
                    a.known_exploited = true;
                    delta.extend_from(a);
                }
            }
            self.kev.insert(e.cve.clone(), e);
        }
        Ok(delta)
    }

    /// The SBOM of the firmware a device runs, by image digest first.
    pub fn sbom_for(&self, device: &DeviceEvidence) -> Option<&Sbom> {
        self.sbom_entry(device).map(|(s, _)| s)
    }

    fn sbom_entry(&self, device: &DeviceEvidence) -> Option<&(Sbom, Vec<Hit>)> {
        FirmwareKey::of(device)
            .find_map(|k| self.by_firmware.get(&k))
            .and_then(|&i| self.sboms.get(i))
    }

    /// The firmware whose SBOM lists `package`.
    pub fn firmwares_with(&self, package: &PackageKey) -> &[FirmwareKey] {
        self.firmwares_by_package
            .get(package)
            .map_or(&[], Vec::as_slice)
    }

    /// The KEV entry of an advisory, by its id or an alias.
    pub fn kev_of(&self, a: &Advisory) -> Option<&KevEntry> {
        if !a.known_exploited {
            return None;
        }
        a.names().find_map(|n| self.kev.get(n))
    }

    fn vex_for<'a>(
        &'a self,
        a: &Advisory,
        sbom: Option<&'a Sbom>,
        package: Option<&PackageKey>,
        version: &str,
    ) -> Option<&'a VexStatement> {
        let own = sbom.map_or(&[][..], |s| s.vex.as_slice());
        if own.is_empty() && !a.has_vex {
            return None;
        }
        a.names().find_map(|n| {
            let global = if a.has_vex { self.vex.get(n) } else { None };
            own.iter()
                .filter(|s| &s.vuln == n)
                .chain(global.into_iter().flatten())
                .find(|s| s.suppresses(package, version))
        })
    }

    /// Every vulnerability that affects `device`, suppressed ones included (marked).
    pub fn matches<'a>(&'a self, device: &'a DeviceEvidence) -> Vec<VulnMatch<'a>> {
        let mut out: Vec<VulnMatch<'a>> = Vec::new();
        if let Some((sbom, hits)) = self.sbom_entry(device) {
            for h in hits {
                let (Some(a), Some(c)) = (
                    self.live(h.advisory),
                    sbom.components.get(h.component as usize),
                ) else {
                    continue;
                };
                let (Some(p), Some(v)) = (&c.purl, c.version.as_deref()) else {
                    continue;
                };
                out.push(VulnMatch {
                    summary: h.summary.clone(),
                    advisory: a,
                    via: Via::Component {
                        package: &p.key,
                        version: v,
                    },
                    kev: self.kev_of(a),
                    suppressed: self
                        .vex_for(a, Some(sbom), Some(&p.key), v)
                        .map(Suppression::Vex),
                });
            }
        }
        if !self.csaf.is_empty() {
            self.match_csaf(device, &mut out);
        }
        out
    }

    fn match_csaf<'a>(&'a self, device: &'a DeviceEvidence, out: &mut Vec<VulnMatch<'a>>) {
        let (Some(vendor), Some(model)) = (&device.vendor, &device.model) else {
            return;
        };
        let key = ProductKey::new(vendor.as_str(), model.as_str());
        let Some((key, entries)) = self.csaf.get_key_value(&key) else {
            return;
        };
        let version = device.firmware.as_ref().map(|f| f.as_str());
        let covers = |r: &VersionRange| match version {
            Some(v) => r.contains(v),
            // With no version known, only an advisory for every version applies.
            None => *r == VersionRange::All,
        };
        // Per advisory: not affected beats fixed beats affected.
        let mut state: Vec<(u32, CsafStatus)> = Vec::new();
        for e in entries.iter().filter(|e| covers(&e.versions)) {
            match state.iter_mut().find(|(a, _)| *a == e.advisory) {
                Some((_, s)) => {
                    if rank(e.status) > rank(*s) {
                        *s = e.status;
                    }
                }
                None => state.push((e.advisory, e.status)),
            }
        }
        for (ai, s) in state {
            let Some(a) = self.live(ai) else { continue };
            let suppressed = match s {
                CsafStatus::Fixed => continue,
                CsafStatus::NotAffected => Some(Suppression::CsafNotAffected),
                CsafStatus::Affected => None,
            };
            let via = Via::Product {
                product: key,
                version: version.unwrap_or("any"),
            };
            out.push(VulnMatch {
                summary: summary(a, &via),
                advisory: a,
                via,
                kev: self.kev_of(a),
                suppressed,
            });
        }
    }

    fn live(&self, i: u32) -> Option<&Advisory> {
        self.advisories.get(i as usize).filter(|a| !a.superseded)
    }
}

fn rank(s: CsafStatus) -> u8 {
    match s {
        CsafStatus::Affected => 0,
        CsafStatus::Fixed => 1,
        CsafStatus::NotAffected => 2,
    }
}
