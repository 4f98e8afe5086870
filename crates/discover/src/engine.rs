//! The per-packet path: decode, find the conversation, dissect, fold the facts into the inventory.
//!
//! Memory is bounded: conversations idle for [`Limits::idle_micros`] are folded into the communication map and
//! dropped, and when more than [`Limits::max_flows`] are live the least recently active half goes the same way.
//! Reassembly keeps only the first [`Limits::stream_head`] bytes of each direction of a stream protocol.
//!
//! Why one long file: the per-packet path (decode, conversation, reassembly head, dissect, fold) is one hot
//! loop whose state is private to it; a tenth of it is tests.

use std::net::IpAddr;

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use crate::capture::Frame;
use crate::facts::{Dir, Proto, Sink as _};
use crate::inventory::{AddrKind, Host, Inventory, PacketSink};
use crate::packet::{L4, Net, decode};
use crate::proto::{self, Reading};

/// Bounds on what discovery keeps in memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most conversations tracked at once.
    pub max_flows: usize,
    /// A conversation idle this long (capture time) is closed.
    pub idle_micros: i64,
    /// Bytes reassembled at the start of each direction of a stream protocol.
    pub stream_head: usize,
    /// Bytes held for reassembly across all conversations; a stream that would exceed it is read from what
    /// it has (many half-open TLS handshakes must not grow memory without bound).
    pub stream_budget: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_flows: 1 << 18,
            idle_micros: 300_000_000,
            stream_head: 16 * 1024,
            stream_budget: 64 << 20,
        }
    }
}

/// What a conversation is known to carry, for the communication map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum Service {
    /// A protocol discovery recognised.
    Known(Proto),
    /// Not recognised: IP protocol number and server port (0 for portless protocols).
    Port(u8, u16),
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Known(p) => f.write_str(p.as_str()),
            Self::Port(6, port) => write!(f, "tcp/{port}"),
            Self::Port(17, port) => write!(f, "udp/{port}"),
            Self::Port(1, _) => f.write_str("icmp"),
            Self::Port(2, _) => f.write_str("igmp"),
            Self::Port(58, _) => f.write_str("icmpv6"),
            Self::Port(p, _) => write!(f, "ip/{p}"),
        }
    }
}

/// Packets and bytes one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Packets.
    pub packets: u64,
    /// Bytes on the wire.
    pub bytes: u64,
}

/// What the communication map keeps per (client, server, service).
#[derive(Debug, Clone, Copy, Default)]
pub struct EdgeStats {
    /// Client to server.
    pub forward: Volume,
    /// Server to client.
    pub back: Volume,
    /// Conversations.
    pub flows: u64,
    /// First packet.
    pub first: i64,
    /// Last packet.
    pub last: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    lo: (IpAddr, u16),
    hi: (IpAddr, u16),
    ip_proto: u8,
}

/// The start of one direction of a stream protocol, reassembled in sequence order.
#[derive(Debug, Default)]
struct Head {
    next_seq: Option<u32>,
    buf: Vec<u8>,
    done: bool,
}

/// What chose a conversation's client, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basis {
    /// A bare SYN or a SYN-ACK, or a group destination (which is never the client).
    Handshake,
    /// The protocol's own header, or its well-known port.
    Protocol,
    /// The ports alone: the lower one serves. A one-way UDP flow's sender is its client instead.
    Ports,
}

#[derive(Debug)]
struct Flow {
    /// Host indexes of the `lo` and `hi` sides.
    hosts: [u32; 2],
    /// The ports of the `lo` and `hi` sides.
    ports: [u16; 2],
    ip_proto: u8,
    /// Which side is the client (0 = lo).
    client: u8,
    basis: Basis,
    /// Whether the client is settled: a TCP conversation first seen without a handshake or data settles it on
    /// its first data, whose header may say more than the ports.
    settled: bool,
    service: Service,
    reading: Reading,
    volume: [Volume; 2],
    first: i64,
    last: i64,
    heads: Option<Box<[Head; 2]>>,
    /// The next TCP sequence number expected from each side, for segment protocols: what lies wholly before
    /// it was read already (a duplicate or retransmission).
    next_seq: [Option<u32>; 2],
    /// Whether each side's hardware address has been bound to its IP address (once per side per flow).
    bound: [bool; 2],
}

