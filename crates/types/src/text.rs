//! Bounded, validated text values: vendor, model, firmware, zone, labels, groups, reasons.
//!
//! Each is checked once at the edge so that nothing unbounded or unprintable reaches the store, a log line or
//! a policy.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Which characters a text kind accepts.
#[derive(Clone, Copy)]
enum Charset {
    /// Printable text: any Unicode except control characters and the invisible ones that change how text
    /// reads ([`is_invisible`]).
    Printable,
    /// Lowercase names: `a-z 0-9 . _ -`, starting with a letter or digit.
    Name,
    /// Names with `/` separators for hierarchies (`plant-1/line-3`).
    Path,
}

fn check(what: &'static str, s: &str, max: usize, charset: Charset) -> Result<(), ValidationError> {
    if s.is_empty() {
        return Err(ValidationError::new(what, "must not be empty"));
    }
    if s.len() > max {
        return Err(ValidationError::new(
            what,
            format!("must be at most {max} bytes"),
        ));
    }
    let name_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    let ok = match charset {
        Charset::Printable => !s.chars().any(|c| c.is_control() || is_invisible(c)),
        Charset::Name => {
            s.starts_with(|c: char| c.is_ascii_alphanumeric()) && s.chars().all(name_char)
        }
        Charset::Path => s.split('/').all(|seg| {
            !seg.is_empty()
                && seg.starts_with(|c: char| c.is_ascii_alphanumeric())
                && seg.chars().all(name_char)
        }),
    };
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            what,
            match charset {
                Charset::Printable => {
                    "must not contain control, bidirectional or invisible formatting characters"
                        .to_owned()
                }
                Charset::Name => {
                    format!("`{s}` must be lowercase letters, digits, `.`, `_` or `-`")
                }
                Charset::Path => format!(
                    "`{s}` must be `/`-separated lowercase names (letters, digits, `.`, `_`, `-`)"
                ),
            },
        ))
    }
}

