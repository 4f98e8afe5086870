//! EtherNet/IP implicit (class 0/1) I/O on UDP 2222: the cyclic process data a scanner (usually a PLC) and
//! its adapters (I/O blocks, drives, robots) exchange after a Forward Open on TCP 44818. No encapsulation
//! header: each datagram is a Common Packet Format list of a Sequenced Address item (connection id and
//! sequence number) and a Connected Data item. Both ends produce data at the requested packet interval, so each
//! datagram's sender is the producer of its connection and its receiver a consumer (as EGD's are); who opened
//! the connection is the explicit session's business. A connection id names a producer's connection, the
//! identity this traffic reveals.

use crate::facts::{Dir, Fact, Proto, Sink, Source, Subject};

use super::format_into;

/// CPF item types of implicit I/O.
const SEQUENCED_ADDRESS: u16 = 0x8002;
const CONNECTED_DATA: u16 = 0x00b1;

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The connection id and sequence number of an implicit I/O datagram: an item count of 2 to 4, a Sequenced
/// Address item of 8 bytes first, a Connected Data item next, and the items filling the datagram exactly.
fn parse(payload: &[u8]) -> Option<(u32, u32)> {
    let count = le16(payload, 0)?;
    if !(2..=4).contains(&count) {
        return None;
    }
    let mut at = 2;
    let mut ids = None;
    for i in 0..count {
        let (kind, len) = (le16(payload, at)?, usize::from(le16(payload, at + 2)?));
        let data = payload.get(at + 4..at + 4 + len)?;
        match (i, kind) {
            (0, SEQUENCED_ADDRESS) if len == 8 => ids = Some((le32(data, 0)?, le32(data, 4)?)),
            (0, _) => return None,
            (1, CONNECTED_DATA) => {}
            (1, _) => return None,
            _ => {}
        }
        at += 4 + len;
    }
    (at == payload.len()).then_some(ids?)
}

/// Whether a datagram is EtherNet/IP implicit I/O.
pub fn looks_like(payload: &[u8]) -> bool {
    parse(payload).is_some()
}

/// Reads one I/O datagram: its sender produces the connection (serves), its receiver consumes it (uses).
pub fn dissect(payload: &[u8], _dir: Dir, out: &mut dyn Sink) {
    let Some((connection, _seq)) = parse(payload) else {
        return;
    };
    out.fact(Subject::Src, Fact::Serves(Proto::EnipIo));
    out.fact(Subject::Dst, Fact::Uses(Proto::EnipIo));
    let mut buf = [0u8; 48];
    if let Some(s) = format_into(
        &mut buf,
        format_args!("EtherNet/IP I/O producer, connection 0x{connection:08x}"),
    ) {
        out.fact(Subject::Src, Fact::Description(Source::Enip, s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;

    /// An I/O datagram of connection `id`, sequence `seq`, carrying `data` (a CIP sequence count first).
    fn io(id: u32, seq: u32, data: &[u8]) -> Vec<u8> {
        let mut v = 2u16.to_le_bytes().to_vec();
        v.extend_from_slice(&SEQUENCED_ADDRESS.to_le_bytes());
        v.extend_from_slice(&8u16.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
        v.extend_from_slice(&seq.to_le_bytes());
        v.extend_from_slice(&CONNECTED_DATA.to_le_bytes());
        v.extend_from_slice(&(data.len() as u16).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn the_sender_produces_its_connection() {
        let p = io(0x0012_3456, 7, &[1, 0, 0xaa, 0xbb]);
        assert!(looks_like(&p));
        let mut c = Collect::default();
        dissect(&p, Dir::ToServer, &mut c);
        assert_eq!(
            c.0,
            vec![
                (Subject::Src, "Serves(EnipIo)".to_string()),
                (Subject::Dst, "Uses(EnipIo)".to_string()),
                (
                    Subject::Src,
                    r#"Description(Enip, "EtherNet/IP I/O producer, connection 0x00123456")"#
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn recognition_is_strict() {
        let p = io(1, 1, &[0; 6]);
        // Item count, first item type, its length, second item type; then a datagram one byte short or long.
        for (i, v) in [(0, 1u8), (0, 9), (2, 0x01), (4, 9), (14, 0xb2)] {
            let mut q = p.clone();
            q[i] = v;
            assert!(!looks_like(&q), "byte {i} = {v}");
        }
        assert!(!looks_like(&p[..p.len() - 1]));
        let mut longer = p.clone();
        longer.push(0);
        assert!(!looks_like(&longer));
        // An explicit-messaging encapsulation header (ListIdentity) is not I/O.
        assert!(!looks_like(&[0x63, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    }

    #[test]
    fn survives_truncation() {
        crate::testutil::every_prefix(
            &[io(5, 9, &[3, 0, 1, 2, 3, 4])],
            dissect,
            looks_like,
            super::super::undirected,
        );
    }
}
