//! The hosts seen so far and everything learned about each, folded in fact by fact.
//!
//! Hosts are keyed by IP address (every address, as `tshark -z endpoints,ip` lists them, so the counts can be
//! compared) and, for what is only seen on the link layer (LLDP, CDP, Profinet, GOOSE, a DHCP client before its
//! lease), by hardware address. The report joins a hardware-address host to the one IP host it is bound to.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use foldhash::HashMap;
use vouch_types::MacAddr;

use crate::facts::{CommandKind, Fact, Proto, Sink, Source, Subject};

/// The most identity values kept per host: a host that announces thousands of names is not believed more.
pub const MAX_VALUES: usize = 256;
/// The most distinct commands kept per sender.
pub const MAX_COMMANDS: usize = 1024;
/// The most hardware/IP address pairs kept per hardware address (a router fronts many).
const MAX_BINDINGS: usize = 8;

/// What kind of address a host is known by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrKind {
    /// A unicast address: a device.
    Unicast,
    /// Multicast, broadcast or unspecified: a destination, not a device.
    Group,
}

/// A text field of a host's identity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// A host name.
    Hostname,
    /// The vendor, as the device names it.
    Vendor,
    /// The product or model.
    Model,
    /// The firmware version.
    Firmware,
    /// The hardware serial number.
    Serial,
    /// A free-text description.
    Description,
    /// A platform or device type.
    Platform,
    /// The DHCP vendor class.
    VendorClass,
    /// An announced service.
    Service,
    /// An HTTP user agent.
    UserAgent,
    /// An HTTP server string.
    HttpServer,
    /// A TLS server name asked for.
    Sni,
    /// A JA3 TLS client fingerprint.
    Ja3,
    /// A JA4 TLS client fingerprint.
    Ja4,
    /// An SSH software banner.
    SshBanner,
    /// An OPC UA endpoint URL.
    OpcUaEndpoint,
    /// An OPC UA security policy.
    OpcUaSecurityPolicy,
    /// A Profinet station name.
    StationName,
    /// An MQTT client id.
    MqttClientId,
    /// An IEC 61850 reference.
    Iec61850Ref,
    /// The DHCP parameter request list, as "1,3,6,42".
    DhcpParams,
    /// The SHA-256 fingerprint of a TLS server certificate it presented.
    CertFingerprint,
    /// A URL where it offers its description or services.
    Url,
    /// An identifier it gives itself (UUID, clock identity, bus address).
    DeviceId,
    /// Where it is installed, as it says (SNMP sysLocation).
    Location,
    /// Who looks after it, as it says (SNMP sysContact).
    Contact,
    /// Its vendor's object identifier for its kind (SNMP sysObjectID).
    ObjectId,
    /// Its SNMPv3 authoritative engine id, in hex.
    SnmpEngineId,
}

/// A numeric field of a host's identity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Number {
    /// An industrial vendor id (ODVA, BACnet, Profinet), with its source in the evidence.
    VendorId,
    /// A DNP3 address.
    Dnp3Address,
    /// A DNP3 function code.
    Dnp3Function,
    /// An IEC 104 common address.
    Iec104Address,
    /// An IEC 104 type id.
    Iec104Type,
    /// A BACnet device instance.
    BacnetInstance,
}

/// Everything learned about one host.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its IP address, for an IP host.
    pub ip: Option<IpAddr>,
    /// Its hardware address, for a link-layer host (IP hosts get theirs when the report binds them).
    pub mac: Option<MacAddr>,
    /// Device or group address.
    pub kind: AddrKind,
    /// First packet, microseconds since the epoch.
    pub first_seen: i64,
    /// Last packet.
    pub last_seen: i64,
    /// Packets and bytes sent.
    pub tx: (u64, u64),
    /// Packets and bytes received.
    pub rx: (u64, u64),
    /// Protocols it serves, by [`Proto`] index.
    pub serves: u64,
    /// Protocols it uses as a client.
    pub uses: u64,
    /// Modbus unit ids it answers for (bit per id).
    pub modbus_units: [u64; 4],
    /// Modbus function codes it was sent (bit per code).
    pub modbus_functions: [u64; 2],
    /// Text identity values with their source.
    pub text: BTreeSet<(Field, Source, String)>,
    /// Numeric identity values with their source.
    pub numbers: BTreeSet<(Number, Source, u32)>,
    /// Credentials it sent in clear text: protocol and user name (never the secret).
    pub credentials: BTreeSet<(Proto, Option<String>)>,
    /// Industrial commands it sent: (protocol, kind, function, target host) → count.
    pub commands: BTreeMap<(Proto, CommandKind, &'static str, u32), u64>,
    /// Protocols it sent packets in as the server (answers, announcements): what it did itself, unlike
    /// [`Host::serves`], which being contacted also sets.
    pub answers: u64,
    /// The (protocol, server host) pairs it sent requests to.
    pub contacted: BTreeSet<(Proto, u32)>,
    /// The (protocol, server host) pairs that answered it.
    pub answered_by: BTreeSet<(Proto, u32)>,
    /// Requests in an industrial protocol it serves that came from public addresses: (protocol, source) →
    /// count.
    pub reached_from_public: BTreeMap<(Proto, IpAddr), u64>,
}