/// Whether `c` is a character that shows nothing yet changes how the text around it reads or compares: the
/// bidirectional embeddings, overrides, isolates and marks (a vendor string with U+202E shows reversed in a
/// console or a dashboard: "Trojan Source", CVE-2021-42574), zero-width characters, the soft hyphen, the
/// byte-order mark, interlinear annotations, tag characters and line/paragraph separators. Together with
/// control characters, these are refused in every printable text field.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                   // soft hyphen
            | '\u{034F}'             // combining grapheme joiner
            | '\u{061C}'             // Arabic letter mark
            | '\u{115F}'..='\u{1160}' // Hangul fillers
            | '\u{17B4}'..='\u{17B5}' // Khmer inherent vowels
            | '\u{180B}'..='\u{180F}' // Mongolian variation selectors and vowel separator
            | '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
            | '\u{2028}'..='\u{202E}' // line/paragraph separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, bidi isolates, deprecated formats
            | '\u{3164}'             // Hangul filler
            | '\u{FE00}'..='\u{FE0F}' // variation selectors
            | '\u{FEFF}'             // byte-order mark, zero-width no-break space
            | '\u{FFA0}'             // halfwidth Hangul filler
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotations
            | '\u{1D173}'..='\u{1D17A}' // musical formatting
            | '\u{E0000}'..='\u{E0FFF}' // tags and variation selectors supplement
    )
}

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal, $charset:expr) => {
        $(#[$doc])*
        // Serialized as the inner string (a newtype); `serde(into)` would clone it on every write.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest value accepted, in bytes.
            pub const MAX_LEN: usize = $max;

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// One of this crate's own constants (the quarantine group, the reserved label keys), valid by
            /// construction: the `standing` tests parse each one.
            #[allow(dead_code, reason = "the macro serves kinds without constants too")]
            pub(crate) fn known(s: &'static str) -> Self {
                Self(s.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                check($what, s, $max, $charset)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                check($what, &s, $max, $charset)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

bounded_text!(
    /// The device's manufacturer, as the operator or discovery names it.
    Vendor, "vendor", 128, Charset::Printable
);
bounded_text!(
    /// The device's model designation.
    Model, "model", 128, Charset::Printable
);
bounded_text!(
    /// The firmware version string the device reports.
    FirmwareVersion, "firmware version", 64, Charset::Printable
);
bounded_text!(
    /// Where a device is expected to be: a network zone or location path such as `plant-1/line-3`.
    Zone, "zone", 128, Charset::Path
);
bounded_text!(
    /// The name of a device group (policies grant to groups).
    GroupName, "group name", 63, Charset::Name
);
bounded_text!(
    /// A label's key.
    LabelKey, "label key", 63, Charset::Path
);
bounded_text!(
    /// A label's value.
    LabelValue, "label value", 255, Charset::Printable
);
bounded_text!(
    /// The person or system an API token was issued to.
    OperatorName, "operator name", 64, Charset::Printable
);
bounded_text!(
    /// A reader of the event log that records how far it got (`gateway.recheck`, `crl/cache`), so that a
    /// restart resumes there.
    ConsumerId, "consumer id", 63, Charset::Path
);
bounded_text!(
    /// The name an imported compliance document is kept under, unique per [`DocumentKind`](crate::DocumentKind):
    /// the firmware an SBOM describes (`model@version`, `sha256:<digest>`), an advisory's or a catalogue's name.
    DocumentKey, "document key", 256, Charset::Printable
);
bounded_text!(
    /// Why a change was made, as an operator or a playbook explains it in the event log.
    Reason, "reason", 1024, Charset::Printable
);
bounded_text!(
    /// A protocol's name as passive discovery names it (`modbus`, `s7comm-plus`), or `tcp/PORT` / `udp/PORT`
    /// for a service it did not recognise.
    ProtocolName, "protocol name", 32, Charset::Path
);
bounded_text!(
    /// The user name a clear-text credential was sent for (never the secret itself).
    CredentialUser, "credential user", 256, Charset::Printable
);

/// The most labels an operator may put on one device.
pub const MAX_LABELS: usize = 64;
/// The most labels in Vouch's reserved namespaces ([`RESERVED_LABEL_PREFIXES`]) one device may carry.
/// Counted apart from [`MAX_LABELS`]: a device whose operator used every label still gets its trust score
/// and a playbook's quarantine mark written.
pub const MAX_RESERVED_LABELS: usize = 8;
/// The most groups one device may belong to.
pub const MAX_GROUPS: usize = 64;

/// Free-form key/value labels on a device, kept sorted: at most [`MAX_LABELS`] of an operator's and
/// [`MAX_RESERVED_LABELS`] of Vouch's own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<LabelKey, LabelValue>",
    into = "BTreeMap<LabelKey, LabelValue>"
)]
pub struct Labels(BTreeMap<LabelKey, LabelValue>);

impl Labels {
    /// Labels from a map, if it is not too large.
    pub fn new(map: BTreeMap<LabelKey, LabelValue>) -> Result<Self, ValidationError> {
        let reserved = map.keys().filter(|k| k.is_reserved()).count();
        if map.len() - reserved > MAX_LABELS {
            return Err(ValidationError::new(
                "labels",
                format!("at most {MAX_LABELS} labels per device"),
            ));
        }
        if reserved > MAX_RESERVED_LABELS {
            return Err(ValidationError::new(
                "labels",
                format!(
                    "at most {MAX_RESERVED_LABELS} labels under trust/ and response/ per device"
                ),
            ));
        }
        Ok(Self(map))
    }

    /// The labels, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&LabelKey, &LabelValue)> {
        self.0.iter()
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &LabelKey) -> Option<&LabelValue> {
        self.0.get(key)
    }

    /// These labels with `key` set to `value`, or removed when `value` is `None`; refused when that would
    /// make too many labels.
    pub(crate) fn with(
        &self,
        key: LabelKey,
        value: Option<LabelValue>,
    ) -> Result<Labels, ValidationError> {
        let mut map = self.0.clone();
        match value {
            Some(v) => map.insert(key, v),
            None => map.remove(&key),
        };
        Labels::new(map)
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first reserved label (see [`RESERVED_LABEL_PREFIXES`]) these labels set to anything but what
    /// `current` holds: an operator may leave reserved labels out or repeat them unchanged, never write them.
    pub fn reserved_change(&self, current: Option<&Labels>) -> Option<&LabelKey> {
        self.iter()
            .find(|(k, v)| k.is_reserved() && current.and_then(|c| c.get(k)) != Some(*v))
            .map(|(k, _)| k)
    }

    /// These labels (an operator's, replacing the whole set) with `current`'s reserved labels carried over,
    /// so that replacing the labels never drops what the trust service or a playbook wrote.
    pub fn keeping_reserved(&self, current: &Labels) -> Result<Labels, ValidationError> {
        let mut map: BTreeMap<_, _> = self
            .iter()
            .filter(|(k, _)| !k.is_reserved())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in current.iter().filter(|(k, _)| k.is_reserved()) {
            map.insert(k.clone(), v.clone());
        }
        Labels::new(map)
    }
}

/// Label namespaces Vouch itself writes: the trust service's score and band (read into the policy
/// context) and the playbooks' quarantine marks. Operators cannot set or change them, or a token allowed to
/// edit devices could vouch for a device's trust or lift a playbook's quarantine behind its back.
pub const RESERVED_LABEL_PREFIXES: [&str; 2] = ["trust/", "response/"];

/// The label holding a device's trust score (0–100), written by the trust service.
pub const TRUST_SCORE_LABEL: &str = "trust/score";

/// The label holding a device's trust band, written by the trust service.
pub const TRUST_BAND_LABEL: &str = "trust/band";

/// The label a playbook sets on a device it quarantined (its value names the playbook), so that only a
/// playbook's own release lifts it.
pub const QUARANTINED_BY_LABEL: &str = "response/quarantined-by";

impl LabelKey {
    /// Whether the key is in a namespace Vouch writes ([`RESERVED_LABEL_PREFIXES`]).
    pub fn is_reserved(&self) -> bool {
        RESERVED_LABEL_PREFIXES
            .iter()
            .any(|p| self.as_str().starts_with(p))
    }
}

impl TryFrom<BTreeMap<LabelKey, LabelValue>> for Labels {
    type Error = ValidationError;
    fn try_from(map: BTreeMap<LabelKey, LabelValue>) -> Result<Self, Self::Error> {
        Self::new(map)
    }
}

impl From<Labels> for BTreeMap<LabelKey, LabelValue> {
    fn from(l: Labels) -> Self {
        l.0
    }
}

impl FromStr for Labels {
    type Err = ValidationError;
    /// Parses `k=v;k2=v2` (the CSV import form); empty means no labels.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut map = BTreeMap::new();
        for pair in s.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                ValidationError::new("labels", format!("`{pair}` is not key=value"))
            })?;
            map.insert(k.parse()?, v.parse()?);
        }
        Self::new(map)
    }
}

