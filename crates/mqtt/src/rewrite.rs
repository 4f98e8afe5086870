//! The few packets a gateway must rewrite or write itself: a SUBSCRIBE narrowed to the filters policy allows,
//! the broker's SUBACK widened back to every filter the client asked for, and acknowledgements for messages
//! the gateway keeps from their destination.

use crate::frame::{PacketKind, RawPacket};
use crate::packet::{ParseError, Protocol};
use crate::reply::{ReasonCode, frame};

/// The packet identifier at the start of an acknowledgement's (or SUBACK's) variable header.
pub fn packet_id(raw: &RawPacket<'_>) -> Result<u16, ParseError> {
    match raw.body {
        [hi, lo, ..] if (*hi, *lo) != (0, 0) => Ok(u16::from_be_bytes([*hi, *lo])),
        [_, _, ..] => Err(ParseError::ZeroPacketId("an acknowledgement")),
        _ => Err(ParseError::Truncated("the packet identifier")),
    }
}

/// An acknowledgement (PUBACK, PUBREC, PUBREL or PUBCOMP) for `packet_id`; a 5.0 peer also gets `code`
/// when it is not success.
pub fn ack(kind: PacketKind, protocol: Protocol, packet_id: u16, code: ReasonCode) -> Vec<u8> {
    let first = match kind {
        PacketKind::Puback => 0x40,
        PacketKind::Pubrec => 0x50,
        PacketKind::Pubrel => 0x62,
        _ => 0x70,
    };
    let [hi, lo] = packet_id.to_be_bytes();
    if protocol.is_v5() && code != ReasonCode::Success {
        vec![first, 3, hi, lo, code.v5()]
    } else {
        vec![first, 2, hi, lo]
    }
}

/// `raw` (a SUBSCRIBE already checked by [`crate::parse`]) with only the filters whose `keep` is true, in
/// order; the packet identifier and 5.0 properties are kept.
pub fn subscribe_subset(
    raw: &RawPacket<'_>,
    protocol: Protocol,
    keep: &[bool],
) -> Result<Vec<u8>, ParseError> {
    let body = raw.body;
    let mut at = 2;
    if protocol.is_v5() {
        let (len, n) = varint(&body[at.min(body.len())..])?;
        at += n + len;
    }
    let mut out = body
        .get(..at)
        .ok_or(ParseError::Truncated("SUBSCRIBE properties"))?
        .to_vec();
    let mut i = 0;
    while at < body.len() {
        let len = body
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or(ParseError::Truncated("a topic filter"))?;
        let entry = body
            .get(at..at + 2 + len + 1)
            .ok_or(ParseError::Truncated("a topic filter"))?;
        if keep.get(i).copied().unwrap_or(false) {
            out.extend_from_slice(entry);
        }
        at += entry.len();
        i += 1;
    }
    Ok(frame(0x82, &out))
}

/// The broker's SUBACK for a narrowed SUBSCRIBE, widened to every filter the client sent: `refused[i]` says
/// whether the client's `i`-th filter was kept back (it gets "not authorized"); the others take the broker's
/// codes in order.
pub fn widen_suback(
    raw: &RawPacket<'_>,
    protocol: Protocol,
    refused: &[bool],
) -> Result<Vec<u8>, ParseError> {
    let body = raw.body;
    let mut at = 2;
    if protocol.is_v5() {
        let (len, n) = varint(&body[at.min(body.len())..])?;
        at += n + len;
    }
    let head = body
        .get(..at)
        .ok_or(ParseError::Truncated("SUBACK properties"))?;
    let mut broker = body[at..].iter().copied();
    let mut out = head.to_vec();
    let denied = if protocol.is_v5() {
        ReasonCode::NotAuthorized.v5()
    } else {
        0x80
    };
    for &r in refused {
        if r {
            out.push(denied);
        } else {
            out.push(broker.next().ok_or(ParseError::Truncated("SUBACK codes"))?);
        }
    }
    if broker.next().is_some() {
        return Err(ParseError::Trailing("SUBACK"));
    }
    Ok(frame(0x90, &out))
}

fn varint(buf: &[u8]) -> Result<(usize, usize), ParseError> {
    let mut v = 0usize;
    for (i, &b) in buf.iter().take(4).enumerate() {
        v |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(ParseError::Truncated("a variable byte integer"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Framer;
    use crate::packet::{Packet, parse};

    fn raw(bytes: &[u8]) -> RawPacket<'_> {
        match Framer::new(1 << 20).next(bytes) {
            Ok(Some(r)) => r,
            other => panic!("not a packet: {other:?}"),
        }
    }

    fn subscribe(protocol: Protocol, filters: &[(&str, u8)]) -> Vec<u8> {
        let mut body = vec![0, 7];
        if protocol.is_v5() {
            body.extend_from_slice(&[2, 0x0b, 5]); // subscription identifier 5
        }
        for (f, o) in filters {
            body.extend_from_slice(&(f.len() as u16).to_be_bytes());
            body.extend_from_slice(f.as_bytes());
            body.push(*o);
        }
        frame(0x82, &body)
    }

    #[test]
    fn a_narrowed_subscribe_keeps_its_id_properties_and_options() {
        for protocol in [Protocol::V311, Protocol::V5] {
            let opts = if protocol.is_v5() { 0b0010_0101 } else { 1 };
            let full = subscribe(protocol, &[("a/#", 1), ("b/+", opts), ("c", 0)]);
            let narrowed =
                subscribe_subset(&raw(&full), protocol, &[false, true, false]).expect("narrowed");
            assert_eq!(narrowed, subscribe(protocol, &[("b/+", opts)]));
            let Ok(Packet::Subscribe(s)) = parse(&raw(&narrowed), protocol) else {
                panic!("narrowed SUBSCRIBE does not parse");
            };
            assert_eq!(s.packet_id, 7);
            assert_eq!(s.filters.len(), 1);
        }
    }

    #[test]
    fn a_suback_is_widened_to_every_filter_asked_for() {
        let v5 = frame(0x90, &[0, 7, 0, 1]);
        assert_eq!(
            widen_suback(&raw(&v5), Protocol::V5, &[true, false, true]).expect("widened"),
            frame(0x90, &[0, 7, 0, 0x87, 1, 0x87])
        );
        let v3 = frame(0x90, &[0, 7, 0]);
        assert_eq!(
            widen_suback(&raw(&v3), Protocol::V311, &[false, true]).expect("widened"),
            frame(0x90, &[0, 7, 0, 0x80])
        );
        // The broker answered more or fewer filters than were sent to it.
        assert!(widen_suback(&raw(&v3), Protocol::V311, &[true, true]).is_err());
        assert!(widen_suback(&raw(&frame(0x90, &[0, 7, 0, 0])), Protocol::V311, &[false]).is_err());
    }

    #[test]
    fn acknowledgements_carry_a_reason_only_in_5() {
        assert_eq!(
            ack(
                PacketKind::Pubrec,
                Protocol::V5,
                9,
                ReasonCode::NotAuthorized
            ),
            [0x50, 3, 0, 9, 0x87]
        );
        assert_eq!(
            ack(
                PacketKind::Pubrec,
                Protocol::V311,
                9,
                ReasonCode::NotAuthorized
            ),
            [0x50, 2, 0, 9]
        );
        assert_eq!(
            ack(PacketKind::Pubcomp, Protocol::V5, 9, ReasonCode::Success),
            [0x70, 2, 0, 9]
        );
        assert_eq!(packet_id(&raw(&[0x62, 2, 1, 2])), Ok(258));
        assert!(packet_id(&raw(&[0x62, 2, 0, 0])).is_err());
    }
}
