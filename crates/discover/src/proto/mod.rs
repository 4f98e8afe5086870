//! The dissectors: one small module per protocol, each reading only what discovery needs.
//!
//! Every dissector has the same shape: it takes one payload (a TCP segment's data from the start of a protocol
//! data unit, a UDP datagram, or an Ethernet/LLC payload), never panics on any input, and reports what it
//! learns as [`Fact`](crate::Fact)s through a [`Sink`](crate::Sink). The segment dissectors, which run on every
//! packet, allocate nothing; facts borrow from the packet.
//! Transport dissectors are told which way the packet travels ([`Dir`](crate::Dir)); link-layer ones speak
//! about the sender.
//!
//! Two kinds of TCP protocols are told apart here. *Segment* protocols (the industrial ones) carry whole PDUs
//! in each segment and are read packet by packet, all along the conversation, because every command matters.
//! *Stream* protocols (TLS, HTTP, MQTT, SSH, FTP, Telnet) reveal identity at the start of the stream, which may
//! span segments: the flow table reassembles the first bytes of each direction and hands them over until the
//! dissector says it has read what it needs.
//!
//! Each also offers `looks_like(payload) -> bool`, a cheap check on the first bytes, so that a protocol on an
//! unusual port is still recognised (OPC UA on tcp/12001 is still OPC UA).
//!
//! Why one long file: it is the dispatch table (which dissector claims which payload, by port and by shape)
//! and the helpers every dissector shares; a fifth of it is tests. Each protocol is its own module.

pub mod ads;
pub mod bacnet;
pub mod banner;
pub mod cdp;
pub mod dhcp;
pub mod dlms;
pub mod dnp3;
pub mod dns;
pub mod egd;
pub mod enip;
pub mod enipio;
pub mod fins;
pub mod goose;
pub mod hartip;
pub mod http;
pub mod iec104;
pub mod knx;
pub mod lldp;
pub mod modbus;
pub mod mqtt;
pub mod opcua;
pub mod pndcp;
pub mod pnio;
pub mod ptp;
pub mod rtps;
pub mod s7;
pub mod snmp;
pub mod synphasor;
pub mod tls;
pub mod tplink;
pub mod tuya;
pub mod ubnt;
pub mod wsd;

use crate::facts::{Dir, Fact, Proto, Sink, Subject};

/// The bytes as text without trailing NULs or spaces, if they are non-empty UTF-8 (the fixed and
/// length-counted string fields of the link-layer and OT protocols).
pub(crate) fn trimmed(bytes: &[u8]) -> Option<&str> {
    let end = bytes.iter().rposition(|&b| b != 0 && b != b' ')?;
    std::str::from_utf8(bytes.get(..=end)?).ok()
}

/// Formats into `buf`, so that numbers (serials, versions) can be reported as text without allocating.
pub(crate) fn format_into<'b>(buf: &'b mut [u8], args: std::fmt::Arguments<'_>) -> Option<&'b str> {
    use std::io::Write as _;
    let total = buf.len();
    let mut w = &mut *buf;
    w.write_fmt(args).ok()?;
    let used = total - w.len();
    let done: &'b [u8] = buf;
    std::str::from_utf8(done.get(..used)?).ok()
}

/// How a TCP protocol is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Every segment is dissected on its own.
    Segment,
    /// The start of each direction is reassembled and dissected until the dissector is done.
    Stream,
    /// Recognised, nothing to read.
    Opaque,
}

/// What reads one payload of a protocol: a TCP segment's data, a UDP datagram, or a link-layer frame's payload.
#[derive(Clone, Copy)]
pub enum Read {
    /// Each payload on its own (segment protocols, datagrams, link-layer frames).
    Each(fn(&[u8], Dir, &mut dyn Sink)),
    /// The reassembled start of each TCP direction, until the dissector says it is done (`true`).
    Head(fn(&[u8], Dir, &mut dyn Sink) -> bool),
    /// Recognised, nothing to read: the sides only serve and use it.
    Nothing,
}

