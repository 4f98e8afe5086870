//! IEC 60870-5-104 (tcp/2404): the controlled station's common addresses and the ASDU types in its traffic,
//! and the controlling station's commands.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink};

/// Whether `payload` opens with a whole APDU whose control field is a valid I-, S- or U-format.
pub fn looks_like(payload: &[u8]) -> bool {
    apci(payload).is_some_and(|(len, _)| payload.len() >= 2 + len)
}

/// Which way a segment travels by its first APDU: STARTDT and STOPDT are activated by the controlling
/// station (the client) and confirmed by the controlled one; an ASDU's cause of transmission says who sent it
/// (activation 6 and deactivation 8 come from the controlling station; periodic, background, spontaneous,
/// initialised, confirmations, terminations, interrogated and the negative causes 44-47 from the controlled
/// one). TESTFR, which either station may send, S-frames and cause 5 (request or requested) say nothing.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    let (_, i_format) = apci(payload)?;
    let (to_server, to_client) = (Some(Dir::ToServer), Some(Dir::ToClient));
    if !i_format {
        return match payload.get(2)? {
            0x07 | 0x13 => to_server,
            0x0b | 0x23 => to_client,
            _ => None,
        };
    }
    match payload.get(8)? & 0x3f {
        6 | 8 => to_server,
        1..=4 | 7 | 9..=12 | 20..=41 | 44..=47 => to_client,
        _ => None,
    }
}

/// Reads every APDU in one segment; the controlled station is the server (it listens on 2404).
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let mut rest = payload;
    while let Some((len, i_format)) = apci(rest) {
        out.fact(dir.server(), Fact::Serves(Proto::Iec104));
        out.fact(dir.client(), Fact::Uses(Proto::Iec104));
        // The ASDU header: type id, variable structure qualifier, cause of transmission (cause, originator) and
        // the common address, little-endian.
        if let (true, Some(&[type_id, _, cause, _, a0, a1])) = (i_format, rest.get(6..12)) {
            out.fact(dir.server(), Fact::Iec104Type(type_id));
            // 0 is unused and 0xffff is the broadcast (global) address: neither names a station.
            let ca = u16::from_le_bytes([a0, a1]);
            if ca != 0 && ca != 0xffff {
                out.fact(dir.server(), Fact::Iec104Address(ca));
            }
            // Only an activation (cause 6, test and negative bits aside) asks for something to happen; the
            // confirmation and termination the station sends back repeat the type.
            if let (Dir::ToServer, 6, Some((kind, detail))) = (dir, cause & 0x3f, command(type_id))
            {
                out.fact(
                    dir.client(),
                    Fact::Command {
                        proto: Proto::Iec104,
                        kind,
                        detail,
                    },
                );
            }
        }
        let Some(next) = rest.get(2 + len..) else {
            break;
        };
        rest = next;
    }
}

/// The APDU length (after the length byte) and whether it is an I-format frame, if the APCI is valid.
fn apci(p: &[u8]) -> Option<(usize, bool)> {
    let [0x68, len, c1, c2, c3, c4, ..] = *p else {
        return None;
    };
    let len = usize::from(len);
    let ok = match c1 & 3 {
        // I-format: an ASDU header follows; the receive sequence number's low bit is always 0.
        0 | 2 => (10..=253).contains(&len) && c3 & 1 == 0,
        // S-format: only the receive sequence number.
        1 => len == 4 && c1 == 1 && c2 == 0 && c3 & 1 == 0,
        // U-format: exactly one of STARTDT, STOPDT, TESTFR act or con.
        _ => {
            len == 4
                && matches!(c1, 0x07 | 0x0b | 0x13 | 0x23 | 0x43 | 0x83)
                && [c2, c3, c4] == [0; 3]
        }
    };
    ok.then_some((len, c1 & 1 == 0))
}