impl Flow {
    /// The port of the server's side.
    fn server_port(&self) -> u16 {
        self.ports[usize::from(1 - self.client)]
    }

    /// Sets the client from whether the sender (`side`) is it.
    fn choose(&mut self, side: usize, (sender_is_client, basis): (bool, Basis)) {
        self.client = if sender_is_client {
            side as u8
        } else {
            1 - side as u8
        };
        self.basis = basis;
    }
}

/// How far behind the next expected sequence number a segment may start and still be taken for a
/// retransmission; one farther back belongs to a new connection on the same ports whose handshake was not
/// captured.
const RETRANSMIT_WINDOW: u32 = 1 << 24;

/// Whether the TCP sender is the client of a conversation first seen without a handshake: the protocol's
/// own header (the protocol detected from either port or the data), then that protocol's well-known port,
/// then any protocol's, then the ports (the lower serves).
fn tcp_client(payload: &[u8], sport: u16, dport: u16) -> (bool, Basis) {
    let detected = if payload.is_empty() {
        None
    } else {
        proto::detect_tcp_on(payload, &[sport.min(dport), sport.max(dport)])
    };
    if let Some(d) = detected.and_then(|p| proto::header_direction(p, payload)) {
        return (d == Dir::ToServer, Basis::Protocol);
    }
    let by_port = |p: Option<Proto>| match (
        proto::tcp_service_port(p, sport),
        proto::tcp_service_port(p, dport),
    ) {
        (false, true) => Some(true),
        (true, false) => Some(false),
        _ => None,
    };
    match detected
        .and_then(|p| by_port(Some(p)))
        .or_else(|| by_port(None))
    {
        Some(sender_is_client) => (sender_is_client, Basis::Protocol),
        None => (sport > dport, Basis::Ports),
    }
}

/// Whether the UDP sender is the client: the protocol's own header, then its well-known port (both read by
/// `detect_udp`), then the ports.
fn udp_client(payload: &[u8], sport: u16, dport: u16) -> (bool, Basis) {
    match proto::detect_udp(payload, sport, dport) {
        Some((_, d)) => (d == Dir::ToServer, Basis::Protocol),
        None => (sport > dport, Basis::Ports),
    }
}

/// Counters of the per-packet path.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EngineStats {
    /// Frames read.
    pub frames: u64,
    /// Bytes on the wire.
    pub wire_bytes: u64,
    /// Frames whose link type discovery does not decode, or whose headers were cut short.
    pub undecoded: u64,
    /// IP packets.
    pub ip_packets: u64,
    /// Conversations opened.
    pub flows: u64,
    /// Conversations closed because they were idle or the table was full.
    pub flows_evicted: u64,
    /// The most conversations live at once.
    pub flows_peak: u64,
    /// First and last capture time seen.
    pub first_ts: Option<i64>,
    /// Last capture time seen.
    pub last_ts: Option<i64>,
}

/// The discovery state: inventory, live conversations and the communication map.
#[derive(Debug, Default)]
pub struct Engine {
    /// Hosts and what is known about them.
    pub inventory: Inventory,
    /// (client host, server host, service) → volumes.
    pub edges: HashMap<(u32, u32, Service), EdgeStats>,
    /// Counters.
    pub stats: EngineStats,
    flows: HashMap<FlowKey, Flow>,
    limits: Limits,
    /// Bytes held in stream heads now.
    buffered: usize,
}

impl Engine {
    /// An empty engine with the given bounds.
    pub fn new(limits: Limits) -> Self {
        Engine {
            limits,
            ..Default::default()
        }
    }

