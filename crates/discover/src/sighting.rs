//! A merged report as observations for the trust engine: one [`NetworkSighting`] per discovered device that
//! the merge linked to a managed registry device (its `registry` link), saying whom it talked to over what,
//! the protocols it spoke on either side, and the risks discovery attributed to it. Pure: the merge use case
//! queues what this returns.
//!
//! Unlinked and unmanaged devices produce nothing: trust is scored for devices holding a Vouch identity, and
//! a `discovered` device has none yet. An industrial command is a risk on its receiver in the report; here it
//! is turned around and attributed to its sender, since a sighting says what the sighted device did.

use std::collections::BTreeMap;
use std::net::IpAddr;

use vouch_types::{
    Bounded, CredentialUser, DeviceId, MacAddr, NetworkRisk, NetworkSighting, Observation,
    OtCommand, Peer, Protocol, ProtocolName, Side, Timestamp,
};

use crate::facts::Proto;
use crate::report::{DeviceReport, Report, RiskFact};

/// One sighting per report device linked to a managed registry device (see the module's doc).
pub fn sightings(report: &Report) -> Vec<Observation> {
    let by_key: BTreeMap<&str, &DeviceReport> =
        report.devices.iter().map(|d| (d.key.as_str(), d)).collect();
    let capture_span = (
        parse_time(report.capture.first.as_deref()),
        parse_time(report.capture.last.as_deref()),
    );
    let mut out = Vec::new();
    for d in &report.devices {
        let Some(link) = d.registry.as_ref().filter(|l| l.managed) else {
            continue;
        };
        let start = parse_time(d.first_seen.as_deref()).or(capture_span.0);
        let end = parse_time(d.last_seen.as_deref()).or(capture_span.1);
        let (Some(start), Some(end)) = (start, end) else {
            // A device with no packet time cannot be placed in time, so it cannot be judged.
            continue;
        };
        let (peers, left_out) = Bounded::truncating(peers(report, &by_key, &d.key));
        out.push(Observation::Network(NetworkSighting {
            device: link.device_id,
            start,
            end: end.max(start),
            peers,
            peers_left_out: u32::try_from(left_out).unwrap_or(u32::MAX),
            client_of: Bounded::truncating(protocols(&d.uses)).0,
            server_of: Bounded::truncating(protocols(&d.serves)).0,
            risks: Bounded::truncating(risks(report, d)).0,
        }));
    }
    out
}

fn parse_time(s: Option<&str>) -> Option<Timestamp> {
    s?.parse().ok()
}

/// The protocol a map edge's service names, when its name is a valid protocol name.
fn protocol(service: &str) -> Option<Protocol> {
    let name: ProtocolName = service.parse().ok()?;
    let industrial = crate::proto::all().any(|p| p.as_str() == service && p.is_ot());
    Some(Protocol { name, industrial })
}

fn protocols(list: &[Proto]) -> Vec<Protocol> {
    list.iter().filter_map(|p| protocol(p.as_str())).collect()
}

/// The addresses a report key stands for: a device's first address, hardware address and registry device,
/// else the address in an `ip:` key (a group address, say).
fn peer_of(
    by_key: &BTreeMap<&str, &DeviceReport>,
    key: &str,
) -> (Option<IpAddr>, Option<MacAddr>, Option<DeviceId>) {
    match by_key.get(key) {
        Some(d) => (
            d.ips.first().copied(),
            d.mac,
            d.registry.as_ref().map(|l| l.device_id),
        ),
        None => (
            key.strip_prefix("ip:")
                .and_then(|a| a.parse::<IpAddr>().ok()),
            None,
            None,
        ),
    }
}

