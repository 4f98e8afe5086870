//! What passive discovery saw one registry device do over a capture's time span, as the trust engine reads
//! it: its peers, the protocols it spoke, and the risks discovery attributed to it.
//!
//! Bounded where it is parsed, not only where it is built: every list is a [`Bounded`], whose deserializer
//! stops at its limit, so a damaged or hostile queue row costs at most that many entries before it is refused.

use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::ops::Deref;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{CredentialUser, DeviceId, MacAddr, ProtocolName, Timestamp};

/// Peers kept per sighting (the busiest, by bytes): enough to describe a device's role on the map.
pub const MAX_PEERS: usize = 32;
/// Protocols kept per side (client, server): more than discovery recognises a device speaking.
pub const MAX_PROTOCOLS: usize = 64;
/// Risks kept per sighting.
pub const MAX_RISKS: usize = 32;

/// A list of at most `N` items, in serde too: deserializing more is an error, raised at the item past `N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Bounded<T, const N: usize>(Vec<T>);

impl<T, const N: usize> Bounded<T, N> {
    /// The first `N` of `items`, and how many were left out.
    pub fn truncating(mut items: Vec<T>) -> (Self, usize) {
        let left_out = items.len().saturating_sub(N);
        items.truncate(N);
        (Self(items), left_out)
    }

    /// The items.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<T, const N: usize> Default for Bounded<T, N> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T, const N: usize> Deref for Bounded<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T, const N: usize> TryFrom<Vec<T>> for Bounded<T, N> {
    type Error = crate::ValidationError;
    fn try_from(items: Vec<T>) -> Result<Self, Self::Error> {
        if items.len() > N {
            return Err(crate::ValidationError::new(
                "list",
                format!("at most {N} entries, not {}", items.len()),
            ));
        }
        Ok(Self(items))
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Seq<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for Seq<T, N> {
            type Value = Bounded<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a list of at most {N} entries")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N));
                while let Some(item) = seq.next_element()? {
                    if out.len() == N {
                        return Err(serde::de::Error::custom(format!("more than {N} entries")));
                    }
                    out.push(item);
                }
                Ok(Bounded(out))
            }
        }
        d.deserialize_seq(Seq(PhantomData))
    }
}

/// A protocol as a sighting names it: its name, and whether it is an industrial (OT) protocol, which
/// discovery knows and the trust engine's table reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Protocol {
    /// Its name.
    pub name: ProtocolName,
    /// An industrial protocol (Modbus, S7comm, DNP3, …).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub industrial: bool,
}

/// Which side of a conversation the sighted device was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// It opened the conversations (the client).
    Client,
    /// It was contacted (the server).
    Server,
}

/// One peer of the sighted device over one protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The peer's IP address, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The peer's hardware address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The registry device the peer is, when the same merge linked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    /// The protocol spoken.
    pub protocol: Protocol,
    /// The sighted device's side.
    pub side: Side,
    /// Packets both ways.
    pub packets: u64,
    /// Bytes both ways.
    pub bytes: u64,
}

/// A state-changing industrial command, by what it does (discovery's dissectors name theirs with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OtCommand {
    /// Writes process values or registers.
    Write,
    /// Downloads, uploads or changes the program or configuration.
    Program,
    /// Stops the controller or a process.
    Stop,
    /// Starts, restarts or resets the controller.
    Restart,
    /// Changes the device's time.
    SetTime,
    /// Takes or releases exclusive engineering ownership of the controller (UMAS reservation), which comes
    /// before any change to its program.
    Reserve,
}

impl OtCommand {
    /// The command's kind as a word ("program").
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Program => "program",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::SetTime => "set-time",
            Self::Reserve => "reservation",
        }
    }
}

/// A risk discovery attributed to the sighted device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "risk", rename_all = "snake_case")]
pub enum NetworkRisk {
    /// It sent a password or community in clear text: the protocol and the user only, never the secret.
    CleartextCredential {
        /// Over which protocol.
        protocol: ProtocolName,
        /// For which user, when the protocol names one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<CredentialUser>,
    },
    /// It sent state-changing industrial commands.
    OtCommandSent {
        /// In which protocol.
        protocol: ProtocolName,
        /// What they do.
        command: OtCommand,
        /// To whom (the target's address, when it has one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<IpAddr>,
        /// How many.
        count: u64,
    },
    /// It exposes a clear-text service (Telnet, FTP).
    InsecureService {
        /// Which.
        protocol: ProtocolName,
    },
}

/// What passive discovery saw one registry device do between `start` and `end` (its first and last packet
/// in the capture).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSighting {
    /// The registry device.
    pub device: DeviceId,
    /// Its first packet in the capture.
    pub start: Timestamp,
    /// Its last packet.
    pub end: Timestamp,
    /// Its peers, busiest first (at most [`MAX_PEERS`]).
    #[serde(default, skip_serializing_if = "<[Peer]>::is_empty")]
    pub peers: Bounded<Peer, MAX_PEERS>,
    /// Peers past [`MAX_PEERS`], left out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub peers_left_out: u32,
    /// The protocols it spoke as a client.
    #[serde(default, skip_serializing_if = "<[Protocol]>::is_empty")]
    pub client_of: Bounded<Protocol, MAX_PROTOCOLS>,
    /// The protocols it spoke as a server.
    #[serde(default, skip_serializing_if = "<[Protocol]>::is_empty")]
    pub server_of: Bounded<Protocol, MAX_PROTOCOLS>,
    /// The risks discovery attributed to it, worst first.
    #[serde(default, skip_serializing_if = "<[NetworkRisk]>::is_empty")]
    pub risks: Bounded<NetworkRisk, MAX_RISKS>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_list_past_its_bound_is_refused_while_parsing() {
        let ok: Bounded<u8, 2> = serde_json::from_str("[1,2]").unwrap();
        assert_eq!(&*ok, &[1, 2]);
        let err = serde_json::from_str::<Bounded<u8, 2>>("[1,2,3]").unwrap_err();
        assert!(err.to_string().contains("more than 2 entries"), "{err}");
        let (cut, left_out) = Bounded::<u8, 2>::truncating(vec![1, 2, 3, 4]);
        assert_eq!((&*cut, left_out), (&[1u8, 2][..], 2));
        assert!(Bounded::<u8, 2>::try_from(vec![1, 2, 3]).is_err());
    }

    #[test]
    fn a_sighting_round_trips_and_keeps_no_secret_field() {
        let s = NetworkSighting {
            device: DeviceId::derived("s"),
            start: Timestamp::from_unix_micros(1),
            end: Timestamp::from_unix_micros(2),
            peers: vec![Peer {
                ip: Some("10.0.0.2".parse().unwrap()),
                mac: None,
                device: None,
                protocol: Protocol {
                    name: "modbus".parse().unwrap(),
                    industrial: true,
                },
                side: Side::Client,
                packets: 4,
                bytes: 300,
            }]
            .try_into()
            .unwrap(),
            peers_left_out: 0,
            client_of: Bounded::default(),
            server_of: Bounded::default(),
            risks: vec![NetworkRisk::CleartextCredential {
                protocol: "ftp".parse().unwrap(),
                user: Some("anonymous".parse().unwrap()),
            }]
            .try_into()
            .unwrap(),
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""risk":"cleartext_credential""#), "{json}");
        assert_eq!(serde_json::from_str::<NetworkSighting>(&json).unwrap(), s);
        // A peer with an unknown protocol name is refused, not kept as free text.
        let bad = json.replace(r#""modbus""#, r#""Mod Bus""#);
        assert!(serde_json::from_str::<NetworkSighting>(&bad).is_err());
    }
}
