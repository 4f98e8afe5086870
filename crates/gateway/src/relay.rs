//! The sans-I/O core of a session: the client's and the broker's packets decided one by one, with the state
//! each direction keeps (topic aliases, QoS 2 exchanges the gateway finishes itself, narrowed SUBSCRIBEs).
//!
//! No socket, no clock, no lock: bytes in, forwarded bytes and the gateway's own answers out, every decision
//! asked of a [`Decide`] (the live session asks the policy engine), so each admission rule is unit-tested
//! here with plain bytes and the I/O adapter (`session.rs`) only moves them.

use std::collections::{HashMap, HashSet};

use vouch_mqtt::{
    FrameError, Framer, Packet, PacketKind, Protocol, ReasonCode, ack, packet_id, parse, suback,
    subscribe_subset, widen_suback,
};

use crate::DeniedPublish;
use crate::close::CloseReason;

/// Topic aliases a client may define (each holds a topic of up to the packet limit).
const MAX_ALIASES: usize = 1024;

/// What a session's packets are decided by, besides the decisions themselves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// The largest packet accepted, either way.
    pub(crate) max_packet: usize,
    /// The version the client connected with.
    pub(crate) protocol: Protocol,
    /// What a refused 3.1.1 PUBLISH does.
    pub(crate) v311_denied_publish: DeniedPublish,
}

/// The decisions and counters of one session, as the relay asks for them.
pub(crate) trait Decide {
    /// Whether the device may publish to `topic`.
    fn publish(&self, topic: &str) -> bool;
    /// Whether the device may subscribe to `filter` (or receive on a topic).
    fn subscribe(&self, filter: &str) -> bool;
    /// One request was refused.
    fn denied(&self);
    /// A PUBLISH of `bytes` went to the broker.
    fn forwarded_in(&self, bytes: usize);
    /// A PUBLISH of `bytes` went to the client.
    fn forwarded_out(&self, bytes: usize);
    /// A SUBSCRIBE went out narrowed: `refused` says which of the client's filters were kept back.
    fn narrowed(&self, packet_id: u16, refused: Vec<bool>);
    /// The narrowing of SUBSCRIBE `packet_id`, taken when its SUBACK comes back.
    fn take_narrowed(&self, packet_id: u16) -> Option<Vec<bool>>;
}

/// What one direction learned from a batch of packets.
pub(crate) enum Flow {
    /// Keep reading.
    More,
    /// The session ends after what was forwarded (a DISCONNECT, a refused CONNACK).
    Done(CloseReason),
}

/// Why a packet that cannot be framed ends the session.
pub(crate) fn frame_reason(e: &FrameError) -> CloseReason {
    match e {
        FrameError::TooLarge { .. } => CloseReason::PacketTooLarge,
        _ => CloseReason::MalformedPacket,
    }
}

#[derive(Default)]
pub(crate) struct UpState {
    aliases: HashMap<u16, String>,
    /// QoS 2 messages refused and acknowledged to a 3.1.1 client: their PUBREL is answered here.
    swallowed: HashSet<u16>,
}

#[derive(Default)]
pub(crate) struct DownState {
    aliases: HashMap<u16, String>,
    connacked: bool,
    /// QoS 2 deliveries kept from the client: the broker's PUBREL is answered here.
    swallowed: HashSet<u16>,
}

/// Resolves a PUBLISH's topic through the aliases of its direction (5.0), remembering new ones.
fn topic_of(
    aliases: &mut HashMap<u16, String>,
    topic: &str,
    alias: Option<u16>,
) -> Result<String, CloseReason> {
    match (topic.is_empty(), alias) {
        (false, None) => Ok(topic.to_owned()),
        (false, Some(a)) => {
            if aliases.len() >= MAX_ALIASES && !aliases.contains_key(&a) {
                return Err(CloseReason::ProtocolError);
            }
            aliases.insert(a, topic.to_owned());
            Ok(topic.to_owned())
        }
        (true, Some(a)) => aliases.get(&a).cloned().ok_or(CloseReason::ProtocolError),
        (true, None) => Err(CloseReason::MalformedPacket),
    }
}

