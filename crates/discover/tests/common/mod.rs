//! Helpers shared by integration tests: a capture writer with explicit TCP sequence numbers (duplicates,
//! retransmissions, gaps), discovery of what it wrote, and tshark's view of the same file.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use etherparse::PacketBuilder;
use vouch_discover::{DeviceReport, Discovery, Limits, Report, RiskKind};

/// One host on the test segment: hardware address and IPv4 address.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    pub mac: [u8; 6],
    pub ip: [u8; 4],
}

/// A capture being written: frames of one link type, each a millisecond after the previous.
pub struct Pcap {
    /// The libpcap link type: 1 Ethernet, 0 BSD loopback.
    link: u32,
    frames: Vec<Vec<u8>>,
    /// Next TCP sequence number per (src ip, sport).
    seqs: HashMap<([u8; 4], u16), u32>,
}

impl Default for Pcap {
    fn default() -> Self {
        Pcap {
            link: 1,
            frames: Vec::new(),
            seqs: HashMap::new(),
        }
    }
}

impl Pcap {
    /// A capture on a BSD loopback interface (DLT_NULL: a 4-byte host-order address family, then IP).
    pub fn loopback() -> Self {
        Pcap {
            link: 0,
            ..Self::default()
        }
    }

    /// A UDP datagram between two hosts (Ethernet).
    pub fn udp(&mut self, from: Host, sport: u16, to: Host, dport: u16, payload: &[u8]) {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(from.mac, to.mac)
            .ipv4(from.ip, to.ip, 64)
            .udp(sport, dport)
            .write(&mut out, payload)
            .unwrap();
        self.frames.push(out);
    }

    /// A UDP datagram to a group address: an IPv4 multicast group's hardware address, or the broadcast one.
    pub fn udp_group(
        &mut self,
        from: Host,
        sport: u16,
        group: [u8; 4],
        dport: u16,
        payload: &[u8],
    ) {
        let mac = if (224..=239).contains(&group[0]) {
            [0x01, 0x00, 0x5e, group[1] & 0x7f, group[2], group[3]]
        } else {
            [0xff; 6]
        };
        self.udp(from, sport, Host { mac, ip: group }, dport, payload);
    }

    /// A TCP segment with an explicit sequence number and flags (SYN, ACK); does not move the running
    /// sequence number of [`Pcap::tcp`].
    #[allow(clippy::too_many_arguments)]
    pub fn tcp_at(
        &mut self,
        from: Host,
        sport: u16,
        to: Host,
        dport: u16,
        seq: u32,
        (syn, ack): (bool, bool),
        payload: &[u8],
    ) {
        let mut b = PacketBuilder::ethernet2(from.mac, to.mac)
            .ipv4(from.ip, to.ip, 64)
            .tcp(sport, dport, seq, 64240);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(1);
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        self.frames.push(out);
    }

    /// The sequence number the next segment from (`from`, `sport`) gets.
    pub fn next_seq(&mut self, from: Host, sport: u16) -> u32 {
        *self.seqs.entry((from.ip, sport)).or_insert(1000)
    }

    /// Leaves `n` bytes out of the stream from (`from`, `sport`): a capture that missed a segment.
    pub fn gap(&mut self, from: Host, sport: u16, n: u32) {
        let seq = self.seqs.entry((from.ip, sport)).or_insert(1000);
        *seq = seq.wrapping_add(n);
    }

    /// The client's SYN and the server's SYN-ACK.
    pub fn handshake(&mut self, client: Host, cport: u16, server: Host, sport: u16) {
        for (a, ap, b, bp, ack) in [
            (client, cport, server, sport, false),
            (server, sport, client, cport, true),
        ] {
            let seq = self.next_seq(a, ap);
            self.tcp_at(a, ap, b, bp, seq, (true, ack), &[]);
            self.gap(a, ap, 1);
        }
    }

    /// A TCP segment with data at the running sequence number; returns that number.
    pub fn tcp(&mut self, from: Host, sport: u16, to: Host, dport: u16, payload: &[u8]) -> u32 {
        let seq = self.next_seq(from, sport);
        self.tcp_at(from, sport, to, dport, seq, (false, true), payload);
        self.gap(from, sport, payload.len() as u32);
        seq
    }

