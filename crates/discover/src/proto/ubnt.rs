//! Ubiquiti discovery (udp/10001): a controller or tool broadcasts a 4-byte probe (`01 00 00 00`); UniFi,
//! airMAX and EdgeMAX devices answer, or announce themselves unasked (version 2), with TLVs (type, 2-byte
//! length, value) that name them in clear: hostname, model (short and full), firmware, platform, MAC and IP.

use crate::facts::{Dir, Fact, Proto, Sink, Source, Subject};

use super::trimmed;

/// The version, the command, and the TLVs within the header's length.
fn header(p: &[u8]) -> Option<(u8, u8, &[u8])> {
    let [version @ (1 | 2), cmd, l0, l1, ref rest @ ..] = *p else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let tlvs = rest.get(..len)?;
    Some((version, cmd, tlvs))
}

/// The TLVs of a message: type and value.
fn tlvs(mut rest: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let [kind, l0, l1, ref tail @ ..] = *rest else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let value = tail.get(..len)?;
        rest = tail.get(len..)?;
        Some((kind, value))
    })
}

/// Whether a datagram is a Ubiquiti discovery probe, or a message whose TLVs fill its length exactly.
pub fn looks_like(payload: &[u8]) -> bool {
    let Some((_, _, body)) = header(payload) else {
        return false;
    };
    if payload.len() != 4 + body.len() {
        return false;
    }
    // Every TLV whole, and nothing left over.
    let used: usize = tlvs(body).map(|(_, v)| 3 + v.len()).sum();
    used == body.len()
}

/// Which way a message goes: the empty probe asks; anything with TLVs comes from a device.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    let (_, _, body) = header(payload)?;
    Some(if body.is_empty() {
        Dir::ToServer
    } else {
        Dir::ToClient
    })
}

/// Reads one message: a probe says the sender searches; an answer or announcement names the device.
pub fn dissect(payload: &[u8], _dir: Dir, out: &mut dyn Sink) {
    let Some((_, _, body)) = header(payload) else {
        return;
    };
    if body.is_empty() {
        out.fact(Subject::Src, Fact::Uses(Proto::Ubiquiti));
        return;
    }
    let me = Subject::Src;
    let src = Source::Ubiquiti;
    out.fact(me, Fact::Serves(Proto::Ubiquiti));
    out.fact(Subject::Dst, Fact::Uses(Proto::Ubiquiti));
    let mut named = false;
    for (kind, value) in tlvs(body) {
        let Some(text) = trimmed(value).filter(|t| !t.chars().any(char::is_control)) else {
            continue;
        };
        match kind {
            // Firmware: the full build path (3) and the short version (0x16).
            0x03 | 0x16 => out.fact(me, Fact::Firmware(src, text)),
            0x0b => out.fact(me, Fact::Hostname(src, text)),
            // The short model, or product code (0x0C), and the full model name (0x14).
            0x0c | 0x14 => {
                out.fact(me, Fact::Model(src, text));
                named = true;
            }
            0x15 => out.fact(me, Fact::Platform(src, text)),
            0x0d => out.fact(me, Fact::Description(src, text)),
            _ => {}
        }
    }
    if named {
        out.fact(me, Fact::Vendor(src, "Ubiquiti"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;

    fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut t = vec![kind];
        t.extend((value.len() as u16).to_be_bytes());
        t.extend_from_slice(value);
        t
    }

    fn answer() -> Vec<u8> {
        let body = [
            tlv(0x02, &[0x24, 0xa4, 0x3c, 0x01, 0x02, 0x03, 192, 168, 1, 20]),
            tlv(0x01, &[0x24, 0xa4, 0x3c, 0x01, 0x02, 0x03]),
            tlv(0x0a, &[0, 0, 0x0e, 0x10]),
            tlv(0x0b, b"ap-lobby"),
            tlv(0x0c, b"U7PG2"),
            tlv(0x03, b"BZ.qca956x.v6.5.55.14777.230208.0914"),
            tlv(0x14, b"UAP-AC-Pro-Gen2"),
            tlv(0x16, b"6.5.55.14777"),
        ]
        .concat();
        let mut m = vec![1, 0];
        m.extend((body.len() as u16).to_be_bytes());
        m.extend(body);
        m
    }

    #[test]
    fn an_answer_names_the_access_point() {
        let a = answer();
        assert!(looks_like(&a));
        assert_eq!(direction(&a), Some(Dir::ToClient));
        let mut c = Collect::default();
        dissect(&a, Dir::ToClient, &mut c);
        for f in [
            "Serves(Ubiquiti)",
            r#"Hostname(Ubiquiti, "ap-lobby")"#,
            r#"Model(Ubiquiti, "U7PG2")"#,
            r#"Model(Ubiquiti, "UAP-AC-Pro-Gen2")"#,
            r#"Firmware(Ubiquiti, "BZ.qca956x.v6.5.55.14777.230208.0914")"#,
            r#"Firmware(Ubiquiti, "6.5.55.14777")"#,
            r#"Vendor(Ubiquiti, "Ubiquiti")"#,
        ] {
            assert!(c.0.contains(&(Subject::Src, f.to_owned())), "{f} in {c:?}");
        }
    }

    #[test]
    fn the_probe_and_what_is_not_ubiquiti() {
        let probe = [1, 0, 0, 0];
        assert!(looks_like(&probe));
        assert_eq!(direction(&probe), Some(Dir::ToServer));
        let mut c = Collect::default();
        dissect(&probe, Dir::ToServer, &mut c);
        assert_eq!(c.0, vec![(Subject::Src, "Uses(Ubiquiti)".to_owned())]);
        let mut a = answer();
        a.push(0);
        assert!(!looks_like(&a), "a byte past the length");
        let mut a = answer();
        a[3] -= 1;
        assert!(!looks_like(&a), "a TLV cut by the length");
        assert!(!looks_like(&[1, 0, 0, 0, 0]));
        assert!(!looks_like(&[3, 0, 0, 0]));
    }

    #[test]
    fn truncation_at_every_length_is_harmless() {
        let a = answer();
        let mut c = Collect::default();
        for cut in 0..a.len() {
            let p = &a[..cut];
            looks_like(p);
            direction(p);
            dissect(p, Dir::ToClient, &mut c);
        }
    }
}
