//! EtherNet/IP (tcp and udp/44818): the identity a device gives in a ListIdentity reply, and the CIP requests
//! that change its state.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink, Source, Subject};

use super::format_into;

/// Command, length, session handle, status, sender context and options.
const HEADER: usize = 24;

/// Whether `payload` opens with an encapsulation header of a known command whose message it holds whole.
pub fn looks_like(payload: &[u8]) -> bool {
    header(payload).is_some_and(|(_, len, _)| payload.len() >= HEADER + len)
}

/// Which way a message travels by its first encapsulation header: the List commands are asked with an empty
/// body and answered with items; RegisterSession is asked with session handle 0 and answered with the handle
/// the target assigns; a SendRRData or SendUnitData carries a CIP message whose service code has bit 0x80 set
/// in a response.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    let (command, len, _) = header(payload)?;
    let (to_server, to_client) = (Some(Dir::ToServer), Some(Dir::ToClient));
    match command {
        0x0004 | 0x0063 | 0x0064 if len == 0 => to_server,
        0x0004 | 0x0063 | 0x0064 => to_client,
        0x0065 if payload.get(4..8)? == [0; 4] => to_server,
        0x0065 => to_client,
        0x006f | 0x0070 => {
            let tail = payload.get(HEADER..).unwrap_or_default();
            let body = tail.get(..len).unwrap_or(tail);
            // Interface handle and timeout precede the items; connected data opens with a sequence count.
            let service = items(body.get(6..)?).find_map(|(kind, data)| match kind {
                0x00b2 => data.first().copied(),
                0x00b1 => data.get(2).copied(),
                _ => None,
            })?;
            if service & 0x80 != 0 {
                to_client
            } else {
                to_server
            }
        }
        _ => None,
    }
}

/// Reads every encapsulation message in one segment or datagram.
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let mut rest = payload;
    while let Some((command, len, status)) = header(rest) {
        let tail = rest.get(HEADER..).unwrap_or_default();
        let body = tail.get(..len).unwrap_or(tail);
        // The List commands are asked with an empty body and answered with items; a reply to a broadcast is
        // often the first packet of its flow, so the body rather than `dir` says who answers.
        let (server, client) = match (command, len) {
            (0x0004 | 0x0063 | 0x0064, 0) => (Subject::Dst, Subject::Src),
            (0x0004 | 0x0063 | 0x0064, _) => (Subject::Src, Subject::Dst),
            _ => (dir.server(), dir.client()),
        };
        out.fact(server, Fact::Serves(Proto::Enip));
        out.fact(client, Fact::Uses(Proto::Enip));
        match (command, status) {
            (0x0063, 0) => list_identity(body, out),
            (0x006f | 0x0070, 0) => {
                if let Some((kind, detail)) = cip_items(body) {
                    out.fact(
                        Subject::Src,
                        Fact::Command {
                            proto: Proto::Enip,
                            kind,
                            detail,
                        },
                    );
                }
            }
            _ => {}
        }
        let Some(next) = rest.get(HEADER + len..) else {
            break;
        };
        rest = next;
    }
}

/// The command, body length and status of an encapsulation header, if they are plausible.
fn header(p: &[u8]) -> Option<(u16, usize, u32)> {
    let (&[c0, c1, l0, l1], rest) = p.split_first_chunk()?;
    let (&[_, _, _, _, s0, s1, s2, s3], rest) = rest.split_first_chunk()?;
    // The sender context (8 bytes) precedes the options.
    let (&[o0, o1, o2, o3], _) = rest.get(8..)?.split_first_chunk()?;
    let command = u16::from_le_bytes([c0, c1]);
    let status = u32::from_le_bytes([s0, s1, s2, s3]);
    // NOP (0) is left out: 24 zero bytes would pass for it. Options must be zero; status is success or an
    // encapsulation error code.
    let known = matches!(
        command,
        0x0004 | 0x0063..=0x0066 | 0x006f | 0x0070 | 0x0072 | 0x0073
    );
    let sane = matches!(status, 0..=3 | 0x64 | 0x65 | 0x69) && [o0, o1, o2, o3] == [0; 4];
    (known && sane).then_some((command, usize::from(u16::from_le_bytes([l0, l1])), status))
}

