//! CSAF 2.0 advisories, CISA ICS style: the product tree's branches (vendor → product_name or
//! product_family → product_version or product_version_range) name products; each vulnerability's
//! `product_status` says which are affected, fixed or not affected (the last is CSAF's VEX).
//!
//! Version ranges are `vers:` URIs or the free forms vendors write, read by [`VersionRange::normalise`];
//! a range that reads as neither is refused with its product id, so no advisory is half-applied silently.
//! A product whose identification helper gives a purl (as CSAF VEX documents name components) also matches
//! SBOM components: affected as an advisory for that package, fixed or not affected as a VEX statement.
//! `relationships` (a product installed on another) are known by id but match nothing: ICS advisories
//! name the device itself.

use foldhash::HashMap;
use serde::Deserialize;

use super::ids::{Format, ProductKey, Purl, VulnError, VulnId, bounded, read_json};
use super::range::VersionRange;

const F: Format = Format::Csaf;
const MAX_DEPTH: usize = 16;

#[derive(Deserialize)]
struct Doc {
    document: Document,
    #[serde(default)]
    product_tree: Option<Tree>,
    #[serde(default)]
    vulnerabilities: Vec<RawVuln>,
}

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    csaf_version: String,
    #[serde(default)]
    title: String,
    tracking: Tracking,
}

#[derive(Deserialize)]
struct Tracking {
    id: String,
}

#[derive(Deserialize)]
struct Tree {
    #[serde(default)]
    branches: Vec<Branch>,
    #[serde(default)]
    full_product_names: Vec<FullProduct>,
    #[serde(default)]
    relationships: Vec<Relationship>,
}

#[derive(Deserialize)]
struct Relationship {
    full_product_name: FullProduct,
}

#[derive(Deserialize)]
struct Branch {
    category: String,
    name: String,
    #[serde(default)]
    branches: Vec<Branch>,
    #[serde(default)]
    product: Option<FullProduct>,
}

#[derive(Deserialize)]
struct FullProduct {
    product_id: String,
    #[serde(default)]
    product_identification_helper: Option<Helper>,
}

#[derive(Deserialize)]
struct Helper {
    #[serde(default)]
    purl: Option<String>,
}

impl FullProduct {
    fn purl(&self) -> Option<Purl> {
        self.product_identification_helper
            .as_ref()
            .and_then(|h| h.purl.as_deref())
            .and_then(Purl::parse)
    }
}

#[derive(Deserialize)]
struct RawVuln {
    #[serde(default)]
    cve: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    ids: Vec<SystemId>,
    #[serde(default)]
    product_status: Option<Status>,
    #[serde(default)]
    scores: Vec<Score>,
}

#[derive(Deserialize)]
struct SystemId {
    text: String,
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    known_affected: Vec<String>,
    #[serde(default)]
    first_affected: Vec<String>,
    #[serde(default)]
    last_affected: Vec<String>,
    #[serde(default)]
    fixed: Vec<String>,
    #[serde(default)]
    first_fixed: Vec<String>,
    #[serde(default)]
    known_not_affected: Vec<String>,
}

#[derive(Deserialize)]
struct Score {
    #[serde(default)]
    cvss_v3: Option<Cvss>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cvss {
    base_score: f64,
}

/// A product a CSAF document names: who makes it, what it is, which versions.
#[derive(Debug, Clone)]
pub struct CsafProduct {
    /// Its id within the document.
    pub id: String,
    /// Normalised vendor and product, when branches name them.
    pub key: Option<ProductKey>,
    /// The versions it stands for.
    pub versions: VersionRange,
    /// Its package URL, when its identification helper gives one (CSAF VEX names components so).
    pub purl: Option<Purl>,
}

/// What a CSAF vulnerability says about a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsafStatus {
    /// Known affected (or first/last affected).
    Affected,
    /// Fixed (or first fixed).
    Fixed,
    /// Known not affected: CSAF's VEX.
    NotAffected,
}

/// One vulnerability of a CSAF document.
#[derive(Debug, Clone)]
pub struct CsafVuln {
    /// Its CVE, or the document's tracking id with its position when it has none.
    pub id: VulnId,
    /// Other ids (the document's tracking id, `ids[].text`).
    pub aliases: Vec<VulnId>,
    /// Its title, or the document's.
    pub title: String,
    /// The highest CVSS v3 base score given.
    pub cvss: Option<f64>,
    /// Product positions in [`CsafDoc::products`], with their status.
    pub status: Vec<(usize, CsafStatus)>,
}

/// A parsed CSAF advisory.
#[derive(Debug, Clone)]
pub struct CsafDoc {
    /// Its tracking id.
    pub tracking_id: String,
    /// Its products.
    pub products: Vec<CsafProduct>,
    /// Its vulnerabilities.
    pub vulns: Vec<CsafVuln>,
}

#[derive(Default, Clone)]
struct Path<'a> {
    vendor: Option<&'a str>,
    product: Option<&'a str>,
    family: Option<&'a str>,
    range: Option<&'a str>,
    exact: Option<&'a str>,
}

