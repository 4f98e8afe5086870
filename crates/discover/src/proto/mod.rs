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

pub mod bacnet;
pub mod banner;
pub mod cdp;
pub mod dhcp;
pub mod dnp3;
pub mod dns;
pub mod enip;
pub mod goose;
pub mod http;
pub mod iec104;
pub mod lldp;
pub mod modbus;
pub mod mqtt;
pub mod opcua;
pub mod pndcp;
pub mod s7;
pub mod snmp;
pub mod tls;

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

/// The protocol a TCP conversation speaks, from its first data and ports. `server_port` is the port of the side
/// that was contacted.
pub fn detect_tcp(payload: &[u8], server_port: u16) -> Option<Proto> {
    // The well-known port first, if the payload agrees; then the payload alone, most distinctive first.
    let by_port = match server_port {
        502 => modbus::looks_like(payload).then_some(Proto::Modbus),
        20000 => dnp3::looks_like(payload).then_some(Proto::Dnp3),
        2404 => iec104::looks_like(payload).then_some(Proto::Iec104),
        102 => s7::looks_like(payload).then(|| cotp_kind(payload)),
        44818 => enip::looks_like(payload).then_some(Proto::Enip),
        4840 => opcua::looks_like(payload).then_some(Proto::OpcUa),
        _ => None,
    };
    if by_port.is_some() {
        return by_port;
    }
    if tls::looks_like(payload) {
        Some(Proto::Tls)
    } else if http::looks_like(payload) {
        Some(Proto::Http)
    } else if banner::looks_like_ssh(payload) {
        Some(Proto::Ssh)
    } else if mqtt::looks_like(payload) {
        Some(Proto::Mqtt)
    } else if opcua::looks_like(payload) {
        Some(Proto::OpcUa)
    } else if enip::looks_like(payload) {
        Some(Proto::Enip)
    } else if dnp3::looks_like(payload) {
        Some(Proto::Dnp3)
    } else if s7::looks_like(payload) {
        Some(cotp_kind(payload))
    } else if iec104::looks_like(payload) && server_port == 2404 {
        Some(Proto::Iec104)
    } else if modbus::looks_like(payload) && server_port == 502 {
        Some(Proto::Modbus)
    } else {
        // Protocols whose first bytes say little: by port only.
        match server_port {
            21 => Some(Proto::Ftp),
            23 => Some(Proto::Telnet),
            22 => Some(Proto::Ssh),
            139 | 445 => Some(Proto::Smb),
            1883 => Some(Proto::Mqtt),
            5672 => Some(Proto::Amqp),
            502 => Some(Proto::Modbus),
            2404 => Some(Proto::Iec104),
            20000 => Some(Proto::Dnp3),
            102 => Some(Proto::Cotp),
            44818 => Some(Proto::Enip),
            _ => None,
        }
    }
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
    match p {
        Proto::Tls | Proto::Http | Proto::Mqtt | Proto::Ssh | Proto::Ftp | Proto::Telnet => {
            Reading::Stream
        }
        Proto::Modbus
        | Proto::Dnp3
        | Proto::Iec104
        | Proto::S7comm
        | Proto::S7commPlus
        | Proto::Cotp
        | Proto::Mms
        | Proto::Enip
        | Proto::OpcUa => Reading::Segment,
        _ => Reading::Opaque,
    }
}

/// Dissects one segment of a segment protocol.
pub fn segment(p: Proto, payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    match p {
        Proto::Modbus => modbus::dissect(payload, dir, out),
        Proto::Dnp3 => dnp3::dissect(payload, dir, out),
        Proto::Iec104 => iec104::dissect(payload, dir, out),
        Proto::S7comm | Proto::S7commPlus | Proto::Cotp | Proto::Mms => {
            s7::dissect(payload, dir, out)
        }
        Proto::Enip => enip::dissect(payload, dir, out),
        Proto::OpcUa => opcua::dissect(payload, dir, out),
        _ => {}
    }
}

