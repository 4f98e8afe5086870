//! OSV JSON (the schema of osv.dev): one entry, an array of entries, or `{"vulns": [...]}`; affected
//! packages by purl or by ecosystem and name; `SEMVER` and `ECOSYSTEM` ranges (`GIT` ranges name commits,
//! which a device's firmware version cannot be compared with, so they are not read), and explicit
//! `versions`. Withdrawn entries are skipped.

use serde::Deserialize;

use super::ids::{Format, PackageKey, Purl, VulnError, VulnId, bounded, read_json};
use super::range::{self, OsvEvent};

const F: Format = Format::Osv;

#[derive(Deserialize)]
#[serde(untagged)]
enum Doc {
    One(Box<Entry>),
    Many(Vec<Entry>),
    Wrapped { vulns: Vec<Entry> },
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    affected: Vec<Affected>,
}

#[derive(Deserialize)]
struct Affected {
    #[serde(default)]
    package: Option<Package>,
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct Package {
    #[serde(default)]
    ecosystem: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Deserialize)]
struct Range {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    introduced: Option<String>,
    #[serde(default)]
    fixed: Option<String>,
    #[serde(default)]
    last_affected: Option<String>,
}

/// One OSV entry.
#[derive(Debug, Clone)]
pub struct OsvEntry {
    /// Its id.
    pub id: VulnId,
    /// Its aliases (CVE ids among them).
    pub aliases: Vec<VulnId>,
    /// Its summary.
    pub summary: String,
    /// The packages it affects.
    pub affected: Vec<OsvAffected>,
}

/// One affected package of an OSV entry.
#[derive(Debug, Clone)]
pub struct OsvAffected {
    /// The package.
    pub package: PackageKey,
    /// Its ranges (each a list of events, in version order).
    pub ranges: Vec<Vec<OsvEvent>>,
    /// Versions listed one by one.
    pub versions: Vec<String>,
}

/// The purl type of an OSV ecosystem, and how its package names split into namespace and name.
fn ecosystem_key(ecosystem: &str, name: &str) -> Option<PackageKey> {
    // "Debian:12", "Alpine:v3.18": the release after the colon does not change the package.
    let eco = ecosystem.split(':').next().unwrap_or(ecosystem);
    let (ty, ns) = match eco {
        "npm" => ("npm", None),
        "PyPI" => ("pypi", None),
        "crates.io" => ("cargo", None),
        "Go" => ("golang", None),
        "Maven" => {
            let (g, a) = name.split_once(':')?;
            return Some(PackageKey::new("maven", Some(g), a));
        }
        "NuGet" => ("nuget", None),
        "RubyGems" => ("gem", None),
        "Packagist" => ("composer", None),
        "Hex" => ("hex", None),
        "Pub" => ("pub", None),
        "Debian" => ("deb", Some("debian")),
        "Ubuntu" => ("deb", Some("ubuntu")),
        "Alpine" => ("apk", Some("alpine")),
        "" => return None,
        _ => ("generic", None),
    };
    // A name with `/` ("@scope/pkg", a Go module path) makes the same key as its purl's namespace and name.
    (!name.is_empty()).then(|| PackageKey::new(ty, ns, name))
}

/// Parses OSV JSON into its live entries.
pub fn parse(bytes: &[u8]) -> Result<Vec<OsvEntry>, VulnError> {
    let entries = match read_json::<Doc>(F, bytes)? {
        Doc::One(e) => vec![*e],
        Doc::Many(v) | Doc::Wrapped { vulns: v } => v,
    };
    bounded(F, "entries", &entries)?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        if e.withdrawn.is_some() {
            continue;
        }
        let id = VulnId::parse(&e.id)
            .ok_or_else(|| VulnError::Invalid(F, format!("id `{}` is not an id", e.id)))?;
        let mut affected = Vec::new();
        for a in e.affected {
            let Some(p) = a.package else { continue };
            let key = match p.purl.as_deref().and_then(Purl::parse) {
                Some(purl) => purl.key,
                None => match ecosystem_key(&p.ecosystem, &p.name) {
                    Some(k) => k,
                    None => continue,
                },
            };
            let ranges = a
                .ranges
                .into_iter()
                .filter(|r| matches!(r.kind.as_str(), "SEMVER" | "ECOSYSTEM"))
                .map(|r| {
                    let mut events: Vec<OsvEvent> = r
                        .events
                        .into_iter()
                        .filter_map(|ev| {
                            ev.introduced
                                .map(OsvEvent::Introduced)
                                .or(ev.fixed.map(OsvEvent::Fixed))
                                .or(ev.last_affected.map(OsvEvent::LastAffected))
                        })
                        .collect();
                    range::sort_events(&mut events);
                    events
                })
                .collect();
            affected.push(OsvAffected {
                package: key,
                ranges,
                versions: a.versions,
            });
        }
        out.push(OsvEntry {
            id,
            aliases: e.aliases.iter().filter_map(|a| VulnId::parse(a)).collect(),
            summary: e.summary.unwrap_or_default().chars().take(512).collect(),
            affected,
        });
    }
    Ok(out)
}
