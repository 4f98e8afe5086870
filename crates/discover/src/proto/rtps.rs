//! DDS interoperability wire protocol, RTPS (UDP 7400 and up, any port by its magic): DDS participants (ROS 2
//! nodes, vehicle and robot controllers) announce themselves by multicast (SPDP) with their vendor, GUID
//! prefix and often a name and product version; writers publish DATA, readers answer ACKNACK.

use crate::facts::{Dir, Fact, Proto, Sink, Source, Subject};

use super::{format_into, trimmed};

/// "RTPS", protocol version, vendor id, GUID prefix.
const HEADER: usize = 20;
/// The SPDP built-in participant writer.
const SPDP_WRITER: [u8; 4] = [0x00, 0x01, 0x00, 0xc2];

/// Whether a datagram is RTPS 2.x: the magic, major version 2, and a whole header.
pub fn looks_like(payload: &[u8]) -> bool {
    matches!(payload, [b'R', b'T', b'P', b'S', 2, 0..=5, ..]) && payload.len() >= HEADER
}

/// The submessages (id, flags, body) after the header; a last one whose length is 0 runs to the end.
fn submessages(payload: &[u8]) -> impl Iterator<Item = (u8, u8, &[u8])> {
    let mut rest = payload.get(HEADER..).unwrap_or_default();
    std::iter::from_fn(move || {
        let [id, flags, l0, l1, tail @ ..] = rest else {
            return None;
        };
        let len = usize::from(if flags & 1 != 0 {
            u16::from_le_bytes([*l0, *l1])
        } else {
            u16::from_be_bytes([*l0, *l1])
        });
        let (body, next) = if len == 0 {
            (tail, &[][..])
        } else {
            tail.split_at_checked(len).unwrap_or((tail, &[]))
        };
        rest = next;
        Some((*id, *flags, body))
    })
}

/// A writer's submessages (DATA, DATA_FRAG, HEARTBEAT, GAP) travel to readers; a reader's ACKNACK or NACK_FRAG
/// back to the writer.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    if !looks_like(payload) {
        return None;
    }
    submessages(payload)
        .take(8)
        .find_map(|(id, _, _)| match id {
            0x15 | 0x16 | 0x07 | 0x08 | 0x13 => Some(Dir::ToClient),
            0x06 | 0x12 => Some(Dir::ToServer),
            _ => None,
        })
}

/// The vendors of the OMG's RTPS vendor id registry that discovery names.
fn vendor(id: u16) -> Option<&'static str> {
    Some(match id {
        0x0101 => "RTI Connext DDS",
        0x0102 => "ADLINK OpenSplice DDS",
        0x0103 => "OCI OpenDDS",
        0x0106 => "Twin Oaks CoreDX DDS",
        0x010a => "RTI Connext DDS Micro",
        0x010f => "eProsima Fast DDS",
        0x0110 => "Eclipse Cyclone DDS",
        0x0111 => "GurumNetworks GurumDDS",
        0x0112 => "Atostek RustDDS",
        _ => return None,
    })
}

/// Reads one RTPS datagram.
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let Some([_, _, _, _, _, _, v0, v1, prefix @ ..]) = payload.get(..HEADER) else {
        return;
    };
    if !looks_like(payload) {
        return;
    }
    let dir = direction(payload).unwrap_or(dir);
    out.fact(dir.server(), Fact::Serves(Proto::Rtps));
    out.fact(dir.client(), Fact::Uses(Proto::Rtps));
    let vendor_id = u16::from_be_bytes([*v0, *v1]);
    // Only a participant announcement is worth reading past the header; it names its sender.
    let Some((flags, body)) = submessages(payload)
        .take(8)
        .find(|(id, _, b)| *id == 0x15 && b.get(8..12) == Some(&SPDP_WRITER[..]))
        .map(|(_, f, b)| (f, b))
    else {
        return;
    };
    out.fact(
        Subject::Src,
        Fact::VendorId(Source::Rtps, u32::from(vendor_id)),
    );
    if let Some(name) = vendor(vendor_id) {
        out.fact(Subject::Src, Fact::Vendor(Source::Rtps, name));
    }
    let mut buf = [0u8; 40];
    let mut hex = [0u8; 24];
    for (i, b) in prefix.iter().enumerate() {
        let digits = b"0123456789abcdef";
        hex[2 * i] = digits[usize::from(b >> 4)];
        hex[2 * i + 1] = digits[usize::from(b & 15)];
    }
    if let Some(s) = std::str::from_utf8(&hex)
        .ok()
        .and_then(|h| format_into(&mut buf, format_args!("RTPS guidPrefix {h}")))
    {
        out.fact(Subject::Src, Fact::Description(Source::Rtps, s));
    }
    participant(flags, body, vendor_id, out);
}