    /// Reads one captured frame.
    pub fn frame(&mut self, f: Frame<'_>) {
        let ts = f.ts_micros;
        let len = u64::from(f.wire_len.max(f.data.len() as u32));
        self.stats.frames += 1;
        self.stats.wire_bytes += len;
        self.stats.first_ts = Some(self.stats.first_ts.map_or(ts, |t| t.min(ts)));
        self.stats.last_ts = Some(self.stats.last_ts.map_or(ts, |t| t.max(ts)));
        if self.stats.frames & 0xffff == 0 {
            self.sweep(ts);
        }
        let Some(p) = f.link.and_then(|l| decode(l, f.data)) else {
            self.stats.undecoded += 1;
            return;
        };
        match p.net {
            Net::Ip { src, dst, ttl, l4 } => {
                self.stats.ip_packets += 1;
                let hw = Hw {
                    src_mac: p.src_mac,
                    to_group: group_dst(p.dst_mac),
                    ttl,
                };
                self.ip(src, dst, hw, l4, len, ts);
            }
            Net::Arp {
                sender_mac,
                sender_ip,
                ..
            } => {
                let h = self.inventory.mac_host(sender_mac, ts);
                self.inventory.sent(h, len, ts);
                self.inventory.apply(h, None, crate::Fact::Uses(Proto::Arp));
                self.inventory.bind(sender_mac, IpAddr::V4(sender_ip));
            }
            Net::Ether {
                ether_type,
                payload,
            } => {
                if let Some(src) = p.src_mac.filter(|m| crate::inventory::is_unicast_mac(*m)) {
                    let h = self.inventory.mac_host(src, ts);
                    self.inventory.sent(h, len, ts);
                    let mut sink = PacketSink {
                        inv: &mut self.inventory,
                        src: Some(h),
                        dst: None,
                        ts,
                    };
                    proto::ether(ether_type, payload, &mut sink);
                }
            }
            Net::Llc { snap, payload, .. } => {
                if let Some(src) = p.src_mac.filter(|m| crate::inventory::is_unicast_mac(*m)) {
                    let h = self.inventory.mac_host(src, ts);
                    let mut sink = PacketSink {
                        inv: &mut self.inventory,
                        src: Some(h),
                        dst: None,
                        ts,
                    };
                    proto::llc(snap, payload, &mut sink);
                }
            }
            Net::Other => {}
        }
    }

