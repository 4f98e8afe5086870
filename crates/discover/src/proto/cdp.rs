//! CDP (Cisco Discovery Protocol, LLC/SNAP protocol 0x2000): a Cisco router, switch or phone announcing its
//! name, software and platform to its neighbour.

use crate::facts::{Fact, Proto, Sink, Source, Subject};

use super::trimmed as text;

/// Names of the capability bits, bit 0 first (IGMP snooping and the rest say nothing about the device class).
const CAPABILITIES: [Option<&str>; 11] = [
    Some("router"),
    Some("bridge"),
    Some("source-route-bridge"),
    Some("switch"),
    Some("host"),
    None,
    Some("repeater"),
    Some("telephone"),
    Some("remotely-managed"),
    None,
    Some("two-port-mac-relay"),
];

/// Reads one CDP packet (the payload after the SNAP header) and reports what the sender says about itself.
pub fn dissect(payload: &[u8], out: &mut dyn Sink) {
    // Version, TTL and checksum; the checksum is not worth checking for discovery.
    let [1 | 2, _, _, _, tlvs @ ..] = payload else {
        return;
    };
    let mut rest = tlvs;
    out.fact(Subject::Src, Fact::Serves(Proto::Cdp));
    while let [t0, t1, l0, l1, tail @ ..] = rest {
        // The length counts the 4-byte TLV header.
        let Some(len) = usize::from(u16::from_be_bytes([*l0, *l1])).checked_sub(4) else {
            return;
        };
        let Some((value, next)) = tail.split_at_checked(len) else {
            return;
        };
        rest = next;
        match (u16::from_be_bytes([*t0, *t1]), value) {
            (0x0001, _) => {
                if let Some(id) = text(value) {
                    out.fact(Subject::Src, Fact::Hostname(Source::Cdp, id));
                }
            }
            (0x0004, [a, b, c, d]) => {
                let caps = u32::from_be_bytes([*a, *b, *c, *d]);
                for (bit, name) in CAPABILITIES.iter().enumerate() {
                    match name {
                        Some(name) if caps & (1 << bit) != 0 => {
                            out.fact(Subject::Src, Fact::Platform(Source::Cdp, name));
                        }
                        _ => {}
                    }
                }
            }
            (0x0005, _) => {
                if let Some(version) = text(value) {
                    out.fact(Subject::Src, Fact::Description(Source::Cdp, version));
                }
            }
            (0x0006, _) => {
                if let Some(platform) = text(value) {
                    out.fact(Subject::Src, Fact::Platform(Source::Cdp, platform));
                    // "cisco WS-C2960-24TT-L": the model is what follows the vendor's name.
                    match platform.split_once(' ') {
                        Some((vendor, model)) if vendor.eq_ignore_ascii_case("cisco") => {
                            out.fact(Subject::Src, Fact::Vendor(Source::Cdp, "Cisco"));
                            let model = model.trim_start();
                            if !model.is_empty() {
                                out.fact(Subject::Src, Fact::Model(Source::Cdp, model));
                            }
                        }
                        _ => out.fact(Subject::Src, Fact::Model(Source::Cdp, platform)),
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::l2_frames;

    fn run(payload: &[u8]) -> Collect {
        let mut c = Collect::default();
        dissect(payload, &mut c);
        c
    }

    fn cdp_frames() -> Vec<Vec<u8>> {
        l2_frames("z_cdp.pcap")
            .into_iter()
            .filter(|(t, _)| *t == 0x12000)
            .map(|(_, p)| p)
            .collect()
    }

    #[test]
    fn cisco_1601() {
        // tshark -V: Version 1, Device ID "R1", Capabilities 0x00000001 (Router), Software version starting
        // "Cisco Internetwork Operating System Software" with "IOS (tm) 1600 Software (C1600-NY-L), Version
        // 11.2(12)P, RELEASE SOFTWARE (fc1)" on its second line, Platform "cisco 1601".
        let frames = cdp_frames();
        assert_eq!(frames.len(), 1);
        let c = run(&frames[0]);
        assert!(c.0.iter().all(|(who, _)| *who == Subject::Src));
        assert!(c.has("Serves(Cdp)"));
        assert!(c.has(r#"Hostname(Cdp, "R1")"#));
        assert!(c.has(r#"Platform(Cdp, "router")"#));
        assert!(c.has(
            r#"Description(Cdp, "Cisco Internetwork Operating System Software \nIOS (tm) 1600"#
        ));
        assert!(c.has("Version 11.2(12)P, RELEASE SOFTWARE (fc1)"));
        assert!(c.has("Compiled Tue 03-Mar-98 06:33 by dschwart\")"));
        assert!(c.has(r#"Platform(Cdp, "cisco 1601")"#));
        assert!(c.has(r#"Vendor(Cdp, "Cisco")"#));
        assert!(c.has(r#"Model(Cdp, "1601")"#));
        assert_eq!(c.0.len(), 7, "{:?}", c.0);
    }

    #[test]
    fn not_cdp() {
        // LLDP and GOOSE payloads start with other bytes than a CDP version.
        for (_, p) in l2_frames("z_lldp.pcap")
            .iter()
            .chain(&l2_frames("iti_mms_goose.pcap"))
        {
            if p.first().is_some_and(|v| *v > 2) {
                assert!(run(p).0.is_empty());
            }
        }
        assert!(run(&[3, 180, 0, 0, 0, 1, 0, 6, b'R', b'1']).0.is_empty());
    }

    #[test]
    fn survives_truncation_and_hostile_input() {
        for f in cdp_frames() {
            for n in 0..=f.len() {
                run(&f[..n]);
            }
        }
        for bad in [
            &[2, 180, 0, 0, 0, 1, 0, 0][..],
            &[2, 180, 0, 0, 0, 1, 0, 3, b'x'],
            &[2, 180, 0, 0, 0, 1, 0xff, 0xff, b'x'],
            &[2, 180, 0, 0, 0, 4, 0, 7, 0, 0, 1],
            &[
                2, 180, 0, 0, 0, 6, 0, 10, b'c', b'i', b's', b'c', b'o', b' ',
            ],
            &[2, 180, 0, 0, 0, 6, 0, 6, 0xff, 0xfe],
        ] {
            run(bad);
        }
        // A zero-length TLV (length 4) is skipped and the next one read.
        let c = run(&[2, 180, 0, 0, 0, 9, 0, 4, 0, 1, 0, 6, b'R', b'2']);
        assert!(c.has(r#"Hostname(Cdp, "R2")"#));
        let mut phone = vec![2, 180, 0, 0, 0, 6, 0, 23];
        phone.extend_from_slice(b"Cisco IP Phone 7960");
        let c = run(&phone);
        assert!(c.has(r#"Model(Cdp, "IP Phone 7960")"#) && c.has(r#"Vendor(Cdp, "Cisco")"#));
    }
}