impl Host {
    /// A host first seen at `ts`, with nothing learned yet.
    pub fn new(ip: Option<IpAddr>, mac: Option<MacAddr>, kind: AddrKind, ts: i64) -> Self {
        Host {
            ip,
            mac,
            kind,
            first_seen: ts,
            last_seen: ts,
            tx: (0, 0),
            rx: (0, 0),
            serves: 0,
            uses: 0,
            modbus_units: [0; 4],
            modbus_functions: [0; 2],
            text: BTreeSet::new(),
            numbers: BTreeSet::new(),
            credentials: BTreeSet::new(),
            commands: BTreeMap::new(),
            answers: 0,
            contacted: BTreeSet::new(),
            answered_by: BTreeSet::new(),
            reached_from_public: BTreeMap::new(),
        }
    }

    /// Whether it sent packets in `p` as the server itself (not only was contacted in it).
    pub fn answers(&self, p: Proto) -> bool {
        self.answers & bit(p) != 0
    }

    /// Whether it serves `p`.
    pub fn serves(&self, p: Proto) -> bool {
        self.serves & bit(p) != 0
    }

    /// Whether it uses `p` as a client.
    pub fn uses(&self, p: Proto) -> bool {
        self.uses & bit(p) != 0
    }

    /// The text values of one field, any source.
    pub fn values(&self, f: Field) -> impl Iterator<Item = &str> {
        self.text
            .iter()
            .filter(move |(g, _, _)| *g == f)
            .map(|(_, _, v)| v.as_str())
    }

    /// The first value of one field.
    pub fn first(&self, f: Field) -> Option<&str> {
        self.values(f).next()
    }

    /// The numeric values of one field.
    pub fn numbers(&self, f: Number) -> impl Iterator<Item = (Source, u32)> + '_ {
        self.numbers
            .iter()
            .filter(move |(g, _, _)| *g == f)
            .map(|(_, s, v)| (*s, *v))
    }

    fn note(&mut self, f: Field, s: Source, v: &str) {
        if self.text.len() < MAX_VALUES
            && !self
                .text
                .iter()
                .any(|(g, t, w)| *g == f && *t == s && w == v)
        {
            self.text.insert((f, s, v.chars().take(256).collect()));
        }
    }

    fn number(&mut self, f: Number, s: Source, v: u32) {
        if self.numbers.len() < MAX_VALUES {
            self.numbers.insert((f, s, v));
        }
    }

    /// Merges what `other` (the same device, seen by another address) learned into this host.
    pub fn absorb(&mut self, other: &Host) {
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.serves |= other.serves;
        self.uses |= other.uses;
        for i in 0..4 {
            self.modbus_units[i] |= other.modbus_units[i];
        }
        for i in 0..2 {
            self.modbus_functions[i] |= other.modbus_functions[i];
        }
        self.text.extend(other.text.iter().cloned());
        self.numbers.extend(other.numbers.iter().copied());
        self.credentials.extend(other.credentials.iter().cloned());
        for (k, v) in &other.commands {
            *self.commands.entry(*k).or_default() += v;
        }
        self.answers |= other.answers;
        self.contacted.extend(other.contacted.iter().copied());
        self.answered_by.extend(other.answered_by.iter().copied());
        for (k, v) in &other.reached_from_public {
            *self.reached_from_public.entry(*k).or_default() += v;
        }
    }
}

/// The bit of a protocol in a host's protocol sets.
pub const fn bit(p: Proto) -> u64 {
    1 << (p as u8)
}

/// Whether an address belongs to one device.
pub fn is_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4 == Ipv4Addr::BROADCAST),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// Whether an address can only be on a local network: RFC 1918, link-local, CGNAT, unique-local.
pub fn local_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || v4.is_link_local() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80
        }
    }
}

