//! Which versions an advisory covers: OSV event ranges, `vers:` ranges (CSAF, purl-spec), and the free
//! forms vendors write in CSAF `product_version_range` names ("<=V3.2", "V2.1 and prior", "all versions").
//!
//! Every comparison is [`vouch_types::compare_versions`] (numeric components), the one firmware order
//! Vouch uses, so "V3.2.6" and "3.2.6" are the same version whichever document names it.

use std::cmp::Ordering;

use vouch_types::compare_versions as cmp;

/// How a bound compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A version range: the versions it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRange {
    /// Every version.
    All,
    /// Constraints in the `vers` sense, sorted by version.
    Constraints(Vec<(Comparator, String)>),
}

impl VersionRange {
    /// One exact version.
    pub fn exact(v: &str) -> Self {
        Self::Constraints(vec![(Comparator::Eq, v.to_owned())])
    }

    /// Whether `v` is in the range, by the `vers` containment algorithm: an `=` that equals it or a `!=`
    /// that excludes it decides; otherwise the remaining bounds, in version order, are intervals.
    pub fn contains(&self, v: &str) -> bool {
        let Self::Constraints(cs) = self else {
            return true;
        };
        for (c, x) in cs {
            match c {
                Comparator::Eq if cmp(v, x) == Ordering::Equal => return true,
                Comparator::Ne if cmp(v, x) == Ordering::Equal => return false,
                _ => {}
            }
        }
        let bounds: Vec<&(Comparator, String)> = cs
            .iter()
            .filter(|(c, _)| !matches!(c, Comparator::Eq | Comparator::Ne))
            .collect();
        if bounds.is_empty() {
            // Only `!=` (and it did not match): every other version.
            return cs.iter().all(|(c, _)| *c == Comparator::Ne) && !cs.is_empty();
        }
        let above = |c: Comparator, x: &str| match c {
            Comparator::Gt => cmp(v, x) == Ordering::Greater,
            _ => cmp(v, x) != Ordering::Less,
        };
        let below = |c: Comparator, x: &str| match c {
            Comparator::Lt => cmp(v, x) == Ordering::Less,
            _ => cmp(v, x) != Ordering::Greater,
        };
        let mut i = 0;
        while i < bounds.len() {
            let (c, x) = bounds[i];
            match c {
                Comparator::Lt | Comparator::Le => {
                    // An upper bound with no lower bound before it: from the beginning.
                    if below(*c, x) {
                        return true;
                    }
                    i += 1;
                }
                _ => match bounds.get(i + 1) {
                    Some((u, y)) if matches!(u, Comparator::Lt | Comparator::Le) => {
                        if above(*c, x) && below(*u, y) {
                            return true;
                        }
                        i += 2;
                    }
                    _ => {
                        if above(*c, x) {
                            return true;
                        }
                        i += 1;
                    }
                },
            }
        }
        false
    }

    /// Parses a `vers:` URI (`vers:generic/>=1.0|<2.3`), or `None` when it is not one.
    pub fn parse_vers(s: &str) -> Option<Self> {
        let rest = s.trim().strip_prefix("vers:")?;
        let (_scheme, cs) = rest.split_once('/')?;
        let cs = cs.trim();
        if cs == "*" {
            return Some(Self::All);
        }
        let mut out = Vec::new();
        for part in cs.split('|') {
            out.push(parse_constraint(part.trim())?);
        }
        Self::sorted(out)
    }

    /// Reads the forms vendors write (CSAF `product_version_range` names, CISA ICS advisories): `vers:`
    /// URIs, `<=V3.2`, `< 4.0`, `>=1.0 <2.0`, `V2.1 and prior`, `prior to 3.0`, `before 3.0`, `up to 2.4`,
    /// `all versions`, `*`, or a bare version. `None` when it is none of them.
    pub fn normalise(s: &str) -> Option<Self> {
        let t = s.trim();
        if t.starts_with("vers:") {
            return Self::parse_vers(t);
        }
        let l = t.to_ascii_lowercase();
        if matches!(l.as_str(), "*" | "all" | "all versions") {
            return Some(Self::All);
        }
        for suffix in [
            " and prior",
            " and earlier",
            " and older",
            " or earlier",
            " or prior",
        ] {
            if let Some(v) = l.strip_suffix(suffix) {
                return Self::one(Comparator::Le, v);
            }
        }
        for prefix in ["prior to ", "before ", "earlier than "] {
            if let Some(v) = l.strip_prefix(prefix) {
                return Self::one(Comparator::Lt, v);
            }
        }
        if let Some(v) = l.strip_prefix("up to ") {
            return Self::one(Comparator::Le, v);
        }
        let parts: Vec<&str> = l
            .split(['|', ','])
            .flat_map(|p| split_bounds(p.trim()))
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for p in parts {
            out.push(parse_constraint(p)?);
        }
        Self::sorted(out)
    }

    fn one(c: Comparator, v: &str) -> Option<Self> {
        let v = v.trim();
        has_digit(v).then(|| Self::Constraints(vec![(c, v.to_owned())]))
    }

    fn sorted(mut cs: Vec<(Comparator, String)>) -> Option<Self> {
        if cs.is_empty() || cs.len() > 64 {
            return None;
        }
        cs.sort_by(|a, b| cmp(&a.1, &b.1));
        Some(Self::Constraints(cs))
    }
}

