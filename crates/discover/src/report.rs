//! The result of a discovery run: devices with identity, class and risks; every IP endpoint with its counts
//! (comparable with `tshark -z endpoints,ip`); and the communication map, as JSON or Graphviz DOT.
//!
//! Why one long file: the report's types and their three renderings (JSON, the endpoint table, DOT) change
//! together: a field added to one is added to the others.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use vouch_types::{DeviceClass, MacAddr};

use crate::classify::classify;
use crate::engine::{Engine, EngineStats, Volume};
use crate::facts::{CommandKind, Proto, Source};
use crate::inventory::{AddrKind, Field, Host, Number, is_unicast_mac};
use crate::oui;

/// Everything one discovery run found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What was read.
    pub capture: CaptureSummary,
    /// The devices seen (unicast addresses and link-layer talkers), ordered by key.
    pub devices: Vec<DeviceReport>,
    /// Every IP address with its packet and byte counts, ordered by address.
    pub endpoints: Vec<Endpoint>,
    /// Who talks to whom.
    pub map: Vec<Edge>,
    /// What changed since the previous run, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
}

/// What was read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CaptureSummary {
    /// The files, in the order read.
    pub files: Vec<String>,
    /// Frames read.
    pub frames: u64,
    /// Bytes on the wire.
    pub wire_bytes: u64,
    /// Frames not decoded (unknown link type or cut-short headers).
    pub undecoded: u64,
    /// First frame's time (RFC 3339).
    pub first: Option<String>,
    /// Last frame's time.
    pub last: Option<String>,
    /// Conversations seen.
    pub flows: u64,
    /// Conversations closed early to bound memory.
    pub flows_evicted: u64,
    /// The most conversations held at once.
    pub flows_peak: u64,
    /// Errors met while reading (a truncated or corrupt file); what came before each was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One identity value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Evidence {
    /// Which field.
    pub field: Field,
    /// The value.
    pub value: String,
    /// The protocol it was read from.
    pub source: Source,
}

/// A risk found on a device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Risk {
    /// What kind of risk.
    pub kind: RiskKind,
    /// How bad.
    pub severity: Severity,
    /// What was seen, in words.
    pub detail: String,
    /// What was seen, typed, for readers other than people (the trust engine's sightings); absent in
    /// reports written before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<RiskFact>,
}

/// The facts behind a risk, typed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "kebab-case")]
pub enum RiskFact {
    /// The device sent a credential in clear text (the user only: the secret is never kept).
    Credential {
        /// Over which protocol.
        protocol: Proto,
        /// For which user, when the protocol names one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    /// The device serves a clear-text protocol.
    Service {
        /// Which.
        protocol: Proto,
    },
    /// The device received industrial commands from `from`.
    Command {
        /// In which protocol.
        protocol: Proto,
        /// What they do.
        kind: CommandKind,
        /// The sender's device key.
        from: String,
        /// How many.
        count: u64,
    },
}

/// The kinds of risk discovery reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RiskKind {
    /// A password or community sent in clear text.
    CleartextCredentials,
    /// Serves Telnet or FTP.
    InsecureService,
    /// Speaks MQTT without TLS.
    UnencryptedMqtt,
    /// Received (or sent) a state-changing industrial command.
    OtCommand,
    /// Not seen in the previous capture, or talks to a peer it did not talk to before.
    NewTalker,
    /// An industrial protocol it serves was reached from a public (Internet) address.
    OtExposedToInternet,
}

/// How urgent a risk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Low,
    /// Should be fixed.
    Medium,
    /// Fix now.
    High,
}