    /// A UDP datagram from `ip` to itself on the loopback interface (IPv4 or IPv6).
    pub fn loop_udp(&mut self, ip: IpAddr, sport: u16, dport: u16, payload: &[u8]) {
        let (family, b) = match ip {
            IpAddr::V4(v4) => (2u32, PacketBuilder::ipv4(v4.octets(), v4.octets(), 64)),
            // The BSD loopback's AF_INET6 differs by system; 24 (NetBSD/OpenBSD) is one tshark reads.
            IpAddr::V6(v6) => (24u32, PacketBuilder::ipv6(v6.octets(), v6.octets(), 64)),
        };
        let mut out = family.to_le_bytes().to_vec();
        b.udp(sport, dport).write(&mut out, payload).unwrap();
        self.frames.push(out);
    }

    /// The classic pcap file (microsecond timestamps).
    pub fn bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&self.link.to_le_bytes());
        for (i, f) in self.frames.iter().enumerate() {
            v.extend_from_slice(&1_796_212_800u32.to_le_bytes());
            v.extend_from_slice(&(i as u32 * 1000).to_le_bytes());
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    /// Writes the capture under the target directory and discovers it.
    pub fn run(&self, name: &str) -> (PathBuf, Report) {
        // One directory per test binary, so that two binaries' captures of the same name do not collide.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(env!("CARGO_CRATE_NAME"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, self.bytes()).unwrap();
        let mut run = Discovery::new(Limits::default());
        run.read(name, std::io::Cursor::new(self.bytes())).unwrap();
        (path, run.finish(None))
    }
}

/// The device with this IPv4 address.
pub fn device(r: &Report, h: Host) -> &DeviceReport {
    let ip: IpAddr = h.ip.into();
    r.devices
        .iter()
        .find(|d| d.ips.contains(&ip))
        .unwrap_or_else(|| panic!("no device {ip} in {:#?}", r.devices))
}

/// How many commands the device received whose risk detail contains `text` (the "received N …" count).
pub fn received(d: &DeviceReport, text: &str) -> u64 {
    d.risks
        .iter()
        .filter(|k| k.kind == RiskKind::OtCommand && k.detail.contains(text))
        .map(|k| {
            k.detail
                .strip_prefix("received ")
                .and_then(|t| t.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no count in {:?}", k.detail))
        })
        .sum()
}

/// Whether the map has the edge client → server for this service.
pub fn edge(r: &Report, client: Host, server: Host, service: &str) -> bool {
    let (c, s) = (device(r, client), device(r, server));
    r.map
        .iter()
        .any(|e| e.client == c.key && e.server == s.key && e.service == service)
}

/// tshark's `-T fields` rows for `fields` (tab-separated columns), after `args` (a display filter, options).
pub fn tshark_rows(path: &Path, args: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(path)
        .args(args)
        .args(["-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .expect("tshark runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(|c| c.trim().to_owned()).collect())
        .collect()
}

/// `tshark -z endpoints,ip` and `endpoints,ipv6`: address → (packets, bytes, tx packets, rx packets).
pub fn tshark_endpoints(path: &Path) -> BTreeMap<IpAddr, (u64, u64, u64, u64)> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args(["-q", "-z", "endpoints,ip", "-z", "endpoints,ipv6"])
        .output()
        .expect("tshark runs (scripts/test installs it)");
    assert!(out.status.success(), "tshark failed on {path:?}");
    let mut m = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() == 7 {
            if let Ok(ip) = cols[0].parse::<IpAddr>() {
                let n = |i: usize| cols[i].parse::<u64>().unwrap();
                m.insert(ip, (n(1), n(2), n(3), n(5)));
            }
        }
    }
    m
}

/// Discovery's endpoints in the shape of [`tshark_endpoints`].
pub fn endpoints(r: &Report) -> BTreeMap<IpAddr, (u64, u64, u64, u64)> {
    r.endpoints
        .iter()
        .map(|e| (e.address, (e.packets, e.bytes, e.tx.packets, e.rx.packets)))
        .collect()
}