/// Dissects the reassembled start of one direction of a stream protocol; `true` when done with it.
pub fn stream(p: Proto, stream: &[u8], dir: Dir, out: &mut dyn Sink) -> bool {
    match p {
        Proto::Tls => tls::dissect(stream, dir, out),
        Proto::Http => http::dissect(stream, dir, out),
        Proto::Mqtt => mqtt::dissect(stream, dir, out),
        Proto::Ssh => banner::dissect_ssh(stream, dir, out),
        Proto::Ftp => banner::dissect_ftp(stream, dir, out),
        Proto::Telnet => banner::dissect_telnet(stream, dir, out),
        _ => true,
    }
}

/// The protocol of a UDP datagram and which way it goes, from its ports (and payload where ports are not
/// enough).
pub fn detect_udp(payload: &[u8], sport: u16, dport: u16) -> Option<(Proto, Dir)> {
    let by = |port: u16| -> Option<Proto> {
        Some(match port {
            67 | 68 => Proto::Dhcp,
            53 => Proto::Dns,
            5353 => Proto::Mdns,
            137 | 138 => Proto::Nbns,
            161 | 162 => Proto::Snmp,
            1900 => Proto::Ssdp,
            123 => Proto::Ntp,
            5683 => Proto::Coap,
            47808..=47823 if bacnet::looks_like(payload) => Proto::Bacnet,
            20000 if dnp3::looks_like(payload) => Proto::Dnp3,
            2222 | 44818 if enip::looks_like(payload) => Proto::Enip,
            _ => return None,
        })
    };
    // The lower well-known port is the server's; ties (5353 to 5353) go to the destination.
    match (by(dport), by(sport)) {
        (Some(p), Some(_)) if sport < dport => Some((p, Dir::ToClient)),
        (Some(p), _) => Some((p, Dir::ToServer)),
        (None, Some(p)) => Some((p, Dir::ToClient)),
        (None, None) if bacnet::looks_like(payload) => Some((Proto::Bacnet, Dir::ToServer)),
        (None, None) => None,
    }
}

/// Dissects one UDP datagram of a detected protocol.
pub fn datagram(p: Proto, payload: &[u8], dir: Dir, dport: u16, out: &mut dyn Sink) {
    match p {
        Proto::Dhcp => dhcp::dissect(payload, out),
        Proto::Dns => dns::dissect_dns(payload, dir, out),
        Proto::Mdns => dns::dissect_mdns(payload, out),
        Proto::Nbns if dport == 137 => dns::dissect_nbns(payload, out),
        Proto::Snmp => snmp::dissect(payload, dir, out),
        Proto::Ssdp => http::dissect_ssdp(payload, out),
        Proto::Bacnet => bacnet::dissect(payload, dir, out),
        Proto::Dnp3 => dnp3::dissect(payload, dir, out),
        Proto::Enip => enip::dissect(payload, dir, out),
        other => {
            out.fact(dir.server(), Fact::Serves(other));
            out.fact(dir.client(), Fact::Uses(other));
        }
    }
}

/// Dissects a non-IP Ethernet payload by EtherType.
pub fn ether(ether_type: u16, payload: &[u8], out: &mut dyn Sink) {
    match ether_type {
        0x88cc => lldp::dissect(payload, out),
        0x8892 if pndcp::is_dcp(payload) => pndcp::dissect(payload, out),
        0x8892 => out.fact(Subject::Src, Fact::Serves(Proto::ProfinetRt)),
        0x88b8 => goose::dissect(payload, out),
        _ => {}
    }
}

/// Dissects an 802.3 LLC/SNAP payload (CDP is Cisco's OUI with protocol 0x2000).
pub fn llc(snap: Option<([u8; 3], u16)>, payload: &[u8], out: &mut dyn Sink) {
    if let Some(([0x00, 0x00, 0x0c], 0x2000)) = snap {
        cdp::dissect(payload, out);
    }
}
