//! The names vulnerability documents share: vulnerability ids, package URLs and vendor/product keys, and
//! the bounded JSON reading every parser uses.
//!
//! Package URLs are read here rather than with a crate: matching needs only type, namespace, name and
//! version (qualifiers and subpath are dropped), read leniently (an upper-case type, an unencoded `@` in
//! an npm scope) because an SBOM's purl that fails to parse is a missed vulnerability.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The largest document any parser reads (the KEV catalogue is about 1.5 MB, big CSAF files a few MB).
pub const MAX_DOCUMENT_BYTES: usize = 32 << 20;
/// The most entries (components, packages, advisories, statements, products) read from one document.
pub const MAX_ENTRIES: usize = 200_000;
const MAX_ID_LEN: usize = 128;

/// A vulnerability document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CycloneDX JSON (SBOM and VEX).
    CycloneDx,
    /// SPDX 2.3 JSON.
    Spdx,
    /// OSV JSON.
    Osv,
    /// CSAF 2.0.
    Csaf,
    /// The CISA Known Exploited Vulnerabilities catalogue.
    Kev,
    /// OpenVEX JSON.
    OpenVex,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CycloneDx => "CycloneDX",
            Self::Spdx => "SPDX",
            Self::Osv => "OSV",
            Self::Csaf => "CSAF",
            Self::Kev => "KEV",
            Self::OpenVex => "OpenVEX",
        })
    }
}

/// Why a vulnerability document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VulnError {
    /// Larger than [`MAX_DOCUMENT_BYTES`].
    #[error("{0} document is {1} bytes, more than {MAX_DOCUMENT_BYTES}")]
    TooLarge(Format, usize),
    /// Not JSON of the format's shape (serde's message, with line and column; nesting deeper than 128
    /// levels is refused here too).
    #[error("{0} document is not valid: {1}")]
    Json(Format, String),
    /// JSON of the right shape whose content is not the format's.
    #[error("{0} document refused: {1}")]
    Invalid(Format, String),
}

/// Reads `bytes` as `T`, bounded in size (serde_json bounds the depth).
pub(crate) fn read_json<T: DeserializeOwned>(format: Format, bytes: &[u8]) -> Result<T, VulnError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(VulnError::TooLarge(format, bytes.len()));
    }
    serde_json::from_slice(bytes).map_err(|e| VulnError::Json(format, e.to_string()))
}

/// Refuses a list longer than [`MAX_ENTRIES`].
pub(crate) fn bounded<T>(format: Format, what: &str, v: &[T]) -> Result<(), VulnError> {
    if v.len() > MAX_ENTRIES {
        return Err(VulnError::Invalid(
            format,
            format!("more than {MAX_ENTRIES} {what}"),
        ));
    }
    Ok(())
}

/// A vulnerability's id in some namespace: `CVE-2024-3400`, `GHSA-…`, `OSV-…`, a CSAF tracking id.
/// CVE ids are upper-cased so that every document's spelling meets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VulnId(String);

impl VulnId {
    /// Parses an id: 1 to 128 bytes of printable, non-space ASCII.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.is_empty() || s.len() > MAX_ID_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        if s.len() > 4 && s[..4].eq_ignore_ascii_case("cve-") {
            return Some(Self(s.to_ascii_uppercase()));
        }
        Some(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is a CVE id.
    pub fn is_cve(&self) -> bool {
        self.0.starts_with("CVE-")
    }
}

impl fmt::Display for VulnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for VulnId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s).ok_or_else(|| format!("`{s}` is not a vulnerability id"))
    }
}

impl From<VulnId> for String {
    fn from(v: VulnId) -> String {
        v.0
    }
}

/// A package's identity across documents: `type/namespace/name` of its purl, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageKey(String);

impl PackageKey {
    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of `ty/namespace/name`.
    pub fn new(ty: &str, namespace: Option<&str>, name: &str) -> Self {
        let mut s = String::with_capacity(ty.len() + name.len() + 16);
        s.push_str(&ty.to_ascii_lowercase());
        s.push('/');
        if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
            s.push_str(&ns.to_lowercase());
            s.push('/');
        }
        let name = name.to_lowercase();
        // PyPI names compare with `_` and `-` alike (PEP 503).
        if ty.eq_ignore_ascii_case("pypi") {
            s.push_str(&name.replace('_', "-"));
        } else {
            s.push_str(&name);
        }
        Self(s)
    }
}

impl fmt::Display for PackageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The parts of a package URL that matching reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purl {
    /// `type/namespace/name`.
    pub key: PackageKey,
    /// The version, when the purl names one.
    pub version: Option<String>,
}

