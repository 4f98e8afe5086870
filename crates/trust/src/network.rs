//! What passive discovery saw a device do on the wire ([`NetworkSighting`]), as penalties with reasons.
//!
//! Penalties (component `network`), by what the sighting shows the device did:
//!
//! | condition | penalty |
//! |---|---|
//! | sent a credential in clear text (a password, an SNMP community) | 20 per protocol, at most 30 |
//! | sent industrial program, stop, restart or reservation commands, and its class is not an engineering station or HMI | 40 |
//! | sent industrial write commands, and its class is not an engineering station, HMI, PLC, RTU or gateway | 20 |
//! | serves a clear-text service (Telnet, FTP) | 10 per service, at most 20 |
//! | spoke an industrial protocol as a client, and its class never commands controllers (sensor, actuator, camera, medical, vehicle, network device) | 15 |
//! | talked to a peer the zone map places in another zone than the device's (gateways and network devices exempt: crossing zones is their job) | 15 |
//!
//! Together at most [`NETWORK_CAP`]: what the wire shows can make a device untrusted, but the identity and
//! state penalties keep their weight beside it. Network penalties are remembered and decay like behaviour
//! ones (`crate::memory`, in a memory of their own with this cap), from the capture's end: judged at the
//! caller's clock, a capture from long ago costs what is left of its penalty by then. Why these: a clear-text secret can be replayed by
//! anyone on the segment; a controller stopped or reprogrammed from something that is not its engineering
//! station is the signature of the attacks OT monitoring exists for (TRITON, Industroyer); the class rules
//! are deliberately coarse, since the registry's class is the operator's word and a finer table would
//! guess.

use std::net::IpAddr;

use vouch_types::{DeviceClass, NetworkRisk, NetworkSighting, OtCommand, Side};

use crate::memory::Pool;
use crate::score::ScoreReason;

/// The most network penalties (fresh and remembered together) take off the score.
pub const NETWORK_CAP: f64 = 70.0;

/// The memory of network penalties.
pub(crate) const NETWORK: Pool = Pool {
    component: "network",
    cap: NETWORK_CAP,
};

/// What the registry and the zone map say about the sighted device: its zone, and the zone of an address.
pub struct Whereabouts<'a> {
    /// The zone the device is expected in, if it has one.
    pub zone: Option<&'a str>,
    /// The zone an address is in, per the zone map.
    pub zone_of: &'a dyn Fn(IpAddr) -> Option<String>,
}

impl std::fmt::Debug for Whereabouts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whereabouts")
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

/// Commands that change what a controller runs or whether it runs.
fn changes_controller(c: OtCommand) -> bool {
    matches!(
        c,
        OtCommand::Program | OtCommand::Stop | OtCommand::Restart | OtCommand::Reserve
    )
}

