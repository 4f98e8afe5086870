//! Device class and role from what a host does on the network, with a confidence and the evidence behind it.
//!
//! Each rule that matches votes for a class with a weight; the class with the highest vote wins, and its
//! confidence grows a little with every further piece of evidence for it. Serving an industrial protocol
//! weighs more than using one, and what a device says about itself (ListIdentity, CDP) weighs most.

use serde::Serialize;
use vouch_types::DeviceClass;

use crate::facts::{CommandKind, Proto};
use crate::inventory::{Field, Host, Number};

/// A host's class, role, confidence and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// The device class.
    pub class: DeviceClass,
    /// Its role in words ("Modbus server", "DNP3 outstation", "SCADA master").
    pub role: String,
    /// 0.0 (a guess) to 0.99.
    pub confidence: f32,
    /// The observations that led here.
    pub evidence: Vec<String>,
}

struct Vote {
    class: DeviceClass,
    weight: f32,
    role: &'static str,
    why: String,
}

/// Makers whose hardware addresses are mostly on one kind of device (lowercase, matched inside the registry
/// name, or at its start when written with a leading `^`): a weak hint, for when the traffic says nothing
/// stronger (a switch that only forwards, a controller that stayed silent during the capture). Conglomerates
/// are named by their automation entities only: GE's and Omron's healthcare, lighting and appliance arms, and
/// Siemens' home and network ventures, hold prefixes of their own.
pub const VENDOR_HINTS: &[(&str, DeviceClass, &str)] = &[
    ("ruggedcom", DeviceClass::Network, "industrial switch"),
    ("hirschmann", DeviceClass::Network, "industrial switch"),
    ("moxa", DeviceClass::Gateway, "industrial gateway"),
    ("cisco", DeviceClass::Network, "network device"),
    ("juniper networks", DeviceClass::Network, "network device"),
    ("aruba", DeviceClass::Network, "network device"),
    ("rockwell automation", DeviceClass::Plc, "controller"),
    ("schneider electric", DeviceClass::Plc, "controller"),
    ("phoenix contact", DeviceClass::Plc, "controller"),
    ("wago", DeviceClass::Plc, "controller"),
    ("axis communications", DeviceClass::Camera, "IP camera"),
    ("hikvision", DeviceClass::Camera, "IP camera"),
    ("^siemens ag", DeviceClass::Plc, "controller"),
    ("^beckhoff automation", DeviceClass::Plc, "controller"),
    ("^ge energy", DeviceClass::Rtu, "grid automation device"),
    (
        "^general electric digital energy",
        DeviceClass::Rtu,
        "grid automation device",
    ),
    (
        "^schweitzer engineering",
        DeviceClass::Rtu,
        "protection relay",
    ),
    (
        "^emerson process management",
        DeviceClass::Plc,
        "process controller",
    ),
    ("^fisher-rosemount", DeviceClass::Plc, "process controller"),
    ("^abb ", DeviceClass::Plc, "automation device"),
    ("^omron corporation", DeviceClass::Plc, "controller"),
    ("^omron tateisi", DeviceClass::Plc, "controller"),
];

/// The class hint of a registry vendor name, if its maker's prefixes are mostly on one kind of device.
pub fn vendor_hint(maker: &str) -> Option<(DeviceClass, &'static str)> {
    let lower = maker.to_ascii_lowercase();
    VENDOR_HINTS.iter().find_map(|(name, class, role)| {
        let hit = match name.strip_prefix('^') {
            Some(start) => lower.starts_with(start),
            None => lower.contains(name),
        };
        hit.then_some((*class, *role))
    })
}

/// A client that contacted at least this many (protocol, server) pairs …
pub const SCAN_MIN_TARGETS: usize = 8;
/// … and had fewer than one in this many of them answer is a scanner.
pub const SCAN_ANSWER_RATIO: usize = 4;