/// One discovered device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceReport {
    /// Stable key across captures: `mac:…` when the hardware address is known, else `ip:…`.
    pub key: String,
    /// Its hardware address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The registry vendor of the hardware address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_vendor: Option<String>,
    /// Its IP addresses.
    pub ips: Vec<IpAddr>,
    /// First packet (RFC 3339).
    pub first_seen: Option<String>,
    /// Last packet.
    pub last_seen: Option<String>,
    /// Sent.
    pub sent: Volume,
    /// Received.
    pub received: Volume,
    /// The device class.
    pub class: DeviceClass,
    /// Its role.
    pub role: String,
    /// Confidence of the class, 0–0.99.
    pub confidence: f32,
    /// Why this class.
    pub evidence: Vec<String>,
    /// Best host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Vendor (as the device says, else its industrial vendor id, else the MAC registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Model or product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// Hardware serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Protocols it serves.
    pub serves: Vec<Proto>,
    /// Protocols it uses as a client.
    pub uses: Vec<Proto>,
    /// Protocols it sent packets in as the server itself (a subset of `serves`, which being contacted also
    /// sets): what its class rests on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<Proto>,
    /// Every identity value with its source.
    pub identity: Vec<Evidence>,
    /// Industrial addressing: Modbus units and functions, DNP3 and IEC 104 addresses, vendor ids, …
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ot: BTreeMap<String, Vec<u32>>,
    /// Risks, worst first.
    pub risks: Vec<Risk>,
    /// The registry device it was merged into, when the run was merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<crate::merge::RegistryLink>,
}

/// One IP address as `tshark -z endpoints,ip` counts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The address.
    pub address: IpAddr,
    /// Packets to or from it.
    pub packets: u64,
    /// Bytes to or from it.
    pub bytes: u64,
    /// Sent.
    pub tx: Volume,
    /// Received.
    pub rx: Volume,
    /// A multicast or broadcast address (including a subnet broadcast, known from frames sent to the link's
    /// broadcast address), not a device.
    #[serde(default)]
    pub group: bool,
}

/// One line of the communication map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// The device (or address) that opened the conversations.
    pub client: String,
    /// The one contacted.
    pub server: String,
    /// The protocol, or `tcp/PORT` when not recognised.
    pub service: String,
    /// Client to server.
    pub forward: Volume,
    /// Server to client.
    pub back: Volume,
    /// Conversations.
    pub flows: u64,
}

/// What changed since the previous run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Changes {
    /// Devices not in the previous run.
    pub new_devices: Vec<String>,
    /// Devices of the previous run not seen now.
    pub gone_devices: Vec<String>,
    /// Client → server pairs (with service) not in the previous run.
    pub new_talkers: Vec<String>,
    /// Devices whose identity, class or protocols changed: key → what changed.
    pub changed: BTreeMap<String, Vec<String>>,
}