/// The groups a device belongs to, at most [`MAX_GROUPS`], kept sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeSet<GroupName>")]
pub struct Groups(BTreeSet<GroupName>);

impl Groups {
    /// Groups from a set, if it is not too large.
    pub fn new(set: BTreeSet<GroupName>) -> Result<Self, ValidationError> {
        if set.len() > MAX_GROUPS {
            return Err(ValidationError::new(
                "groups",
                format!("at most {MAX_GROUPS} groups per device"),
            ));
        }
        Ok(Self(set))
    }

    /// The groups, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &GroupName> {
        self.0.iter()
    }

    /// Whether the device is in `group`.
    pub fn contains(&self, group: &GroupName) -> bool {
        self.0.contains(group)
    }

    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<BTreeSet<GroupName>> for Groups {
    type Error = ValidationError;
    fn try_from(set: BTreeSet<GroupName>) -> Result<Self, Self::Error> {
        Self::new(set)
    }
}

impl From<Groups> for BTreeSet<GroupName> {
    fn from(g: Groups) -> Self {
        g.0
    }
}

impl FromStr for Groups {
    type Err = ValidationError;
    /// Parses `g1;g2` (the CSV import form); empty means no groups.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let set = s
            .split(';')
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        Self::new(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert!("plant-1/line-3".parse::<Zone>().is_ok());
        assert!("plant-1//line-3".parse::<Zone>().is_err());
        assert!("/plant".parse::<Zone>().is_err());
        assert!("Quarantine".parse::<GroupName>().is_err());
        assert!("quarantine".parse::<GroupName>().is_ok());
        assert!("".parse::<Vendor>().is_err());
        assert!("Rockwell\u{0007}".parse::<Vendor>().is_err());
        // Bidirectional overrides and invisible characters (Trojan Source) are refused in every printable
        // field, by name of the field.
        for bad in [
            "Siemens\u{202E}gnp.exe",
            "a\u{2066}b",
            "zero\u{200B}width",
            "\u{FEFF}bom",
            "tag\u{E0041}",
            "line\u{2028}sep",
            "soft\u{00AD}hyphen",
        ] {
            let e = bad.parse::<Vendor>().unwrap_err();
            assert!(e.to_string().contains("bidirectional"), "{e}");
            assert!(bad.parse::<Reason>().is_err(), "{bad:?}");
            assert!(bad.parse::<OperatorName>().is_err(), "{bad:?}");
            assert!(bad.parse::<FirmwareVersion>().is_err(), "{bad:?}");
            assert!(bad.parse::<LabelValue>().is_err(), "{bad:?}");
        }
        // Real names in other scripts stay valid.
        for good in [
            "Schneider Électrique",
            "三菱電機",
            "שניידר",
            "Bosch Rexroth AG",
        ] {
            assert!(good.parse::<Vendor>().is_ok(), "{good}");
        }
        assert!("x".repeat(129).parse::<Vendor>().is_err());
        assert!(
            "Rockwell Automation/Allen-Bradley"
                .parse::<Vendor>()
                .is_ok()
        );
    }

