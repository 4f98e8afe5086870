//! HART-IP (tcp and udp/5094, FieldComm Group HCF_SPEC-085): the IP transport of HART, spoken by WirelessHART
//! gateways and HART multiplexers. An 8-byte header (version, message type, message id, status, sequence
//! number, byte count) carries, in a pass-through message, a HART token-passing PDU: delimiter, address,
//! command, byte count, data. The answers that name a device are universal command 0 (manufacturer,
//! expanded device type, revisions, device id), 13 (tag and descriptor, packed ASCII) and 20 (long tag); the
//! commands that change a field device are flagged.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink, Source};

use super::{format_into, trimmed};

/// The header's length.
const HEADER: usize = 8;

/// One HART-IP message header.
#[derive(Debug, Clone, Copy)]
struct Header {
    /// 0 request, 1 response, 2 publish (burst), 3 error, 15 NAK.
    kind: u8,
    /// 0 session initiate, 1 session close, 2 keep-alive, 3 token-passing pass-through, 4 direct PDU, …
    id: u8,
    /// The whole message's length, header included.
    len: usize,
}

fn header(p: &[u8]) -> Option<Header> {
    let [version, kind, id, _status, _, _, l0, l1, ..] = *p else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let known = matches!(version, 1 | 2)
        && matches!(kind, 0..=3 | 15)
        && id <= 6
        && (HEADER..=HEADER + 1024).contains(&len);
    known.then_some(Header { kind, id, len })
}

/// Whether `payload` opens with a HART-IP header (version 1 or 2, a known type and id) whose message it holds
/// whole.
pub fn looks_like(payload: &[u8]) -> bool {
    header(payload).is_some_and(|h| payload.len() >= h.len)
}

/// Which way a message goes: a request to the server; a response, burst publication, error or NAK from it.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    Some(if header(payload)?.kind == 0 {
        Dir::ToServer
    } else {
        Dir::ToClient
    })
}