/// A command a device received: protocol, kind, function, sender host, count.
type Received = (Proto, CommandKind, &'static str, u32, u64);

fn rfc3339(micros: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

fn protos(bits: u64) -> Vec<Proto> {
    crate::proto::all()
        .filter(|p| bits & crate::inventory::bit(*p) != 0)
        .collect()
}

/// Builds the report from an engine that has read everything (call [`Engine::close_all`] first).
pub fn build(
    engine: &Engine,
    files: Vec<String>,
    errors: Vec<String>,
    previous: Option<&Report>,
) -> Report {
    let inv = &engine.inventory;
    // Join each link-layer host to the one IP host its hardware address is bound to.
    let mut merged: Vec<Host> = inv.hosts.clone();
    let mut alias: Vec<u32> = (0..merged.len() as u32).collect();
    let mut fronts_many: BTreeSet<u32> = BTreeSet::new();
    let mut extra_ips: BTreeMap<u32, Vec<IpAddr>> = BTreeMap::new();
    let mut macs: Vec<(MacAddr, &(Vec<IpAddr>, bool))> =
        inv.bindings.iter().map(|(m, b)| (*m, b)).collect();
    macs.sort_by_key(|(m, _)| *m);
    for (mac, (ips, more)) in macs {
        if ips.len() == 1 && !more {
            let Some(ip_host) = inv.find_ip(ips[0]) else {
                // Known only from ARP or a DHCP lease: the link-layer host carries the address.
                if let Some(m) = inv.find_mac(mac) {
                    extra_ips.entry(m).or_default().push(ips[0]);
                }
                continue;
            };
            merged[ip_host as usize].mac = Some(mac);
            if let Some(m) = inv.find_mac(mac) {
                let other = merged[m as usize].clone();
                merged[ip_host as usize].absorb(&other);
                alias[m as usize] = ip_host;
            }
        } else if let Some(m) = inv.find_mac(mac) {
            fronts_many.insert(m);
        }
    }
    // Routers seen only through the remote addresses they forward for: a device each.
    let mut routers: Vec<(&MacAddr, &(i64, i64))> = inv.routed.iter().collect();
    routers.sort();
    for (mac, (first, last)) in routers {
        let own = inv
            .bindings
            .get(mac)
            .filter(|(ips, more)| ips.len() == 1 && !more);
        let i = match (
            own.and_then(|(ips, _)| inv.find_ip(ips[0])),
            inv.find_mac(*mac),
        ) {
            // It has an address of its own on this link (its management address, say): that device routes.
            (Some(h), _) => h,
            (None, Some(m)) => m,
            (None, None) => {
                let i = merged.len() as u32;
                let mut router = Host::new(None, Some(*mac), AddrKind::Unicast, *first);
                router.last_seen = *last;
                merged.push(router);
                alias.push(i);
                i
            }
        };
        fronts_many.insert(alias[i as usize]);
    }
    // Stream and opaque protocols are read from the client's side only (MQTT's CONNECT, a TLS hello), so a
    // server's own packets in the conversation are the evidence that it answered.
    for ((c, srv, service), e) in &engine.edges {
        if let crate::engine::Service::Known(p) = service {
            if e.back.packets > 0 && crate::proto::reading(*p) != crate::proto::Reading::Segment {
                let (c, srv) = (alias[*c as usize], alias[*srv as usize]);
                if let Some(h) = merged.get_mut(srv as usize) {
                    h.answers |= crate::inventory::bit(*p);
                }
                if let Some(h) = merged.get_mut(c as usize) {
                    if h.answered_by.len() < crate::inventory::MAX_VALUES {
                        h.answered_by.insert((*p, srv));
                    }
                }
            }
        }
    }
    let key_of = |i: u32| -> String {
        let h = &merged[alias[i as usize] as usize];
        match (h.mac, h.ip) {
            (Some(m), _) => format!("mac:{m}"),
            (None, Some(ip)) => format!("ip:{ip}"),
            (None, None) => format!("host:{i}"),
        }
    };

    let mut devices: Vec<DeviceReport> = Vec::new();
    let mut received_commands: BTreeMap<u32, Vec<Received>> = BTreeMap::new();
    for (i, h) in merged.iter().enumerate() {
        for ((p, k, d, target), n) in &h.commands {
            received_commands
                .entry(alias[*target as usize])
                .or_default()
                .push((*p, *k, d, i as u32, *n));
        }
    }
    for (i, h) in merged.iter().enumerate() {
        let i = i as u32;
        if alias[i as usize] != i || h.kind == AddrKind::Group {
            continue;
        }
        if h.mac.is_some_and(|m| !is_unicast_mac(m)) {
            continue;
        }
        let class = classify(h, fronts_many.contains(&i));
        let mut ips: Vec<IpAddr> = h.ip.into_iter().collect();
        ips.extend(extra_ips.get(&i).into_iter().flatten().copied());
        let mac_vendor = h.mac.and_then(oui::vendor_of).map(str::to_owned);
        let vendor_id = h.numbers(Number::VendorId).next();
        let vendor = h
            .first(Field::Vendor)
            .map(str::to_owned)
            .or_else(|| {
                vendor_id
                    .and_then(|(s, id)| industrial_vendor(s, id))
                    .map(str::to_owned)
            })
            .or_else(|| mac_vendor.clone());
        let identity: Vec<Evidence> = h
            .text
            .iter()
            .map(|(f, s, v)| Evidence {
                field: *f,
                value: v.clone(),
                source: *s,
            })
            .collect();
        let mut ot: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let bits = |words: &[u64]| -> Vec<u32> {
            (0..words.len() as u32 * 64)
                .filter(|b| words[(b / 64) as usize] & (1 << (b % 64)) != 0)
                .collect()
        };
        if h.modbus_units.iter().any(|w| *w != 0) {
            ot.insert("modbus_units".into(), bits(&h.modbus_units));
        }
        if h.modbus_functions.iter().any(|w| *w != 0) {
            ot.insert("modbus_functions".into(), bits(&h.modbus_functions));
        }
        for (n, name) in [
            (Number::VendorId, "vendor_ids"),
            (Number::Dnp3Address, "dnp3_addresses"),
            (Number::Dnp3Function, "dnp3_functions"),
            (Number::Iec104Address, "iec104_common_addresses"),
            (Number::Iec104Type, "iec104_type_ids"),
            (Number::BacnetInstance, "bacnet_instances"),
        ] {
            let v: Vec<u32> = h
                .numbers(n)
                .map(|(_, v)| v)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if !v.is_empty() {
                ot.insert(name.into(), v);
            }
        }
        let mut risks = exposure_risks(h);
        for (p, k, d, from, n) in received_commands.get(&i).into_iter().flatten() {
            let sender = &merged[*from as usize];
            let sender_class = classify(sender, false).class;
            let expected = matches!(
                sender_class,
                DeviceClass::EngineeringStation | DeviceClass::Hmi
            );
            let severity = match k {
                CommandKind::Program
                | CommandKind::Stop
                | CommandKind::Restart
                | CommandKind::Reserve => Severity::High,
                _ if !expected => Severity::High,
                _ => Severity::Medium,
            };
            let from_txt = sender
                .ip
                .map(|ip| ip.to_string())
                .unwrap_or_else(|| key_of(*from));
            risks.push(Risk {
                kind: RiskKind::OtCommand,
                severity,
                detail: format!(
                    "received {n} {} {} command(s) ({d}) from {from_txt}{}",
                    p.as_str(),
                    k.as_str(),
                    if expected {
                        ""
                    } else {
                        ", not an engineering station or HMI"
                    }
                ),
                about: Some(RiskFact::Command {
                    protocol: *p,
                    kind: *k,
                    from: key_of(*from),
                    count: *n,
                }),
            });
        }
        risks.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.cmp(b)));
        risks.dedup();
        devices.push(DeviceReport {
            key: key_of(i),
            mac: h.mac,
            mac_vendor,
            ips,
            first_seen: rfc3339(h.first_seen),
            last_seen: rfc3339(h.last_seen),
            sent: Volume {
                packets: h.tx.0,
                bytes: h.tx.1,
            },
            received: Volume {
                packets: h.rx.0,
                bytes: h.rx.1,
            },
            class: class.class,
            role: class.role,
            confidence: class.confidence,
            evidence: class.evidence,
            hostname: h
                .first(Field::Hostname)
                .or(h.first(Field::StationName))
                .map(str::to_owned),
            vendor,
            model: h.first(Field::Model).map(str::to_owned),
            firmware: h.first(Field::Firmware).map(str::to_owned),
            serial: h.first(Field::Serial).map(str::to_owned),
            serves: protos(h.serves),
            uses: protos(h.uses),
            answers: protos(h.answers),
            identity,
            ot,
            risks,
            registry: None,
        });
    }
    devices.sort_by(|a, b| a.key.cmp(&b.key));

    let mut endpoints: Vec<Endpoint> = inv
        .hosts
        .iter()
        .filter_map(|h| {
            let ip = h.ip?;
            (h.tx.0 + h.rx.0 > 0).then(|| Endpoint {
                address: ip,
                packets: h.tx.0 + h.rx.0,
                bytes: h.tx.1 + h.rx.1,
                tx: Volume {
                    packets: h.tx.0,
                    bytes: h.tx.1,
                },
                rx: Volume {
                    packets: h.rx.0,
                    bytes: h.rx.1,
                },
                group: h.kind == AddrKind::Group,
            })
        })
        .collect();
    endpoints.sort_by_key(|e| e.address);

    let mut map: BTreeMap<(String, String, String), Edge> = BTreeMap::new();
    for ((c, s, service), e) in &engine.edges {
        let (client, server, service) = (key_of(*c), key_of(*s), service.to_string());
        let edge = map
            .entry((client.clone(), server.clone(), service.clone()))
            .or_insert(Edge {
                client,
                server,
                service,
                forward: Volume::default(),
                back: Volume::default(),
                flows: 0,
            });
        edge.forward.packets += e.forward.packets;
        edge.forward.bytes += e.forward.bytes;
        edge.back.packets += e.back.packets;
        edge.back.bytes += e.back.bytes;
        edge.flows += e.flows;
    }
    let s: &EngineStats = &engine.stats;
    let mut report = Report {
        capture: CaptureSummary {
            files,
            frames: s.frames,
            wire_bytes: s.wire_bytes,
            undecoded: s.undecoded,
            first: s.first_ts.and_then(rfc3339),
            last: s.last_ts.and_then(rfc3339),
            flows: s.flows,
            flows_evicted: s.flows_evicted,
            flows_peak: s.flows_peak,
            errors,
        },
        devices,
        endpoints,
        map: map.into_values().collect(),
        changes: None,
    };
    if let Some(prev) = previous {
        report.changes = Some(diff(prev, &mut report));
    }
    report
}