/// The participant's parameter list (PL_CDR) in a DATA submessage from the SPDP writer.
fn participant(flags: u8, body: &[u8], vendor_id: u16, out: &mut dyn Sink) {
    // extraFlags, octetsToInlineQos (from after itself), readerId, writerId, writerSN.
    let Some([o0, o1]) = body.get(2..4) else {
        return;
    };
    let to_qos = usize::from(if flags & 1 != 0 {
        u16::from_le_bytes([*o0, *o1])
    } else {
        u16::from_be_bytes([*o0, *o1])
    });
    let mut at = 4 + to_qos;
    // Inline QoS (flag Q) precede the payload: skip its parameter list.
    if flags & 0x02 != 0 {
        let Some(qos) = body.get(at..) else {
            return;
        };
        at += parameters(qos, flags & 1 != 0, |_, _| {});
    }
    if flags & 0x04 == 0 {
        return;
    }
    // The serialized payload's encapsulation: PL_CDR_BE (0x0002) or PL_CDR_LE (0x0003), options.
    let le = match body.get(at..at + 2) {
        Some([0x00, 0x03]) => true,
        Some([0x00, 0x02]) => false,
        _ => return,
    };
    let Some(list) = body.get(at + 4..) else {
        return;
    };
    parameters(list, le, |pid, value| match pid {
        // PID_ENTITY_NAME: a CDR string (length with its NUL, then the bytes).
        0x0062 => {
            if let Some(name) = value.get(4..).and_then(trimmed) {
                out.fact(Subject::Src, Fact::Description(Source::Rtps, name));
            }
        }
        // PID_USER_DATA: ROS 2 participants put their security enclave there.
        0x002c if value.windows(8).any(|w| w == b"enclave=") => {
            out.fact(Subject::Src, Fact::Platform(Source::Rtps, "ROS 2"));
        }
        // RTI's PID_PRODUCT_VERSION (vendor-specific ids mean something only for their vendor).
        0x8000 if vendor_id == 0x0101 || vendor_id == 0x010a => {
            if let [major, minor, release, revision, ..] = value {
                let mut buf = [0u8; 24];
                let release = char::from(*release);
                if let Some(v) = format_into(
                    &mut buf,
                    format_args!("{major}.{minor}.{}.{revision}", release.escape_default()),
                ) {
                    out.fact(Subject::Src, Fact::Firmware(Source::Rtps, v));
                }
            }
        }
        _ => {}
    });
}