/// One protocol discovery knows: where it travels, how it is recognised, which way a payload goes and how it
/// is read. Adding a protocol is one module and one row of [`TABLE`].
#[derive(Clone, Copy)]
pub struct Spec {
    /// The protocol.
    pub proto: Proto,
    /// Its well-known TCP server ports.
    pub tcp: &'static [u16],
    /// Its well-known UDP server port ranges (inclusive).
    pub udp: &'static [(u16, u16)],
    /// The EtherTypes it is carried in directly.
    pub ether: &'static [u16],
    /// A cheap check on a payload's first bytes; `None` when they say little (FTP, SMB), so only the port
    /// speaks for it.
    pub looks_like: Option<fn(&[u8]) -> bool>,
    /// Whether `looks_like` is distinctive enough to claim a TCP conversation on any port.
    pub tcp_off_port: bool,
    /// Whether `looks_like` is distinctive enough to claim a UDP datagram on any port.
    pub udp_off_port: bool,
    /// Which way a payload travels by its own header (a request goes [`Dir::ToServer`]; a response, report or
    /// announcement [`Dir::ToClient`]), when the header says; decides before any port heuristic.
    pub direction: fn(&[u8]) -> Option<Dir>,
    /// How its payloads are read.
    pub read: Read,
}

impl Spec {
    /// A row for `proto` that nothing finds and nothing reads, for the builders below to fill in.
    pub const fn new(proto: Proto) -> Self {
        Spec {
            proto,
            tcp: &[],
            udp: &[],
            ether: &[],
            looks_like: None,
            tcp_off_port: false,
            udp_off_port: false,
            direction: undirected,
            read: Read::Nothing,
        }
    }
    /// Served on these TCP ports.
    pub const fn tcp(self, ports: &'static [u16]) -> Self {
        Spec { tcp: ports, ..self }
    }
    /// Served on these UDP port ranges.
    pub const fn udp(self, ports: &'static [(u16, u16)]) -> Self {
        Spec { udp: ports, ..self }
    }
    /// Carried in these EtherTypes.
    pub const fn ether(self, types: &'static [u16]) -> Self {
        Spec {
            ether: types,
            ..self
        }
    }
    /// Recognised by this check on the first bytes.
    pub const fn looks(self, f: fn(&[u8]) -> bool) -> Self {
        Spec {
            looks_like: Some(f),
            ..self
        }
    }
    /// Recognised on any TCP port by its first bytes.
    pub const fn off_port_tcp(self) -> Self {
        Spec {
            tcp_off_port: true,
            ..self
        }
    }
    /// Recognised on any UDP port by its first bytes.
    pub const fn off_port_udp(self) -> Self {
        Spec {
            udp_off_port: true,
            ..self
        }
    }
    /// The way its payloads travel, from their own header.
    pub const fn direction(self, f: fn(&[u8]) -> Option<Dir>) -> Self {
        Spec {
            direction: f,
            ..self
        }
    }
    /// Read payload by payload.
    pub const fn each(self, f: fn(&[u8], Dir, &mut dyn Sink)) -> Self {
        Spec {
            read: Read::Each(f),
            ..self
        }
    }
    /// Read from the reassembled start of each TCP direction.
    pub const fn head(self, f: fn(&[u8], Dir, &mut dyn Sink) -> bool) -> Self {
        Spec {
            read: Read::Head(f),
            ..self
        }
    }

    /// Whether a payload may be this protocol: it looks like it, or its first bytes say nothing.
    fn admits(&self, payload: &[u8]) -> bool {
        self.looks_like.is_none_or(|f| f(payload))
    }
}

/// For protocols whose header does not say which way it goes.
pub(crate) fn undirected(_: &[u8]) -> Option<Dir> {
    None
}