/// What a host exposes by itself: credentials it sent in clear text, clear-text services, MQTT without TLS.
fn exposure_risks(h: &Host) -> Vec<Risk> {
    let mut risks = Vec::new();
    for (p, user) in &h.credentials {
        let who = user
            .as_deref()
            .map(|u| format!(" (user \"{u}\")"))
            .unwrap_or_default();
        let what = if *p == Proto::Snmp {
            "an SNMP community"
        } else {
            "credentials"
        };
        risks.push(Risk {
            kind: RiskKind::CleartextCredentials,
            severity: Severity::High,
            detail: format!("sent {what} over {} in clear text{who}", p.as_str()),
            about: Some(RiskFact::Credential {
                protocol: *p,
                user: user.clone(),
            }),
        });
    }
    for p in [Proto::Telnet, Proto::Ftp] {
        if h.serves(p) {
            risks.push(Risk {
                kind: RiskKind::InsecureService,
                severity: Severity::Medium,
                detail: format!("serves {} (clear text)", p.as_str()),
                about: Some(RiskFact::Service { protocol: p }),
            });
        }
    }
    for ((p, from), n) in &h.reached_from_public {
        risks.push(Risk {
            kind: RiskKind::OtExposedToInternet,
            severity: Severity::High,
            detail: format!(
                "serves {} to the public address {from} ({n} request(s))",
                p.as_str()
            ),
            about: None,
        });
    }
    if h.serves(Proto::Mqtt) || h.uses(Proto::Mqtt) {
        let role = if h.serves(Proto::Mqtt) {
            "serves"
        } else {
            "uses"
        };
        risks.push(Risk {
            kind: RiskKind::UnencryptedMqtt,
            severity: Severity::Medium,
            detail: format!("{role} MQTT without TLS"),
            about: None,
        });
    }
    risks
}