    fn ip(&mut self, src: IpAddr, dst: IpAddr, hw: Hw, l4: L4<'_>, len: u64, ts: i64) {
        let Hw {
            src_mac,
            to_group,
            ttl,
        } = hw;
        let (sport, dport) = match l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport, .. } => (sport, dport),
            L4::Other(_) => (0, 0),
        };
        let ip_proto = l4.ip_proto();
        if matches!(l4, L4::Other(_)) {
            // ICMP, IGMP and the like: counted and mapped, no conversation.
            let s = self.inventory.ip_host(src, ts);
            let d = self.inventory.ip_host(dst, ts);
            if to_group {
                self.inventory.mark_group(d);
            }
            self.inventory.count(s, d, len, ts);
            if let Some(m) = src_mac {
                self.inventory.bind_sender(m, src, ttl, ts);
            }
            let e = self
                .edges
                .entry((s, d, Service::Port(ip_proto, 0)))
                .or_insert(EdgeStats {
                    first: ts,
                    ..Default::default()
                });
            e.forward.packets += 1;
            e.forward.bytes += len;
            e.last = ts;
            return;
        }
        let (key, from_lo) = if (src, sport) <= (dst, dport) {
            (
                FlowKey {
                    lo: (src, sport),
                    hi: (dst, dport),
                    ip_proto,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    lo: (dst, dport),
                    hi: (src, sport),
                    ip_proto,
                },
                false,
            )
        };
        let side = usize::from(!from_lo);
        if !self.flows.contains_key(&key) {
            if self.flows.len() >= self.limits.max_flows {
                self.evict_half();
            }
            let s = self.inventory.ip_host(src, ts);
            let d = self.inventory.ip_host(dst, ts);
            if to_group {
                self.inventory.mark_group(d);
            }
            let group = self
                .inventory
                .hosts
                .get(d as usize)
                .is_some_and(|h| h.kind == AddrKind::Group);
            // The client, in this order: whoever sent a bare SYN (the answerer of one is the server); the
            // sender to a group address; what the protocol's own header says; a well-known service port; the
            // lower port serves.
            let (choice, settled) = match l4 {
                L4::Tcp { syn: true, ack, .. } => ((!ack, Basis::Handshake), true),
                _ if group => ((true, Basis::Handshake), true),
                L4::Tcp { payload, .. } => (tcp_client(payload, sport, dport), !payload.is_empty()),
                L4::Udp { payload, .. } => (udp_client(payload, sport, dport), true),
                L4::Other(_) => ((sport > dport, Basis::Ports), true),
            };
            let hosts = if from_lo { [s, d] } else { [d, s] };
            let ports = if from_lo {
                [sport, dport]
            } else {
                [dport, sport]
            };
            let mut flow = Flow {
                hosts,
                ports,
                ip_proto,
                client: 0,
                basis: Basis::Ports,
                settled,
                service: Service::Port(ip_proto, 0),
                reading: Reading::Opaque,
                volume: [Volume::default(); 2],
                first: ts,
                last: ts,
                heads: None,
                next_seq: [None; 2],
                bound: [false; 2],
            };
            flow.choose(side, choice);
            flow.service = Service::Port(ip_proto, flow.server_port());
            self.flows.insert(key, flow);
            self.stats.flows += 1;
            self.stats.flows_peak = self.stats.flows_peak.max(self.flows.len() as u64);
        }
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        if !flow.bound[side] {
            flow.bound[side] = true;
            if let Some(m) = src_mac {
                self.inventory.bind_sender(m, src, ttl, ts);
            }
        }
        flow.volume[side].packets += 1;
        flow.volume[side].bytes += len;
        flow.last = ts;
        let (s, d) = (flow.hosts[side], flow.hosts[1 - side]);
        self.inventory.count(s, d, len, ts);
        let mut sink = PacketSink {
            inv: &mut self.inventory,
            src: Some(s),
            dst: Some(d),
            ts,
        };
        match l4 {
            L4::Udp { payload, .. } => {
                if let Some((p, udp_dir)) = proto::detect_udp(payload, sport, dport) {
                    flow.service = Service::Known(p);
                    proto::datagram(p, payload, udp_dir, dport, &mut sink);
                }
            }
            L4::Tcp {
                payload, seq, syn, ..
            } => {
                if payload.is_empty() {
                    if syn {
                        // A handshake (re)starts the sequence space of its side.
                        flow.next_seq[side] = Some(seq.wrapping_add(1));
                        if let Some(h) = flow.heads.as_mut() {
                            h[side].next_seq = Some(seq.wrapping_add(1));
                        }
                    }
                    return;
                }
                // A conversation first seen without a handshake or data is settled by its first data.
                if !flow.settled {
                    flow.settled = true;
                    flow.choose(side, tcp_client(payload, sport, dport));
                    if let Service::Port(p, _) = flow.service {
                        flow.service = Service::Port(p, flow.server_port());
                    }
                }
                // Detection runs until a protocol is known; ISO-on-TCP is refined once data shows what it
                // carries (S7comm, S7comm-plus, MMS). Without a handshake either port may be the server's.
                let cotp = flow.service == Service::Known(Proto::Cotp);
                if matches!(flow.service, Service::Port(..)) || cotp {
                    let server = flow.server_port();
                    let client = flow.ports[usize::from(flow.client)];
                    let detected = if cotp {
                        Some(proto::cotp_kind(payload))
                    } else if flow.basis == Basis::Handshake {
                        proto::detect_tcp_on(payload, &[server])
                    } else {
                        proto::detect_tcp_on(payload, &[server, client])
                    };
                    if let Some(p) = detected {
                        flow.service = Service::Known(p);
                        flow.reading = proto::reading(p);
                    }
                }
                let Service::Known(p) = flow.service else {
                    return;
                };
                let dir = if side as u8 == flow.client {
                    Dir::ToServer
                } else {
                    Dir::ToClient
                };
                match flow.reading {
                    Reading::Segment => {
                        // Each byte of a direction is dissected once: a duplicate or retransmission (wholly
                        // before the next expected byte) is skipped, one that also carries new data is read
                        // from where the earlier segment ended (segment protocols' PDUs start at segment
                        // starts), and a gap does not stop what follows it.
                        let end = seq.wrapping_add(payload.len() as u32);
                        let data = match flow.next_seq[side] {
                            Some(n) if n.wrapping_sub(seq) < RETRANSMIT_WINDOW => {
                                if end.wrapping_sub(n) == 0 || end.wrapping_sub(n) >= 1 << 31 {
                                    return;
                                }
                                payload
                                    .get(n.wrapping_sub(seq) as usize..)
                                    .unwrap_or_default()
                            }
                            _ => payload,
                        };
                        flow.next_seq[side] = Some(end);
                        proto::segment(p, data, dir, &mut sink)
                    }
                    Reading::Stream => {
                        let heads = flow.heads.get_or_insert_with(Default::default);
                        let head = &mut heads[side];
                        if head.done {
                            return;
                        }
                        // In-order data only: a retransmission or a gap ends reassembly for this direction
                        // (what was read so far is kept).
                        match head.next_seq {
                            Some(n) if n != seq => {
                                if seq.wrapping_sub(n) < (1 << 31) {
                                    head.done = true;
                                }
                                return;
                            }
                            _ => {}
                        }
                        head.next_seq = Some(seq.wrapping_add(payload.len() as u32));
                        let room = self
                            .limits
                            .stream_head
                            .saturating_sub(head.buf.len())
                            .min(self.limits.stream_budget.saturating_sub(self.buffered));
                        let take = payload.len().min(room);
                        head.buf.extend_from_slice(&payload[..take]);
                        self.buffered += take;
                        head.done = proto::stream(p, &head.buf, dir, &mut sink)
                            || head.buf.len() >= self.limits.stream_head
                            || take < payload.len();
                        if head.done {
                            self.buffered -= head.buf.len();
                            head.buf = Vec::new();
                        }
                    }
                    Reading::Opaque => {
                        sink.fact(dir.server(), crate::Fact::Serves(p));
                        sink.fact(dir.client(), crate::Fact::Uses(p));
                    }
                }
            }
            L4::Other(_) => {}
        }
    }

    /// Closes conversations idle since before `now - idle`.
    fn sweep(&mut self, now: i64) {
        let cutoff = now - self.limits.idle_micros;
        self.evict(|f| f.last < cutoff);
    }

    fn evict_half(&mut self) {
        let mut lasts: Vec<i64> = self.flows.values().map(|f| f.last).collect();
        let mid = lasts.len() / 2;
        let (_, median, _) = lasts.select_nth_unstable(mid);
        let median = *median;
        self.evict(|f| f.last <= median);
    }

    fn evict(&mut self, mut old: impl FnMut(&Flow) -> bool) {
        let edges = &mut self.edges;
        let hosts = &self.inventory.hosts;
        let mut evicted = 0;
        let mut released = 0;
        self.flows.retain(|_, f| {
            if old(f) {
                fold(edges, hosts, f);
                released += f
                    .heads
                    .as_ref()
                    .map_or(0, |h| h[0].buf.len() + h[1].buf.len());
                evicted += 1;
                false
            } else {
                true
            }
        });
        self.stats.flows_evicted += evicted;
        self.buffered -= released;
    }

    /// Folds every live conversation into the communication map (at the end of a capture).
    pub fn close_all(&mut self) {
        for (_, f) in self.flows.drain() {
            fold(&mut self.edges, &self.inventory.hosts, &f);
        }
        self.buffered = 0;
    }
}

