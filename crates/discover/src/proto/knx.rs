//! KNXnet/IP (udp/3671, ISO/IEC 14543-3; KNX Standard 03.08.02 Core): building automation over IP. Every
//! frame opens with a 6-byte header (length 06, version 10, service type, total length). Search and
//! description answers carry a device information block (medium, individual address, serial number whose
//! first two bytes are the KNX manufacturer code, friendly name); tunnelling and routing carry cEMI frames, in
//! which group value writes, memory and property writes and restarts are commands a building's operator would
//! want to see.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink, Source, Subject};

use super::format_into;

const SEARCH_REQUEST: u16 = 0x0201;
const SEARCH_RESPONSE: u16 = 0x0202;
const DESCRIPTION_REQUEST: u16 = 0x0203;
const DESCRIPTION_RESPONSE: u16 = 0x0204;
const SEARCH_REQUEST_EXT: u16 = 0x020b;
const SEARCH_RESPONSE_EXT: u16 = 0x020c;
const TUNNELLING_REQUEST: u16 = 0x0420;
const ROUTING_INDICATION: u16 = 0x0530;

/// The service type and the frame within its total length, if the header is KNXnet/IP's.
fn header(p: &[u8]) -> Option<(u16, &[u8])> {
    let [0x06, 0x10, s0, s1, l0, l1, ..] = *p else {
        return None;
    };
    let service = u16::from_be_bytes([s0, s1]);
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    // Service families 2 (core) to 9; the length covers the header at least.
    let family = s0;
    ((0x02..=0x09).contains(&family) && len >= 6).then_some((service, p.get(6..len)?))
}

/// Whether a datagram is KNXnet/IP: the fixed header, a known service family and a total length that is the
/// datagram's own (strict enough to claim a datagram off its port).
pub fn looks_like(payload: &[u8]) -> bool {
    header(payload).is_some_and(|(_, frame)| frame.len() + 6 == payload.len())
}

/// Which way a frame goes: searches, description and connection requests ask; their answers and routing
/// indications (published to the group) come from the device. Tunnelling goes both ways.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    let (service, _) = header(payload)?;
    match service {
        SEARCH_REQUEST | DESCRIPTION_REQUEST | SEARCH_REQUEST_EXT | 0x0205 | 0x0207 => {
            Some(Dir::ToServer)
        }
        SEARCH_RESPONSE | DESCRIPTION_RESPONSE | SEARCH_RESPONSE_EXT | 0x0206 | 0x0208
        | ROUTING_INDICATION => Some(Dir::ToClient),
        _ => None,
    }
}

/// Reads one KNXnet/IP frame.
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let Some((service, body)) = header(payload) else {
        return;
    };
    let dir = direction(payload).unwrap_or(dir);
    out.fact(dir.server(), Fact::Serves(Proto::Knx));
    // A routing indication is published to the group: no client.
    if service != ROUTING_INDICATION {
        out.fact(dir.client(), Fact::Uses(Proto::Knx));
    }
    match service {
        // A control endpoint (HPAI, 8 bytes), then the description blocks.
        SEARCH_RESPONSE | SEARCH_RESPONSE_EXT => dibs(body.get(8..).unwrap_or_default(), out),
        DESCRIPTION_RESPONSE => dibs(body, out),
        // A connection header (length, channel, sequence, reserved), then cEMI.
        TUNNELLING_REQUEST => {
            let skip = usize::from(*body.first().unwrap_or(&4));
            cemi(body.get(skip..).unwrap_or_default(), out);
        }
        ROUTING_INDICATION => cemi(body, out),
        _ => {}
    }
}