/// A few industrial vendor ids, for devices that give only the number.
fn industrial_vendor(source: Source, id: u32) -> Option<&'static str> {
    match (source, id) {
        (Source::Enip, 1) => Some("Rockwell Automation/Allen-Bradley"),
        (Source::Enip, 283) => Some("Siemens"),
        (Source::Enip, 44) => Some("Schneider Electric"),
        (Source::ProfinetDcp, 0x002a) => Some("Siemens"),
        (Source::Bacnet, 5) => Some("Johnson Controls"),
        (Source::Bacnet, 7) => Some("Siemens Building Technologies"),
        (Source::Bacnet, 8) => Some("Delta Controls"),
        (Source::Bacnet, 24) => Some("Automated Logic"),
        // FieldComm Group manufacturer identification codes.
        (Source::HartIp, 0x11) => Some("Endress+Hauser"),
        (Source::HartIp, 0x26) => Some("Rosemount (Emerson)"),
        (Source::HartIp, 0x2a) => Some("Siemens"),
        // KNX Association manufacturer codes (the first two bytes of a KNX serial number).
        (Source::Knx, 1) => Some("Siemens"),
        (Source::Knx, 2) => Some("ABB"),
        // IANA private enterprise numbers (SNMP sysObjectID and v3 engine ids).
        (Source::Snmp, 9) => Some("Cisco"),
        (Source::Snmp, 311) => Some("Microsoft"),
        (Source::Snmp, 2636) => Some("Juniper Networks"),
        (Source::Snmp, 4329) => Some("Siemens"),
        (Source::Snmp, 8072) => Some("Net-SNMP"),
        _ => None,
    }
}