/// Whether a hardware address belongs to one device (not group or broadcast).
pub fn is_unicast_mac(m: MacAddr) -> bool {
    m.octets()[0] & 1 == 0
}

/// All hosts and the address → host indexes.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Every host, in order of first sight.
    pub hosts: Vec<Host>,
    by_ip: HashMap<IpAddr, u32>,
    by_mac: HashMap<MacAddr, u32>,
    /// Hardware address → the IPv4/IPv6 addresses it sent from or was leased (at most [`MAX_BINDINGS`]), and
    /// whether there were more.
    pub bindings: HashMap<MacAddr, (Vec<IpAddr>, bool)>,
    /// Hardware addresses seen forwarding for remote addresses (routers): first and last time.
    pub routed: HashMap<MacAddr, (i64, i64)>,
}

impl Inventory {
    /// The host of an IP address, created at `ts` if new.
    pub fn ip_host(&mut self, ip: IpAddr, ts: i64) -> u32 {
        if let Some(&i) = self.by_ip.get(&ip) {
            return i;
        }
        let kind = if is_unicast(ip) {
            AddrKind::Unicast
        } else {
            AddrKind::Group
        };
        let i = self.hosts.len() as u32;
        self.hosts.push(Host::new(Some(ip), None, kind, ts));
        self.by_ip.insert(ip, i);
        i
    }

    /// Marks a host as a group address (sent to as a broadcast or multicast on the link), not a device.
    pub fn mark_group(&mut self, host: u32) {
        if let Some(h) = self.hosts.get_mut(host as usize) {
            h.kind = AddrKind::Group;
        }
    }

    /// The host of a hardware address seen only on the link layer, created at `ts` if new.
    pub fn mac_host(&mut self, mac: MacAddr, ts: i64) -> u32 {
        if let Some(&i) = self.by_mac.get(&mac) {
            return i;
        }
        let i = self.hosts.len() as u32;
        self.hosts
            .push(Host::new(None, Some(mac), AddrKind::Unicast, ts));
        self.by_mac.insert(mac, i);
        i
    }

    /// The host index of an IP address, if seen.
    pub fn find_ip(&self, ip: IpAddr) -> Option<u32> {
        self.by_ip.get(&ip).copied()
    }

    /// The link-layer host index of a hardware address, if seen.
    pub fn find_mac(&self, mac: MacAddr) -> Option<u32> {
        self.by_mac.get(&mac).copied()
    }

    /// Records that `mac` sent a packet from `ip` that arrived with time-to-live `ttl`. The sender is taken to
    /// be on this link (so the address is its own) when the address is private, link-local or unique-local, or
    /// when the TTL is still a stack's initial value; otherwise the hardware address is a router forwarding for
    /// a remote host, and is recorded as one.
    pub fn bind_sender(&mut self, mac: MacAddr, ip: IpAddr, ttl: u8, ts: i64) {
        if local_address(ip) || matches!(ttl, 30 | 32 | 60 | 64 | 128 | 255) {
            self.bind(mac, ip);
        } else if is_unicast_mac(mac) {
            let (first, last) = self.routed.entry(mac).or_insert((ts, ts));
            *first = (*first).min(ts);
            *last = (*last).max(ts);
        }
    }

    /// Records that `mac` claims `ip` (ARP, a DHCP lease) or sent from it on this link.
    pub fn bind(&mut self, mac: MacAddr, ip: IpAddr) {
        // The null address is what broken stacks and some capture tools put where they have none: it names
        // no device, and binding it would merge unrelated hosts into one "router".
        if !is_unicast_mac(mac) || mac.octets() == [0; 6] || !is_unicast(ip) {
            return;
        }
        let (ips, more) = self.bindings.entry(mac).or_default();
        if !ips.contains(&ip) {
            if ips.len() < MAX_BINDINGS {
                ips.push(ip);
            } else {
                *more = true;
            }
        }
    }

    /// Counts a packet from host `src` to host `dst` of `len` bytes at `ts`. A host sending to itself (on
    /// loopback) both sent and received it, as `tshark -z endpoints` counts it.
    #[inline]
    pub fn count(&mut self, src: u32, dst: u32, len: u64, ts: i64) {
        self.sent(src, len, ts);
        if let Some(h) = self.hosts.get_mut(dst as usize) {
            h.rx.0 += 1;
            h.rx.1 += len;
            h.last_seen = h.last_seen.max(ts);
        }
    }