/// Reads every HART-IP message in one segment or datagram.
pub fn dissect(payload: &[u8], _dir: Dir, out: &mut dyn Sink) {
    let mut rest = payload;
    while let Some(h) = header(rest) {
        // The header says which way each message goes, whatever the ports or who opened the connection.
        let dir = if h.kind == 0 {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        out.fact(dir.server(), Fact::Serves(Proto::HartIp));
        // A burst publication goes to whoever subscribed; only a request or its answer names a client.
        if h.kind != 2 {
            out.fact(dir.client(), Fact::Uses(Proto::HartIp));
        }
        let body = rest.get(HEADER..h.len.min(rest.len())).unwrap_or_default();
        // Pass-through (3) and direct (4) messages carry a token-passing PDU.
        if matches!(h.id, 3 | 4) && matches!(h.kind, 0..=2) {
            pdu(body, dir, out);
        }
        let Some(next) = rest.get(h.len..) else { break };
        rest = next;
    }
}

/// Reads one token-passing PDU.
fn pdu(body: &[u8], dir: Dir, out: &mut dyn Sink) {
    // Preambles (0xFF) are optional over IP.
    let start = body.iter().position(|&b| b != 0xff).unwrap_or(body.len());
    let Some(&[delimiter, ref rest @ ..]) = body.get(start..) else {
        return;
    };
    let address = if delimiter & 0x80 != 0 { 5 } else { 1 };
    let expansion = usize::from((delimiter >> 5) & 3);
    let Some(&[command, count, ref data @ ..]) = rest.get(address + expansion..) else {
        return;
    };
    let data = data.get(..usize::from(count)).unwrap_or(data);
    match delimiter & 7 {
        // STX: a master's request.
        2 => {
            if let Some((kind, detail)) = state_change(command) {
                out.fact(
                    dir.client(),
                    Fact::Command {
                        proto: Proto::HartIp,
                        kind,
                        detail,
                    },
                );
            }
        }
        // ACK (an answer) and BACK (a burst): response code and device status, then the data.
        6 | 1 => {
            let Some(&[code, _status, ref rsp @ ..]) = data.get(..) else {
                return;
            };
            // Codes 1 to 7 and 16 to 23 are errors; the others are successes or warnings with data.
            if (1..=7).contains(&code) || (16..=23).contains(&code) {
                return;
            }
            identity(command, rsp, dir, out);
        }
        _ => {}
    }
}

/// Reports what the answer to a universal identity command says about the device.
fn identity(command: u8, rsp: &[u8], dir: Dir, out: &mut dyn Sink) {
    let me = dir.server();
    let src = Source::HartIp;
    match command {
        0 => {
            let Some(
                &[
                    254,
                    t0,
                    t1,
                    _,
                    univ,
                    dev_rev,
                    sw,
                    hw,
                    _,
                    i0,
                    i1,
                    i2,
                    ref rest @ ..,
                ],
            ) = rsp.get(..)
            else {
                return;
            };
            // HART 7 has a 16-bit manufacturer code at 17-18 and an expanded device type; HART 5 and 6 put an
            // 8-bit manufacturer code where the expanded type's first byte is.
            let (maker, device_type) = match (univ, rest.get(5..7)) {
                (7.., Some(&[m0, m1])) => {
                    (u16::from_be_bytes([m0, m1]), u16::from_be_bytes([t0, t1]))
                }
                _ => (u16::from(t0), u16::from(t1)),
            };
            out.fact(me, Fact::VendorId(src, u32::from(maker)));
            let mut buf = [0u8; 48];
            if let Some(t) = format_into(
                &mut buf,
                format_args!("HART device type 0x{device_type:04x}"),
            ) {
                out.fact(me, Fact::Platform(src, t));
            }
            let mut buf = [0u8; 64];
            if let Some(v) = format_into(
                &mut buf,
                format_args!(
                    "HART {univ}, device revision {dev_rev}, software {sw}, hardware {}",
                    hw >> 3
                ),
            ) {
                out.fact(me, Fact::Firmware(src, v));
            }
            let mut buf = [0u8; 8];
            if let Some(id) = format_into(&mut buf, format_args!("{i0:02x}{i1:02x}{i2:02x}")) {
                out.fact(me, Fact::Serial(src, id));
            }
        }
        13 => {
            let Some((tag, rest)) = rsp.split_first_chunk::<6>() else {
                return;
            };
            let mut buf = [0u8; 8];
            if let Some(t) = packed_ascii(tag, &mut buf) {
                out.fact(me, Fact::Hostname(src, t));
            }
            if let Some(descriptor) = rest.first_chunk::<12>() {
                let mut buf = [0u8; 16];
                if let Some(d) = packed_ascii(descriptor, &mut buf) {
                    out.fact(me, Fact::Description(src, d));
                }
            }
        }
        20 => {
            // 32 bytes of ISO Latin-1, padded with NULs; only its ASCII form is taken.
            if let Some(t) = rsp
                .get(..32)
                .and_then(trimmed)
                .filter(|t| t.is_ascii() && !t.chars().any(char::is_control))
            {
                out.fact(me, Fact::Hostname(src, t));
            }
        }
        _ => {}
    }
}

/// Decodes HART packed ASCII (four 6-bit characters in three bytes) into `buf`, trailing spaces trimmed.
fn packed_ascii<'b>(packed: &[u8], buf: &'b mut [u8]) -> Option<&'b str> {
    let mut n = 0;
    for chunk in packed.chunks_exact(3) {
        let word = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            let c = ((word >> shift) & 0x3f) as u8;
            // Codes 0x20-0x3F are themselves (space to '?'); 0x00-0x1F are '@' to '_'.
            *buf.get_mut(n)? = if c & 0x20 != 0 { c } else { c + 0x40 };
            n += 1;
        }
    }
    let s = std::str::from_utf8(buf.get(..n)?).ok()?.trim_end();
    (!s.is_empty()).then_some(s)
}