/// Compares this run with the previous one and marks new talkers as risks.
fn diff(prev: &Report, now: &mut Report) -> Changes {
    let before: BTreeMap<&str, &DeviceReport> =
        prev.devices.iter().map(|d| (d.key.as_str(), d)).collect();
    let after: BTreeSet<String> = now.devices.iter().map(|d| d.key.clone()).collect();
    let old_edges: BTreeSet<(&str, &str, &str)> = prev
        .map
        .iter()
        .map(|e| (e.client.as_str(), e.server.as_str(), e.service.as_str()))
        .collect();
    let mut c = Changes::default();
    for d in &mut now.devices {
        match before.get(d.key.as_str()) {
            None => {
                c.new_devices.push(d.key.clone());
                d.risks.push(Risk {
                    kind: RiskKind::NewTalker,
                    severity: Severity::Medium,
                    detail: "not seen in the previous capture".to_owned(),
                    about: None,
                });
            }
            Some(p) => {
                let mut what = Vec::new();
                if p.class != d.class {
                    what.push(format!("class {} → {}", p.class.as_str(), d.class.as_str()));
                }
                for (name, a, b) in [
                    ("firmware", &p.firmware, &d.firmware),
                    ("model", &p.model, &d.model),
                    ("hostname", &p.hostname, &d.hostname),
                    ("serial", &p.serial, &d.serial),
                ] {
                    if a != b {
                        what.push(format!(
                            "{name} {} → {}",
                            a.as_deref().unwrap_or("-"),
                            b.as_deref().unwrap_or("-")
                        ));
                    }
                }
                if p.ips != d.ips {
                    what.push(format!("addresses {:?} → {:?}", p.ips, d.ips));
                }
                for x in d.serves.iter().filter(|x| !p.serves.contains(x)) {
                    what.push(format!("now serves {}", x.as_str()));
                }
                if !what.is_empty() {
                    c.changed.insert(d.key.clone(), what);
                }
            }
        }
    }
    for e in &now.map {
        if !old_edges.contains(&(e.client.as_str(), e.server.as_str(), e.service.as_str())) {
            c.new_talkers
                .push(format!("{} → {} ({})", e.client, e.server, e.service));
            if before.contains_key(e.client.as_str()) {
                if let Some(d) = now.devices.iter_mut().find(|d| d.key == e.client) {
                    d.risks.push(Risk {
                        kind: RiskKind::NewTalker,
                        severity: Severity::Low,
                        detail: format!(
                            "talks to {} over {} for the first time",
                            e.server, e.service
                        ),
                        about: None,
                    });
                }
            }
        }
    }
    c.gone_devices = before
        .keys()
        .filter(|k| !after.contains(**k))
        .map(|k| (*k).to_owned())
        .collect();
    c
}

impl Report {
    /// The communication map as a Graphviz digraph: one node per device (labelled with its class and name),
    /// one edge per client → server and service (labelled with packets and bytes).
    pub fn to_dot(&self) -> String {
        let mut s = String::from(
            "digraph vouch_discovery {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n",
        );
        let mut nodes: BTreeSet<&str> = BTreeSet::new();
        for e in &self.map {
            nodes.insert(&e.client);
            nodes.insert(&e.server);
        }
        for n in &nodes {
            let label = match self.devices.iter().find(|d| d.key == *n) {
                Some(d) => {
                    let name = d.hostname.as_deref().or(d.model.as_deref()).unwrap_or("");
                    let addr = d
                        .ips
                        .first()
                        .map(|ip| ip.to_string())
                        .unwrap_or_else(|| d.key.clone());
                    format!("{addr}\\n{} {name}", d.class.as_str())
                }
                None => n.trim_start_matches("ip:").to_owned(),
            };
            let _ = writeln!(s, "  \"{}\" [label=\"{}\"];", esc(n), esc_label(&label));
        }
        for e in &self.map {
            let _ = writeln!(
                s,
                "  \"{}\" -> \"{}\" [label=\"{} {}p/{}B\"];",
                esc(&e.client),
                esc(&e.server),
                esc(&e.service),
                e.forward.packets + e.back.packets,
                e.forward.bytes + e.back.bytes
            );
        }
        s.push_str("}\n");
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Escapes a label but keeps the `\n` line breaks put in on purpose.
fn esc_label(s: &str) -> String {
    s.replace('"', "\\\"")
}
