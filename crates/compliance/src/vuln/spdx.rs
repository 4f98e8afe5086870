//! SPDX 2.3 JSON: packages with their version and purl external references (both category spellings,
//! `PACKAGE-MANAGER` of 2.3 and `PACKAGE_MANAGER` of 2.2).

use serde::Deserialize;

use super::Component;
use super::ids::{Format, Purl, VulnError, bounded, read_json};

const F: Format = Format::Spdx;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    spdx_version: String,
    #[serde(default)]
    packages: Vec<Package>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version_info: Option<String>,
    #[serde(default)]
    external_refs: Vec<ExternalRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: String,
    reference_type: String,
    reference_locator: String,
}

/// Parses an SPDX 2.x JSON document into its packages.
pub fn parse(bytes: &[u8]) -> Result<Vec<Component>, VulnError> {
    let doc: Doc = read_json(F, bytes)?;
    if !doc.spdx_version.starts_with("SPDX-2.") {
        return Err(VulnError::Invalid(
            F,
            format!("spdxVersion is `{}`", doc.spdx_version),
        ));
    }
    bounded(F, "packages", &doc.packages)?;
    Ok(doc
        .packages
        .into_iter()
        .map(|p| {
            let refs = |ty: &str| {
                p.external_refs
                    .iter()
                    .find(|r| {
                        r.reference_type == ty
                            && matches!(
                                r.reference_category.as_str(),
                                "PACKAGE-MANAGER" | "PACKAGE_MANAGER" | "SECURITY"
                            )
                    })
                    .map(|r| r.reference_locator.clone())
            };
            let purl = refs("purl").as_deref().and_then(Purl::parse);
            let cpe = refs("cpe23Type").or_else(|| refs("cpe22Type"));
            Component {
                name: p.name.chars().take(256).collect(),
                version: p
                    .version_info
                    .clone()
                    .or_else(|| purl.as_ref().and_then(|x| x.version.clone())),
                purl,
                cpe,
            }
        })
        .collect())
}
