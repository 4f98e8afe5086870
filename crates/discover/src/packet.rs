//! Decoding one frame's link, network and transport headers (etherparse does the slicing, without copying).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{LaxNetSlice, LaxSlicedPacket, LinkSlice, TransportSlice, ether_type::ARP};
use vouch_types::MacAddr;

use crate::capture::Link;

/// The headers of one frame discovery cares about.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// The sending hardware address (Ethernet and Linux cooked captures).
    pub src_mac: Option<MacAddr>,
    /// The receiving hardware address (Ethernet only).
    pub dst_mac: Option<MacAddr>,
    /// The innermost VLAN id, if the frame is tagged.
    pub vlan: Option<u16>,
    /// What the frame carries.
    pub net: Net<'a>,
}

/// The network layer of a frame.
#[derive(Debug, Clone, Copy)]
pub enum Net<'a> {
    /// IPv4 or IPv6.
    Ip {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
        /// Time to live (IPv4) or hop limit (IPv6) as received: how far the sender may be.
        ttl: u8,
        /// The transport layer.
        l4: L4<'a>,
    },
    /// An ARP packet (Ethernet/IPv4).
    Arp {
        /// The sender's hardware address.
        sender_mac: MacAddr,
        /// The sender's protocol address.
        sender_ip: Ipv4Addr,
        /// The address asked about.
        target_ip: Ipv4Addr,
    },
    /// Another Ethernet II payload (LLDP, Profinet, GOOSE, …), by EtherType.
    Ether {
        /// The EtherType.
        ether_type: u16,
        /// What follows the Ethernet (and VLAN) header.
        payload: &'a [u8],
    },
    /// An IEEE 802.3 frame with an 802.2 LLC header (CDP, STP, …).
    Llc {
        /// The destination service access point (0xAA for SNAP).
        dsap: u8,
        /// The SNAP organisation code and protocol id, when `dsap` is SNAP.
        snap: Option<([u8; 3], u16)>,
        /// What follows the LLC (and SNAP) header.
        payload: &'a [u8],
    },
    /// Nothing discovery can read.
    Other,
}

/// The transport layer of an IP packet.
#[derive(Debug, Clone, Copy)]
pub enum L4<'a> {
    /// TCP.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Sequence number.
        seq: u32,
        /// SYN set.
        syn: bool,
        /// ACK set.
        ack: bool,
        /// FIN or RST set: the connection is ending.
        fin: bool,
        /// The segment's data.
        payload: &'a [u8],
    },
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// The datagram's data.
        payload: &'a [u8],
    },
    /// Another transport (ICMP, IGMP, …), by IP protocol number; a fragment after the first is here too.
    Other(u8),
}

impl L4<'_> {
    /// The IP protocol number (6 TCP, 17 UDP, …).
    pub fn ip_proto(&self) -> u8 {
        match self {
            Self::Tcp { .. } => 6,
            Self::Udp { .. } => 17,
            Self::Other(p) => *p,
        }
    }
}