/// Walks a parameter list (pid, length, value) until PID_SENTINEL or its end; returns how many bytes it used.
fn parameters(list: &[u8], le: bool, mut each: impl FnMut(u16, &[u8])) -> usize {
    let mut at = 0;
    while let Some([p0, p1, l0, l1]) = list.get(at..at + 4) {
        let (pid, len) = if le {
            (
                u16::from_le_bytes([*p0, *p1]),
                u16::from_le_bytes([*l0, *l1]),
            )
        } else {
            (
                u16::from_be_bytes([*p0, *p1]),
                u16::from_be_bytes([*l0, *l1]),
            )
        };
        at += 4;
        if pid == 0x0001 {
            break;
        }
        let Some(value) = list.get(at..at + usize::from(len)) else {
            break;
        };
        // The must-understand bit (0x4000) does not change what the parameter is.
        each(pid & 0xbfff, value);
        at += usize::from(len);
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;

    /// An RTPS 2.3 message from Fast DDS (0x010f) with `subs`.
    fn message(vendor: u16, subs: &[u8]) -> Vec<u8> {
        let mut v = b"RTPS".to_vec();
        v.extend_from_slice(&[2, 3]);
        v.extend_from_slice(&vendor.to_be_bytes());
        v.extend_from_slice(&[
            0x01, 0x0f, 0x4c, 0x2f, 0x8a, 0x1b, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        ]);
        v.extend_from_slice(subs);
        v
    }

    fn param(pid: u16, value: &[u8]) -> Vec<u8> {
        let mut v = pid.to_le_bytes().to_vec();
        let mut value = value.to_vec();
        value.resize(value.len().div_ceil(4) * 4, 0);
        v.extend_from_slice(&(value.len() as u16).to_le_bytes());
        v.extend_from_slice(&value);
        v
    }

    /// A little-endian DATA submessage from the SPDP writer carrying `params` (PL_CDR_LE).
    fn spdp(params: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![0, 0, 16, 0];
        body.extend_from_slice(&[0, 1, 0, 0xc7]); // reader: SPDP reader
        body.extend_from_slice(&SPDP_WRITER);
        body.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0]);
        body.extend_from_slice(&[0x00, 0x03, 0x00, 0x00]);
        for p in params {
            body.extend_from_slice(p);
        }
        body.extend_from_slice(&[1, 0, 0, 0]);
        let mut v = vec![0x15, 0x05];
        v.extend_from_slice(&(body.len() as u16).to_le_bytes());
        v.extend_from_slice(&body);
        v
    }

    fn cdr_string(s: &str) -> Vec<u8> {
        let mut v = ((s.len() + 1) as u32).to_le_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        v
    }

    fn run(p: &[u8]) -> Collect {
        let mut c = Collect::default();
        dissect(p, Dir::ToServer, &mut c);
        c
    }

    #[test]
    fn spdp_announcement_names_the_participant() {
        let p = message(
            0x010f,
            &spdp(&[
                param(0x0062, &cdr_string("talker_node")),
                param(0x002c, b"\x0b\0\0\0enclave=/;\0"),
            ]),
        );
        assert!(looks_like(&p));
        assert_eq!(direction(&p), Some(Dir::ToClient));
        let c = run(&p);
        assert!(c.0.contains(&(Subject::Src, "Serves(Rtps)".into())));
        assert!(c.0.contains(&(Subject::Src, "VendorId(Rtps, 271)".into())));
        assert!(c.0.contains(&(Subject::Src, r#"Vendor(Rtps, "eProsima Fast DDS")"#.into())));
        assert!(c.0.contains(&(Subject::Src, r#"Description(Rtps, "talker_node")"#.into())));
        assert!(c.0.contains(&(Subject::Src, r#"Platform(Rtps, "ROS 2")"#.into())));
        assert!(c.has(r#"Description(Rtps, "RTPS guidPrefix 010f4c2f8a1b000001000000")"#));
        // RTI's product version, only under RTI's vendor id.
        let p = message(0x0101, &spdp(&[param(0x8000, &[6, 1, b'0', 2])]));
        assert!(run(&p).has(r#"Firmware(Rtps, "6.1.0.2")"#));
        let p = message(0x010f, &spdp(&[param(0x8000, &[6, 1, b'0', 2])]));
        assert!(!run(&p).has("Firmware"));
    }

    #[test]
    fn readers_answer_writers() {
        let acknack = [0x06, 0x01, 0x18, 0x00]
            .iter()
            .copied()
            .chain([0; 24])
            .collect::<Vec<u8>>();
        let p = message(0x0110, &acknack);
        assert_eq!(direction(&p), Some(Dir::ToServer));
        let c = run(&p);
        assert!(c.0.contains(&(Subject::Src, "Uses(Rtps)".into())));
        assert!(!c.has("VendorId"), "only announcements are read");
        let heartbeat = [0x07, 0x01, 0x1c, 0x00]
            .iter()
            .copied()
            .chain([0; 28])
            .collect::<Vec<u8>>();
        assert_eq!(direction(&message(0x0110, &heartbeat)), Some(Dir::ToClient));
    }

    #[test]
    fn recognition_is_strict() {
        assert!(looks_like(&message(0x0101, &[])));
        assert!(!looks_like(b"RTPX\x02\x03\x01\x01\0\0\0\0\0\0\0\0\0\0\0\0"));
        assert!(!looks_like(b"RTPS\x01\x00\x01\x01\0\0\0\0\0\0\0\0\0\0\0\0"));
        assert!(!looks_like(b"RTPS\x02\x03\x01\x01"));
    }

    #[test]
    fn survives_truncation_and_hostile_lengths() {
        let good = message(
            0x010f,
            &spdp(&[
                param(0x0062, &cdr_string("n")),
                param(0x8000, &[1, 2, 3, 4]),
            ]),
        );
        let mut bad = good.clone();
        bad[22] = 0xff; // submessage longer than the datagram
        let mut bad2 = good.clone();
        bad2[26] = 0xf0; // octetsToInlineQos beyond the submessage
        let mut bad3 = good.clone();
        bad3[21] = 0x07; // inline QoS flag without a list
        crate::testutil::every_prefix(&[good, bad, bad2, bad3], dissect, looks_like, direction);
    }
}