/// Every protocol, one row each (a test checks that no [`Proto`] is missing). Order matters only for
/// recognition off the well-known port: rows are tried top to bottom, most distinctive first.
pub static TABLE: &[Spec] = &[
    // Recognised on any TCP port by their first bytes, most distinctive first.
    Spec::new(Proto::Tls)
        .tcp(&[443, 8443, 8883])
        .looks(tls::looks_like)
        .off_port_tcp()
        .head(tls::dissect),
    Spec::new(Proto::Http)
        .tcp(&[80, 8080])
        .looks(http::looks_like)
        .off_port_tcp()
        .head(http::dissect),
    Spec::new(Proto::Ssh)
        .tcp(&[22])
        .looks(banner::looks_like_ssh)
        .off_port_tcp()
        .head(banner::dissect_ssh),
    Spec::new(Proto::Mqtt)
        .tcp(&[1883])
        .looks(mqtt::looks_like)
        .off_port_tcp()
        .head(mqtt::dissect),
    Spec::new(Proto::OpcUa)
        .tcp(&[4840])
        .looks(opcua::looks_like)
        .off_port_tcp()
        .each(opcua::dissect),
    Spec::new(Proto::Enip)
        .tcp(&[44818])
        .udp(&[(2222, 2222), (44818, 44818)])
        .looks(enip::looks_like)
        .off_port_tcp()
        .direction(enip::direction)
        .each(enip::dissect),
    Spec::new(Proto::Dnp3)
        .tcp(&[20000])
        .udp(&[(20000, 20000)])
        .looks(dnp3::looks_like)
        .off_port_tcp()
        .direction(dnp3::direction)
        .each(dnp3::dissect),
    // ISO-on-TCP; what it carries (S7comm, S7comm-plus, MMS) is told by `cotp_kind` once data shows it.
    Spec::new(Proto::Cotp)
        .tcp(&[102])
        .looks(s7::looks_like)
        .off_port_tcp()
        .direction(s7::direction)
        .each(s7::dissect),
    Spec::new(Proto::S7comm)
        .direction(s7::direction)
        .each(s7::dissect),
    Spec::new(Proto::S7commPlus)
        .direction(s7::direction)
        .each(s7::dissect),
    Spec::new(Proto::Mms)
        .direction(s7::direction)
        .each(s7::dissect),
    // On their well-known TCP port only.
    Spec::new(Proto::Iec104)
        .tcp(&[2404])
        .looks(iec104::looks_like)
        .direction(iec104::direction)
        .each(iec104::dissect),
    Spec::new(Proto::Modbus)
        .tcp(&[502])
        .looks(modbus::looks_like)
        .direction(modbus::direction)
        .each(modbus::dissect),
    Spec::new(Proto::Ftp).tcp(&[21]).head(banner::dissect_ftp),
    Spec::new(Proto::Telnet)
        .tcp(&[23])
        .head(banner::dissect_telnet),
    Spec::new(Proto::Smb).tcp(&[139, 445]),
    Spec::new(Proto::Amqp).tcp(&[5672]),
    // UDP.
    Spec::new(Proto::Dhcp)
        .udp(&[(67, 68)])
        .each(|p, _, out| dhcp::dissect(p, out)),
    Spec::new(Proto::Dns)
        .udp(&[(53, 53)])
        .each(dns::dissect_dns),
    Spec::new(Proto::Mdns)
        .udp(&[(5353, 5353)])
        .each(|p, _, out| dns::dissect_mdns(p, out)),
    // Only the name service (137) is read; the datagram service (138) is recognised.
    Spec::new(Proto::Nbns)
        .udp(&[(137, 138)])
        .each(|p, _, out| dns::dissect_nbns(p, out)),
    Spec::new(Proto::Snmp)
        .udp(&[(161, 162)])
        .each(snmp::dissect),
    // A search answer comes from the device's port to the searcher's, neither of them 1900.
    Spec::new(Proto::Ssdp)
        .udp(&[(1900, 1900)])
        .looks(http::looks_like_ssdp)
        .off_port_udp()
        .direction(http::ssdp_direction)
        .each(|p, _, out| http::dissect_ssdp(p, out)),
    Spec::new(Proto::Ntp).udp(&[(123, 123)]),
    Spec::new(Proto::Coap).udp(&[(5683, 5683)]),
    Spec::new(Proto::Bacnet)
        .udp(&[(47808, 47823)])
        .looks(bacnet::looks_like)
        .off_port_udp()
        .direction(bacnet::direction)
        .each(bacnet::dissect),
    // The link layer: link dissectors speak about the sender, which a payload going `ToClient` serves.
    Spec::new(Proto::Arp),
    Spec::new(Proto::Lldp)
        .ether(&[0x88cc])
        .each(|p, _, out| lldp::dissect(p, out)),
    // Carried in 802.3 LLC/SNAP frames (see [`llc`]).
    Spec::new(Proto::Cdp).each(|p, _, out| cdp::dissect(p, out)),
    Spec::new(Proto::ProfinetDcp)
        .ether(&[0x8892])
        .looks(pndcp::is_dcp)
        .each(|p, _, out| pndcp::dissect(p, out)),
    Spec::new(Proto::ProfinetRt).ether(&[0x8892]),
    Spec::new(Proto::Goose)
        .ether(&[0x88b8])
        .each(|p, _, out| goose::dissect(p, out)),
    // Discovery and industrial protocols recognised by their own headers; answers often come from a port of
    // the device's own, so each is also claimed off its port by a strict check.
    Spec::new(Proto::WsDiscovery)
        .udp(&[(3702, 3702)])
        .looks(wsd::looks_like)
        .off_port_udp()
        .direction(wsd::direction)
        .each(wsd::dissect),
    Spec::new(Proto::HartIp)
        .tcp(&[5094])
        .udp(&[(5094, 5094)])
        .looks(hartip::looks_like)
        .direction(hartip::direction)
        .each(hartip::dissect),
    Spec::new(Proto::Knx)
        .udp(&[(3671, 3671)])
        .looks(knx::looks_like)
        .off_port_udp()
        .direction(knx::direction)
        .each(knx::dissect),
    Spec::new(Proto::Fins)
        .tcp(&[9600])
        .udp(&[(9600, 9600)])
        .looks(fins::looks_like)
        .direction(fins::direction)
        .each(fins::dissect),
    Spec::new(Proto::Ptp)
        .udp(&[(319, 320)])
        .ether(&[0x88f7])
        .looks(ptp::looks_like)
        .direction(ptp::direction)
        .each(ptp::dissect),
    Spec::new(Proto::Ubiquiti)
        .udp(&[(10001, 10001)])
        .looks(ubnt::looks_like)
        .direction(ubnt::direction)
        .each(ubnt::dissect),
    Spec::new(Proto::TplinkSmarthome)
        .tcp(&[9999])
        .udp(&[(9999, 9999)])
        .looks(tplink::looks_like)
        .direction(tplink::direction)
        .each(tplink::dissect),
    Spec::new(Proto::Tuya)
        .tcp(&[6668])
        .udp(&[(6666, 6667)])
        .looks(tuya::looks_like)
        .off_port_udp()
        .direction(tuya::direction)
        .each(tuya::dissect),
    Spec::new(Proto::Dlms)
        .tcp(&[4059])
        .udp(&[(4059, 4059)])
        .looks(dlms::looks_like)
        .direction(dlms::direction)
        .each(dlms::dissect),
    Spec::new(Proto::ProfinetIo)
        .udp(&[(34964, 34964)])
        .looks(pnio::looks_like)
        .off_port_udp()
        .direction(pnio::direction)
        .each(pnio::dissect),
    Spec::new(Proto::Synphasor)
        .tcp(&[4712])
        .udp(&[(4713, 4713)])
        .looks(synphasor::looks_like)
        .direction(synphasor::direction)
        .each(synphasor::dissect),
    Spec::new(Proto::Ads)
        .tcp(&[48898])
        .udp(&[(48899, 48899)])
        .looks(ads::looks_like)
        .direction(ads::direction)
        .each(ads::dissect),
    Spec::new(Proto::Egd)
        .udp(&[(18246, 18246)])
        .looks(egd::looks_like)
        .direction(egd::direction)
        .each(egd::dissect),
    // Its magic and version are distinctive enough for any UDP port; no row above claims a payload starting
    // with "RTPS".
    Spec::new(Proto::Rtps)
        .udp(&[(7400, 7600)])
        .looks(rtps::looks_like)
        .off_port_udp()
        .direction(rtps::direction)
        .each(rtps::dissect),
    // Below EtherNet/IP's own row, which takes UDP 2222 datagrams with an encapsulation header.
    Spec::new(Proto::EnipIo)
        .udp(&[(2222, 2222)])
        .looks(enipio::looks_like)
        .each(enipio::dissect),
];