/// The penalties a sighting of a device of `class` earns, each with its reason, within [`NETWORK_CAP`].
pub fn penalties(
    s: &NetworkSighting,
    class: DeviceClass,
    at: &Whereabouts<'_>,
) -> Vec<ScoreReason> {
    let mut out = Vec::new();
    let mut take = |penalty: u8, why: String| {
        out.push(ScoreReason {
            penalty,
            component: NETWORK.component,
            why,
            incurred: None,
        })
    };
    let mut credentials = Vec::new();
    let mut services = Vec::new();
    let (mut controller, mut writes) = (Vec::new(), Vec::new());
    for r in s.risks.iter() {
        match r {
            NetworkRisk::CleartextCredential { protocol, user } => {
                let who = user
                    .as_ref()
                    .map(|u| format!(" (user \"{u}\")"))
                    .unwrap_or_default();
                let entry = format!("{protocol}{who}");
                if !credentials.contains(&entry) {
                    credentials.push(entry);
                }
            }
            NetworkRisk::InsecureService { protocol } => {
                if !services.contains(&protocol.as_str()) {
                    services.push(protocol.as_str());
                }
            }
            NetworkRisk::OtCommandSent {
                protocol,
                command,
                target,
                count,
            } => {
                let to = target.map(|t| format!(" to {t}")).unwrap_or_default();
                let what = format!("{count} {protocol} {} command(s){to}", command.as_str());
                if changes_controller(*command) {
                    controller.push(what);
                } else if *command == OtCommand::Write {
                    writes.push(what);
                }
            }
        }
    }
    if !credentials.is_empty() {
        let penalty = (20 * credentials.len()).min(30) as u8;
        take(
            penalty,
            format!(
                "it sent credentials in clear text over {}",
                credentials.join(", ")
            ),
        );
    }
    let commands_ok = matches!(class, DeviceClass::EngineeringStation | DeviceClass::Hmi);
    if !controller.is_empty() && !commands_ok {
        take(
            40,
            format!(
                "it sent {}, and its class ({}) is not an engineering station or HMI",
                list(&controller),
                class.as_str()
            ),
        );
    }
    let writes_ok = commands_ok
        || matches!(
            class,
            DeviceClass::Plc | DeviceClass::Rtu | DeviceClass::Gateway
        );
    if !writes.is_empty() && !writes_ok {
        take(
            20,
            format!(
                "it sent {}, and its class ({}) does not write to controllers",
                list(&writes),
                class.as_str()
            ),
        );
    }
    if !services.is_empty() {
        let penalty = (10 * services.len()).min(20) as u8;
        take(
            penalty,
            format!("it serves {} (clear text)", services.join(", ")),
        );
    }
    let never_commands = matches!(
        class,
        DeviceClass::Sensor
            | DeviceClass::Actuator
            | DeviceClass::Camera
            | DeviceClass::Medical
            | DeviceClass::Vehicle
            | DeviceClass::Network
    );
    if never_commands {
        let spoken: Vec<&str> = s
            .client_of
            .iter()
            .filter(|p| p.industrial)
            .map(|p| p.name.as_str())
            .collect();
        if !spoken.is_empty() {
            take(
                15,
                format!(
                    "it speaks {} as a client, which its class ({}) does not",
                    spoken.join(", "),
                    class.as_str()
                ),
            );
        }
    }
    let crosses = matches!(class, DeviceClass::Gateway | DeviceClass::Network);
    if let (Some(own), false) = (at.zone, crosses) {
        let foreign: Vec<String> = s
            .peers
            .iter()
            .filter_map(|p| {
                let ip = p.ip?;
                let zone = (at.zone_of)(ip).filter(|z| z != own)?;
                let dir = match p.side {
                    Side::Client => "to",
                    Side::Server => "from",
                };
                Some(format!("{} {dir} {ip} in {zone}", p.protocol.name))
            })
            .collect();
        if !foreign.is_empty() {
            take(
                15,
                format!(
                    "it talked to another zone than its own ({own}): {}",
                    list(&foreign)
                ),
            );
        }
    }
    // Within the cap, the largest penalties kept whole.
    out.sort_by_key(|r| std::cmp::Reverse(r.penalty));
    let mut room = NETWORK_CAP as u32;
    out.retain_mut(|r| {
        let p = u32::from(r.penalty).min(room);
        room -= p;
        r.penalty = p as u8;
        p > 0
    });
    out
}