fn walk<'a>(
    branches: &'a [Branch],
    path: &Path<'a>,
    depth: usize,
    out: &mut Vec<CsafProduct>,
    problems: &mut Vec<String>,
) -> Result<(), VulnError> {
    if depth > MAX_DEPTH {
        return Err(VulnError::Invalid(
            F,
            format!("branches nested deeper than {MAX_DEPTH}"),
        ));
    }
    for b in branches {
        let mut p = path.clone();
        match b.category.as_str() {
            "vendor" => p.vendor = Some(&b.name),
            "product_name" => p.product = Some(&b.name),
            "product_family" => p.family = Some(&b.name),
            "product_version" => p.exact = Some(&b.name),
            "product_version_range" => p.range = Some(&b.name),
            _ => {}
        }
        if let Some(fp) = &b.product {
            let purl = fp.purl();
            let key = p
                .vendor
                .zip(p.product.or(p.family))
                .map(|(v, n)| ProductKey::new(v, n));
            if key.is_none() && purl.is_none() {
                problems.push(format!(
                    "{}: no vendor and product name above it, and no purl",
                    fp.product_id
                ));
                continue;
            }
            let versions = match (p.exact, p.range) {
                (Some(v), _) => Some(VersionRange::exact(v.trim())),
                (None, Some(r)) => VersionRange::normalise(r),
                (None, None) => Some(VersionRange::All),
            };
            match versions {
                Some(versions) => out.push(CsafProduct {
                    id: fp.product_id.clone(),
                    key,
                    versions,
                    purl,
                }),
                None => problems.push(format!(
                    "{}: version range `{}` is not one Vouch reads",
                    fp.product_id,
                    p.range.unwrap_or_default()
                )),
            }
            bounded(F, "products", out)?;
        }
        walk(&b.branches, &p, depth + 1, out, problems)?;
    }
    Ok(())
}

/// Parses a CSAF 2.0 advisory.
pub fn parse(bytes: &[u8]) -> Result<CsafDoc, VulnError> {
    let doc: Doc = read_json(F, bytes)?;
    if doc.document.csaf_version != "2.0" {
        return Err(VulnError::Invalid(
            F,
            format!("csaf_version is `{}`", doc.document.csaf_version),
        ));
    }
    let tracking = VulnId::parse(&doc.document.tracking.id).ok_or_else(|| {
        VulnError::Invalid(
            F,
            format!("tracking id `{}` is not an id", doc.document.tracking.id),
        )
    })?;
    bounded(F, "vulnerabilities", &doc.vulnerabilities)?;
    let mut products = Vec::new();
    let mut problems = Vec::new();
    if let Some(t) = &doc.product_tree {
        walk(
            &t.branches,
            &Path::default(),
            0,
            &mut products,
            &mut problems,
        )?;
        // Products named outside branches match only by purl; without one they are known (a status may
        // name them) but match nothing, like a product installed on another (`relationships`).
        let loose = t
            .full_product_names
            .iter()
            .chain(t.relationships.iter().map(|r| &r.full_product_name));
        for fp in loose {
            products.push(CsafProduct {
                id: fp.product_id.clone(),
                key: None,
                versions: VersionRange::All,
                purl: fp.purl(),
            });
            bounded(F, "products", &products)?;
        }
    }
    if !problems.is_empty() {
        return Err(VulnError::Invalid(F, problems.join("; ")));
    }
    let by_id: HashMap<&str, usize> = products
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let mut vulns = Vec::new();
    for (n, v) in doc.vulnerabilities.into_iter().enumerate() {
        let own = v.cve.as_deref().and_then(VulnId::parse);
        let id = match own {
            Some(id) => id,
            None => VulnId::parse(&format!("{tracking}#{}", n + 1))
                .ok_or_else(|| VulnError::Invalid(F, "tracking id too long".into()))?,
        };
        let mut aliases = vec![tracking.clone()];
        aliases.extend(v.ids.iter().filter_map(|i| VulnId::parse(&i.text)));
        let st = v.product_status.unwrap_or_default();
        let mut status = Vec::new();
        let groups = [
            (&st.known_affected, CsafStatus::Affected),
            (&st.first_affected, CsafStatus::Affected),
            (&st.last_affected, CsafStatus::Affected),
            (&st.fixed, CsafStatus::Fixed),
            (&st.first_fixed, CsafStatus::Fixed),
            (&st.known_not_affected, CsafStatus::NotAffected),
        ];
        for (ids, s) in groups {
            for pid in ids {
                // Every id a status names must be in the tree: a typo would otherwise drop a product.
                let at = *by_id.get(pid.as_str()).ok_or_else(|| {
                    VulnError::Invalid(
                        F,
                        format!("{id}: product `{pid}` is not in the product tree"),
                    )
                })?;
                status.push((at, s));
            }
        }
        let cvss = v
            .scores
            .iter()
            .filter_map(|s| s.cvss_v3.as_ref().map(|c| c.base_score))
            .filter(|s| (0.0..=10.0).contains(s))
            .reduce(f64::max);
        vulns.push(CsafVuln {
            id,
            aliases,
            title: v
                .title
                .unwrap_or_else(|| doc.document.title.clone())
                .chars()
                .take(512)
                .collect(),
            cvss,
            status,
        });
    }
    Ok(CsafDoc {
        tracking_id: tracking.to_string(),
        products,
        vulns,
    })
}