/// The row of each protocol, by [`Proto`] discriminant. Built at compile time, which also refuses a protocol
/// listed twice or left out (the discriminants of the rows must be 0 to `TABLE.len() - 1`), and more protocols
/// than the 64 bits of a host's protocol sets hold.
const INDEX: [u8; 64] = {
    assert!(
        TABLE.len() <= 64,
        "a host's protocol sets hold 64 protocols"
    );
    let mut index = [u8::MAX; 64];
    let mut i = 0;
    while i < TABLE.len() {
        let p = TABLE[i].proto as usize;
        assert!(index[p] == u8::MAX, "a protocol has two rows in TABLE");
        index[p] = i as u8;
        i += 1;
    }
    let mut p = 0;
    while p < TABLE.len() {
        assert!(index[p] != u8::MAX, "a protocol has no row in TABLE");
        p += 1;
    }
    index
};

/// Every protocol, in declaration order (the bit order of host protocol sets).
pub fn all() -> impl Iterator<Item = Proto> {
    INDEX[..TABLE.len()]
        .iter()
        .map(|&i| TABLE[usize::from(i)].proto)
}

/// The row of a protocol.
pub fn spec(p: Proto) -> Option<&'static Spec> {
    TABLE.get(usize::from(*INDEX.get(p as usize)?))
}

