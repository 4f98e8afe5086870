//! MAC vendor lookup from the IEEE MA-L registry, embedded (`data/oui.tsv`, made by `scripts/gen-oui`).

use std::sync::OnceLock;

static TABLE: &str = include_str!("../data/oui.tsv");

fn table() -> &'static [(u32, &'static str)] {
    static PARSED: OnceLock<Vec<(u32, &'static str)>> = OnceLock::new();
    PARSED.get_or_init(|| {
        let mut v: Vec<(u32, &'static str)> = TABLE
            .lines()
            .filter_map(|l| {
                let (hex, name) = l.split_once('\t')?;
                Some((u32::from_str_radix(hex, 16).ok()?, name))
            })
            .collect();
        v.sort_unstable_by_key(|(k, _)| *k);
        v
    })
}

/// The organisation the IEEE assigned a MAC address's first three octets to; `None` for a locally administered
/// address (randomised phones, virtual machines) or an unassigned prefix.
pub fn vendor(oui: [u8; 3]) -> Option<&'static str> {
    if oui[0] & 0x02 != 0 {
        return None;
    }
    let key = u32::from_be_bytes([0, oui[0], oui[1], oui[2]]);
    let t = table();
    t.binary_search_by_key(&key, |(k, _)| *k)
        .ok()
        .map(|i| t[i].1)
}

/// The registry vendor of a device's hardware address: none for the null address (all zeros, which the
/// registry files under XEROX, who were given 00:00:00 long before it meant "no address"), a group
/// (multicast/broadcast) address, or a locally administered one.
pub fn vendor_of(mac: vouch_types::MacAddr) -> Option<&'static str> {
    let o = mac.octets();
    if o == [0; 6] || o[0] & 0x01 != 0 {
        return None;
    }
    vendor(mac.oui())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_industrial_prefixes() {
        assert_eq!(vendor([0x00, 0x1d, 0x9c]), Some("Rockwell Automation"));
        assert_eq!(vendor([0x00, 0x0e, 0x8c]), Some("Siemens AG"));
        assert_eq!(vendor([0x02, 0x00, 0x00]), None);
    }
}