/// Adds a closed conversation to the map, from its client to its server.
fn fold(edges: &mut HashMap<(u32, u32, Service), EdgeStats>, hosts: &[Host], f: &Flow) {
    let mut c = usize::from(f.client);
    // A one-way UDP conversation whose client only the ports chose: its sender is the client of what it
    // sends to (a sensor streaming readings, a beacon).
    if f.ip_proto == 17 && f.basis == Basis::Ports {
        match (f.volume[0].packets, f.volume[1].packets) {
            (_, 0) => c = 0,
            (0, _) => c = 1,
            _ => {}
        }
    }
    // A group address (known as one by now) is never a client: whoever sent to it is.
    let group = |i: usize| {
        hosts
            .get(f.hosts[i] as usize)
            .is_some_and(|h| h.kind == AddrKind::Group)
    };
    if group(c) && !group(1 - c) {
        c = 1 - c;
    }
    let service = match f.service {
        Service::Port(p, _) => Service::Port(p, f.ports[1 - c]),
        known => known,
    };
    let e = edges
        .entry((f.hosts[c], f.hosts[1 - c], service))
        .or_insert(EdgeStats {
            first: f.first,
            ..Default::default()
        });
    e.forward.packets += f.volume[c].packets;
    e.forward.bytes += f.volume[c].bytes;
    e.back.packets += f.volume[1 - c].packets;
    e.back.bytes += f.volume[1 - c].bytes;
    e.flows += 1;
    e.first = e.first.min(f.first);
    e.last = e.last.max(f.last);
}