/// The protocol a TCP conversation speaks, from its first data and ports. `server_port` is the port of the side
/// that was contacted.
pub fn detect_tcp(payload: &[u8], server_port: u16) -> Option<Proto> {
    detect_tcp_on(payload, &[server_port])
}

/// The protocol a TCP conversation speaks, from its first data and the ports that may be the server's, in
/// the order they are tried (both sides' when no handshake said which side was contacted).
pub fn detect_tcp_on(payload: &[u8], ports: &[u16]) -> Option<Proto> {
    // A well-known port first, if the payload agrees; then the payload alone, most distinctive first; then
    // a port alone, for protocols whose first bytes say little.
    let agrees = |s: &&Spec| s.looks_like.is_some_and(|f| f(payload));
    let found = ports
        .iter()
        .find_map(|p| TABLE.iter().filter(|s| s.tcp.contains(p)).find(agrees))
        .or_else(|| TABLE.iter().find(|s| s.tcp_off_port && agrees(s)))
        .or_else(|| {
            ports
                .iter()
                .find_map(|p| TABLE.iter().find(|s| s.tcp.contains(p)))
        })?;
    Some(match found.proto {
        Proto::Cotp => cotp_kind(payload),
        p => p,
    })
}

/// What an ISO-on-TCP (TPKT/COTP) segment carries: S7comm, S7comm-plus, MMS or something else.
pub(crate) fn cotp_kind(payload: &[u8]) -> Proto {
    // TPKT (4 bytes), then COTP: its length byte, PDU type 0xF0 (data) and one more byte for DT.
    match payload.get(4..) {
        Some([len, 0xf0, _, next, ..]) if *len >= 2 => match next {
            0x32 => Proto::S7comm,
            0x72 => Proto::S7commPlus,
            0x01 | 0x0d => Proto::Mms,
            _ => Proto::Cotp,
        },
        _ => Proto::Cotp,
    }
}

/// How a TCP protocol is read (see [`Reading`]).
pub fn reading(p: Proto) -> Reading {
    match spec(p).map(|s| s.read) {
        Some(Read::Each(_)) => Reading::Segment,
        Some(Read::Head(_)) => Reading::Stream,
        Some(Read::Nothing) | None => Reading::Opaque,
    }
}

