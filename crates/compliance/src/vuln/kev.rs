//! The CISA Known Exploited Vulnerabilities catalogue (JSON feed): each entry's CVE, vendor, product,
//! dates and whether it is known to be used in ransomware campaigns.

use serde::Deserialize;
use vouch_types::Timestamp;

use super::ids::{Format, VulnError, VulnId, bounded, read_json};

const F: Format = Format::Kev;

#[derive(Deserialize)]
struct Catalog {
    vulnerabilities: Vec<Raw>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(rename = "cveID")]
    cve_id: String,
    #[serde(default)]
    vendor_project: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    vulnerability_name: String,
    date_added: String,
    #[serde(default)]
    due_date: Option<String>,
    #[serde(default)]
    known_ransomware_campaign_use: Option<String>,
}

/// One known-exploited vulnerability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KevEntry {
    /// Its CVE id.
    pub cve: VulnId,
    /// The vendor or project.
    pub vendor_project: String,
    /// The product.
    pub product: String,
    /// Its name in the catalogue.
    pub name: String,
    /// When CISA added it.
    pub date_added: Timestamp,
    /// When US federal agencies must have remediated it.
    pub due_date: Option<Timestamp>,
    /// Whether it is known to be used in ransomware campaigns.
    pub ransomware: bool,
}

fn date(s: &str) -> Option<Timestamp> {
    if s.len() != 10 {
        return None;
    }
    format!("{s}T00:00:00Z").parse().ok()
}

/// Parses the KEV catalogue.
pub fn parse(bytes: &[u8]) -> Result<Vec<KevEntry>, VulnError> {
    let cat: Catalog = read_json(F, bytes)?;
    bounded(F, "vulnerabilities", &cat.vulnerabilities)?;
    cat.vulnerabilities
        .into_iter()
        .map(|r| {
            let cve = VulnId::parse(&r.cve_id)
                .filter(VulnId::is_cve)
                .ok_or_else(|| {
                    VulnError::Invalid(F, format!("cveID `{}` is not a CVE id", r.cve_id))
                })?;
            let date_added = date(&r.date_added).ok_or_else(|| {
                VulnError::Invalid(
                    F,
                    format!("{cve}: dateAdded `{}` is not YYYY-MM-DD", r.date_added),
                )
            })?;
            let clip = |s: String| s.chars().take(256).collect::<String>();
            Ok(KevEntry {
                cve,
                vendor_project: clip(r.vendor_project),
                product: clip(r.product),
                name: clip(r.vulnerability_name),
                date_added,
                due_date: r.due_date.as_deref().and_then(date),
                ransomware: r
                    .known_ransomware_campaign_use
                    .is_some_and(|k| k.eq_ignore_ascii_case("known")),
            })
        })
        .collect()
}
