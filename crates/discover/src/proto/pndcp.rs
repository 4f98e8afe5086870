//! Profinet DCP (EtherType 0x8892, frame ids 0xFEFC–0xFEFF): engineering tools find devices with Identify and
//! rename or re-address them with Set; devices answer with their station name, type and vendor.

use crate::facts::{CommandKind, Fact, Proto, Sink, Source, Subject};

use super::trimmed as text;

/// Whether a Profinet frame (the Ethernet payload, from the frame id) is DCP rather than cyclic real-time data.
pub fn is_dcp(payload: &[u8]) -> bool {
    matches!(payload, [0xfe, 0xfc..=0xff, ..])
}

/// Reads one DCP frame (the Ethernet payload, from the frame id) and reports what it says about the sender.
pub fn dissect(payload: &[u8], out: &mut dyn Sink) {
    // Frame id, service id, service type; xid, response delay (or reserved), data length; then blocks.
    let [0xfe, frame, service, kind, rest @ ..] = payload else {
        return;
    };
    let Some(([.., l0, l1], rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    // Ethernet pads short frames, so the data length says where the blocks end.
    let data = rest
        .get(..usize::from(u16::from_be_bytes([*l0, *l1])))
        .unwrap_or(rest);
    match (frame, service, kind) {
        // Identify (multicast), Get and Set requests come from an engineering tool or a controller; an
        // Identify's blocks are a filter naming the station looked for, not the sender.
        (0xfe, 5, 0) | (0xfd, 3, 0) => out.fact(Subject::Src, Fact::Uses(Proto::ProfinetDcp)),
        (0xfd, 4, 0) => {
            out.fact(Subject::Src, Fact::Uses(Proto::ProfinetDcp));
            set_request(data, out);
        }
        // Answers (1 success, 5 not supported), and Hello, a device announcing itself after power-on.
        (0xff, 5, 1 | 5) | (0xfd, 3, 1 | 5) | (0xfc, 6, 0) => {
            out.fact(Subject::Src, Fact::Serves(Proto::ProfinetDcp));
            for (option, suboption, value) in blocks(data) {
                // Each block of an answer opens with a 2-byte BlockInfo.
                match (option, suboption, value) {
                    (2, 1, [_, _, v @ ..]) => {
                        if let Some(kind) = text(v) {
                            out.fact(Subject::Src, Fact::Model(Source::ProfinetDcp, kind));
                        }
                    }
                    (2, 2, [_, _, v @ ..]) => {
                        if let Some(name) = text(v) {
                            out.fact(Subject::Src, Fact::StationName(name));
                        }
                    }
                    (2, 3, [_, _, v0, v1, _, _]) => {
                        let vendor = u16::from_be_bytes([*v0, *v1]);
                        out.fact(
                            Subject::Src,
                            Fact::VendorId(Source::ProfinetDcp, u32::from(vendor)),
                        );
                    }
                    _ => {}
                }
            }
        }
        (0xfd, 4, 1 | 5) => out.fact(Subject::Src, Fact::Serves(Proto::ProfinetDcp)),
        _ => {}
    }
}

/// Reports what a Set request does to the device it is sent to.
fn set_request(data: &[u8], out: &mut dyn Sink) {
    let (mut config, mut reset) = (false, false);
    for (option, suboption, _) in blocks(data) {
        match (option, suboption) {
            // Control 5 and 6 are the two factory resets. Start/end transaction only frame other blocks, and
            // Signal flashes an LED to find the device: neither changes it.
            (5, 5 | 6) => reset = true,
            (5, _) => {}
            // Name of station, IP parameters, DHCP, manufacturer options: the device's configuration.
            _ => config = true,
        }
    }
    if config {
        let detail = "DCP set";
        out.fact(
            Subject::Src,
            Fact::Command {
                proto: Proto::ProfinetDcp,
                kind: CommandKind::Program,
                detail,
            },
        );
    }
    if reset {
        let detail = "DCP reset to factory";
        out.fact(
            Subject::Src,
            Fact::Command {
                proto: Proto::ProfinetDcp,
                kind: CommandKind::Restart,
                detail,
            },
        );
    }
}

/// The complete blocks (option, suboption, value) of a DCP PDU, each padded to an even length.
fn blocks(mut rest: &[u8]) -> impl Iterator<Item = (u8, u8, &[u8])> {
    std::iter::from_fn(move || {
        let [option, suboption, l0, l1, tail @ ..] = rest else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let (value, next) = tail.split_at_checked(len)?;
        rest = next.get(len % 2..).unwrap_or_default();
        Some((*option, *suboption, value))
    })
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

    fn dcp_frames() -> Vec<Vec<u8>> {
        l2_frames("iti_pn_rt.pcap")
            .into_iter()
            .filter(|(t, _)| *t == 0x8892)
            .map(|(_, p)| p)
            .collect()
    }

    // Hand-made frames (the capture has only Identify requests), each decoded by tshark as noted.
    /// "Ident Ok, NameOfStation "pn-io", DeviceVendorValue "S7-300", VendorID 0x002a / DeviceID 0x0101,
    /// Dev-Role IO-Controller, IP 192.168.0.1".
    const IDENT_OK: &[u8] = &[
        0xfe, 0xff, 0x05, 0x01, 0x03, 0x00, 0x1c, 0x02, 0x00, 0x00, 0x00, 0x3c, 0x02, 0x02, 0x00,
        0x07, 0x00, 0x00, b'p', b'n', b'-', b'i', b'o', 0x00, 0x02, 0x01, 0x00, 0x08, 0x00, 0x00,
        b'S', b'7', b'-', b'3', b'0', b'0', 0x02, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x2a, 0x01,
        0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00, 0x02, 0x00, 0x01, 0x02, 0x00, 0x0e, 0x00, 0x01,
        0xc0, 0xa8, 0x00, 0x01, 0xff, 0xff, 0xff, 0x00, 0xc0, 0xa8, 0x00, 0x01,
    ];
    /// "Set Req, Start-Trans, NameOfStation "plc-2" (save permanent), End-Trans", with Ethernet padding.
    const SET_NAME: &[u8] = &[
        0xfe, 0xfd, 0x04, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x18, 0x05, 0x01, 0x00,
        0x02, 0x00, 0x00, 0x02, 0x02, 0x00, 0x07, 0x00, 0x01, b'p', b'l', b'c', b'-', b'2', 0x00,
        0x05, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    /// "Set Req, Signal (Flash Once)".
    const SET_SIGNAL: &[u8] = &[
        0xfe, 0xfd, 0x04, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x05, 0x03, 0x00,
        0x04, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    ];
    /// "Set Req, Reset to Factory (Reset communication parameter)".
    const SET_RESET: &[u8] = &[
        0xfe, 0xfd, 0x04, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x06, 0x05, 0x06, 0x00,
        0x02, 0x00, 0x04, 0x00, 0x00,
    ];
    /// "Hello Req, NameOfStation "pn-io", Dev-ID (VendorID 0x002a / DeviceID 0x0101)".
    const HELLO: &[u8] = &[
        0xfe, 0xfc, 0x06, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x16, 0x02, 0x02, 0x00,
        0x07, 0x00, 0x00, b'p', b'n', b'-', b'i', b'o', 0x00, 0x02, 0x03, 0x00, 0x06, 0x00, 0x00,
        0x00, 0x2a, 0x01, 0x01,
    ];
    /// "Get Ok, NameOfStation "pn-io"".
    const GET_OK: &[u8] = &[
        0xfe, 0xfd, 0x03, 0x01, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x0c, 0x02, 0x02, 0x00,
        0x07, 0x00, 0x00, b'p', b'n', b'-', b'i', b'o', 0x00,
    ];

    #[test]
    fn identify_requests() {
        // tshark -Y pn_dcp: 14 frames, all "Ident Req" with a NameOfStation filter ("switch3", "pn-io", ...).
        let frames = dcp_frames();
        assert_eq!(frames.len(), 14);
        for f in &frames {
            assert!(is_dcp(f));
            let c = run(f);
            assert_eq!(c.0, vec![(Subject::Src, "Uses(ProfinetDcp)".to_string())]);
        }
    }

    #[test]
    fn answers_name_the_device() {
        for frame in [IDENT_OK, HELLO, GET_OK] {
            let c = run(frame);
            assert!(c.0.iter().all(|(who, _)| *who == Subject::Src));
            assert!(c.has("Serves(ProfinetDcp)") && c.has(r#"StationName("pn-io")"#));
        }
        let c = run(IDENT_OK);
        assert!(c.has(r#"Model(ProfinetDcp, "S7-300")"#));
        assert!(c.has("VendorId(ProfinetDcp, 42)"));
        assert_eq!(c.0.len(), 4, "{:?}", c.0);
        assert!(run(HELLO).has("VendorId(ProfinetDcp, 42)"));
    }

    #[test]
    fn set_requests_are_commands() {
        let c = run(SET_NAME);
        assert!(c.has("Uses(ProfinetDcp)"));
        assert!(c.has(r#"Command { proto: ProfinetDcp, kind: Program, detail: "DCP set" }"#));
        assert!(!c.has("StationName") && !c.has("Restart"));
        let c = run(SET_RESET);
        assert!(c.has(r#"kind: Restart, detail: "DCP reset to factory""#) && !c.has("Program"));
        assert!(!run(SET_SIGNAL).has("Command"));
    }

    #[test]
    fn cyclic_data_is_not_dcp() {
        for f in [
            &[0x80, 0x00, 0x01, 0x02][..],
            &[0x01, 0x00],
            &[0xfe, 0x01],
            &[0xff, 0xff],
            &[0xfe],
            &[],
        ] {
            assert!(!is_dcp(f));
            assert!(run(f).0.is_empty());
        }
        // GOOSE and LLDP payloads are not DCP either.
        for (_, p) in l2_frames("iti_mms_goose.pcap")
            .iter()
            .chain(&l2_frames("z_lldp.pcap"))
        {
            assert!(!is_dcp(p));
        }
    }

    #[test]
    fn survives_truncation_and_hostile_input() {
        let mut all = dcp_frames();
        all.extend([IDENT_OK, SET_NAME, SET_SIGNAL, SET_RESET, HELLO, GET_OK].map(<[u8]>::to_vec));
        for f in all {
            for n in 0..=f.len() {
                run(&f[..n]);
            }
        }
        let head = [0xfe, 0xff, 0x05, 0x01, 0, 0, 0, 1, 0, 0];
        for blocks in [
            &[0xff, 0xff, 0x02, 0x02, 0xff, 0xf0][..],
            &[
                0x00, 0x10, 0x02, 0x02, 0x00, 0x00, 0x02, 0x03, 0x00, 0x01, 0x00,
            ],
            &[0x00, 0x08, 0x02, 0x02, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00],
            &[0x00, 0x08, 0x02, 0x02, 0x00, 0x04, 0x00, 0x00, 0xff, 0xfe],
            &[0x00, 0x06, 0x02, 0x01, 0x00, 0x01, 0x00],
        ] {
            let mut f = head.to_vec();
            f.extend_from_slice(blocks);
            let c = run(&f);
            assert_eq!(c.0.len(), 1, "{blocks:02x?}: {:?}", c.0);
        }
    }
}