/// Dissects one segment of a segment protocol.
pub fn segment(p: Proto, payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    if let Some(Spec {
        read: Read::Each(f),
        ..
    }) = spec(p)
    {
        f(payload, dir, out)
    }
}

/// Dissects the reassembled start of one direction of a stream protocol; `true` when done with it.
pub fn stream(p: Proto, stream: &[u8], dir: Dir, out: &mut dyn Sink) -> bool {
    match spec(p) {
        Some(Spec {
            read: Read::Head(f),
            ..
        }) => f(stream, dir, out),
        _ => true,
    }
}

/// Whether `port` is a well-known TCP server port of `p` (`None`: of any protocol).
pub fn tcp_service_port(p: Option<Proto>, port: u16) -> bool {
    match p {
        Some(p) => spec(p).is_some_and(|s| s.tcp.contains(&port)),
        None => TABLE.iter().any(|s| s.tcp.contains(&port)),
    }
}

/// Which way a payload of `p` travels by its own header, when it says.
pub fn header_direction(p: Proto, payload: &[u8]) -> Option<Dir> {
    spec(p).and_then(|s| (s.direction)(payload))
}

/// The protocol of a UDP datagram and which way it goes: the protocol's own header decides the way when it
/// can, its ports otherwise.
pub fn detect_udp(payload: &[u8], sport: u16, dport: u16) -> Option<(Proto, Dir)> {
    let by = |port: u16| {
        TABLE
            .iter()
            .find(|s| s.udp.iter().any(|&(lo, hi)| (lo..=hi).contains(&port)) && s.admits(payload))
    };
    // The lower well-known port is the server's; ties (5353 to 5353) go to the destination.
    let (s, by_port) = match (by(dport), by(sport)) {
        (Some(s), Some(_)) if sport < dport => (s, Dir::ToClient),
        (Some(s), _) => (s, Dir::ToServer),
        (None, Some(s)) => (s, Dir::ToClient),
        (None, None) => (
            TABLE
                .iter()
                .find(|s| s.udp_off_port && s.looks_like.is_some_and(|f| f(payload)))?,
            Dir::ToServer,
        ),
    };
    Some((s.proto, (s.direction)(payload).unwrap_or(by_port)))
}

/// Dissects one UDP datagram of a detected protocol.
pub fn datagram(p: Proto, payload: &[u8], dir: Dir, dport: u16, out: &mut dyn Sink) {
    match spec(p).map(|s| s.read) {
        // NetBIOS: only the name service is read.
        Some(Read::Each(f)) if p != Proto::Nbns || dport == 137 => f(payload, dir, out),
        Some(Read::Each(_)) => {}
        _ => {
            out.fact(dir.server(), Fact::Serves(p));
            out.fact(dir.client(), Fact::Uses(p));
        }
    }
}

/// Dissects a non-IP Ethernet payload by EtherType (the sender is the subject).
pub fn ether(ether_type: u16, payload: &[u8], out: &mut dyn Sink) {
    let Some(s) = TABLE
        .iter()
        .find(|s| s.ether.contains(&ether_type) && s.admits(payload))
    else {
        return;
    };
    match s.read {
        Read::Each(f) => f(payload, Dir::ToClient, out),
        _ => out.fact(Subject::Src, Fact::Serves(s.proto)),
    }
}