/// The first three, and how many more.
fn list(items: &[String]) -> String {
    let shown = items.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    match items.len() {
        n if n > 3 => format!("{shown} and {} more", n - 3),
        _ => shown,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use vouch_types::{Bounded, DeviceId, Peer, Protocol, Timestamp};

    fn sighting(risks: Vec<NetworkRisk>) -> NetworkSighting {
        NetworkSighting {
            device: DeviceId::derived("n"),
            start: Timestamp::from_unix_micros(0),
            end: Timestamp::from_unix_micros(10),
            peers: Bounded::default(),
            peers_left_out: 0,
            client_of: Bounded::default(),
            server_of: Bounded::default(),
            risks: risks.try_into().unwrap(),
        }
    }

    fn nowhere() -> Whereabouts<'static> {
        Whereabouts {
            zone: None,
            zone_of: &|_| None,
        }
    }

    fn stop() -> NetworkRisk {
        NetworkRisk::OtCommandSent {
            protocol: "s7comm".parse().unwrap(),
            command: OtCommand::Stop,
            target: Some("10.0.0.5".parse().unwrap()),
            count: 2,
        }
    }

    fn total(r: &[ScoreReason]) -> u32 {
        r.iter().map(|r| u32::from(r.penalty)).sum()
    }

    #[test]
    fn a_clean_sighting_costs_nothing() {
        assert!(penalties(&sighting(vec![]), DeviceClass::Sensor, &nowhere()).is_empty());
    }

    #[test]
    fn a_clear_text_credential_is_named_without_its_secret() {
        let s = sighting(vec![NetworkRisk::CleartextCredential {
            protocol: "ftp".parse().unwrap(),
            user: Some("operator".parse().unwrap()),
        }]);
        let r = penalties(&s, DeviceClass::Plc, &nowhere());
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].to_string(),
            "−20: it sent credentials in clear text over ftp (user \"operator\")"
        );
        assert_eq!(r[0].component, "network");
    }

    #[test]
    fn stopping_a_controller_is_an_engineering_stations_job() {
        let s = sighting(vec![stop()]);
        let r = penalties(&s, DeviceClass::ItHost, &nowhere());
        assert_eq!(
            r[0].to_string(),
            "−40: it sent 2 s7comm stop command(s) to 10.0.0.5, and its class (it-host) is not an \
             engineering station or HMI"
        );
        assert!(penalties(&s, DeviceClass::EngineeringStation, &nowhere()).is_empty());
        let writes = sighting(vec![NetworkRisk::OtCommandSent {
            protocol: "modbus".parse().unwrap(),
            command: OtCommand::Write,
            target: None,
            count: 9,
        }]);
        assert!(penalties(&writes, DeviceClass::Plc, &nowhere()).is_empty());
        assert_eq!(
            total(&penalties(&writes, DeviceClass::Camera, &nowhere())),
            20
        );
    }

    #[test]
    fn class_and_zone_rules_and_the_cap() {
        let mut s = sighting(vec![
            stop(),
            NetworkRisk::CleartextCredential {
                protocol: "telnet".parse().unwrap(),
                user: None,
            },
            NetworkRisk::CleartextCredential {
                protocol: "snmp".parse().unwrap(),
                user: None,
            },
            NetworkRisk::InsecureService {
                protocol: "telnet".parse().unwrap(),
            },
        ]);
        let modbus = Protocol {
            name: "modbus".parse().unwrap(),
            industrial: true,
        };
        s.client_of = vec![modbus.clone()].try_into().unwrap();
        s.peers = vec![Peer {
            ip: Some("10.9.0.1".parse().unwrap()),
            mac: None,
            device: None,
            protocol: modbus,
            side: Side::Client,
            packets: 1,
            bytes: 60,
        }]
        .try_into()
        .unwrap();
        let zone_of = |ip: IpAddr| (ip.to_string() == "10.9.0.1").then(|| "plant-b".to_owned());
        let at = Whereabouts {
            zone: Some("plant-a"),
            zone_of: &zone_of,
        };
        let r = penalties(&s, DeviceClass::Camera, &at);
        assert_eq!(total(&r), 70, "capped: {r:?}");
        assert_eq!(r[0].penalty, 40);
        assert!(
            r.iter()
                .any(|r| r.why.contains("over telnet, snmp") && r.penalty == 30)
        );
        // A gateway crosses zones and writes by design; it still may not stop controllers.
        let g = penalties(&s, DeviceClass::Gateway, &at);
        assert!(g.iter().all(|r| !r.why.contains("another zone")), "{g:?}");
        assert!(g.iter().any(|r| r.penalty == 40));
        let same = Whereabouts {
            zone: Some("plant-b"),
            zone_of: &zone_of,
        };
        let c = penalties(&s, DeviceClass::Camera, &same);
        assert!(c.iter().all(|r| !r.why.contains("another zone")), "{c:?}");
        let speaks = penalties(&sighting(vec![]), DeviceClass::Sensor, &nowhere());
        assert!(speaks.is_empty());
    }
}