/// Classifies one host; `fronts_many` is set for a hardware address seen with many IP addresses (a router).
pub fn classify(h: &Host, fronts_many: bool) -> Classification {
    let mut votes: Vec<Vote> = Vec::new();
    let mut vote = |class, weight, role, why: String| {
        votes.push(Vote {
            class,
            weight,
            role,
            why,
        })
    };
    use DeviceClass as C;

    if let Some(maker) = h.mac.and_then(crate::oui::vendor_of) {
        if let Some((class, role)) = vendor_hint(maker) {
            vote(
                class,
                0.3,
                role,
                format!("its hardware address belongs to {maker}"),
            );
        }
    }

    // A client is a master only where its requests were answered; one that contacts many servers or services
    // and is answered by few (fewer than one in four of at least eight) is scanning, not polling.
    let polled = |p: Proto| h.answered_by.iter().any(|(q, _)| *q == p);
    let scanner = h.contacted.len() >= SCAN_MIN_TARGETS
        && h.answered_by.len() * SCAN_ANSWER_RATIO < h.contacted.len();
    if scanner {
        vote(
            C::ItHost,
            0.8,
            "network scanner",
            format!(
                "sent requests to {} services, {} of which answered",
                h.contacted.len(),
                h.answered_by.len()
            ),
        );
    }
    for p in [Proto::S7comm, Proto::S7commPlus] {
        if h.answers(p) {
            vote(
                C::Plc,
                0.9,
                "Siemens S7 controller",
                format!("serves {}", p.as_str()),
            );
        }
    }
    if h.answers(Proto::Modbus) {
        let units = (0..=255u8)
            .filter(|u| h.modbus_units[usize::from(u >> 6)] & (1 << (u & 63)) != 0)
            .count();
        vote(
            C::Plc,
            0.75,
            "Modbus server",
            format!("serves Modbus/TCP ({units} unit ids)"),
        );
    }
    for p in h.values(Field::Platform) {
        if p.contains("programmable logic controller") {
            vote(C::Plc, 0.95, "controller", format!("identifies as a {p}"));
        } else if p.contains("communications adapter") {
            vote(
                C::Plc,
                0.85,
                "controller communications module",
                format!("identifies as a {p}"),
            );
        } else if p.contains("router") {
            vote(
                C::Network,
                0.85,
                "router",
                format!("announces the {p} capability"),
            );
        } else if p.contains("bridge") || p.contains("switch") {
            vote(
                C::Network,
                0.85,
                "switch",
                format!("announces the {p} capability"),
            );
        } else if p.contains("telephone") || p.contains("phone") {
            vote(
                C::ItHost,
                0.7,
                "IP phone",
                format!("announces the {p} capability"),
            );
        }
    }
    if h.answers(Proto::Enip) {
        vote(
            C::Plc,
            0.6,
            "EtherNet/IP device",
            "serves EtherNet/IP".to_owned(),
        );
    }
    if h.answers(Proto::Dnp3) {
        vote(
            C::Rtu,
            0.85,
            "DNP3 outstation",
            "answers as a DNP3 outstation".to_owned(),
        );
    }
    if h.answers(Proto::Iec104) {
        vote(
            C::Rtu,
            0.85,
            "IEC 104 controlled station",
            "serves IEC 60870-5-104".to_owned(),
        );
    }
    if h.answers(Proto::Goose) || h.answers(Proto::Mms) {
        vote(
            C::Rtu,
            0.8,
            "IEC 61850 IED",
            "publishes GOOSE or serves MMS".to_owned(),
        );
    }
    if h.answers(Proto::Bacnet) || h.numbers(Number::BacnetInstance).next().is_some() {
        vote(
            C::Plc,
            0.7,
            "BACnet building controller",
            "is a BACnet device".to_owned(),
        );
    }
    if h.answers(Proto::ProfinetDcp) || h.answers(Proto::ProfinetRt) {
        vote(
            C::Plc,
            0.65,
            "Profinet device",
            "answers Profinet DCP or sends cyclic Profinet data".to_owned(),
        );
    } else if h.uses(Proto::ProfinetDcp) {
        // Devices check at start-up that nobody else holds their station name (a DCP Identify for it).
        vote(
            C::Plc,
            0.5,
            "Profinet device",
            "sends Profinet DCP identify requests".to_owned(),
        );
    }
    if h.answers(Proto::HartIp) {
        vote(
            C::Gateway,
            0.6,
            "HART-IP gateway or multiplexer",
            "answers HART-IP".to_owned(),
        );
    }
    if h.answers(Proto::Knx) {
        vote(
            C::Gateway,
            0.6,
            "KNXnet/IP interface or router",
            "answers KNXnet/IP".to_owned(),
        );
    }
    if h.answers(Proto::Fins) {
        vote(
            C::Plc,
            0.85,
            "Omron controller",
            "answers Omron FINS".to_owned(),
        );
    }
    if h.answers(Proto::Ubiquiti) {
        vote(
            C::Network,
            0.7,
            "Ubiquiti network device",
            "answers Ubiquiti discovery".to_owned(),
        );
    }
    if h.answers(Proto::OpcUa) {
        vote(
            C::Gateway,
            0.55,
            "OPC UA server",
            "serves OPC UA".to_owned(),
        );
    }
    let programs = h.commands.keys().any(|(_, k, _, _)| {
        matches!(
            k,
            CommandKind::Program | CommandKind::Stop | CommandKind::Restart | CommandKind::Reserve
        )
    });
    if programs {
        vote(
            C::EngineeringStation,
            0.9,
            "engineering station",
            "sent program, reservation, stop or restart commands".to_owned(),
        );
    }
    if h.uses(Proto::S7comm) || h.uses(Proto::S7commPlus) {
        vote(
            C::EngineeringStation,
            0.7,
            "engineering station",
            "opens S7 sessions to controllers".to_owned(),
        );
    }
    for p in [
        Proto::Modbus,
        Proto::Dnp3,
        Proto::Iec104,
        Proto::Enip,
        Proto::OpcUa,
        Proto::Bacnet,
        Proto::Mms,
    ] {
        if h.uses(p) && !h.answers(p) && polled(p) && !scanner {
            vote(
                C::Hmi,
                0.75,
                "SCADA master / HMI",
                format!("polls devices over {}", p.as_str()),
            );
        }
    }
    if h.answers(Proto::Mqtt) {
        vote(C::Gateway, 0.7, "MQTT broker", "serves MQTT".to_owned());
    }
    if h.uses(Proto::Mqtt) && !h.answers(Proto::Mqtt) {
        vote(
            C::Sensor,
            0.6,
            "MQTT client",
            "publishes over MQTT".to_owned(),
        );
    }
    if h.values(Field::Service).any(|s| {
        s.contains("_rtsp") || s.contains("camera") || s.ends_with("NetworkVideoTransmitter")
    }) {
        vote(
            C::Camera,
            0.8,
            "IP camera",
            "announces a camera service".to_owned(),
        );
    }
    if h.values(Field::Hostname)
        .any(|n| n.to_ascii_lowercase().contains("cam"))
    {
        vote(
            C::Camera,
            0.4,
            "IP camera",
            "its name suggests a camera".to_owned(),
        );
    }
    if fronts_many {
        vote(
            C::Network,
            0.6,
            "router",
            "its hardware address sends for many IP addresses".to_owned(),
        );
    }
    if h.answers(Proto::Dhcp) || h.answers(Proto::Dns) {
        vote(
            C::ItHost,
            0.55,
            "infrastructure server",
            "serves DHCP or DNS".to_owned(),
        );
    }
    for p in [Proto::Tls, Proto::Http, Proto::Ssh] {
        if h.answers(p) {
            vote(C::ItHost, 0.45, "server", format!("serves {}", p.as_str()));
        }
    }
    if h.values(Field::Service)
        .any(|s| s.contains("_ipp") || s.contains("_printer") || s.ends_with("PrintDeviceType"))
    {
        vote(
            C::ItHost,
            0.6,
            "printer",
            "announces a printing service".to_owned(),
        );
    }
    for (f, why) in [
        (Field::UserAgent, "sends an HTTP user agent"),
        (Field::Ja3, "opens TLS sessions"),
        (Field::SshBanner, "speaks SSH"),
        (Field::HttpServer, "serves HTTP"),
    ] {
        if h.first(f).is_some() {
            vote(C::ItHost, 0.5, "IT host", why.to_owned());
        }
    }
    if h.first(Field::DhcpParams).is_some() || h.uses(Proto::Nbns) || h.answers(Proto::Mdns) {
        vote(
            C::ItHost,
            0.45,
            "IT host",
            "behaves as a general-purpose host (DHCP, NetBIOS or mDNS)".to_owned(),
        );
    }
    for d in h.values(Field::Description) {
        if ["Linux", "Windows", "Darwin"]
            .iter()
            .any(|os| d.contains(os))
        {
            vote(
                C::ItHost,
                0.55,
                "IT host",
                format!("describes itself as \"{}\"", short(d)),
            );
        }
    }

    // The class with the highest single vote wins; each further vote for it adds a little.
    let Some(best) = votes.iter().max_by(|a, b| {
        a.weight
            .partial_cmp(&b.weight)
            .unwrap_or(std::cmp::Ordering::Equal)
    }) else {
        return Classification {
            class: DeviceClass::Unknown,
            role: "unknown".to_owned(),
            confidence: 0.0,
            evidence: vec!["nothing in the traffic identifies it".to_owned()],
        };
    };
    let support = votes.iter().filter(|v| v.class == best.class).count();
    let confidence = (best.weight + 0.03 * (support as f32 - 1.0)).min(0.99);
    let mut evidence: Vec<String> = Vec::new();
    for v in votes.iter().filter(|v| v.class == best.class) {
        if !evidence.contains(&v.why) {
            evidence.push(v.why.clone());
        }
    }
    Classification {
        class: best.class,
        role: best.role.to_owned(),
        confidence: (confidence * 100.0).round() / 100.0,
        evidence,
    }
}

fn short(s: &str) -> String {
    let mut t: String = s.chars().take(48).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}
