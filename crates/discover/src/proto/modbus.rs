//! Modbus/TCP (MBAP, tcp/502): the unit ids a server answers for, the functions it is asked for, and the
//! requests that change a device's state.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink, Source, Subject};

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
        if fc == UMAS {
            out.fact(dir.server(), Fact::ModbusFunction(fc));
            umas(pdu, out);
        } else if fc & 0x80 == 0 {
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

/// Which way a segment travels by its first PDU, where a request and its answer differ in shape: an
/// exception or a UMAS answer (0xFE/0xFD) is a response; reads ask with a fixed-size PDU and are answered with
/// a byte count that covers the rest; multiple writes ask with a byte count and are answered with a fixed
/// size; a device identification request is shorter than any answer. Echoed functions (single writes, diagnostics, mask
/// write) look the same both ways and say nothing: their flow falls back to the well-known port 502.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    let (len, _, fc) = header(payload)?;
    let pdu = payload.get(MBAP..(MBAP - 1 + len).min(payload.len()))?;
    let (to_server, to_client) = (Some(Dir::ToServer), Some(Dir::ToClient));
    // `len` counts the unit id: the PDU is `len - 1` bytes; a byte count's answer is function, count, data.
    let counted = |at: usize| pdu.get(at).is_some_and(|&n| len == at + 2 + usize::from(n));
    if fc & 0x80 != 0 {
        return to_client;
    }
    match fc {
        // Coils and discrete inputs: an answer of three data bytes is as long as a request.
        1 | 2 if len == 6 && !counted(1) => to_server,
        1 | 2 if len != 6 && counted(1) => to_client,
        // Registers come in pairs of bytes, so an answer is never 6 long.
        3 | 4 if len == 6 => to_server,
        3 | 4 if counted(1) && pdu.get(1).is_some_and(|n| n % 2 == 0) => to_client,
        15 | 16 if len == 6 => to_client,
        15 | 16 if counted(5) => to_server,
        23 if counted(9) && !counted(1) => to_server,
        23 if counted(1) && !counted(9) => to_client,
        // Read device identification asks with code and object id (some clients add a byte) and is answered
        // with conformity, more-follows, next object and a count before any object.
        0x2b if pdu.get(1) == Some(&0x0e) && len <= 6 => to_server,
        0x2b if pdu.get(1) == Some(&0x0e) && len >= 8 => to_client,
        UMAS => match pdu.get(2)? {
            0xfe | 0xfd => to_client,
            _ => to_server,
        },
        _ => None,
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

/// Function 90: Schneider Electric's UMAS, the engineering protocol of Unity Pro / EcoStruxure Control Expert.
const UMAS: u8 = 0x5a;

/// Reads one UMAS PDU (`pdu` starts at function code 90): pairing key, then a UMAS function code in a
/// request, or 0xFE (done) / 0xFD (refused) in a response. The header itself tells requests from responses,
/// so the command goes to whoever sent it, whatever the flow's direction says.
fn umas(pdu: &[u8], out: &mut dyn Sink) {
    let [_, _pairing, code, ..] = *pdu else {
        return;
    };
    match code {
        0xfe => umas_ident(pdu.get(3..).unwrap_or_default(), out),
        0xfd => {}
        _ => {
            if let Some((kind, detail)) = umas_command(code) {
                out.fact(
                    Subject::Src,
                    Fact::Command {
                        proto: Proto::Modbus,
                        kind,
                        detail,
                    },
                );
            }
        }
    }
}

/// The state change a UMAS request makes. Schneider's own words for the two transfer directions are used
/// both ways in public write-ups, so the details name the direction instead.
fn umas_command(code: u8) -> Option<(CommandKind, &'static str)> {
    use CommandKind::{Program, Reserve, Restart, Stop, Write};
    Some(match code {
        0x10 => (Reserve, "UMAS take PLC reservation (90/0x10)"),
        0x11 => (Reserve, "UMAS release PLC reservation (90/0x11)"),
        0x23 => (Write, "UMAS write variables (90/0x23)"),
        0x25 => (Write, "UMAS write coils/registers (90/0x25)"),
        0x71 => (Write, "UMAS write I/O object (90/0x71)"),
        0x30 => (Program, "UMAS begin program transfer to the PLC (90/0x30)"),
        0x31 => (Program, "UMAS program block to the PLC (90/0x31)"),
        0x32 => (Program, "UMAS end program transfer to the PLC (90/0x32)"),
        0x33 => (
            Program,
            "UMAS begin program transfer from the PLC (90/0x33)",
        ),
        0x34 => (Program, "UMAS program block from the PLC (90/0x34)"),
        0x35 => (Program, "UMAS end program transfer from the PLC (90/0x35)"),
        0x40 => (Restart, "UMAS start PLC (90/0x40)"),
        0x41 => (Stop, "UMAS stop PLC (90/0x41)"),
        _ => return None,
    })
}

/// Reads the answer to READ_ID (0x02) when the data has its shape: 22 bytes of range, ident, model code and
/// versions (little-endian), then the CPU module's name counted by one byte (nmap's modicon-info reads it at
/// the same place), then the memory banks (a count and 8 bytes each). Responses carry no function code, so
/// the shape is the only test; a name must be printable and the banks must fit.
fn umas_ident(data: &[u8], out: &mut dyn Sink) {
    let Some(&len) = data.get(22) else { return };
    let len = usize::from(len);
    let Some(name) = data.get(23..23 + len) else {
        return;
    };
    let Some(&banks) = data.get(23 + len) else {
        return;
    };
    let plausible = (2..=32).contains(&len)
        && name.first().is_some_and(u8::is_ascii_alphabetic)
        && name.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    if !plausible || data.len() < 24 + len + 8 * usize::from(banks) {
        return;
    }
    if let Ok(model) = std::str::from_utf8(name) {
        // Only Schneider Electric's controllers speak UMAS.
        out.fact(
            Subject::Src,
            Fact::Vendor(Source::Modbus, "Schneider Electric"),
        );
        out.fact(Subject::Src, Fact::Model(Source::Modbus, model.trim_end()));
    }
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

    #[test]
    fn umas_truncated_or_hostile_never_panics_and_commands_need_their_request() {
        let mut ident = vec![0, 1, 0, 0, 0, 0, 0, 0x5a, 0x00, 0xfe];
        ident.extend([0u8; 22]);
        ident.push(12);
        ident.extend(b"BMX P34 2020");
        ident.push(1);
        ident.extend([0u8; 8]);
        let len = (ident.len() - 6) as u16;
        ident[4..6].copy_from_slice(&len.to_be_bytes());
        for n in 0..=ident.len() {
            let mut c = Collect::default();
            dissect(&ident[..n], Dir::ToClient, &mut c);
            // A cut name is no name.
            assert_eq!(c.has("BMX P34 2020"), n == ident.len(), "{n}");
            assert!(!c.has("Command"));
        }
        // A name length pointing past the data, or banks that do not fit, say nothing.
        for bad in [255u8, 13] {
            let mut b = ident.clone();
            b[32] = bad;
            let mut c = Collect::default();
            dissect(&b, Dir::ToClient, &mut c);
            assert!(!c.has("Model"), "{bad}");
        }
        let stop = [0, 9, 0, 0, 0, 4, 0, 0x5a, 0x42, 0x41];
        let mut c = Collect::default();
        // The UMAS header says request, whatever the flow's direction says.
        dissect(&stop, Dir::ToClient, &mut c);
        assert!(
            c.0.iter()
                .any(|(w, f)| *w == Subject::Src && f.contains("UMAS stop PLC"))
        );
    }
}
