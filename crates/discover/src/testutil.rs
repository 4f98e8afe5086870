//! Reading the shared test captures into payloads, for dissector unit tests.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::capture::{Link, read_capture};
use crate::packet::{L4, Net, decode};

/// A capture from `../shared/data/pcaps/` by file name.
pub(crate) fn pcap(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pcaps")
        .join(name)
}

/// One TCP segment or UDP datagram with data.
#[derive(Debug, Clone)]
pub(crate) struct Seg {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub tcp: bool,
    pub payload: Vec<u8>,
}

/// Every TCP and UDP payload (non-empty) of a capture, in order.
pub(crate) fn segments(name: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let file = std::fs::File::open(pcap(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    read_capture(file, |f| {
        let Some(p) = decode(f.link.unwrap_or(Link::Ethernet), f.data) else {
            return;
        };
        if let Net::Ip { src, dst, l4, .. } = p.net {
            let (sport, dport, tcp, payload) = match l4 {
                L4::Tcp {
                    sport,
                    dport,
                    payload,
                    ..
                } => (sport, dport, true, payload),
                L4::Udp {
                    sport,
                    dport,
                    payload,
                } => (sport, dport, false, payload),
                L4::Other(_) => return,
            };
            if !payload.is_empty() {
                out.push(Seg {
                    src,
                    dst,
                    sport,
                    dport,
                    tcp,
                    payload: payload.to_vec(),
                });
            }
        }
    })
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    out
}

/// Every non-IP frame of a capture: (EtherType, or `0x10000 | SNAP pid` for LLC/SNAP, payload).
pub(crate) fn l2_frames(name: &str) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let file = std::fs::File::open(pcap(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    read_capture(file, |f| {
        let Some(p) = decode(f.link.unwrap_or(Link::Ethernet), f.data) else {
            return;
        };
        match p.net {
            Net::Ether {
                ether_type,
                payload,
            } => out.push((u32::from(ether_type), payload.to_vec())),
            Net::Llc {
                snap: Some((_, pid)),
                payload,
                ..
            } => out.push((0x10000 | u32::from(pid), payload.to_vec())),
            _ => {}
        }
    })
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    out
}

/// Runs a transport dissector over every TCP segment to or from `port` in a capture, the direction taken
/// from the port (to it: towards the server).
pub(crate) fn dissect_port(
    name: &str,
    port: u16,
    dissect: fn(&[u8], crate::facts::Dir, &mut dyn crate::facts::Sink),
) -> crate::facts::Collect {
    use crate::facts::Dir;
    let mut c = crate::facts::Collect::default();
    for s in segments(name)
        .iter()
        .filter(|s| s.tcp && (s.dport == port || s.sport == port))
    {
        let dir = if s.dport == port {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        dissect(&s.payload, dir, &mut c);
    }
    c
}

/// Runs a table row's functions on every prefix of every payload, both ways round: none may panic.
pub(crate) fn every_prefix(
    payloads: &[Vec<u8>],
    dissect: fn(&[u8], crate::Dir, &mut dyn crate::Sink),
    looks_like: fn(&[u8]) -> bool,
    direction: fn(&[u8]) -> Option<crate::Dir>,
) {
    for p in payloads {
        for n in 0..=p.len() {
            let cut = &p[..n];
            for dir in [crate::Dir::ToServer, crate::Dir::ToClient] {
                dissect(cut, dir, &mut crate::facts::Collect::default());
            }
            looks_like(cut);
            direction(cut);
        }
    }
}