/// Decodes a frame's headers; `None` when even the link header is incomplete.
pub fn decode(link: Link, data: &[u8]) -> Option<Packet<'_>> {
    let sliced = match link {
        Link::Ethernet => LaxSlicedPacket::from_ethernet(data).ok()?,
        Link::LinuxSll => {
            // Linux cooked header: packet type, ARPHRD, address length, 8 address bytes, protocol.
            let proto = u16::from_be_bytes([*data.get(14)?, *data.get(15)?]);
            LaxSlicedPacket::from_ether_type(etherparse::EtherType(proto), data.get(16..)?)
        }
        Link::RawIp => LaxSlicedPacket::from_ip(data).ok()?,
        Link::Loopback => LaxSlicedPacket::from_ip(data.get(4..)?).ok()?,
    };
    let (src_mac, dst_mac) = match &sliced.link {
        Some(LinkSlice::Ethernet2(e)) => (
            Some(MacAddr::from_octets(e.source())),
            Some(MacAddr::from_octets(e.destination())),
        ),
        _ if link == Link::LinuxSll && data.get(4..6) == Some(&[0, 6]) => {
            let a = &data[6..12];
            (
                Some(MacAddr::from_octets([a[0], a[1], a[2], a[3], a[4], a[5]])),
                None,
            )
        }
        _ => (None, None),
    };
    let vlan = sliced.vlan_ids().last().map(|v| v.value());
    let net = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            ip(
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.ttl(),
                &sliced,
                v4.payload().ip_number,
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            ip(
                IpAddr::V6(Ipv6Addr::from(h.source())),
                IpAddr::V6(Ipv6Addr::from(h.destination())),
                h.hop_limit(),
                &sliced,
                v6.payload().ip_number,
            )
        }
        Some(LaxNetSlice::Arp(arp)) => {
            let smac = arp.sender_hw_addr();
            let sip = arp.sender_protocol_addr();
            let tip = arp.target_protocol_addr();
            if smac.len() == 6 && sip.len() == 4 && tip.len() == 4 {
                Net::Arp {
                    sender_mac: MacAddr::from_octets([
                        smac[0], smac[1], smac[2], smac[3], smac[4], smac[5],
                    ]),
                    sender_ip: Ipv4Addr::new(sip[0], sip[1], sip[2], sip[3]),
                    target_ip: Ipv4Addr::new(tip[0], tip[1], tip[2], tip[3]),
                }
            } else {
                Net::Other
            }
        }
        None => match sliced.ether_payload() {
            Some(p) if p.ether_type.0 < 0x0600 => llc(p.payload),
            Some(p) if p.ether_type != ARP => Net::Ether {
                ether_type: p.ether_type.0,
                payload: p.payload,
            },
            _ => Net::Other,
        },
    };
    Some(Packet {
        src_mac,
        dst_mac,
        vlan,
        net,
    })
}

fn ip<'a>(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    sliced: &LaxSlicedPacket<'a>,
    proto: etherparse::IpNumber,
) -> Net<'a> {
    let l4 = match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => L4::Tcp {
            sport: t.source_port(),
            dport: t.destination_port(),
            seq: t.sequence_number(),
            syn: t.syn(),
            ack: t.ack(),
            fin: t.fin() || t.rst(),
            payload: t.payload(),
        },
        Some(TransportSlice::Udp(u)) => L4::Udp {
            sport: u.source_port(),
            dport: u.destination_port(),
            payload: u.payload(),
        },
        // ICMP and the rest; also a later fragment or a transport header cut short: counted, not read.
        _ => L4::Other(proto.0),
    };
    Net::Ip { src, dst, ttl, l4 }
}

fn llc(p: &[u8]) -> Net<'_> {
    match p {
        [0xaa, 0xaa, 0x03, o1, o2, o3, t1, t2, rest @ ..] => Net::Llc {
            dsap: 0xaa,
            snap: Some(([*o1, *o2, *o3], u16::from_be_bytes([*t1, *t2]))),
            payload: rest,
        },
        [dsap, _ssap, _ctl, rest @ ..] => Net::Llc {
            dsap: *dsap,
            snap: None,
            payload: rest,
        },
        _ => Net::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, VlanId};

    #[test]
    fn vlan_tagged_frames_are_decoded_through_the_tag() {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([0x00, 0x1d, 0x9c, 1, 2, 3], [0x00, 0x0e, 0x8c, 4, 5, 6])
            .single_vlan(VlanId::try_new(42).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 502, 7, 1024)
            .write(&mut frame, &[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1])
            .unwrap();
        let p = decode(Link::Ethernet, &frame).unwrap();
        assert_eq!(p.vlan, Some(42));
        assert_eq!(
            p.src_mac.map(|m| m.to_string()).as_deref(),
            Some("00:1d:9c:01:02:03")
        );
        let Net::Ip {
            src,
            l4: L4::Tcp { dport, payload, .. },
            ..
        } = p.net
        else {
            panic!("{:?}", p.net)
        };
        assert_eq!(src.to_string(), "10.0.0.1");
        assert_eq!((dport, payload.len()), (502, 12));
    }

    #[test]
    fn cut_headers_never_panic() {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6([1; 16], [2; 16], 64)
            .udp(5353, 5353)
            .write(&mut frame, b"payload")
            .unwrap();
        for cut in 0..frame.len() {
            for link in [Link::Ethernet, Link::LinuxSll, Link::RawIp, Link::Loopback] {
                let _ = decode(link, &frame[..cut]);
            }
        }
    }
}