/// The state change an ASDU type asks for in the control direction; interrogations and reads only read.
fn command(type_id: u8) -> Option<(CommandKind, &'static str)> {
    use CommandKind::{Restart, SetTime, Write};
    Some(match type_id {
        45 => (Write, "single command (45)"),
        46 => (Write, "double command (46)"),
        47 => (Write, "regulating step command (47)"),
        48 => (Write, "set point, normalised (48)"),
        49 => (Write, "set point, scaled (49)"),
        50 => (Write, "set point, short float (50)"),
        51 => (Write, "bitstring command (51)"),
        58 => (Write, "single command with time tag (58)"),
        59 => (Write, "double command with time tag (59)"),
        60 => (Write, "regulating step command with time tag (60)"),
        61 => (Write, "set point, normalised, with time tag (61)"),
        62 => (Write, "set point, scaled, with time tag (62)"),
        63 => (Write, "set point, short float, with time tag (63)"),
        64 => (Write, "bitstring command with time tag (64)"),
        103 => (SetTime, "clock synchronisation (103)"),
        105 => (Restart, "reset process (105)"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Collect, Subject};
    use crate::testutil::segments;

    fn run(name: &str) -> Collect {
        crate::testutil::dissect_port(name, 2404, dissect)
    }

    #[test]
    fn iti_iec104_as_tshark_shows() {
        // tshark -e iec60870_asdu.typeid -e iec60870_asdu.addr: common address 37133 throughout; 172.27.248.109
        // sends 100 (interrogation), 103 (clock sync), 45 and 46 (single, double command) as activations (cause
        // 6); station 172.27.248.79 answers with 100, 103, 45, 46 (cause 7 and 10), 30, 1, 3 and 70 (end of
        // initialisation). tshark's types 24 and 26 are read from junk it resynchronises into ("08 08 ... 68
        // 06 18 18 ..."), which does not start at an APDU; it is not read here.
        let c = run("iti_iec104.pcap");
        for t in [100, 103, 45, 46, 30, 1, 3, 70] {
            assert!(c.has(&format!("Iec104Type({t})")), "{t}");
        }
        assert!(!c.has("Iec104Type(24)") && !c.has("Iec104Type(26)"));
        // The station is the listener whichever way a frame goes.
        for s in segments("iti_iec104.pcap")
            .iter()
            .filter(|s| looks_like(&s.payload))
        {
            let mut one = Collect::default();
            let dir = if s.dport == 2404 {
                Dir::ToServer
            } else {
                Dir::ToClient
            };
            dissect(&s.payload, dir, &mut one);
            let station = if s.dport == 2404 {
                Subject::Dst
            } else {
                Subject::Src
            };
            assert!(
                one.0
                    .iter()
                    .all(|(w, f)| !f.starts_with("Iec104") || *w == station)
            );
        }
        assert!(c.has("Iec104Address(37133)"));
        assert!(
            !c.0.iter()
                .any(|(_, f)| f.starts_with("Iec104Address") && f != "Iec104Address(37133)")
        );
        for detail in [
            "single command (45)",
            "double command (46)",
            "clock synchronisation (103)",
        ] {
            assert!(
                c.0.iter()
                    .any(|(w, f)| *w == Subject::Src && f.contains(detail)),
                "{detail}"
            );
        }
        // 4 + 1 + 1 activations: the confirmations the station sends back are no commands.
        assert_eq!(
            c.0.iter().filter(|(_, f)| f.starts_with("Command")).count(),
            6
        );
    }

    #[test]
    fn several_apdus_in_one_segment() {
        // Frame 110: an S-frame, then I-frames of types 100 (cause 7), 1 (9 elements, cause 20) and 3.
        let seg = segments("iti_iec104.pcap")
            .into_iter()
            .find(|s| s.payload.len() == 64)
            .expect("frame 110");
        let mut c = Collect::default();
        dissect(&seg.payload, Dir::ToClient, &mut c);
        let types: Vec<_> =
            c.0.iter()
                .filter(|(_, f)| f.starts_with("Iec104Type"))
                .map(|(_, f)| f.as_str())
                .collect();
        assert_eq!(types, ["Iec104Type(100)", "Iec104Type(1)", "Iec104Type(3)"]);
    }

    #[test]
    fn looks_like_iec104_only() {
        let mut n = 0;
        for s in segments("iti_iec104.pcap") {
            if looks_like(&s.payload) {
                n += 1;
            } else {
                // The capture's junk segments start anywhere but at an APDU.
                assert!(s.payload.first() != Some(&0x68), "{:02x?}", s.payload);
            }
        }
        assert!(n > 40, "{n}");
        for name in [
            "iti_modbus1.pcap",
            "z_modbusBig.pcap",
            "iti_dnp3_1.pcap",
            "iti_enip_test.pcap",
            "iti_s7_status.pcap",
            "iti_s7_1200.pcap",
            "iti_mms_goose.pcap",
            "iti_opcua.pcap",
            "z_http_get.pcap",
            "z_tls_chrome.pcap",
        ] {
            assert!(
                segments(name).iter().all(|s| !looks_like(&s.payload)),
                "{name}"
            );
        }
    }

    #[test]
    fn survives_truncation_and_hostile_input() {
        for s in segments("iti_iec104.pcap") {
            for n in 0..=s.payload.len() {
                looks_like(&s.payload[..n]);
                dissect(&s.payload[..n], Dir::ToServer, &mut Collect::default());
            }
        }
        for bad in [
            &[0x68, 0xfd, 0, 0, 0, 0, 45, 1, 6, 0][..],
            &[0x68, 0x0a, 0, 0, 0, 0, 45, 1, 6, 0, 1],
            &[0x68, 0x00, 0, 0, 0, 0],
            &[0x68, 0xff, 0, 0, 0, 0, 45, 1, 6, 0, 1, 0, 0, 0, 0, 1],
            &[0x68, 0x04, 0x03, 0, 0, 0],
            &[0x68],
        ] {
            let mut c = Collect::default();
            dissect(bad, Dir::ToServer, &mut c);
            assert!(!c.has("Command"), "{bad:02x?}");
        }
        let mut c = Collect::default();
        dissect(
            &[0x68, 0x0e, 0, 0, 0, 0, 105, 1, 6, 0, 1, 0],
            Dir::ToServer,
            &mut c,
        );
        assert!(
            c.has("reset process (105)"),
            "the ASDU header is enough: {c:?}"
        );
    }
}