/// Dissects an 802.3 LLC/SNAP payload (CDP is Cisco's OUI with protocol 0x2000).
pub fn llc(snap: Option<([u8; 3], u16)>, payload: &[u8], out: &mut dyn Sink) {
    if let Some(([0x00, 0x00, 0x0c], 0x2000)) = snap {
        cdp::dissect(payload, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_has_its_row_in_declaration_order() {
        let all: Vec<Proto> = all().collect();
        assert_eq!(all.len(), TABLE.len());
        for (i, p) in all.iter().enumerate() {
            assert_eq!(*p as usize, i);
            assert_eq!(spec(*p).map(|s| s.proto), Some(*p));
        }
        // The last protocol declared has a row too (a new one appended to the enum without a row would not be
        // caught by the compile-time check).
        assert_eq!(all.last(), Some(&Proto::EnipIo));
    }

    #[test]
    fn header_directions_agree_with_the_well_known_port_on_the_shared_captures() {
        // In these captures the server is on the protocol's well-known port (tshark's dissectors agree): where a
        // header says which way it goes, it must say the same (S-frames, TESTFR and echoed writes say nothing).
        for (name, port, p) in [
            ("iti_dnp3_1.pcap", 20000, Proto::Dnp3),
            ("iti_iec104.pcap", 2404, Proto::Iec104),
            ("iti_modbus1.pcap", 502, Proto::Modbus),
            ("iti_modbus_big.pcap", 502, Proto::Modbus),
            ("iti_s7_status.pcap", 102, Proto::S7comm),
            ("iti_s7_1200.pcap", 102, Proto::S7commPlus),
            ("iti_enip_test.pcap", 44818, Proto::Enip),
        ] {
            let (mut said, mut all) = (0, 0);
            for s in crate::testutil::segments(name)
                .iter()
                .filter(|s| s.dport == port || s.sport == port)
            {
                let by_port = if s.dport == port {
                    Dir::ToServer
                } else {
                    Dir::ToClient
                };
                all += 1;
                if let Some(d) = header_direction(p, &s.payload) {
                    assert_eq!(d, by_port, "{name}: {:02x?}", s.payload);
                    said += 1;
                }
            }
            assert!(all > 0 && said > 0, "{name}: {said} of {all} told");
        }
    }

    #[test]
    fn header_directions_of_single_pdus() {
        let to_server = Some(Dir::ToServer);
        let to_client = Some(Dir::ToClient);
        // Modbus: a read asks with 4 bytes; the answer counts its bytes; a write single is echoed (no say);
        // three coil bytes answer as long as a request asks (no say); an exception answers.
        let mbap = |pdu: &[u8]| {
            let mut v = vec![0, 1, 0, 0, 0, pdu.len() as u8 + 1, 1];
            v.extend_from_slice(pdu);
            v
        };
        assert_eq!(modbus::direction(&mbap(&[3, 0, 0, 0, 2])), to_server);
        assert_eq!(modbus::direction(&mbap(&[3, 4, 0, 1, 0, 2])), to_client);
        assert_eq!(modbus::direction(&mbap(&[6, 0, 1, 0, 2])), None);
        assert_eq!(modbus::direction(&mbap(&[1, 0, 0, 0, 16])), to_server);
        assert_eq!(modbus::direction(&mbap(&[1, 3, 1, 2, 3])), None);
        assert_eq!(
            modbus::direction(&mbap(&[16, 0, 1, 0, 1, 2, 0, 9])),
            to_server
        );
        assert_eq!(modbus::direction(&mbap(&[16, 0, 1, 0, 1])), to_client);
        assert_eq!(modbus::direction(&mbap(&[0x83, 2])), to_client);
        // IEC 104: STARTDT act and con; TESTFR, which either station sends, says nothing; causes 6 and 3.
        assert_eq!(iec104::direction(&[0x68, 4, 0x07, 0, 0, 0]), to_server);
        assert_eq!(iec104::direction(&[0x68, 4, 0x0b, 0, 0, 0]), to_client);
        assert_eq!(iec104::direction(&[0x68, 4, 0x43, 0, 0, 0]), None);
        let i = |cause: u8| [0x68, 14, 0, 0, 0, 0, 45, 1, cause, 0, 1, 0, 1, 0, 0, 1];
        assert_eq!(iec104::direction(&i(6)), to_server);
        assert_eq!(iec104::direction(&i(0x47)), to_client);
        assert_eq!(iec104::direction(&i(3)), to_client);
        assert_eq!(iec104::direction(&i(5)), None);
        // S7: COTP connect request; a job; the PLC's Download block job and the PC's ack-data to it; userdata
        // request and response.
        let cotp_cr = [3, 0, 0, 11, 6, 0xe0, 0, 0, 0, 1, 0];
        assert_eq!(s7::direction(&cotp_cr), to_server);
        let s7pdu = |rosctr: u8, param: &[u8]| {
            let mut v = vec![3, 0, 0, 0, 2, 0xf0, 0x80, 0x32, rosctr, 0, 0, 0, 1];
            v.extend_from_slice(&(param.len() as u16).to_be_bytes());
            v.extend_from_slice(&[0, 0]);
            if rosctr == 3 {
                v.extend_from_slice(&[0, 0]);
            }
            v.extend_from_slice(param);
            v[3] = v.len() as u8;
            v
        };
        assert_eq!(s7::direction(&s7pdu(1, &[0x04, 1])), to_server);
        assert_eq!(s7::direction(&s7pdu(3, &[0x04, 1])), to_client);
        assert_eq!(s7::direction(&s7pdu(1, &[0x1b, 0])), to_client);
        assert_eq!(s7::direction(&s7pdu(3, &[0x1b, 0])), to_server);
        assert_eq!(
            s7::direction(&s7pdu(7, &[0, 1, 0x12, 4, 0x11, 0x44, 1, 0])),
            to_server
        );
        assert_eq!(
            s7::direction(&s7pdu(7, &[0, 1, 0x12, 8, 0x12, 0x84, 1, 0])),
            to_client
        );
        // DNP3: the DIR bit of a link header whose CRC checks (a master's and an outstation's reset link).
        assert_eq!(
            dnp3::direction(&[0x05, 0x64, 0x05, 0xc0, 0x01, 0x00, 0x00, 0x04, 0xe9, 0x21]),
            to_server
        );
        // EtherNet/IP: RegisterSession asked with handle 0 and answered with one.
        let mut reg = vec![0x65, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        reg.extend_from_slice(&[0; 12]);
        reg.extend_from_slice(&[1, 0, 0, 0]);
        assert_eq!(enip::direction(&reg), to_server);
        reg[4] = 7;
        assert_eq!(enip::direction(&reg), to_client);
        // BACnet: Who-Is and I-Am, a confirmed request and a Simple-ACK.
        let npdu = |apdu: &[u8]| {
            let mut v = vec![0x81, 0x0b, 0, 0, 1, 0x20, 0xff, 0xff, 0, 0xff];
            v.extend_from_slice(apdu);
            v[3] = v.len() as u8;
            v
        };
        assert_eq!(bacnet::direction(&npdu(&[0x10, 0x08])), to_server);
        assert_eq!(
            bacnet::direction(&npdu(&[0x10, 0x00, 0xc4, 2, 0, 0, 1])),
            to_client
        );
        assert_eq!(bacnet::direction(&npdu(&[0x00, 0x05, 1, 15])), to_server);
        assert_eq!(bacnet::direction(&npdu(&[0x20, 1, 15])), to_client);
    }

    #[test]
    fn new_direction_functions_survive_every_prefix() {
        let payloads = [
            vec![0x05, 0x64, 0x05, 0xc0, 0x01, 0x00, 0x00, 0x04, 0xe9, 0x21],
            vec![0x68, 14, 0, 0, 0, 0, 45, 1, 6, 0, 1, 0, 1, 0, 0, 1],
            vec![0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2],
            vec![
                3, 0, 0, 19, 2, 0xf0, 0x80, 0x32, 3, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0x1b, 0,
            ],
            vec![0x81, 0x0b, 0, 12, 1, 0x20, 0xff, 0xff, 0, 0xff, 0x10, 0x08],
            vec![
                0x6f, 0, 20, 0, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ];
        for f in [
            dnp3::direction,
            iec104::direction,
            modbus::direction,
            s7::direction,
            bacnet::direction,
            enip::direction,
        ] {
            for p in &payloads {
                for n in 0..=p.len() {
                    f(&p[..n]);
                }
            }
        }
    }
}
