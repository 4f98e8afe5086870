//! CycloneDX JSON (1.4–1.6): components with purl/cpe/version, nested components flattened, and
//! `vulnerabilities[].analysis` read as VEX.
//!
//! Hand-written serde structs for the subset read, not `cyclonedx-bom`: that crate (0.8) parses spec
//! versions 1.3–1.5 only (a 1.6 SBOM, the current version, is refused), and it brings regex, xml-rs,
//! strum and fluent-uri (about 75 s of a cold two-core build) for fields Vouch never reads.

use foldhash::{HashMap, HashMapExt};
use serde::Deserialize;

use super::ids::{Format, Purl, VulnError, VulnId, bounded, read_json};
use super::{Component, VexSource, VexStatement, VexStatus};

const F: Format = Format::CycloneDx;
/// Nested components deeper than this are not read (serde_json refuses beyond 128 anyway).
const MAX_NESTING: usize = 16;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bom {
    bom_format: String,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    components: Vec<RawComponent>,
    #[serde(default)]
    vulnerabilities: Vec<RawVuln>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    component: Option<RawComponent>,
}

#[derive(Deserialize)]
struct RawComponent {
    #[serde(rename = "bom-ref", default)]
    bom_ref: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default)]
    cpe: Option<String>,
    #[serde(default)]
    components: Vec<RawComponent>,
}

#[derive(Deserialize)]
struct RawVuln {
    id: String,
    #[serde(default)]
    affects: Vec<Affects>,
    #[serde(default)]
    analysis: Option<Analysis>,
}

#[derive(Deserialize)]
struct Affects {
    #[serde(rename = "ref")]
    reference: String,
}

#[derive(Deserialize)]
struct Analysis {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    justification: Option<String>,
}

/// What one CycloneDX document says.
#[derive(Debug, Clone, Default)]
pub struct CycloneDxDoc {
    /// Its components, nested ones flattened.
    pub components: Vec<Component>,
    /// Its analyses as VEX statements (`product: None` when they concern the whole product the BOM
    /// describes).
    pub vex: Vec<VexStatement>,
}

fn status(state: &str) -> Option<VexStatus> {
    Some(match state {
        "not_affected" | "false_positive" => VexStatus::NotAffected,
        "resolved" | "resolved_with_pedigree" => VexStatus::Fixed,
        "exploitable" => VexStatus::Affected,
        "in_triage" => VexStatus::UnderInvestigation,
        _ => return None,
    })
}

fn flatten<'a>(
    cs: &'a [RawComponent],
    depth: usize,
    out: &mut Vec<&'a RawComponent>,
) -> Result<(), VulnError> {
    if depth > MAX_NESTING {
        return Err(VulnError::Invalid(
            F,
            format!("components nested deeper than {MAX_NESTING}"),
        ));
    }
    for c in cs {
        out.push(c);
        bounded(F, "components", out)?;
        flatten(&c.components, depth + 1, out)?;
    }
    Ok(())
}

/// Parses a CycloneDX JSON document.
pub fn parse(bytes: &[u8]) -> Result<CycloneDxDoc, VulnError> {
    let bom: Bom = read_json(F, bytes)?;
    if bom.bom_format != "CycloneDX" {
        return Err(VulnError::Invalid(
            F,
            format!("bomFormat is `{}`", bom.bom_format),
        ));
    }
    bounded(F, "vulnerabilities", &bom.vulnerabilities)?;
    let mut raw = Vec::new();
    flatten(&bom.components, 0, &mut raw)?;
    let root_ref = bom
        .metadata
        .as_ref()
        .and_then(|m| m.component.as_ref())
        .and_then(|c| c.bom_ref.clone());
    let mut by_ref: HashMap<&str, Option<Purl>> = HashMap::new();
    let mut components = Vec::with_capacity(raw.len());
    for c in raw {
        let purl = c.purl.as_deref().and_then(Purl::parse);
        if let Some(r) = c.bom_ref.as_deref() {
            by_ref.insert(r, purl.clone());
        }
        components.push(Component {
            name: c.name.chars().take(256).collect(),
            version: c
                .version
                .clone()
                .or_else(|| purl.as_ref().and_then(|p| p.version.clone())),
            purl,
            cpe: c.cpe.clone(),
        });
    }
    let mut vex = Vec::new();
    for v in &bom.vulnerabilities {
        let (Some(vuln), Some(a)) = (VulnId::parse(&v.id), v.analysis.as_ref()) else {
            continue;
        };
        let Some(status) = a.state.as_deref().and_then(status) else {
            continue;
        };
        for af in &v.affects {
            // The ref names a component of this BOM, the product it describes, or is a purl itself; a ref
            // that is none of these is not applied (suppressing more than was said is worse than less).
            let product = if root_ref.as_deref() == Some(af.reference.as_str()) {
                None
            } else if let Some(p) = by_ref.get(af.reference.as_str()) {
                match p {
                    Some(p) => Some(p.clone()),
                    None => continue,
                }
            } else if let Some(p) = Purl::parse(&af.reference) {
                Some(p)
            } else {
                continue;
            };
            vex.push(VexStatement {
                vuln: vuln.clone(),
                product: product.as_ref().map(|p| p.key.clone()),
                version: product.and_then(|p| p.version),
                status,
                justification: a.justification.clone(),
                source: VexSource::CycloneDx,
            });
        }
    }
    Ok(CycloneDxDoc { components, vex })
}