/// Decides the client's complete packets in `buf`; allowed bytes go to `out` (for the broker), answers to
/// `to_client`. Returns how many bytes were consumed.
pub(crate) fn up_packets(
    rules: &Rules,
    s: &dyn Decide,
    st: &mut UpState,
    buf: &[u8],
    out: &mut Vec<u8>,
    to_client: &mut Vec<Vec<u8>>,
) -> Result<(usize, Flow), CloseReason> {
    let framer = Framer::new(rules.max_packet);
    let protocol = rules.protocol;
    let v5 = protocol.is_v5();
    let mut at = 0;
    while let Some(raw) = framer.next(&buf[at..]).map_err(|e| frame_reason(&e))? {
        at += raw.bytes.len();
        match parse(&raw, protocol).map_err(|_| CloseReason::MalformedPacket)? {
            Packet::Publish(p) => {
                let topic = topic_of(&mut st.aliases, p.topic, p.topic_alias)?;
                if s.publish(&topic) {
                    out.extend_from_slice(raw.bytes);
                    s.forwarded_in(raw.bytes.len());
                    continue;
                }
                s.denied();
                let disconnect = !v5 && rules.v311_denied_publish == DeniedPublish::Disconnect;
                if disconnect {
                    return Ok((at, Flow::Done(CloseReason::NotAuthorized)));
                }
                // 5.0 hears "not authorized"; 3.1.1 cannot be told, so the message is acknowledged and
                // dropped (a refusal it would only resend).
                let code = ReasonCode::NotAuthorized;
                match (p.qos, p.packet_id) {
                    (1, Some(id)) => to_client.push(ack(PacketKind::Puback, protocol, id, code)),
                    (2, Some(id)) => {
                        to_client.push(ack(PacketKind::Pubrec, protocol, id, code));
                        if !v5 {
                            st.swallowed.insert(id);
                        }
                    }
                    _ => {}
                }
            }
            Packet::Subscribe(sub) => {
                let verdicts: Vec<bool> = sub.filters.iter().map(|(f, _)| s.subscribe(f)).collect();
                for _ in verdicts.iter().filter(|v| !**v) {
                    s.denied();
                }
                if verdicts.iter().all(|v| *v) {
                    out.extend_from_slice(raw.bytes);
                } else if verdicts.iter().all(|v| !*v) {
                    let results: Vec<Result<u8, ReasonCode>> = verdicts
                        .iter()
                        .map(|_| Err(ReasonCode::NotAuthorized))
                        .collect();
                    to_client.push(suback(protocol, sub.packet_id, &results));
                } else {
                    out.extend(
                        subscribe_subset(&raw, protocol, &verdicts)
                            .map_err(|_| CloseReason::MalformedPacket)?,
                    );
                    s.narrowed(sub.packet_id, verdicts.iter().map(|v| !v).collect());
                }
            }
            Packet::Unsubscribe(..) => out.extend_from_slice(raw.bytes),
            Packet::Connect(_) => return Err(CloseReason::ProtocolError),
            Packet::Other(kind) => match kind {
                PacketKind::Pubrel => {
                    let id = packet_id(&raw).map_err(|_| CloseReason::MalformedPacket)?;
                    if st.swallowed.remove(&id) {
                        to_client.push(ack(PacketKind::Pubcomp, protocol, id, ReasonCode::Success));
                    } else {
                        out.extend_from_slice(raw.bytes);
                    }
                }
                PacketKind::Disconnect => {
                    out.extend_from_slice(raw.bytes);
                    return Ok((at, Flow::Done(CloseReason::ClientClosed)));
                }
                PacketKind::Connack
                | PacketKind::Suback
                | PacketKind::Unsuback
                | PacketKind::Pingresp => return Err(CloseReason::ProtocolError),
                _ => out.extend_from_slice(raw.bytes),
            },
        }
    }
    Ok((at, Flow::More))
}

/// Decides the broker's complete packets in `buf`; what the client may receive goes to `out`, the
/// gateway's own acknowledgements to `to_broker`.
pub(crate) fn down_packets(
    rules: &Rules,
    s: &dyn Decide,
    st: &mut DownState,
    buf: &[u8],
    out: &mut Vec<u8>,
    to_broker: &mut Vec<Vec<u8>>,
) -> Result<(usize, Flow), CloseReason> {
    // The broker is trusted to speak MQTT, but a packet over the limit is still not buffered.
    let framer = Framer::new(rules.max_packet);
    let protocol = rules.protocol;
    let mut at = 0;
    while let Some(raw) = framer
        .next(&buf[at..])
        .map_err(|_| CloseReason::UpstreamClosed)?
    {
        at += raw.bytes.len();
        match raw.kind {
            PacketKind::Publish => {
                let Ok(Packet::Publish(p)) = parse(&raw, protocol) else {
                    return Err(CloseReason::UpstreamClosed);
                };
                let topic = topic_of(&mut st.aliases, p.topic, p.topic_alias)?;
                // Delivery is decided too: after a narrowing, the broker may still hold a subscription
                // the device no longer may have (and a persistent session keeps it across reconnects).
                if s.subscribe(&topic) {
                    out.extend_from_slice(raw.bytes);
                    s.forwarded_out(raw.bytes.len());
                    continue;
                }
                s.denied();
                let ok = ReasonCode::Success;
                match (p.qos, p.packet_id) {
                    (1, Some(id)) => to_broker.push(ack(PacketKind::Puback, protocol, id, ok)),
                    (2, Some(id)) => {
                        to_broker.push(ack(PacketKind::Pubrec, protocol, id, ok));
                        st.swallowed.insert(id);
                    }
                    _ => {}
                }
            }
            PacketKind::Connack => {
                out.extend_from_slice(raw.bytes);
                let code = raw.body.get(1).copied().unwrap_or(0xff);
                if st.connacked {
                    return Err(CloseReason::UpstreamClosed);
                }
                st.connacked = true;
                if code != 0 {
                    return Ok((at, Flow::Done(CloseReason::UpstreamClosed)));
                }
            }
            PacketKind::Suback => {
                let id = packet_id(&raw).map_err(|_| CloseReason::UpstreamClosed)?;
                match s.take_narrowed(id) {
                    Some(refused) => out.extend(
                        widen_suback(&raw, protocol, &refused)
                            .map_err(|_| CloseReason::UpstreamClosed)?,
                    ),
                    None => out.extend_from_slice(raw.bytes),
                }
            }
            PacketKind::Pubrel => {
                let id = packet_id(&raw).map_err(|_| CloseReason::UpstreamClosed)?;
                if st.swallowed.remove(&id) {
                    to_broker.push(ack(PacketKind::Pubcomp, protocol, id, ReasonCode::Success));
                } else {
                    out.extend_from_slice(raw.bytes);
                }
            }
            PacketKind::Disconnect => {
                out.extend_from_slice(raw.bytes);
                return Ok((at, Flow::Done(CloseReason::UpstreamClosed)));
            }
            PacketKind::Connect | PacketKind::Subscribe | PacketKind::Unsubscribe => {
                return Err(CloseReason::UpstreamClosed);
            }
            _ => out.extend_from_slice(raw.bytes),
        }
    }
    Ok((at, Flow::More))
}

#[cfg(test)]
mod tests;