/// Every map edge of `key`, busiest first.
fn peers(report: &Report, by_key: &BTreeMap<&str, &DeviceReport>, key: &str) -> Vec<Peer> {
    let mut out: Vec<Peer> = report
        .map
        .iter()
        .filter_map(|e| {
            let (side, other) = if e.client == key {
                (Side::Client, &e.server)
            } else if e.server == key {
                (Side::Server, &e.client)
            } else {
                return None;
            };
            let (ip, mac, device) = peer_of(by_key, other);
            Some(Peer {
                ip,
                mac,
                device,
                protocol: protocol(&e.service)?,
                side,
                packets: e.forward.packets + e.back.packets,
                bytes: e.forward.bytes + e.back.bytes,
            })
        })
        .collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.packets.cmp(&a.packets)));
    out
}

/// What `d` did that discovery holds against it: credentials it sent and services it exposes (its own
/// risks), and the commands it sent (risks of their receivers), those that change a controller first.
fn risks(report: &Report, d: &DeviceReport) -> Vec<NetworkRisk> {
    let name = |p: Proto| ProtocolName::try_from(p.as_str().to_owned()).ok();
    let mut out = Vec::new();
    for r in &d.risks {
        match &r.about {
            Some(RiskFact::Credential { protocol, user }) => {
                if let Some(protocol) = name(*protocol) {
                    out.push(NetworkRisk::CleartextCredential {
                        protocol,
                        // A user name that is not printable text is left out, not shown altered.
                        user: user.clone().and_then(|u| CredentialUser::try_from(u).ok()),
                    });
                }
            }
            Some(RiskFact::Service { protocol }) => {
                if let Some(protocol) = name(*protocol) {
                    out.push(NetworkRisk::InsecureService { protocol });
                }
            }
            _ => {}
        }
    }
    for target in &report.devices {
        for r in &target.risks {
            if let Some(RiskFact::Command {
                protocol,
                kind,
                from,
                count,
            }) = &r.about
                && *from == d.key
                && let Some(protocol) = name(*protocol)
            {
                out.push(NetworkRisk::OtCommandSent {
                    protocol,
                    command: *kind,
                    target: target.ips.first().copied(),
                    count: *count,
                });
            }
        }
    }
    out.sort_by_key(|r| match r {
        NetworkRisk::OtCommandSent { command, .. } => match command {
            OtCommand::Program | OtCommand::Stop | OtCommand::Restart | OtCommand::Reserve => 0,
            _ => 1,
        },
        NetworkRisk::CleartextCredential { .. } => 2,
        NetworkRisk::InsecureService { .. } => 3,
    });
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::merge::RegistryLink;
    use crate::testutil::pcap;
    use crate::{Discovery, Limits};
    use vouch_types::DeviceState;

    fn discover(name: &str) -> Report {
        let mut run = Discovery::new(Limits::default());
        let file = std::fs::File::open(pcap(name)).unwrap();
        run.read(name, std::io::BufReader::new(file)).unwrap();
        run.finish(None)
    }

    fn link(report: &mut Report, ip: &str, state: DeviceState) -> DeviceId {
        let ip: IpAddr = ip.parse().unwrap();
        let id = DeviceId::derived(&format!("test:{ip}"));
        let d = report
            .devices
            .iter_mut()
            .find(|d| d.ips.contains(&ip))
            .unwrap_or_else(|| panic!("no device {ip}"));
        d.registry = Some(RegistryLink {
            device_id: id,
            state,
            managed: state.is_managed(),
            matched_by: None,
            changes: Vec::new(),
        });
        id
    }

    fn sighting(o: &Observation) -> &NetworkSighting {
        match o {
            Observation::Network(s) => s,
            other => panic!("not a sighting: {other:?}"),
        }
    }

    #[test]
    fn only_devices_linked_to_managed_registry_devices_are_sighted() {
        let mut r = discover("z_snmp.pcap");
        assert!(sightings(&r).is_empty(), "nothing linked, nothing sighted");
        link(&mut r, "138.68.10.203", DeviceState::Discovered);
        assert!(sightings(&r).is_empty(), "unmanaged: nothing");
        let manager = link(&mut r, "138.68.14.240", DeviceState::Active);
        let agent = link(&mut r, "138.68.10.203", DeviceState::Active);
        let all = sightings(&r);
        assert_eq!(all.len(), 2);
        let s = all
            .iter()
            .map(sighting)
            .find(|s| s.device == manager)
            .unwrap();
        // tshark: 138.68.14.240 sends SNMP requests with a community string to the agent.
        assert!(
            s.risks.iter().any(|r| matches!(
                r,
                NetworkRisk::CleartextCredential { protocol, .. } if protocol.as_str() == "snmp"
            )),
            "{s:?}"
        );
        assert!(s.client_of.iter().any(|p| p.name.as_str() == "snmp"));
        let to_agent = s
            .peers
            .iter()
            .find(|p| p.ip == Some("138.68.10.203".parse().unwrap()))
            .expect("the agent is a peer");
        assert_eq!(
            (
                to_agent.side,
                to_agent.device,
                to_agent.protocol.name.as_str()
            ),
            (Side::Client, Some(agent), "snmp")
        );
        assert!(to_agent.packets > 0 && to_agent.bytes > 0);
        assert!(s.start <= s.end);
        // The agent answered: it is the server, and sent no credential.
        let a = all
            .iter()
            .map(sighting)
            .find(|s| s.device == agent)
            .unwrap();
        assert!(a.risks.is_empty(), "{a:?}");
        assert!(a.server_of.iter().any(|p| p.name.as_str() == "snmp"));
        assert!(
            a.peers
                .iter()
                .all(|p| p.side == Side::Server && p.device == Some(manager))
        );
    }

    #[test]
    fn industrial_commands_are_attributed_to_their_sender() {
        // The first of the industrial captures in which discovery saw a state-changing command.
        let (mut r, (sender, target, kinds)) = [
            "iti_modbus1.pcap",
            "iti_s7_status.pcap",
            "iti_dnp3_1.pcap",
            "iti_iec104.pcap",
            "iti_enip_status.pcap",
            "z_modbusBig.pcap",
        ]
        .into_iter()
        .find_map(|name| {
            let r = discover(name);
            let found = r
                .devices
                .iter()
                .flat_map(|d| d.risks.iter().map(move |k| (d, k)))
                .find_map(|(d, k)| match &k.about {
                    Some(RiskFact::Command { from, kind, .. }) => {
                        Some((from.clone(), d.ips[0], *kind))
                    }
                    _ => None,
                })?;
            Some((r, found))
        })
        .expect("a shared capture holds industrial commands");
        let sender_ip = r
            .devices
            .iter()
            .find(|d| d.key == sender)
            .map(|d| d.ips[0])
            .unwrap();
        let id = link(&mut r, &sender_ip.to_string(), DeviceState::Active);
        let all = sightings(&r);
        let s = sighting(&all[0]);
        assert_eq!(s.device, id);
        assert!(
            s.risks.iter().any(|r| matches!(
                r,
                NetworkRisk::OtCommandSent { command, target: t, protocol, count }
                    if *command == kinds && *t == Some(target)
                        && !protocol.as_str().is_empty() && *count > 0
            )),
            "{s:?}"
        );
        assert!(s.peers.iter().any(|p| p.protocol.industrial), "{s:?}");
    }

    #[test]
    fn a_busy_device_keeps_its_busiest_peers() {
        let mut r = discover("z_mdns.pcap");
        let ip = r.devices.iter().max_by_key(|d| d.sent.packets).unwrap().ips[0];
        link(&mut r, &ip.to_string(), DeviceState::Active);
        let all = sightings(&r);
        let s = sighting(&all[0]);
        assert!(s.peers.len() <= vouch_types::MAX_PEERS);
        assert!(s.peers.windows(2).all(|w| w[0].bytes >= w[1].bytes));
    }
}
