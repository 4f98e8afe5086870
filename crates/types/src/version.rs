//! How two firmware or package versions compare, the one comparison the trust score and compliance share.
//!
//! Vendors write versions every way ("4.03", "V3.2.6", "2.1.0-rc1"), so versions are compared by their
//! numeric components in order (letters ignored, a missing component counts as 0): "V3.2.6" < "3.10".
//! A pre-release suffix therefore sorts after its release ("2.1.0-rc1" > "2.1.0"): vendors' firmware
//! rarely uses them, and a strict semver order would call "V3.2" unparseable.

use std::cmp::Ordering;

fn components(v: &str) -> impl Iterator<Item = u64> + '_ {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        // A component too long for u64 is still larger than any that fits.
        .map(|p| p.parse::<u64>().unwrap_or(u64::MAX))
}

/// Compares two versions by their numeric components.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (components(a), components(b));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (p, q) => match p.unwrap_or(0).cmp(&q.unwrap_or(0)) {
                Ordering::Equal => {}
                o => return o,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_their_numbers() {
        assert_eq!(compare_versions("V3.2.6", "3.10"), Ordering::Less);
        assert_eq!(compare_versions("4.03", "4.3.0"), Ordering::Equal);
        assert_eq!(compare_versions("2.1.0-rc1", "2.1.0"), Ordering::Greater);
        assert_eq!(compare_versions("", "0"), Ordering::Equal);
        assert_eq!(
            compare_versions("1.99999999999999999999999", "1.5"),
            Ordering::Greater
        );
    }
}
