//! DNP3 over TCP or UDP (tcp/20000): link-layer addresses, the application functions an outstation is sent
//! or answers with, and the master's commands that change its state.
//!
//! Who is master and who is outstation comes from the link header's DIR bit, not from who opened the
//! connection: DNP3 lets an outstation dial its master, and the bit is set by the sender itself.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink, Subject};

/// Start bytes, length, control, destination, source and the header's CRC.
const HEADER: usize = 10;
/// User data travels in blocks of at most 16 bytes, each followed by its CRC.
const BLOCK: usize = 16;

/// Whether `payload` opens with a DNP3 link header whose CRC checks.
pub fn looks_like(payload: &[u8]) -> bool {
    header(payload).is_some()
}

/// Which way a segment travels by its first link header's DIR bit: set by the master (the client), clear by
/// the outstation (the server).
pub fn direction(payload: &[u8]) -> Option<Dir> {
    let (_, ctrl, _, _) = header(payload)?;
    Some(if ctrl & 0x80 != 0 {
        Dir::ToServer
    } else {
        Dir::ToClient
    })
}

/// Reads every link frame in one segment; `_dir` is unused because the DIR bit names the master.
pub fn dissect(payload: &[u8], _dir: Dir, out: &mut dyn Sink) {
    let mut rest = payload;
    while let Some((len, ctrl, dst, src)) = header(rest) {
        let from_master = ctrl & 0x80 != 0;
        let (master, outstation) = if from_master {
            (Subject::Src, Subject::Dst)
        } else {
            (Subject::Dst, Subject::Src)
        };
        out.fact(outstation, Fact::Serves(Proto::Dnp3));
        out.fact(master, Fact::Uses(Proto::Dnp3));
        // 0xfff0 and up are reserved, "self" and broadcast addresses, which name no host.
        if src < 0xfff0 {
            out.fact(Subject::Src, Fact::Dnp3Address(src));
        }
        if dst < 0xfff0 {
            out.fact(Subject::Dst, Fact::Dnp3Address(dst));
        }
        let user = usize::from(len) - 5;
        let data = rest.get(HEADER..).unwrap_or_default();
        let first = data.get(..user.min(BLOCK)).unwrap_or(data);
        // Only a primary frame with (un)confirmed user data carries a fragment, and only the first segment of a
        // fragment (transport FIR bit) opens with the application header.
        let user_data = ctrl & 0x40 != 0 && matches!(ctrl & 0x0f, 3 | 4);
        if let (true, [th, _, fc, objects @ ..]) = (user_data, first)
            && th & 0x40 != 0
        {
            out.fact(outstation, Fact::Dnp3Function(*fc));
            if let (true, Some((kind, detail))) = (from_master, command(*fc, objects)) {
                out.fact(
                    master,
                    Fact::Command {
                        proto: Proto::Dnp3,
                        kind,
                        detail,
                    },
                );
            }
        }
        let Some(next) = data.get(user + 2 * user.div_ceil(BLOCK)..) else {
            break;
        };
        rest = next;
    }
}

/// The link header's length, control byte, destination and source, if the header is whole and its CRC checks.
fn header(p: &[u8]) -> Option<(u8, u8, u16, u16)> {
    let [0x05, 0x64, len, ctrl, d0, d1, s0, s1, c0, c1, ..] = *p else {
        return None;
    };
    let ok =
        len >= 5 && crc(&[0x05, 0x64, len, ctrl, d0, d1, s0, s1]) == u16::from_le_bytes([c0, c1]);
    ok.then(|| {
        (
            len,
            ctrl,
            u16::from_le_bytes([d0, d1]),
            u16::from_le_bytes([s0, s1]),
        )
    })
}