impl Purl {
    /// Parses `pkg:type/namespace/name@version?qualifiers#subpath`; `None` when it is not a purl.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() > 1024 {
            return None;
        }
        let rest = s.trim().strip_prefix("pkg:")?.trim_start_matches('/');
        let rest = rest.split('#').next().unwrap_or(rest);
        let rest = rest.split('?').next().unwrap_or(rest);
        let (ty, path) = rest.split_once('/')?;
        if ty.is_empty()
            || !ty
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
        {
            return None;
        }
        // The version follows the last `@` after the last `/` (an npm scope's `@` comes before it).
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (path, version) = match path[last_slash..].rfind('@') {
            Some(at) => {
                let at = last_slash + at;
                (&path[..at], Some(decode(&path[at + 1..])))
            }
            None => (path, None),
        };
        let path = path.trim_end_matches('/');
        let (ns, name) = match path.rsplit_once('/') {
            Some((ns, name)) => (Some(decode(ns)), decode(name)),
            None => (None, decode(path)),
        };
        if name.is_empty() {
            return None;
        }
        Some(Self {
            key: PackageKey::new(ty, ns.as_deref(), &name),
            version: version.filter(|v| !v.is_empty()),
        })
    }
}

/// Percent-decodes `s` (an invalid escape is kept as written).
fn decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = b.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(h).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Normalises a vendor or product name for matching across documents: lower case, runs of anything but
/// letters and digits as one space, and a vendor's legal-form suffixes dropped ("Siemens AG" = "siemens",
/// "Schneider Electric SE" = "schneider electric").
pub fn normalise_name(s: &str, vendor: bool) -> String {
    const LEGAL: &[&str] = &[
        "inc",
        "incorporated",
        "ltd",
        "limited",
        "llc",
        "gmbh",
        "ag",
        "se",
        "sa",
        "corp",
        "corporation",
        "co",
        "company",
        "plc",
        "bv",
        "nv",
        "kg",
        "spa",
        "srl",
        "oy",
        "ab",
        "kk",
    ];
    let lower = s.to_lowercase();
    let mut words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if vendor {
        while words.len() > 1 && words.last().is_some_and(|w| LEGAL.contains(w)) {
            words.pop();
        }
    }
    words.join(" ")
}

/// A device product's identity across documents: normalised vendor and product names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProductKey {
    /// The normalised vendor.
    pub vendor: String,
    /// The normalised product (model), without the vendor's name before it.
    pub product: String,
}

impl ProductKey {
    /// The key of a vendor and product as any document or device record spells them.
    pub fn new(vendor: &str, product: &str) -> Self {
        let vendor = normalise_name(vendor, true);
        let mut product = normalise_name(product, false);
        if let Some(rest) = product
            .strip_prefix(&vendor)
            .and_then(|r| r.strip_prefix(' '))
        {
            product = rest.to_owned();
        }
        Self { vendor, product }
    }
}

impl fmt::Display for ProductKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.vendor, self.product)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_yield_key_and_version() {
        let p = Purl::parse("pkg:generic/busybox@1.33.1?arch=arm#sub").unwrap();
        assert_eq!(p.key.as_str(), "generic/busybox");
        assert_eq!(p.version.as_deref(), Some("1.33.1"));
        let p = Purl::parse("pkg:npm/%40angular/core@12.0.0").unwrap();
        assert_eq!(p.key.as_str(), "npm/@angular/core");
        let p = Purl::parse("pkg:npm/@angular/core@12.0.0").unwrap();
        assert_eq!(p.key.as_str(), "npm/@angular/core");
        let p = Purl::parse("pkg:PyPI/Django_Rest").unwrap();
        assert_eq!((p.key.as_str(), p.version), ("pypi/django-rest", None));
        let p = Purl::parse("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1").unwrap();
        assert_eq!(p.key.as_str(), "maven/org.apache.logging.log4j/log4j-core");
        for bad in ["busybox", "pkg:", "pkg:generic/", "pkg:/x", "pkg:a b/x"] {
            assert!(Purl::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn names_normalise() {
        assert_eq!(
            ProductKey::new("Siemens AG", "SIMATIC S7-1500 CPU"),
            ProductKey::new("siemens", "Siemens SIMATIC  S7 1500 cpu")
        );
        assert_eq!(
            normalise_name("Schneider Electric SE", true),
            "schneider electric"
        );
        assert_eq!(normalise_name("AG", true), "ag");
        assert_eq!(
            VulnId::parse("cve-2021-44228").unwrap().as_str(),
            "CVE-2021-44228"
        );
        assert!(VulnId::parse("has space").is_none());
    }
}