    /// Counts a frame that host `src` sent to no host in particular (a link-layer frame).
    #[inline]
    pub fn sent(&mut self, src: u32, len: u64, ts: i64) {
        if let Some(h) = self.hosts.get_mut(src as usize) {
            h.tx.0 += 1;
            h.tx.1 += len;
            h.last_seen = h.last_seen.max(ts);
        }
    }

    /// Applies one fact to a host.
    pub fn apply(&mut self, host: u32, other: Option<u32>, fact: Fact<'_>) {
        if let Fact::Lease(ip) = fact {
            if let Some(mac) = self.hosts.get(host as usize).and_then(|h| h.mac) {
                self.bind(mac, IpAddr::V4(ip));
            }
            return;
        }
        let Some(h) = self.hosts.get_mut(host as usize) else {
            return;
        };
        if h.kind == AddrKind::Group {
            return;
        }
        match fact {
            Fact::Lease(_) => {}
            Fact::Serves(p) => h.serves |= bit(p),
            Fact::Uses(p) => h.uses |= bit(p),
            Fact::Hostname(s, v) => h.note(Field::Hostname, s, v),
            Fact::Vendor(s, v) => h.note(Field::Vendor, s, v),
            Fact::VendorId(s, v) => h.number(Number::VendorId, s, v),
            Fact::Model(s, v) => h.note(Field::Model, s, v),
            Fact::Firmware(s, v) => h.note(Field::Firmware, s, v),
            Fact::Serial(s, v) => h.note(Field::Serial, s, v),
            Fact::Description(s, v) => h.note(Field::Description, s, v),
            Fact::Platform(s, v) => h.note(Field::Platform, s, v),
            Fact::DhcpParams(p) => {
                let list = p.iter().map(u8::to_string).collect::<Vec<_>>().join(",");
                h.note(Field::DhcpParams, Source::Dhcp, &list)
            }
            Fact::VendorClass(v) => h.note(Field::VendorClass, Source::Dhcp, v),
            Fact::Service(s, v) => h.note(Field::Service, s, v),
            Fact::UserAgent(v) => h.note(Field::UserAgent, Source::Http, v),
            Fact::HttpServer(v) => h.note(Field::HttpServer, Source::Http, v),
            Fact::Sni(v) => h.note(Field::Sni, Source::Tls, v),
            Fact::Ja3(v) => h.note(Field::Ja3, Source::Tls, v),
            Fact::Ja4(v) => h.note(Field::Ja4, Source::Tls, v),
            Fact::ServerCertificate(der) => {
                use sha2::Digest as _;
                let fp = hex::encode(sha2::Sha256::digest(der));
                h.note(Field::CertFingerprint, Source::Tls, &fp)
            }
            Fact::SshBanner(v) => h.note(Field::SshBanner, Source::Ssh, v),
            Fact::ModbusUnit(u) => h.modbus_units[usize::from(u >> 6)] |= 1 << (u & 63),
            Fact::ModbusFunction(f) => {
                h.modbus_functions[usize::from((f >> 6) & 1)] |= 1 << (f & 63)
            }
            Fact::Dnp3Address(a) => h.number(Number::Dnp3Address, Source::Dnp3, u32::from(a)),
            Fact::Dnp3Function(f) => h.number(Number::Dnp3Function, Source::Dnp3, u32::from(f)),
            Fact::Iec104Address(a) => h.number(Number::Iec104Address, Source::Iec104, u32::from(a)),
            Fact::Iec104Type(t) => h.number(Number::Iec104Type, Source::Iec104, u32::from(t)),
            Fact::OpcUaEndpoint(v) => h.note(Field::OpcUaEndpoint, Source::OpcUa, v),
            Fact::OpcUaSecurityPolicy(v) => h.note(Field::OpcUaSecurityPolicy, Source::OpcUa, v),
            Fact::BacnetInstance(n) => h.number(Number::BacnetInstance, Source::Bacnet, n),
            Fact::StationName(v) => h.note(Field::StationName, Source::ProfinetDcp, v),
            Fact::MqttClientId(v) => h.note(Field::MqttClientId, Source::Mqtt, v),
            Fact::Iec61850Ref(v) => h.note(Field::Iec61850Ref, Source::Iec61850, v),
            Fact::Location(s, v) => h.note(Field::Location, s, v),
            Fact::Contact(s, v) => h.note(Field::Contact, s, v),
            Fact::ObjectId(s, v) => h.note(Field::ObjectId, s, v),
            Fact::EngineId(v) => h.note(Field::SnmpEngineId, Source::Snmp, v),
            Fact::CleartextCredential { proto, user } => {
                if h.credentials.len() < MAX_VALUES {
                    h.credentials
                        .insert((proto, user.map(|u| u.chars().take(64).collect())));
                }
            }
            Fact::Command {
                proto,
                kind,
                detail,
            } => {
                let Some(target) = other else { return };
                let key = (proto, kind, detail, target);
                if let Some(n) = h.commands.get_mut(&key) {
                    *n += 1;
                } else if h.commands.len() < MAX_COMMANDS {
                    h.commands.insert(key, 1);
                }
            }
            Fact::Url(s, v) => h.note(Field::Url, s, v),
            Fact::DeviceId(s, v) => h.note(Field::DeviceId, s, v),
        }
    }
}