/// The common packet format's items (type, length, data), after an item count.
fn items(cpf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let (count, mut rest) = match cpf {
        [c0, c1, rest @ ..] => (u16::from_le_bytes([*c0, *c1]), rest),
        _ => (0, &[][..]),
    };
    std::iter::from_fn(move || {
        let [t0, t1, l0, l1, tail @ ..] = rest else {
            return None;
        };
        let len = usize::from(u16::from_le_bytes([*l0, *l1]));
        let data = tail.get(..len)?;
        rest = tail.get(len..).unwrap_or_default();
        Some((u16::from_le_bytes([*t0, *t1]), data))
    })
    .take(usize::from(count))
}

/// Reads a ListIdentity reply's CIP identity items, which describe their sender.
fn list_identity(body: &[u8], out: &mut dyn Sink) {
    for (kind, item) in items(body) {
        // Encapsulation version, socket address (16), vendor, device type, product code, revision, status,
        // serial number, product name (length first), state.
        let [
            _,
            _,
            _sockaddr @ ..,
            v0,
            v1,
            t0,
            t1,
            _,
            _,
            major,
            minor,
            _,
            _,
            n0,
            n1,
            n2,
            n3,
        ] = item.get(..32).unwrap_or_default()
        else {
            continue;
        };
        if kind != 0x000c {
            continue;
        }
        out.fact(
            Subject::Src,
            Fact::VendorId(Source::Enip, u32::from(u16::from_le_bytes([*v0, *v1]))),
        );
        if let Some(name) = device_type(u16::from_le_bytes([*t0, *t1])) {
            out.fact(Subject::Src, Fact::Platform(Source::Enip, name));
        }
        // Revision and serial number as tshark shows them: "4.03", "0x00524d8e".
        let mut buf = [0; 16];
        if let Some(revision) = format_into(&mut buf, format_args!("{major}.{minor:02}")) {
            out.fact(Subject::Src, Fact::Firmware(Source::Enip, revision));
        }
        let serial = u32::from_le_bytes([*n0, *n1, *n2, *n3]);
        if let Some(serial) = format_into(&mut buf, format_args!("0x{serial:08x}")) {
            out.fact(Subject::Src, Fact::Serial(Source::Enip, serial));
        }
        if let [len, name @ ..] = item.get(32..).unwrap_or_default()
            && let Some(name) = name.get(..usize::from(*len)).and_then(text)
        {
            out.fact(Subject::Src, Fact::Model(Source::Enip, name));
        }
    }
}

/// The names of the commonest ODVA device profiles.
fn device_type(code: u16) -> Option<&'static str> {
    Some(match code {
        0x02 => "AC drive",
        0x07 => "general purpose discrete I/O",
        0x0c => "communications adapter",
        0x0e => "programmable logic controller",
        0x10 => "position controller",
        0x13 => "DC drive",
        0x16 => "motor starter",
        0x18 => "human-machine interface",
        0x22 => "encoder",
        0x23 => "safety discrete I/O",
        0x25 => "CIP motion drive",
        0x2b => "generic device",
        0x2c => "managed switch",
        _ => return None,
    })
}

/// The state change a SendRRData or SendUnitData message's CIP request makes, if it makes one.
fn cip_items(body: &[u8]) -> Option<(CommandKind, &'static str)> {
    // Interface handle and timeout precede the items.
    items(body.get(6..)?).find_map(|(kind, data)| match kind {
        0x00b2 => cip(data, 2),
        // Connected data opens with a sequence count.
        0x00b1 => cip(data.get(2..)?, 2),
        _ => None,
    })
}

