//! What the gateway answers when it refuses: each version's own way (5.0 reason codes; 3.1.1's CONNACK return
//! codes and SUBACK failure, and for a refused PUBLISH nothing but closing or dropping).

use crate::packet::Protocol;

/// Why something was refused, with its MQTT 5.0 code (§2.4) and, for CONNACK, its 3.1.1 return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    /// Accepted.
    Success,
    /// Policy says no.
    NotAuthorized,
    /// The client identifier is not the certificate's device.
    ClientIdentifierNotValid,
    /// Not MQTT 3.1, 3.1.1 or 5.0.
    UnsupportedProtocolVersion,
    /// The upstream broker cannot be reached.
    ServerUnavailable,
    /// The packet broke the protocol.
    MalformedPacket,
    /// The packet is larger than allowed.
    PacketTooLarge,
    /// The session was closed by an administrative action (revocation, quarantine).
    AdministrativeAction,
    /// The client did not complete CONNECT in time, or keep-alive expired.
    KeepAliveTimeout,
}

impl ReasonCode {
    /// The MQTT 5.0 reason code.
    pub const fn v5(self) -> u8 {
        match self {
            Self::Success => 0x00,
            Self::MalformedPacket => 0x81,
            Self::UnsupportedProtocolVersion => 0x84,
            Self::ClientIdentifierNotValid => 0x85,
            Self::NotAuthorized => 0x87,
            Self::ServerUnavailable => 0x88,
            Self::KeepAliveTimeout => 0x8d,
            Self::PacketTooLarge => 0x95,
            Self::AdministrativeAction => 0x98,
        }
    }

    /// The MQTT 3.1.1 CONNACK return code (§3.2.2.3) closest to this reason.
    pub const fn v311_connack(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::UnsupportedProtocolVersion => 1,
            Self::ClientIdentifierNotValid => 2,
            Self::ServerUnavailable => 3,
            // 3.1.1 has no better word for the rest: "not authorized".
            _ => 5,
        }
    }
}

/// CONNACK with `code`.
pub fn connack(protocol: Protocol, session_present: bool, code: ReasonCode) -> Vec<u8> {
    let sp = u8::from(session_present && code == ReasonCode::Success);
    if protocol.is_v5() {
        vec![0x20, 3, sp, code.v5(), 0]
    } else {
        vec![0x20, 2, sp, code.v311_connack()]
    }
}

/// SUBACK: per filter, the granted QoS or the refusal (3.1.1 knows only 0x80, "failure").
pub fn suback(protocol: Protocol, packet_id: u16, results: &[Result<u8, ReasonCode>]) -> Vec<u8> {
    let codes = results.iter().map(|r| match r {
        Ok(qos) => *qos,
        Err(why) if protocol.is_v5() => why.v5(),
        Err(_) => 0x80,
    });
    let props: &[u8] = if protocol.is_v5() { &[0] } else { &[] };
    let body: Vec<u8> = packet_id
        .to_be_bytes()
        .into_iter()
        .chain(props.iter().copied())
        .chain(codes)
        .collect();
    frame(0x90, &body)
}

/// PUBACK for a QoS 1 PUBLISH; a 5.0 client learns why it was refused, a 3.1.1 client only that it was
/// acknowledged (the message is dropped).
pub fn puback(protocol: Protocol, packet_id: u16, code: ReasonCode) -> Vec<u8> {
    let [hi, lo] = packet_id.to_be_bytes();
    if protocol.is_v5() && code != ReasonCode::Success {
        vec![0x40, 3, hi, lo, code.v5()]
    } else {
        vec![0x40, 2, hi, lo]
    }
}

/// DISCONNECT with a reason, for 5.0; `None` for 3.1.1, where a server closes the connection instead.
pub fn disconnect(protocol: Protocol, code: ReasonCode) -> Option<Vec<u8>> {
    protocol.is_v5().then(|| vec![0xe0, 1, code.v5()])
}

/// A packet: its first byte, the remaining length (variable-length encoding), then `body`.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    put_remaining_length(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// Appends a client's PUBLISH (3.1.1 layout, no properties) of `payload` to `topic` at `qos` (packet id `id`
/// when `qos > 0`) to `out`: the simulator's and the benchmarks' devices send through it, so they append in
/// place instead of allocating a packet per message.
pub fn publish_v311(out: &mut Vec<u8>, topic: &str, payload: &[u8], qos: u8, id: u16) {
    let len = 2 + topic.len() + usize::from(qos > 0) * 2 + payload.len();
    out.push(0x30 | ((qos & 3) << 1));
    put_remaining_length(out, len);
    out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// The remaining length's variable-length encoding (§2.2.3): seven bits per byte, high bit for "more".
fn put_remaining_length(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
}
