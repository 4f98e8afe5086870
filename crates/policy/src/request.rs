//! What a decision is asked about: a device or an operator, an action, a resource, and the live context.
//!
//! These are the engine's typed inputs; the HTTP API, the gateway and the decision log all speak them, so a
//! recorded decision can be replayed against another policy set with exactly the facts it was made on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use vouch_types::{
    Device, DeviceId, DeviceState, Permission, Role, Timestamp, TokenId, TrustScore,
    ValidationError,
};

use crate::topic::{TopicFilter, TopicName};

/// What a device asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceAction {
    /// Open a session with a service (an MQTT CONNECT).
    Connect,
    /// Publish to a topic.
    Publish,
    /// Subscribe to a topic filter.
    Subscribe,
    /// Read from an OT asset or service.
    Read,
    /// Write to an OT asset or service.
    Write,
    /// Send a command (start, stop, program) to an OT asset or service.
    Command,
}

impl DeviceAction {
    /// Every device action.
    pub const ALL: [DeviceAction; 6] = [
        Self::Connect,
        Self::Publish,
        Self::Subscribe,
        Self::Read,
        Self::Write,
        Self::Command,
    ];

    /// The Cedar action's id.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Read => "read",
            Self::Write => "write",
            Self::Command => "command",
        }
    }
}

impl fmt::Display for DeviceAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceAction {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        vouch_types::parse_named("action", s, &Self::ALL, Self::as_str)
    }
}

/// What a device acts on. The kind must suit the action (a topic to publish, a filter to subscribe, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id")]
pub enum Resource {
    /// A topic name, for `publish`.
    Topic(TopicName),
    /// A topic filter, for `subscribe`.
    Subscription(TopicFilter),
    /// A service by name (`mqtt`), for `connect`, `read`, `write`, `command`.
    Service(ResourceName),
    /// An OT asset by name, for `read`, `write`, `command`.
    Asset(ResourceName),
}

impl Resource {
    /// Whether `action` may be asked about this kind of resource (the schema's `appliesTo`).
    pub fn suits(&self, action: DeviceAction) -> bool {
        use DeviceAction::*;
        matches!(
            (action, self),
            (Connect, Resource::Service(_))
                | (Publish, Resource::Topic(_))
                | (Subscribe, Resource::Subscription(_))
                | (
                    Read | Write | Command,
                    Resource::Service(_) | Resource::Asset(_)
                )
        )
    }

    /// The resource's id as text.
    pub fn id(&self) -> &str {
        match self {
            Self::Topic(t) => t.as_str(),
            Self::Subscription(f) => f.as_str(),
            Self::Service(n) | Self::Asset(n) => n.as_str(),
        }
    }
}

/// A service's or asset's name: printable, at most 256 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceName(String);

impl ResourceName {
    /// `mqtt`: the service an MQTT CONNECT asks for.
    pub fn mqtt() -> Self {
        Self("mqtt".to_owned())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ResourceName {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.is_empty()
            || s.len() > 256
            || s.chars()
                .any(|c| c.is_control() || vouch_types::is_invisible(c))
        {
            return Err(ValidationError::new(
                "resource name",
                "must be 1 to 256 printable bytes",
            ));
        }
        Ok(Self(s))
    }
}

impl FromStr for ResourceName {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl From<ResourceName> for String {
    fn from(v: ResourceName) -> String {
        v.0
    }
}

/// The registry's facts about a device that policies may read (`principal.class`, `principal in …`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceFacts {
    /// Its id.
    pub id: DeviceId,
    /// Its class (`sensor`, `plc`, …).
    pub class: String,
    /// Its lifecycle state.
    pub state: DeviceState,
    /// Its manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Its model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Its firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// Where it belongs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Its hardware serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Its labels (Cedar tags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
    /// Its groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl From<&Device> for DeviceFacts {
    fn from(d: &Device) -> Self {
        Self {
            id: d.id,
            class: d.class.to_string(),
            state: d.state,
            vendor: d.vendor.as_ref().map(ToString::to_string),
            model: d.model.as_ref().map(ToString::to_string),
            firmware: d.firmware.as_ref().map(ToString::to_string),
            zone: d.zone.as_ref().map(ToString::to_string),
            serial: d.identifiers.serial.as_ref().map(ToString::to_string),
            labels: d
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            groups: d.groups.iter().map(ToString::to_string).collect(),
        }
    }
}

/// What Vouch knows about a device at the moment of a request: the policy context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceContext {
    /// When the request is made.
    pub now: Timestamp,
    /// The device's trust score, once the trust engine has scored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<TrustScore>,
    /// Where the device is seen now (network zone or location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Whether its firmware is a supported, non-vulnerable version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_current: Option<bool>,
    /// Whether it passes its compliance controls, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliant: Option<bool>,
    /// Whole days left on the certificate it presented (negative once expired), if it presented one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_days_left: Option<i64>,
}

impl DeviceContext {
    /// The context of a decision about the device `facts` describes, as every decision point builds it (the
    /// gateway, `POST /api/v1/authorize`, the EMQX authorizer), so that a policy reading `context.trust`
    /// decides alike on every path: the trust score from the record's `trust/score` label (written by the
    /// trust service), and the days left on `cert_not_after`, the certificate presented or the newest valid
    /// one on record. The caller adds what only it knows (the location a request names).
    pub fn for_device(
        facts: &DeviceFacts,
        now: Timestamp,
        cert_not_after: Option<Timestamp>,
    ) -> Self {
        let trust = facts
            .labels
            .iter()
            .find(|(k, _)| k == vouch_types::TRUST_SCORE_LABEL)
            .and_then(|(_, v)| v.parse::<TrustScore>().ok());
        Self {
            trust,
            cert_days_left: cert_not_after
                .map(|end| (end.unix_micros() - now.unix_micros()).div_euclid(86_400_000_000)),
            ..Self::at(now)
        }
    }

    /// A context that knows only the time.
    pub fn at(now: Timestamp) -> Self {
        Self {
            now,
            trust: None,
            location: None,
            firmware_current: None,
            compliant: None,
            cert_days_left: None,
        }
    }
}

/// A device's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRequest {
    /// Who asks.
    pub device: DeviceFacts,
    /// To do what.
    pub action: DeviceAction,
    /// On what.
    pub resource: Resource,
    /// In which circumstances.
    pub context: DeviceContext,
}

/// An operator's request (an API call or a command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRequest {
    /// The token they presented.
    pub token: TokenId,
    /// Their name.
    pub name: String,
    /// Their token's role.
    pub role: Role,
    /// What they ask to do.
    pub permission: Permission,
    /// When.
    pub now: Timestamp,
    /// Whether a valid second factor came with the request.
    pub mfa: bool,
}