/// Reads a CIP request: service, path (its size in words first), then data; `depth` bounds nested sends.
fn cip(request: &[u8], depth: u8) -> Option<(CommandKind, &'static str)> {
    use CommandKind::{Restart, Stop, Write};
    let [service, words, rest @ ..] = request else {
        return None;
    };
    let (path, data) = rest.split_at_checked(2 * usize::from(*words))?;
    // Services 0x4b and up mean something else for each class; the connection manager's (class 6) open and
    // close connections, and its Unconnected Send (0x52) carries another request: priority, timeout ticks,
    // the request's length, the request.
    let class = match path {
        [0x20, class, ..] => u16::from(*class),
        [0x21, _, c0, c1, ..] => u16::from_le_bytes([*c0, *c1]),
        _ => 0,
    };
    if class == 6 {
        let [0x52, ..] = request else { return None };
        let [_, _, l0, l1, inner @ ..] = data else {
            return None;
        };
        let inner = inner.get(..usize::from(u16::from_le_bytes([*l0, *l1])))?;
        return cip(inner, depth.checked_sub(1)?);
    }
    Some(match service {
        0x02 => (Write, "set attributes all (0x02)"),
        0x05 => (Restart, "reset (0x05)"),
        0x06 => (Restart, "start (0x06)"),
        0x07 => (Stop, "stop (0x07)"),
        0x10 => (Write, "set attribute single (0x10)"),
        // Logix tag services; 0x4c and 0x52 read.
        0x4d => (Write, "write tag (0x4d)"),
        0x4e => (Write, "read modify write tag (0x4e)"),
        0x53 => (Write, "write tag fragmented (0x53)"),
        // Replies (high bit) and everything else.
        _ => return None,
    })
}

