//! GE Ethernet Global Data (UDP 18246): a controller produces exchanges of process data that consumers only
//! receive, one way, often to a broadcast or multicast address. The producer is the server; consumers answer
//! nothing.

use crate::facts::{Dir, Fact, Proto, Sink, Source, Subject};

use super::format_into;

/// Type, version, request id, producer id, exchange id, time stamp (2 words), status, configuration
/// signature, reserved.
const HEADER: usize = 32;

/// Whether a datagram is an EGD data production: PDU type 13, version 1, a whole header.
pub fn looks_like(payload: &[u8]) -> bool {
    matches!(payload, [13, 1, ..]) && payload.len() >= HEADER
}

/// Produced data always travels from the producer.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    looks_like(payload).then_some(Dir::ToClient)
}

/// Reads one produced datagram: its sender serves EGD, its receiver consumes it.
pub fn dissect(payload: &[u8], _dir: Dir, out: &mut dyn Sink) {
    if !looks_like(payload) {
        return;
    }
    out.fact(Subject::Src, Fact::Serves(Proto::Egd));
    out.fact(Subject::Dst, Fact::Uses(Proto::Egd));
    // The producer id is conventionally the producer's IPv4 address, in network order.
    let (Some(id), Some(exchange)) = (payload.get(4..8), payload.get(8..12)) else {
        return;
    };
    let exchange = u32::from_le_bytes([exchange[0], exchange[1], exchange[2], exchange[3]]);
    let mut buf = [0u8; 64];
    if let Some(s) = format_into(
        &mut buf,
        format_args!(
            "EGD producer {}.{}.{}.{}, exchange {exchange}",
            id[0], id[1], id[2], id[3]
        ),
    ) {
        out.fact(Subject::Src, Fact::Description(Source::Egd, s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;

    /// A production from producer 10.1.1.5, exchange 3, status 0, with `data`.
    fn production(data: &[u8]) -> Vec<u8> {
        let mut v = vec![13, 1, 0x2a, 0x00, 10, 1, 1, 5];
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&1_796_212_800u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0x1234_5678u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn the_producer_serves_whatever_the_flow_says() {
        let p = production(&[1, 2, 3, 4]);
        assert!(looks_like(&p));
        assert_eq!(direction(&p), Some(Dir::ToClient));
        let mut c = Collect::default();
        dissect(&p, Dir::ToServer, &mut c);
        assert_eq!(
            c.0,
            vec![
                (Subject::Src, "Serves(Egd)".to_string()),
                (Subject::Dst, "Uses(Egd)".to_string()),
                (
                    Subject::Src,
                    r#"Description(Egd, "EGD producer 10.1.1.5, exchange 3")"#.to_string()
                ),
            ]
        );
    }

    #[test]
    fn recognition_is_strict() {
        let p = production(&[]);
        for (i, v) in [(0, 12), (1, 2)] {
            let mut q = p.clone();
            q[i] = v;
            assert!(!looks_like(&q));
        }
        assert!(!looks_like(&p[..31]));
    }

    #[test]
    fn survives_truncation() {
        crate::testutil::every_prefix(&[production(&[9; 8])], dissect, looks_like, direction);
    }
}