/// CRC-16/DNP (polynomial 0x3D65, reflected, inverted), as each DNP3 block carries it.
fn crc(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xa6bc
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The state change a master's request makes; `objects` follows the function code (group first).
fn command(fc: u8, objects: &[u8]) -> Option<(CommandKind, &'static str)> {
    use CommandKind::{Program, Restart, SetTime, Stop, Write};
    Some(match fc {
        // Masters write group 50 to set the clock, and group 80 routinely to clear the "restarted" indication.
        2 => match objects.first()? {
            50 => (SetTime, "write time and date (2)"),
            80 => return None,
            _ => (Write, "write (2)"),
        },
        3 => (Write, "select (3)"),
        4 => (Write, "operate (4)"),
        5 => (Write, "direct operate (5)"),
        6 => (Write, "direct operate, no ack (6)"),
        13 => (Restart, "cold restart (13)"),
        14 => (Restart, "warm restart (14)"),
        15 => (Program, "initialize data (15)"),
        16 => (Program, "initialize application (16)"),
        17 => (Restart, "start application (17)"),
        18 => (Stop, "stop application (18)"),
        19 => (Program, "save configuration (19)"),
        25 => (Program, "open file (25)"),
        27 => (Program, "delete file (27)"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::segments;

    fn run(name: &str) -> Collect {
        crate::testutil::dissect_port(name, 20000, dissect)
    }

    fn about(c: &Collect, who: Subject, fact: &str) -> bool {
        c.0.iter().any(|(w, f)| *w == who && f == fact)
    }

    #[test]
    fn iti_dnp3_1_as_tshark_shows() {
        // tshark -e dnp3.src -e dnp3.dst -e dnp3.ctl.dir -e dnp3.al.func: masters 10.0.0.8/.9 use address 3
        // (DIR set) and send functions 0, 1, 2, 13, 14, 18, 20, 21 (18 and 21 also to broadcast 65535);
        // outstation 10.0.0.3 answers as 4 (and 6) with 129 and unsolicited 130. Frame 7 writes g50v1 (time);
        // frames 88 and 137 write g80v1 (clear the restart indication).
        let c = run("iti_dnp3_1.pcap");
        for (who, fact) in [
            (Subject::Src, "Dnp3Address(3)"),
            (Subject::Dst, "Dnp3Address(4)"),
            (Subject::Src, "Dnp3Address(4)"),
            (Subject::Dst, "Dnp3Address(6)"),
            (Subject::Src, "Dnp3Address(6)"),
        ] {
            assert!(about(&c, who, fact), "{who:?} {fact}");
        }
        assert!(!c.has("Dnp3Address(65535)"));
        for fc in [0, 1, 2, 13, 14, 18, 20, 21, 129, 130] {
            assert!(c.has(&format!("Dnp3Function({fc})")), "{fc}");
        }
        // Whichever way a frame goes, the outstation is 10.0.0.3 and the master the other host.
        for s in segments("iti_dnp3_1.pcap")
            .iter()
            .filter(|s| looks_like(&s.payload))
        {
            let mut one = Collect::default();
            dissect(&s.payload, Dir::ToServer, &mut one);
            let outstation = if s.dst.to_string() == "10.0.0.3" {
                Subject::Dst
            } else {
                assert_eq!(s.src.to_string(), "10.0.0.3");
                Subject::Src
            };
            assert!(about(&one, outstation, "Serves(Dnp3)"), "{one:?}");
            assert!(
                one.0
                    .iter()
                    .all(|(w, f)| !f.starts_with("Dnp3Function") || *w == outstation)
            );
            assert!(
                one.0
                    .iter()
                    .all(|(w, f)| !f.starts_with("Command") || *w != outstation)
            );
        }
        let commands: Vec<_> =
            c.0.iter()
                .filter(|(_, f)| f.starts_with("Command"))
                .collect();
        for detail in [
            "SetTime, detail: \"write time and date (2)\"",
            "Restart, detail: \"cold restart (13)\"",
            "Restart, detail: \"warm restart (14)\"",
            "Stop, detail: \"stop application (18)\"",
        ] {
            assert!(
                commands
                    .iter()
                    .any(|(w, f)| *w == Subject::Src && f.contains(detail)),
                "{detail}"
            );
        }
        assert!(!c.has("write (2)"), "g80 writes are routine");
        // Frames 19 and 21 start 05 05: tshark does not call them DNP3 either.
        assert!(
            segments("iti_dnp3_1.pcap")
                .iter()
                .filter(|s| s.payload.starts_with(&[5, 5]))
                .count()
                == 2
        );
    }

    #[test]
    fn sides_follow_the_dir_bit() {
        // Frame 4: the outstation's unsolicited response (DIR clear) is the first data on the connection.
        let segs = segments("iti_dnp3_1.pcap");
        let mut c = Collect::default();
        dissect(&segs[0].payload, Dir::ToServer, &mut c);
        assert_eq!(segs[0].sport, 20000);
        assert!(about(&c, Subject::Src, "Serves(Dnp3)") && about(&c, Subject::Dst, "Uses(Dnp3)"));
        assert!(about(&c, Subject::Src, "Dnp3Function(130)"));
    }

    #[test]
    fn iti_enip_status_is_dnp3() {
        // tshark: 192.168.10.204 (address 0) reads (1) from 192.168.10.140 (address 2), which responds (129).
        let c = run("iti_enip_status.pcap");
        assert!(
            about(&c, Subject::Src, "Dnp3Address(0)") && about(&c, Subject::Dst, "Dnp3Address(2)")
        );
        assert!(
            about(&c, Subject::Dst, "Dnp3Function(1)")
                && about(&c, Subject::Src, "Dnp3Function(129)")
        );
        assert!(!c.has("Command"));
    }

    #[test]
    fn looks_like_dnp3_only() {
        for name in ["iti_dnp3_1.pcap", "iti_enip_status.pcap"] {
            for s in segments(name) {
                let dnp3 = s.dport == 20000 || s.sport == 20000;
                assert_eq!(
                    looks_like(&s.payload),
                    dnp3 && s.payload.starts_with(&[5, 0x64]),
                    "{name}"
                );
            }
        }
        for name in [
            "iti_modbus1.pcap",
            "iti_enip_test.pcap",
            "iti_iec104.pcap",
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
    fn frames_back_to_back() {
        // A request spanning two blocks (20 user bytes), then a confirm: both are read.
        let first = segments("iti_dnp3_1.pcap")
            .into_iter()
            .find(|s| s.payload.len() > 60)
            .expect("a long frame");
        let confirm = [
            0x05, 0x64, 0x08, 0xc4, 0x04, 0x00, 0x03, 0x00, 0xb4, 0xb8, 0xc0, 0xd7, 0x00, 0x7a,
            0xce,
        ];
        let both = [first.payload.as_slice(), &confirm].concat();
        let mut c = Collect::default();
        dissect(&both, Dir::ToClient, &mut c);
        assert!(
            about(&c, Subject::Src, "Dnp3Function(130)")
                && about(&c, Subject::Dst, "Dnp3Function(0)")
        );
    }

    #[test]
    fn survives_truncation_and_hostile_input() {
        for name in ["iti_dnp3_1.pcap", "iti_enip_status.pcap"] {
            for s in segments(name) {
                for n in 0..=s.payload.len() {
                    looks_like(&s.payload[..n]);
                    dissect(&s.payload[..n], Dir::ToServer, &mut Collect::default());
                }
            }
        }
        // Valid headers (CRC included) claiming 255 bytes, or the minimum of 5 with nothing after.
        let mut long = vec![0x05, 0x64, 0xff, 0xc4, 0x04, 0x00, 0x03, 0x00];
        long.extend(crc(&long).to_le_bytes());
        long.extend([0xc0, 0xc0, 0x05, 0x0c, 0x01]);
        let mut short = vec![0x05, 0x64, 0x05, 0xc4, 0x04, 0x00, 0x03, 0x00];
        short.extend(crc(&short).to_le_bytes());
        for bad in [
            &long[..],
            &short,
            &[0x05, 0x64, 0x00, 0, 0, 0, 0, 0, 0, 0],
            &[0x05, 0x64],
            &[],
        ] {
            let mut c = Collect::default();
            dissect(bad, Dir::ToServer, &mut c);
            dissect(&[bad, bad].concat(), Dir::ToServer, &mut c);
        }
        let mut c = Collect::default();
        dissect(&long, Dir::ToServer, &mut c);
        assert!(
            c.has("direct operate (5)"),
            "the application header is enough: {c:?}"
        );
        assert!(
            looks_like(&short)
                && !looks_like(&[0x05, 0x64, 0x05, 0xc4, 0x04, 0x00, 0x03, 0x00, 0, 0])
        );
    }
}