/// A length-counted name's text, if it is non-empty printable ASCII.
fn text(field: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(field).ok()?.trim();
    let printable = text.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    (printable && !text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::segments;

    fn about(c: &Collect, who: Subject, fact: &str) -> bool {
        c.0.iter().any(|(w, f)| *w == who && f == fact)
    }

    fn one(payload: &[u8], dir: Dir) -> Collect {
        let mut c = Collect::default();
        dissect(payload, dir, &mut c);
        c
    }

    #[test]
    fn list_identity_as_tshark_shows() {
        // tshark -e enip.lir.serial -e enip.lir.name -e enip.lir.vendor -e enip.lir.devtype
        // -e enip.lir.revision: 0x00524d8e, 1756-ENBT/A, 0x0001 (Rockwell), 12 (communications adapter), 1027
        // (4.03), from 10.1.1.164:44818 to the client that asked with an empty ListIdentity.
        let segs = segments("iti_enip_test.pcap");
        assert_eq!(segs.len(), 2);
        let ask = one(&segs[0].payload, Dir::ToServer);
        assert_eq!(
            ask.0,
            [
                (Subject::Dst, "Serves(Enip)".into()),
                (Subject::Src, "Uses(Enip)".into())
            ]
        );
        assert_eq!(segs[1].sport, 44818);
        // Told the wrong way round (a reply opening its own flow), the reply still speaks for its sender.
        for dir in [Dir::ToClient, Dir::ToServer] {
            let c = one(&segs[1].payload, dir);
            for fact in [
                "Serves(Enip)",
                "VendorId(Enip, 1)",
                r#"Platform(Enip, "communications adapter")"#,
                r#"Firmware(Enip, "4.03")"#,
                r#"Serial(Enip, "0x00524d8e")"#,
                r#"Model(Enip, "1756-ENBT/A")"#,
            ] {
                assert!(about(&c, Subject::Src, fact), "{fact}: {c:?}");
            }
            assert!(about(&c, Subject::Dst, "Uses(Enip)"));
            assert_eq!(c.0.len(), 7);
        }
    }

    /// A SendRRData message with an unconnected data item holding `cip`.
    fn send_rr(cip: &[u8]) -> Vec<u8> {
        let mut body = vec![0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0xb2, 0];
        body.extend((cip.len() as u16).to_le_bytes());
        body.extend(cip);
        let mut msg = vec![0x6f, 0];
        msg.extend((body.len() as u16).to_le_bytes());
        msg.extend([1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        msg.extend(body);
        msg
    }

    #[test]
    fn cip_requests_that_change_a_device() {
        // Set_Attribute_Single to the TCP/IP object, Reset to the identity object, a Logix Write Tag sent
        // through the connection manager's Unconnected Send, then a read and a reply that are no commands.
        let set = send_rr(&[0x10, 3, 0x20, 0xf5, 0x24, 1, 0x30, 6, 0]);
        let reset = send_rr(&[0x05, 2, 0x20, 0x01, 0x24, 0x01, 0]);
        let write_tag = [
            0x4d, 3, 0x91, 3, b'T', b'a', b'g', 0, 0xc4, 0, 1, 0, 7, 0, 0, 0,
        ];
        let mut routed = vec![0x52, 2, 0x20, 0x06, 0x24, 0x01, 0x07, 0xe9];
        routed.extend((write_tag.len() as u16).to_le_bytes());
        routed.extend(write_tag);
        routed.extend([1, 0, 1, 0]);
        let routed = send_rr(&routed);
        let forward_close = send_rr(&[0x4e, 2, 0x20, 0x06, 0x24, 0x01, 0x07, 0xe9]);
        let read = send_rr(&[0x4c, 3, 0x91, 3, b'T', b'a', b'g', 0, 1, 0]);
        let reply = send_rr(&[0x90, 0, 0, 0]);
        for (msg, want) in [
            (
                &set,
                Some("kind: Write, detail: \"set attribute single (0x10)\""),
            ),
            (&reset, Some("kind: Restart, detail: \"reset (0x05)\"")),
            (&routed, Some("kind: Write, detail: \"write tag (0x4d)\"")),
            (&forward_close, None),
            (&read, None),
            (&reply, None),
        ] {
            assert!(looks_like(msg));
            let c = one(msg, Dir::ToServer);
            assert!(about(&c, Subject::Dst, "Serves(Enip)"));
            match want {
                Some(want) => assert!(
                    c.0.iter()
                        .any(|(w, f)| *w == Subject::Src && f.contains(want)),
                    "{c:?}"
                ),
                None => assert!(!c.has("Command"), "{c:?}"),
            }
        }
        // Connected data (SendUnitData): a sequence count, then the request.
        let mut unit = send_rr(&[0, 0, 0x07, 2, 0x20, 0x01, 0x24, 0x01]);
        unit[0] = 0x70;
        unit[HEADER + 12] = 0xb1;
        assert!(one(&unit, Dir::ToServer).has("stop (0x07)"));
        // Two messages back to back.
        let both = one(&[set.as_slice(), &reset].concat(), Dir::ToServer);
        assert!(both.has("set attribute single") && both.has("reset (0x05)"));
    }

    #[test]
    fn looks_like_enip_only() {
        assert!(
            segments("iti_enip_test.pcap")
                .iter()
                .all(|s| looks_like(&s.payload))
        );
        for name in [
            "iti_modbus1.pcap",
            "z_modbusBig.pcap",
            "iti_dnp3_1.pcap",
            "iti_enip_status.pcap",
            "iti_iec104.pcap",
            "iti_s7_status.pcap",
            "iti_s7_1200.pcap",
            "iti_mms_goose.pcap",
            "iti_opcua.pcap",
            "iti_bacnet.pcap",
            "z_http_get.pcap",
            "z_tls_chrome.pcap",
            "z_dhcp.pcap",
            "z_snmp.pcap",
        ] {
            for s in segments(name) {
                assert!(!looks_like(&s.payload), "{name}: {:02x?}", s.payload);
            }
        }
        assert!(!looks_like(&[0; 24]), "NOP is too easily matched");
    }

    #[test]
    fn survives_truncation_and_hostile_input() {
        let routed = send_rr(&[
            0x52, 2, 0x20, 0x06, 0x24, 0x01, 0x07, 0xe9, 0xff, 0xff, 0x52, 2, 0x20, 6,
        ]);
        let mut inputs: Vec<Vec<u8>> = segments("iti_enip_test.pcap")
            .into_iter()
            .map(|s| s.payload)
            .collect();
        inputs.push(send_rr(&[0x4d, 0xff, 0x91]));
        inputs.push(routed);
        for p in &inputs {
            for n in 0..=p.len() {
                looks_like(&p[..n]);
                one(&p[..n], Dir::ToServer);
            }
        }
        // Item counts and lengths pointing past the end; a name longer than its item; nested sends.
        let mut reply = segments("iti_enip_test.pcap")[1].payload.clone();
        reply[HEADER] = 0xff;
        reply[HEADER + 4] = 0xff;
        one(&reply, Dir::ToClient);
        reply[HEADER + 4] = 45;
        reply[HEADER + 6 + 32] = 0xff;
        let c = one(&reply, Dir::ToClient);
        assert!(c.has("VendorId") && !c.has("Model"));
        let mut nested = vec![0x4d, 0, 0, 0];
        for _ in 0..10 {
            let mut outer = vec![0x52, 2, 0x20, 0x06, 0x24, 0x01, 0, 0];
            outer.extend((nested.len() as u16).to_le_bytes());
            outer.extend(&nested);
            nested = outer;
        }
        assert!(
            !one(&send_rr(&nested), Dir::ToServer).has("Command"),
            "depth is bounded"
        );
    }
}