/// The link-layer side of an IP packet.
#[derive(Debug, Clone, Copy)]
struct Hw {
    src_mac: Option<vouch_types::MacAddr>,
    /// Sent to a broadcast or multicast hardware address.
    to_group: bool,
    /// The IP time to live as received.
    ttl: u8,
}

/// Whether a frame went to a group hardware address: its IP destination is then a broadcast (a subnet's, which
/// the address alone does not reveal) or multicast address, not a device.
fn group_dst(mac: Option<vouch_types::MacAddr>) -> bool {
    mac.is_some_and(|m| !crate::inventory::is_unicast_mac(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Link;
    use etherparse::PacketBuilder;

    fn tcp_frame(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        seq: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64)
            .tcp(sport, dport, seq, 65535)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    #[test]
    fn reassembly_memory_is_bounded_by_the_budget() {
        let budget = 100_000;
        let mut e = Engine::new(Limits {
            stream_budget: budget,
            ..Limits::default()
        });
        // 2,000 clients each start a TLS hello announcing 16 KiB and send 1,000 bytes of it, never more.
        let mut hello = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x3f, 0xfc];
        hello.resize(1000, 0);
        for i in 0..2000u32 {
            let frame = tcp_frame(
                [10, 0, (i >> 8) as u8, i as u8],
                40000,
                [10, 1, 0, 1],
                443,
                1,
                &hello,
            );
            e.frame(Frame {
                ts_micros: i64::from(i),
                link: Some(Link::Ethernet),
                wire_len: frame.len() as u32,
                data: &frame,
            });
            assert!(e.buffered <= budget, "{} buffered after {i}", e.buffered);
        }
        assert_eq!(e.stats.flows, 2000);
        e.close_all();
        assert_eq!(e.buffered, 0);
        // Every conversation is still on the map as TLS, buffered or not.
        let tls = e
            .edges
            .keys()
            .filter(|(_, _, s)| *s == Service::Known(Proto::Tls))
            .count();
        assert_eq!(tls, 2000);
    }
}
