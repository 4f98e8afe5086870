//! OpenVEX JSON (v0.2, and v0.0.x where a vulnerability is a bare string): statements of a
//! vulnerability's status in products named by purl (a purl without a version covers every version).
//! Products named otherwise (a CPE, an image digest) are not read.

use serde::Deserialize;

use super::ids::{Format, Purl, VulnError, VulnId, bounded, read_json};
use super::{VexSource, VexStatement, VexStatus};

const F: Format = Format::OpenVex;

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "@context")]
    context: String,
    #[serde(default)]
    statements: Vec<Statement>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum VulnRef {
    Name(String),
    Object { name: String },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ProductRef {
    Id(String),
    Object {
        #[serde(rename = "@id", default)]
        id: Option<String>,
        #[serde(default)]
        identifiers: Option<Identifiers>,
    },
}

#[derive(Deserialize)]
struct Identifiers {
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Deserialize)]
struct Statement {
    vulnerability: VulnRef,
    #[serde(default)]
    products: Vec<ProductRef>,
    status: String,
    #[serde(default)]
    justification: Option<String>,
}

/// Parses an OpenVEX document into statements.
pub fn parse(bytes: &[u8]) -> Result<Vec<VexStatement>, VulnError> {
    let doc: Doc = read_json(F, bytes)?;
    if !doc.context.starts_with("https://openvex.dev/ns") {
        return Err(VulnError::Invalid(
            F,
            format!("@context is `{}`", doc.context),
        ));
    }
    bounded(F, "statements", &doc.statements)?;
    let mut out = Vec::new();
    for s in doc.statements {
        let name = match &s.vulnerability {
            VulnRef::Name(n) | VulnRef::Object { name: n } => n,
        };
        let vuln = VulnId::parse(name)
            .ok_or_else(|| VulnError::Invalid(F, format!("vulnerability `{name}` is not an id")))?;
        let status = match s.status.as_str() {
            "not_affected" => VexStatus::NotAffected,
            "affected" => VexStatus::Affected,
            "fixed" => VexStatus::Fixed,
            "under_investigation" => VexStatus::UnderInvestigation,
            other => return Err(VulnError::Invalid(F, format!("{vuln}: status `{other}`"))),
        };
        for p in &s.products {
            let purl = match p {
                ProductRef::Id(id) => Purl::parse(id),
                ProductRef::Object { id, identifiers } => identifiers
                    .as_ref()
                    .and_then(|i| i.purl.as_deref())
                    .or(id.as_deref())
                    .and_then(Purl::parse),
            };
            let Some(purl) = purl else { continue };
            out.push(VexStatement {
                vuln: vuln.clone(),
                product: Some(purl.key),
                version: purl.version,
                status,
                justification: s.justification.clone(),
                source: VexSource::OpenVex,
            });
            bounded(F, "product statements", &out)?;
        }
    }
    Ok(out)
}
