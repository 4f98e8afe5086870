//! Modbus/TCP (MBAP, tcp/502): the unit ids a server answers for, the functions it is asked for, and the
//! requests that change a device's state.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink};

/// What precedes the function code: transaction id, protocol id, length, unit id.
const MBAP: usize = 7;

/// Whether `payload` opens with an MBAP header (protocol id 0, a sane length) whose first PDU it holds whole.
pub fn looks_like(payload: &[u8]) -> bool {
    header(payload).is_some_and(|(len, _, _)| payload.len() >= MBAP - 1 + len)
}

/// Reads every Modbus PDU in one segment; `dir` tells requests (to the server) from responses.
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let mut rest = payload;
    while let Some((len, unit, fc)) = header(rest) {
        // The length counts the unit id, so the PDU (function code first) ends at 6 + len.
        let end = (MBAP - 1 + len).min(rest.len());
        let pdu = rest.get(MBAP..end).unwrap_or_default();
        out.fact(dir.server(), Fact::Serves(Proto::Modbus));
        out.fact(dir.client(), Fact::Uses(Proto::Modbus));
        out.fact(dir.server(), Fact::ModbusUnit(unit));
        // An exception echoes the function with the high bit set: it says the server refused it, no more.
        if fc & 0x80 == 0 {
            out.fact(dir.server(), Fact::ModbusFunction(fc));
            // Requests and responses look alike (writes are echoed), so only the flow's direction tells them apart.
            if let (Dir::ToServer, Some((kind, detail))) = (dir, command(fc, pdu)) {
                out.fact(
                    dir.client(),
                    Fact::Command {
                        proto: Proto::Modbus,
                        kind,
                        detail,
                    },
                );
            }
        }
        let Some(next) = rest.get(MBAP - 1 + len..) else {
            break;
        };
        rest = next;
    }
}

/// The MBAP header's PDU length (unit id included), unit id and function code, if they are plausible.
fn header(p: &[u8]) -> Option<(usize, u8, u8)> {
    let [_, _, 0, 0, l0, l1, unit, fc, ..] = *p else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    // A PDU is at most 253 bytes; 0 and 0x80 are no function, with or without the exception bit.
    ((2..=254).contains(&len) && fc & 0x7f != 0).then_some((len, unit, fc))
}