/// Resolves the subjects of one packet to hosts, creating link-layer hosts as needed.
pub struct PacketSink<'i> {
    /// The inventory written to.
    pub inv: &'i mut Inventory,
    /// The sender's host, if it is a device.
    pub src: Option<u32>,
    /// The receiver's host, if it is a device.
    pub dst: Option<u32>,
    /// When the packet was captured.
    pub ts: i64,
}

impl Sink for PacketSink<'_> {
    fn fact(&mut self, who: Subject, fact: Fact<'_>) {
        let (host, other) = match who {
            Subject::Src => (self.src, self.dst),
            Subject::Dst => (self.dst, self.src),
            Subject::Hw(mac) if is_unicast_mac(mac) => {
                (Some(self.inv.mac_host(mac, self.ts)), None)
            }
            Subject::Hw(_) => (None, None),
        };
        if let Some(h) = host {
            self.roles(who, h, other, &fact);
        }
        if let Some(h) = host {
            self.inv.apply(h, other, fact);
        }
    }
}

impl PacketSink<'_> {
    /// Keeps, beside the protocol sets, who actually spoke: a server that sent in a protocol answers it; a
    /// request names the pair (client, server) and, from a public address to an industrial server, the
    /// exposure. Both sides of an IP packet must be known.
    fn roles(&mut self, who: Subject, host: u32, peer: Option<u32>, fact: &Fact<'_>) {
        let (proto, serves) = match *fact {
            Fact::Serves(p) => (p, true),
            Fact::Uses(p) => (p, false),
            _ => return,
        };
        let hosts = &mut self.inv.hosts;
        let Some(h) = hosts.get_mut(host as usize) else {
            return;
        };
        if h.kind == AddrKind::Group {
            return;
        }
        // Link-layer frames (Profinet, GOOSE, LLDP) have a sender and no peer.
        if who == Subject::Src && serves {
            h.answers |= bit(proto);
        }
        let Some(peer) = peer else { return };
        // A query to a group address (mDNS, SSDP, a broadcast) contacts no one server.
        let Some(peer_ip) = hosts
            .get(peer as usize)
            .filter(|p| p.kind == AddrKind::Unicast)
            .map(|h| h.ip)
        else {
            return;
        };
        let Some(h) = hosts.get_mut(host as usize) else {
            return;
        };
        match (who, serves) {
            // The server sent this packet: an answer (or announcement) to the peer.
            (Subject::Src, true) => {
                if let Some(client) = hosts.get_mut(peer as usize) {
                    if client.answered_by.len() < MAX_VALUES {
                        client.answered_by.insert((proto, host));
                    }
                }
            }
            // The server was sent this packet: a request from the peer.
            (Subject::Dst, true) => {
                if let Some(ip) = peer_ip.filter(|ip| proto.is_ot() && public_address(*ip)) {
                    if let Some(n) = h.reached_from_public.get_mut(&(proto, ip)) {
                        *n += 1;
                    } else if h.reached_from_public.len() < MAX_VALUES {
                        h.reached_from_public.insert((proto, ip), 1);
                    }
                }
            }
            // The client sent this packet: a request to the peer.
            (Subject::Src, false) if h.contacted.len() < MAX_VALUES => {
                h.contacted.insert((proto, peer));
            }
            _ => {}
        }
    }
}

/// Whether an address is routable on the Internet: neither local ([`local_address`]), loopback, unspecified
/// nor a group address.
pub fn public_address(ip: IpAddr) -> bool {
    let special = match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()
        }
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified() || v6.is_multicast(),
    };
    !special && !local_address(ip)
}