    #[test]
    fn labels_and_groups_parse_csv_form() {
        let l: Labels = "site=berlin;env=prod".parse().unwrap();
        assert_eq!(l.iter().count(), 2);
        assert!("site".parse::<Labels>().is_err());
        let g: Groups = "cameras;line-3".parse().unwrap();
        assert!(g.contains(&"line-3".parse().unwrap()));
        assert!("".parse::<Groups>().unwrap().is_empty());
    }

    #[test]
    fn too_many_labels_rejected_in_json() {
        let map: BTreeMap<String, String> =
            (0..65).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let json = serde_json::to_string(&map).unwrap();
        let err = serde_json::from_str::<Labels>(&json).unwrap_err();
        assert!(err.to_string().contains("at most 64"), "{err}");
    }

    #[test]
    fn a_full_label_set_still_takes_the_trust_score_and_the_quarantine_mark() {
        let map: BTreeMap<LabelKey, LabelValue> = (0..MAX_LABELS)
            .map(|i| (format!("k{i}").parse().unwrap(), "v".parse().unwrap()))
            .collect();
        let full = Labels::new(map).unwrap();
        let scored = full.with_trust("42".parse().unwrap()).unwrap();
        let marked = scored.with_quarantined_by(Some("exfiltration")).unwrap();
        assert_eq!(marked.iter().count(), MAX_LABELS + 3);
        assert_eq!(marked.trust_score(), Some("42".parse().unwrap()));
        // Reserved namespaces are bounded on their own.
        let many: BTreeMap<LabelKey, LabelValue> = (0..=MAX_RESERVED_LABELS)
            .map(|i| (format!("trust/x{i}").parse().unwrap(), "v".parse().unwrap()))
            .collect();
        let err = Labels::new(many).unwrap_err();
        assert!(err.to_string().contains("trust/ and response/"), "{err}");
    }
}