/// The state change a request makes, for the commands that make one.
fn state_change(command: u8) -> Option<(CommandKind, &'static str)> {
    use CommandKind::{Restart, SetTime, Write};
    Some(match command {
        6 => (Write, "write polling address (6)"),
        17 => (Write, "write message (17)"),
        18 => (Write, "write tag, descriptor, date (18)"),
        19 => (Write, "write final assembly number (19)"),
        22 => (Write, "write long tag (22)"),
        34 => (Write, "write PV damping value (34)"),
        35 => (Write, "write PV range values (35)"),
        40 => (Write, "enter/exit fixed current mode (40)"),
        42 => (Restart, "device reset (42)"),
        44 => (Write, "write PV units (44)"),
        45 => (Write, "trim loop current zero (45)"),
        46 => (Write, "trim loop current gain (46)"),
        79 => (Write, "write device variable (79)"),
        89 => (SetTime, "set real-time clock (89)"),
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::facts::{Collect, Subject};

    /// A HART-IP message: header (version 1, this type and id, sequence `seq`) and body.
    pub(crate) fn message(kind: u8, id: u8, seq: u16, body: &[u8]) -> Vec<u8> {
        let mut m = vec![1, kind, id, 0];
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(&((HEADER + body.len()) as u16).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// A token-passing PDU with a long (5-byte) address: delimiter, address, command, count, data, checksum.
    pub(crate) fn pdu(frame: u8, command: u8, data: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x80 | frame,
            0x26,
            0xe1,
            0x12,
            0x34,
            0x56,
            command,
            data.len() as u8,
        ];
        p.extend_from_slice(data);
        let checksum = p.iter().fold(0, |a, b| a ^ b);
        p.push(checksum);
        p
    }

    /// A HART 7 command 0 answer: Rosemount (0x0026), expanded device type 0x26E1, device id 12 34 56.
    pub(crate) const CMD0: [u8; 24] = [
        0,
        0x00, // response code, device status
        254,
        0x26,
        0xe1,
        5,
        7,
        9,
        3,
        2 << 3 | 1,
        0,
        0x12,
        0x34,
        0x56,
        5,
        4,
        0,
        7,
        0,
        0x00,
        0x26,
        0x00,
        0x26,
        0,
    ];

    /// Packs ASCII text (upper case, `@` to `_` and space to `?`) four characters to three bytes.
    pub(crate) fn pack(text: &[u8]) -> Vec<u8> {
        text.chunks(4)
            .flat_map(|c| {
                let w = c.iter().fold(0u32, |w, &ch| w << 6 | u32::from(ch & 0x3f));
                [(w >> 16) as u8, (w >> 8) as u8, w as u8]
            })
            .collect()
    }

    #[test]
    fn command_0_names_the_maker_type_revisions_and_id() {
        let m = message(1, 3, 2, &pdu(6, 0, &CMD0));
        assert!(looks_like(&m));
        assert_eq!(direction(&m), Some(Dir::ToClient));
        let mut c = Collect::default();
        dissect(&m, Dir::ToClient, &mut c);
        let s = Subject::Src;
        for f in [
            "Serves(HartIp)",
            "VendorId(HartIp, 38)",
            r#"Platform(HartIp, "HART device type 0x26e1")"#,
            r#"Firmware(HartIp, "HART 7, device revision 9, software 3, hardware 2")"#,
            r#"Serial(HartIp, "123456")"#,
        ] {
            assert!(c.0.contains(&(s, f.to_owned())), "{f} in {c:?}");
        }
        assert!(c.0.contains(&(Subject::Dst, "Uses(HartIp)".to_owned())));
    }

    #[test]
    fn tags_and_descriptor() {
        let mut data = vec![0, 0];
        data.extend(pack(b"FT-101  "));
        data.extend(pack(b"BOILER FEED FLOW"));
        data.extend([2, 12, 125]);
        let m13 = message(1, 3, 3, &pdu(6, 13, &data));
        let mut long = vec![0, 0];
        long.extend(b"WHART-GW-NORTH-01");
        long.resize(34, 0);
        let m20 = message(1, 3, 4, &pdu(6, 20, &long));
        // Both in one TCP segment.
        let seg = [m13, m20].concat();
        let mut c = Collect::default();
        dissect(&seg, Dir::ToClient, &mut c);
        assert!(c.has(r#"Hostname(HartIp, "FT-101")"#), "{c:?}");
        assert!(c.has(r#"Description(HartIp, "BOILER FEED FLOW")"#), "{c:?}");
        assert!(c.has(r#"Hostname(HartIp, "WHART-GW-NORTH-01")"#), "{c:?}");
    }

    #[test]
    fn writes_and_resets_from_the_master() {
        let m = message(0, 3, 5, &pdu(2, 42, &[]));
        assert_eq!(direction(&m), Some(Dir::ToServer));
        let mut c = Collect::default();
        dissect(&m, Dir::ToServer, &mut c);
        assert!(
            c.0.contains(&(
                Subject::Src,
                r#"Command { proto: HartIp, kind: Restart, detail: "device reset (42)" }"#
                    .to_owned()
            )),
            "{c:?}"
        );
        assert!(c.0.contains(&(Subject::Dst, "Serves(HartIp)".to_owned())));
        // A keep-alive and a session initiate are HART-IP; other bytes are not.
        assert!(looks_like(&message(0, 2, 1, &[])));
        assert!(looks_like(&message(0, 0, 1, &[1, 0, 0, 0x75, 0x30])));
        for other in [
            &b"\x03\x00\x00\x16"[..],
            b"GET / HTTP/1.1\r\n",
            &[1, 0, 0, 0, 0, 1, 0, 4],
            &[9, 0, 0, 0, 0, 1, 0, 8],
        ] {
            assert!(!looks_like(other), "{other:?}");
        }
    }

    #[test]
    fn truncation_at_every_length_is_harmless() {
        let m = [
            message(1, 3, 2, &pdu(6, 0, &CMD0)),
            message(1, 3, 3, &pdu(6, 20, &[0; 34])),
        ]
        .concat();
        let mut c = Collect::default();
        for cut in 0..m.len() {
            let p = &m[..cut];
            looks_like(p);
            direction(p);
            dissect(p, Dir::ToClient, &mut c);
            dissect(p, Dir::ToServer, &mut c);
        }
    }
}
