//! LLDP (IEEE 802.1AB, EtherType 0x88CC): a switch, phone or Profinet device announcing its name, description
//! and role to its neighbour.

use crate::facts::{Fact, Proto, Sink, Source, Subject};

use super::trimmed as text;

/// The Profinet (PNO) organisationally unique identifier; its TLVs mark the sender as a Profinet node.
const PROFINET_OUI: [u8; 3] = [0x00, 0x0e, 0xcf];

/// Names of the system capability bits, bit 0 first ("other" says nothing, so it is left out).
const CAPABILITIES: [Option<&str>; 11] = [
    None,
    Some("repeater"),
    Some("bridge"),
    Some("wlan-access-point"),
    Some("router"),
    Some("telephone"),
    Some("docsis-cable-device"),
    Some("station"),
    Some("c-vlan"),
    Some("s-vlan"),
    Some("two-port-mac-relay"),
];

/// Reads one LLDPDU (the Ethernet payload) and reports what the sender says about itself.
pub fn dissect(payload: &[u8], out: &mut dyn Sink) {
    let mut rest = payload;
    let mut first = true;
    let mut local_chassis = None;
    let mut profinet = false;
    while let [hi, lo, tail @ ..] = rest {
        let kind = hi >> 1;
        let len = usize::from(u16::from_be_bytes([hi & 1, *lo]));
        let Some((value, next)) = tail.split_at_checked(len) else {
            break;
        };
        rest = next;
        if first {
            // An LLDPDU must open with the chassis id; anything else is not LLDP.
            if kind != 1 {
                return;
            }
            out.fact(Subject::Src, Fact::Serves(Proto::Lldp));
            first = false;
        }
        match (kind, value) {
            (0, _) => break,
            // Subtype 7 is "locally assigned"; MAC (4) and network-address ids name nothing.
            (1, [7, id @ ..]) => local_chassis = text(id),
            (5, _) => {
                if let Some(name) = text(value) {
                    out.fact(Subject::Src, Fact::Hostname(Source::Lldp, name));
                }
            }
            (6, _) => {
                if let Some(desc) = text(value) {
                    out.fact(Subject::Src, Fact::Description(Source::Lldp, desc));
                }
            }
            (7, [_, _, e0, e1, ..]) => {
                let enabled = u16::from_be_bytes([*e0, *e1]);
                for (bit, name) in CAPABILITIES.iter().enumerate() {
                    match name {
                        Some(name) if enabled & (1 << bit) != 0 => {
                            out.fact(Subject::Src, Fact::Platform(Source::Lldp, name));
                        }
                        _ => {}
                    }
                }
            }
            (127, [a, b, c, ..]) if [*a, *b, *c] == PROFINET_OUI => profinet = true,
            _ => {}
        }
    }
    // IEC 61158-6-10 has a Profinet node put its NameOfStation in a locally assigned chassis id.
    if let (true, Some(name)) = (profinet, local_chassis) {
        out.fact(Subject::Src, Fact::StationName(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::l2_frames;

    fn lldp_frames(name: &str) -> Vec<Vec<u8>> {
        l2_frames(name)
            .into_iter()
            .filter(|(t, _)| *t == 0x88cc)
            .map(|(_, p)| p)
            .collect()
    }

    fn run(payload: &[u8]) -> Collect {
        let mut c = Collect::default();
        dissect(payload, &mut c);
        c
    }

    #[test]
    fn smc_switch() {
        // tshark -V: System Name = SMCGS8P-Smart, System Description = SMCGS8P-Smart - SMCGS8P-Smart v3.20,
        // Enabled Capabilities 0x0004 (Bridge), chassis id subtype MAC.
        let frames = lldp_frames("z_lldp.pcap");
        assert_eq!(frames.len(), 1);
        let c = run(&frames[0]);
        assert!(c.0.iter().all(|(who, _)| *who == Subject::Src));
        assert!(c.has("Serves(Lldp)"));
        assert!(c.has(r#"Hostname(Lldp, "SMCGS8P-Smart")"#));
        assert!(c.has(r#"Description(Lldp, "SMCGS8P-Smart - SMCGS8P-Smart v3.20")"#));
        assert!(c.has(r#"Platform(Lldp, "bridge")"#));
        assert!(!c.has("StationName"));
        assert_eq!(c.0.len(), 4, "{:?}", c.0);
    }

    #[test]
    fn profinet_nodes() {
        // tshark -V: 23 LLDP frames; 00:10:18:cb:8c:03 sends chassis id "scada-pc-060839" (locally assigned),
        // System Name SCADA-PC-060839, System Description "Dell Inc. OptiPlex 990,01,G22XB2S + HMI", enabled
        // capabilities 0x0080 (station only) and PNO (00:0e:cf) TLVs; the SCALANCE port sends a MAC chassis id,
        // no system name, and System Description "Siemens AG SIMATIC S7 MULTIPORT SCALANCE X 200 FAM".
        let frames = lldp_frames("iti_pn_failed.pcap");
        assert_eq!(frames.len(), 23);
        let pc = frames
            .iter()
            .map(|f| run(f))
            .find(|c| c.has("SCADA"))
            .expect("the PC's frame");
        assert!(pc.has(r#"Hostname(Lldp, "SCADA-PC-060839")"#));
        assert!(pc.has(r#"Description(Lldp, "Dell Inc. OptiPlex 990,01,G22XB2S + HMI")"#));
        assert!(pc.has(r#"Platform(Lldp, "station")"#));
        assert!(pc.has(r#"StationName("scada-pc-060839")"#));
        let sw = frames
            .iter()
            .map(|f| run(f))
            .find(|c| c.has("SCALANCE"))
            .expect("the switch's frame");
        assert!(
            sw.has(r#"Description(Lldp, "Siemens AG SIMATIC S7 MULTIPORT SCALANCE X 200 FAM")"#)
        );
        assert!(!sw.has("Hostname") && !sw.has("StationName"));
        for f in &frames {
            assert!(run(f).has("Serves(Lldp)"));
        }
    }

    #[test]
    fn not_lldp() {
        // A CDP payload and a DCP frame do not open with a chassis id TLV.
        for (_, p) in l2_frames("z_cdp.pcap")
            .iter()
            .chain(&l2_frames("iti_pn_rt.pcap"))
        {
            assert!(run(p).0.is_empty());
        }
    }

    #[test]
    fn survives_truncation_and_hostile_input() {
        for name in ["z_lldp.pcap", "iti_pn_failed.pcap"] {
            for f in lldp_frames(name) {
                for n in 0..=f.len() {
                    run(&f[..n]);
                }
            }
        }
        // Lengths past the end, zero lengths, the maximal 9-bit length, capabilities too short.
        for bad in [
            &[0x02, 0xff, 0x07][..],
            &[0x02, 0x00, 0x0a, 0x00, 0x0c, 0x00, 0x0e, 0x00, 0xfe, 0x00],
            &[0x03, 0xff],
            &[
                0x02, 0x01, 0x07, 0x0e, 0x02, 0x00, 0x04, 0xfe, 0x03, 0x00, 0x0e, 0xcf,
            ],
            &[0x02, 0x01, 0x07, 0x0a, 0x02, 0xff, 0xfe],
        ] {
            run(bad);
        }
        let c = run(&[0x02, 0x02, 0x07, 0x00, 0xfe, 0x03, 0x00, 0x0e, 0xcf]);
        assert!(!c.has("StationName"), "an empty chassis id names nothing");
    }
}