/// Splits `>=1.0 <2.0` into its bounds (a space before a comparator starts a new bound).
fn split_bounds(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = s.as_bytes();
    for i in 1..b.len() {
        if b[i - 1] == b' ' && matches!(b[i], b'<' | b'>' | b'=' | b'!') {
            out.push(s[start..i].trim());
            start = i;
        }
    }
    out.push(s[start..].trim());
    out
}

fn has_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

fn parse_constraint(s: &str) -> Option<(Comparator, String)> {
    let (c, v) = if let Some(v) = s.strip_prefix(">=") {
        (Comparator::Ge, v)
    } else if let Some(v) = s.strip_prefix("<=") {
        (Comparator::Le, v)
    } else if let Some(v) = s.strip_prefix("!=") {
        (Comparator::Ne, v)
    } else if let Some(v) = s.strip_prefix('<') {
        (Comparator::Lt, v)
    } else if let Some(v) = s.strip_prefix('>') {
        (Comparator::Gt, v)
    } else if let Some(v) = s.strip_prefix('=') {
        (Comparator::Eq, v)
    } else {
        (Comparator::Eq, s)
    };
    let v = v.trim();
    (has_digit(v) && v.len() <= 64).then(|| (c, v.to_owned()))
}

/// One event of an OSV `SEMVER`/`ECOSYSTEM` range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsvEvent {
    /// Affected from this version on ("0": from the beginning).
    Introduced(String),
    /// Not affected from this version on.
    Fixed(String),
    /// Affected up to and including this version.
    LastAffected(String),
}

impl OsvEvent {
    fn version(&self) -> &str {
        match self {
            Self::Introduced(v) | Self::Fixed(v) | Self::LastAffected(v) => v,
        }
    }
}

/// Puts OSV events in version order, as [`osv_affected`] reads them (done once, when an entry is read).
pub fn sort_events(events: &mut [OsvEvent]) {
    events.sort_by(|a, b| cmp(a.version(), b.version()));
}

/// Whether `v` is affected under OSV `events`, in version order ([`sort_events`]): walked in order, each
/// event at or below `v` switches the state; a `last_affected` switches it off only for versions above it.
pub fn osv_affected(events: &[OsvEvent], v: &str) -> bool {
    let mut affected = false;
    for e in events {
        let o = cmp(v, e.version());
        match e {
            OsvEvent::Introduced(x) if x == "0" || o != Ordering::Less => affected = true,
            OsvEvent::Fixed(_) if o != Ordering::Less => affected = false,
            OsvEvent::LastAffected(_) if o == Ordering::Greater => affected = false,
            _ => {}
        }
    }
    affected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vers_ranges_follow_the_containment_algorithm() {
        let r = VersionRange::parse_vers("vers:generic/>=1.0|<2.3.1|>=3.0|<=3.4|!=3.2").unwrap();
        for (v, want) in [
            ("0.9", false),
            ("1.0", true),
            ("2.3.0", true),
            ("2.3.1", false),
            ("3.2", false),
            ("3.4", true),
            ("3.5", false),
        ] {
            assert_eq!(r.contains(v), want, "{v}");
        }
        assert!(
            VersionRange::parse_vers("vers:intdot/*")
                .unwrap()
                .contains("9")
        );
        assert!(
            VersionRange::parse_vers("vers:generic/<2|>4")
                .unwrap()
                .contains("5")
        );
        assert!(VersionRange::parse_vers("cpe:/a").is_none());
        assert!(VersionRange::parse_vers("vers:generic/>=abc").is_none());
    }

    #[test]
    fn vendor_forms_are_normalised() {
        let cases = [
            ("<=V3.2", "3.2", true),
            ("<=V3.2", "V3.2.1", false),
            ("< 4.0", "3.9.9", true),
            (">=1.0 <2.0", "2.0", false),
            (">=1.0 <2.0", "1.5", true),
            ("V2.1 and prior", "2.1", true),
            ("V2.1 and prior", "2.2", false),
            ("prior to 3.0", "3.0", false),
            ("before V3.0", "2.9", true),
            ("up to 2.4", "2.4", true),
            ("All versions", "99", true),
            ("4.1.2", "V4.1.2", true),
        ];
        for (range, v, want) in cases {
            let r = VersionRange::normalise(range).unwrap();
            assert_eq!(r.contains(v), want, "{range} ∋ {v}");
        }
        assert!(VersionRange::normalise("the latest").is_none());
        assert!(VersionRange::normalise("").is_none());
    }

    #[test]
    fn osv_events() {
        use OsvEvent::*;
        let ev = [Introduced("0".into()), Fixed("1.2.3".into())];
        assert!(osv_affected(&ev, "1.2.2"));
        assert!(!osv_affected(&ev, "1.2.3"));
        let ev = [
            Introduced("2.0".into()),
            LastAffected("2.4".into()),
            Introduced("3.0".into()),
        ];
        assert!(!osv_affected(&ev, "1.9"));
        assert!(osv_affected(&ev, "2.4"));
        assert!(!osv_affected(&ev, "2.5"));
        assert!(osv_affected(&ev, "3.1"));
    }
}