/// The state change a request makes, for the functions that make one; `pdu` starts at the function code.
fn command(fc: u8, pdu: &[u8]) -> Option<(CommandKind, &'static str)> {
    use CommandKind::{Program, Restart, Stop, Write};
    Some(match fc {
        5 => (Write, "write single coil (5)"),
        6 => (Write, "write single register (6)"),
        15 => (Write, "write multiple coils (15)"),
        16 => (Write, "write multiple registers (16)"),
        22 => (Write, "mask write register (22)"),
        23 => (Write, "read/write multiple registers (23)"),
        21 => (Program, "write file record (21)"),
        // Diagnostics: most sub-functions only read counters, but these two take the device's port down or back.
        8 => match pdu.get(1..3)? {
            [0, 1] => (Restart, "diagnostics: restart communications (8/1)"),
            [0, 4] => (Stop, "diagnostics: force listen only mode (8/4)"),
            _ => return None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Collect, Subject};
    use crate::testutil::segments;

    /// Every segment to or from tcp/502, told its direction by the port.
    fn run(name: &str) -> Collect {
        crate::testutil::dissect_port(name, 502, dissect)
    }

    fn about(c: &Collect, who: Subject, fact: &str) -> bool {
        c.0.iter().any(|(w, f)| *w == who && f == fact)
    }

    fn count(c: &Collect, fact: &str) -> usize {
        c.0.iter().filter(|(_, f)| f == fact).count()
    }

    #[test]
    fn iti_modbus1_as_tshark_shows() {
        // tshark -T fields -e mbtcp.unit_id -e modbus.func_code: unit 10 throughout; functions 1, 3, 5, 6, 8,
        // 17, 42, 43; frames 8/10/12 are 8/4 "Force Listen Only Mode", 15/17/20 8/1 "Restart Communications
        // Option"; 60/63 write single coil and 66 write single register come from 10.0.0.9. Of the 16 function-8 PDUs, four
        // (9, 11, 13, 16) are exceptions (0x88), which name no function.
        let c = run("iti_modbus1.pcap");
        assert!(
            about(&c, Subject::Dst, "Serves(Modbus)") && about(&c, Subject::Src, "Uses(Modbus)")
        );
        assert!(
            about(&c, Subject::Dst, "ModbusUnit(10)") && about(&c, Subject::Src, "ModbusUnit(10)")
        );
        assert!(
            !c.0.iter()
                .any(|(_, f)| f.starts_with("ModbusUnit") && f != "ModbusUnit(10)")
        );
        for fc in [1, 3, 5, 6, 8, 17, 42, 43] {
            assert!(c.has(&format!("ModbusFunction({fc})")), "{fc}");
        }
        assert_eq!(count(&c, "ModbusFunction(8)"), 12);
        for detail in [
            "write single coil (5)",
            "write single register (6)",
            "diagnostics: restart communications (8/1)",
            "diagnostics: force listen only mode (8/4)",
        ] {
            assert!(
                c.0.iter()
                    .any(|(w, f)| *w == Subject::Src && f.contains(detail)),
                "{detail}"
            );
        }
        // Clear counters (8/10) and reads are not commands; nor is the response echoing a write.
        assert_eq!(
            c.0.iter().filter(|(_, f)| f.starts_with("Command")).count(),
            3 + 3 + 2 + 1
        );
        // Frames 76-82 carry protocol ids 0x0010 and 0x8804 with length 0x0405: tshark does not call them Modbus.
        let bad = segments("iti_modbus1.pcap");
        let odd: Vec<_> = bad
            .iter()
            .filter(|s| s.sport == 2585 && s.dport == 502)
            .collect();
        assert_eq!(odd.len(), 4);
        assert!(odd.iter().all(|s| !looks_like(&s.payload)));
    }

    #[test]
    fn z_modbus_big_as_tshark_shows() {
        // tshark: unit 255, functions 1 (read coils) and 5 (write single coil), 2774 PDUs each (both ways),
        // 1387 of them requests; plus frame 3150, a read coils response tshark skips as a spurious retransmission.
        let c = run("z_modbusBig.pcap");
        assert!(about(&c, Subject::Dst, "ModbusUnit(255)"));
        assert_eq!(count(&c, "ModbusFunction(1)"), 2774 + 1);
        assert_eq!(count(&c, "ModbusFunction(5)"), 2774);
        assert_eq!(count(&c, "ModbusUnit(255)"), 2 * 2774 + 1);
        let writes = r#"Command { proto: Modbus, kind: Write, detail: "write single coil (5)" }"#;
        assert_eq!(count(&c, writes), 1387);
    }

    #[test]
    fn looks_like_modbus_only() {
        for s in segments("iti_modbus1.pcap")
            .iter()
            .chain(&segments("z_modbusBig.pcap"))
        {
            if s.dport == 502 || s.sport == 502 {
                let ok = looks_like(&s.payload);
                // Only the four malformed segments of iti_modbus1 (see above) fail.
                assert!(ok || s.sport == 2585, "{:02x?}", s.payload);
            } else {
                assert!(
                    !looks_like(&s.payload),
                    "{}:{} {:02x?}",
                    s.sport,
                    s.dport,
                    s.payload
                );
            }
        }
        for name in [
            "iti_dnp3_1.pcap",
            "iti_enip_status.pcap",
            "iti_enip_test.pcap",
            "iti_iec104.pcap",
            "iti_s7_status.pcap",
            "iti_s7_1200.pcap",
            "iti_mms_goose.pcap",
            "iti_opcua.pcap",
            "iti_bacnet.pcap",
            "z_http_get.pcap",
            "z_tls_chrome.pcap",
            "z_mqtt.pcap",
        ] {
            for s in segments(name) {
                assert!(!looks_like(&s.payload), "{name}: {:02x?}", s.payload);
            }
        }
    }

    #[test]
    fn several_pdus_in_one_segment() {
        let two = [
            [0, 1, 0, 0, 0, 6, 1, 16, 0, 0, 0, 1].as_slice(),
            &[0, 2, 0, 0, 0, 6, 2, 8, 0, 1, 0, 0],
            &[0, 3, 0, 0], // a partial third header: ignored
        ]
        .concat();
        let mut c = Collect::default();
        dissect(&two, Dir::ToServer, &mut c);
        assert!(c.has("ModbusUnit(1)") && c.has("ModbusUnit(2)"));
        assert!(c.has("write multiple registers (16)") && c.has("restart communications (8/1)"));
        assert!(!c.has("ModbusUnit(0)"));
    }

    #[test]
    fn survives_truncation_and_hostile_input() {
        for name in ["iti_modbus1.pcap", "z_modbusBig.pcap"] {
            for s in segments(name) {
                for n in 0..=s.payload.len() {
                    let mut c = Collect::default();
                    looks_like(&s.payload[..n]);
                    dissect(&s.payload[..n], Dir::ToServer, &mut c);
                    dissect(&s.payload[..n], Dir::ToClient, &mut c);
                }
            }
        }
        for bad in [
            &[0, 0, 0, 0, 0xff, 0xff, 1, 3][..],
            &[0, 0, 0, 0, 0, 0, 1, 3],
            &[0, 0, 0, 0, 0, 1, 1],
            &[0, 0, 0, 0, 0, 254, 1, 8],
            &[0, 0, 0, 0, 0, 2, 1, 8],
            &[0, 0, 0, 0, 0, 3, 1, 0x80, 0],
            &[],
        ] {
            let mut c = Collect::default();
            dissect(bad, Dir::ToServer, &mut c);
            assert!(!c.has("Command"), "{bad:?}");
        }
    }
}