/// Reads the description information blocks of an answer (length, type, content), about the sender.
fn dibs(mut rest: &[u8], out: &mut dyn Sink) {
    let me = Subject::Src;
    let src = Source::Knx;
    while let [len, kind, ..] = *rest {
        let len = usize::from(len);
        if len < 2 {
            return;
        }
        let Some(block) = rest.get(..len) else { return };
        // Device information: medium, status, individual address, project id, serial (6), multicast (4),
        // MAC (6), friendly name (30).
        if let (1, [_, _, medium, _, a0, a1, _, _, s @ ..]) = (kind, block) {
            let medium = match *medium {
                0x02 => Some("KNX TP1"),
                0x04 => Some("KNX PL110"),
                0x10 => Some("KNX RF"),
                0x20 => Some("KNX IP"),
                _ => None,
            };
            if let Some(m) = medium {
                out.fact(me, Fact::Platform(src, m));
            }
            let a = u16::from_be_bytes([*a0, *a1]);
            let mut buf = [0u8; 16];
            if let Some(t) = format_into(
                &mut buf,
                format_args!("{}.{}.{}", a >> 12, (a >> 8) & 0xf, a & 0xff),
            ) {
                out.fact(me, Fact::DeviceId(src, t));
            }
            if let Some(serial) = s.first_chunk::<6>() {
                out.fact(
                    me,
                    Fact::VendorId(src, u32::from(u16::from_be_bytes([serial[0], serial[1]]))),
                );
                let mut buf = [0u8; 12];
                let [a, b, c, d, e, f] = *serial;
                if let Some(h) = format_into(
                    &mut buf,
                    format_args!("{a:02x}{b:02x}{c:02x}{d:02x}{e:02x}{f:02x}"),
                ) {
                    out.fact(me, Fact::Serial(src, h));
                }
            }
            // ISO 8859-1, NUL-padded; only its ASCII form is taken.
            if let Some(name) = s
                .get(16..46)
                .and_then(super::trimmed)
                .filter(|n| n.is_ascii() && !n.chars().any(char::is_control))
            {
                out.fact(me, Fact::Hostname(src, name));
            }
        }
        rest = rest.get(len..).unwrap_or_default();
    }
}

/// Reads one cEMI frame: an L_Data request from a client through a tunnel, or one routed on the group, and
/// flags what changes the installation.
fn cemi(c: &[u8], out: &mut dyn Sink) {
    let [code, info, rest @ ..] = c else { return };
    // L_Data.req (a client sends on the bus) or L_Data.ind (a router relays from the bus).
    if !matches!(code, 0x11 | 0x29) {
        return;
    }
    let Some(&[_ctrl1, _ctrl2, _, _, _, _, len, tpci, ref apdu @ ..]) =
        rest.get(usize::from(*info)..)
    else {
        return;
    };
    // Only data PDUs carry an application service (TPCI's top bits 00 or 01).
    if len == 0 || tpci & 0x80 != 0 {
        return;
    }
    let Some(&b1) = apdu.first() else { return };
    let apci = u16::from(tpci & 0x03) << 2 | u16::from(b1 >> 6);
    let what = match apci {
        2 => Some((CommandKind::Write, "group value write")),
        3 => Some((CommandKind::Program, "individual address write")),
        10 => Some((CommandKind::Program, "memory write")),
        14 => Some((CommandKind::Restart, "restart")),
        15 => {
            let ext = u16::from(tpci & 0x03) << 8 | u16::from(b1);
            match ext {
                0x3d7 => Some((CommandKind::Program, "property value write")),
                _ => None,
            }
        }
        _ => None,
    };
    if let Some((kind, detail)) = what {
        out.fact(
            Subject::Src,
            Fact::Command {
                proto: Proto::Knx,
                kind,
                detail,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;

    fn frame(service: u16, body: &[u8]) -> Vec<u8> {
        let mut f = vec![0x06, 0x10];
        f.extend_from_slice(&service.to_be_bytes());
        f.extend_from_slice(&((6 + body.len()) as u16).to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    /// A device information block: KNX TP1, address 1.1.250, serial 00 02 11 22 33 44 (ABB), name.
    fn device_dib(name: &[u8]) -> Vec<u8> {
        let mut d = vec![
            54, 1, 0x02, 0, 0x11, 0xfa, 0, 0, 0x00, 0x02, 0x11, 0x22, 0x33, 0x44,
        ];
        d.extend([224, 0, 23, 12]);
        d.extend([0x00, 0x0e, 0x8c, 0x01, 0x02, 0x03]);
        let mut n = name.to_vec();
        n.resize(30, 0);
        d.extend(n);
        d
    }

    const HPAI: [u8; 8] = [8, 1, 192, 168, 1, 50, 0x0e, 0x57];

    #[test]
    fn search_response_names_the_interface() {
        let mut body = HPAI.to_vec();
        body.extend(device_dib(b"IP Router Floor 2"));
        body.extend([4, 2, 2, 1]);
        let f = frame(SEARCH_RESPONSE, &body);
        assert!(looks_like(&f));
        assert_eq!(direction(&f), Some(Dir::ToClient));
        let mut c = Collect::default();
        dissect(&f, Dir::ToServer, &mut c);
        for fact in [
            "Serves(Knx)",
            r#"Platform(Knx, "KNX TP1")"#,
            r#"DeviceId(Knx, "1.1.250")"#,
            "VendorId(Knx, 2)",
            r#"Serial(Knx, "000211223344")"#,
            r#"Hostname(Knx, "IP Router Floor 2")"#,
        ] {
            assert!(
                c.0.contains(&(Subject::Src, fact.to_owned())),
                "{fact} in {c:?}"
            );
        }
        assert!(c.0.contains(&(Subject::Dst, "Uses(Knx)".to_owned())));
        let mut c = Collect::default();
        let search = frame(SEARCH_REQUEST, &HPAI);
        assert_eq!(direction(&search), Some(Dir::ToServer));
        dissect(&search, Dir::ToServer, &mut c);
        assert!(
            c.0.contains(&(Subject::Src, "Uses(Knx)".to_owned())),
            "{c:?}"
        );
    }

    #[test]
    fn group_writes_and_restarts_through_a_tunnel() {
        // Connection header (channel 7, sequence 1), L_Data.req from 1.1.255 to group 1/2/3, GroupValueWrite 1.
        let write = frame(
            TUNNELLING_REQUEST,
            &[
                4, 7, 1, 0, 0x11, 0, 0xbc, 0xe0, 0x11, 0xff, 0x0a, 0x03, 1, 0x00, 0x81,
            ],
        );
        assert_eq!(direction(&write), None);
        let mut c = Collect::default();
        dissect(&write, Dir::ToServer, &mut c);
        assert!(
            c.has(r#"Command { proto: Knx, kind: Write, detail: "group value write" }"#),
            "{c:?}"
        );
        assert!(c.0.contains(&(Subject::Dst, "Serves(Knx)".to_owned())));
        // A restart to an individual address; a read is no command.
        let restart = frame(
            ROUTING_INDICATION,
            &[0x29, 0, 0xb0, 0x60, 0x11, 0xff, 0x11, 0x05, 1, 0x03, 0x80],
        );
        let read = frame(
            ROUTING_INDICATION,
            &[0x29, 0, 0xbc, 0xe0, 0x11, 0xff, 0x0a, 0x03, 1, 0x00, 0x00],
        );
        let mut c = Collect::default();
        dissect(&restart, Dir::ToClient, &mut c);
        assert!(c.has("kind: Restart"), "{c:?}");
        let mut c = Collect::default();
        dissect(&read, Dir::ToClient, &mut c);
        assert!(!c.has("Command"), "{c:?}");
        assert!(!looks_like(&[0x06, 0x10, 0x01, 0x00, 0x00, 0x06]));
        assert!(!looks_like(&[0x06, 0x10, 0x02, 0x01, 0x00, 0x20]));
    }

    #[test]
    fn truncation_at_every_length_is_harmless() {
        let mut body = HPAI.to_vec();
        body.extend(device_dib(b"x"));
        let f = frame(SEARCH_RESPONSE, &body);
        let t = frame(
            TUNNELLING_REQUEST,
            &[
                4, 7, 1, 0, 0x11, 0, 0xbc, 0xe0, 0x11, 0xff, 0x0a, 0x03, 1, 0x03, 0xd7,
            ],
        );
        let mut c = Collect::default();
        for m in [f, t] {
            for cut in 0..m.len() {
                let mut p = m[..cut].to_vec();
                looks_like(&p);
                direction(&p);
                dissect(&p, Dir::ToClient, &mut c);
                // The same cut with the header's length saying so.
                if p.len() >= 6 {
                    let n = (p.len() as u16).to_be_bytes();
                    p[4] = n[0];
                    p[5] = n[1];
                    dissect(&p, Dir::ToServer, &mut c);
                }
            }
        }
    }
}
