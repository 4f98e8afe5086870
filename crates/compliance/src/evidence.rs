//! What the evaluator is told: one device's evidence, the facts only the whole fleet knows, and the
//! operator's baselines. Everything is typed already; the callers (store, discovery, trust) fill it in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use foldhash::{HashMap, HashMapExt, HashSet};
use serde::{Deserialize, Serialize};
use vouch_types::{
    CertFingerprint, DeviceClass, DeviceId, FirmwareVersion, Model, Timestamp, ValidationError,
    Vendor,
};

use crate::vuln::VulnId;

macro_rules! digest {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name([u8; 32]);

        impl $name {
            /// The digest from its 32 bytes.
            pub const fn from_bytes(b: [u8; 32]) -> Self {
                Self(b)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("sha256:")?;
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_digest(s).map(Self).map_err(|why| ValidationError::new($what, why))
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(d: $name) -> String {
                d.to_string()
            }
        }
    };
}

fn parse_digest(s: &str) -> Result<[u8; 32], &'static str> {
    let hex_part = s.strip_prefix("sha256:").unwrap_or(s);
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out)
        .map_err(|_| "must be 64 hexadecimal digits, optionally after `sha256:`")?;
    Ok(out)
}

digest!(
    /// The SHA-256 of a firmware image, as attestation or the update channel reports it.
    ImageDigest, "image digest"
);
digest!(
    /// The SHA-256 of a certificate's public key (SubjectPublicKeyInfo): two certificates with one key share it.
    KeyDigest, "key digest"
);
digest!(
    /// The SHA-256 of a device's running configuration, compared with its model's golden baseline.
    ConfigHash, "config hash"
);

/// A certificate's public-key algorithm: the one family type, read from certificates by `vouch-pki`.
pub use vouch_types::KeyFamily as KeyAlgorithm;

/// One certificate a device presents or holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// SHA-256 of the certificate.
    pub fingerprint: CertFingerprint,
    /// SHA-256 of its public key, when known (shared keys under distinct certificates).
    pub key: Option<KeyDigest>,
    /// The key's algorithm.
    pub algorithm: KeyAlgorithm,
    /// The key's size in bits (RSA modulus, EC field).
    pub key_bits: u32,
    /// When it expires.
    pub not_after: Timestamp,
    /// Whether the CA has revoked it.
    pub revoked: bool,
    /// Whether a session authenticated by it is open now.
    pub connected: bool,
}

/// What attestation said about the running firmware.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attestation {
    /// No attestation was made.
    #[default]
    None,
    /// The measurement matched a known-good value.
    Verified,
    /// The measurement did not match, or the quote did not verify.
    Failed,
}

/// A network transport, for open ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A listening port, written `tcp/502`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Port {
    /// Its transport.
    pub transport: Transport,
    /// Its number.
    pub number: u16,
}

impl Port {
    /// A TCP port.
    pub const fn tcp(number: u16) -> Self {
        Self {
            transport: Transport::Tcp,
            number,
        }
    }

    /// A UDP port.
    pub const fn udp(number: u16) -> Self {
        Self {
            transport: Transport::Udp,
            number,
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        };
        write!(f, "{t}/{}", self.number)
    }
}

impl FromStr for Port {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ValidationError::new("port", format!("`{s}` is not `tcp/N` or `udp/N`"));
        let (t, n) = s.split_once('/').ok_or_else(bad)?;
        let transport = match t {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            _ => return Err(bad()),
        };
        let number = n.parse().map_err(|_| bad())?;
        Ok(Self { transport, number })
    }
}

impl TryFrom<String> for Port {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Port> for String {
    fn from(p: Port) -> String {
        p.to_string()
    }
}

/// A credential discovery saw in clear text: its protocol and user name (the secret is never kept).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClearTextCredential {
    /// The protocol it was sent in (`telnet`, `ftp`, `http`).
    pub protocol: String,
    /// The user name, when the protocol carries one.
    pub user: Option<String>,
}

/// How the device receives updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateFacts {
    /// Images are signed and the device verifies the signature before installing.
    pub signed: bool,
    /// Images travel over an authenticated, encrypted channel.
    pub authenticated_channel: bool,
    /// The device refuses an older image than it runs.
    pub rollback_protection: bool,
    /// Updates are installed without an operator's visit.
    pub automatic: bool,
}

/// Everything the rules read about one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEvidence {
    /// The device.
    pub id: DeviceId,
    /// Its class (port allow-lists are per class).
    pub class: DeviceClass,
    /// Its manufacturer.
    pub vendor: Option<Vendor>,
    /// Its model (firmware minimum, golden config, support end and images are per model).
    pub model: Option<Model>,
    /// The firmware version it reports.
    pub firmware: Option<FirmwareVersion>,
    /// The digest of the image it runs.
    pub image_digest: Option<ImageDigest>,
    /// Its certificates.
    pub certificates: Vec<Certificate>,
    /// The hash of its running configuration.
    pub config_hash: Option<ConfigHash>,
    /// Its listening ports.
    pub open_ports: Vec<Port>,
    /// What attestation said.
    pub attestation: Attestation,
    /// Credentials discovery saw it use in clear text.
    pub credentials: Vec<ClearTextCredential>,
    /// Whether it sends security logs at all.
    pub logging_enabled: bool,
    /// Its last security log record.
    pub last_log: Option<Timestamp>,
    /// Its last heartbeat.
    pub last_heartbeat: Option<Timestamp>,
    /// The end of the last traffic window the trust engine scored for it (behaviour monitoring).
    pub last_scored: Option<Timestamp>,
    /// How it is updated, if known.
    pub update: Option<UpdateFacts>,
    /// Whether it can erase all its data and settings securely (a declared capability), if known.
    pub secure_erase: Option<bool>,
    /// The MQTT client id it connects with.
    pub client_id: Option<String>,
    /// Grants of its policy that reach beyond its own topics (`#`, `+/#`, every action).
    pub permissive_grants: Vec<String>,
    /// When each vulnerability was first seen on it (kept by the caller), for the CRA Art. 14 deadlines.
    pub first_seen: BTreeMap<VulnId, Timestamp>,
}

impl DeviceEvidence {
    /// A device known only by its id and class: every other fact is absent.
    pub fn new(id: DeviceId, class: DeviceClass) -> Self {
        Self {
            id,
            class,
            vendor: None,
            model: None,
            firmware: None,
            image_digest: None,
            certificates: Vec::new(),
            config_hash: None,
            open_ports: Vec::new(),
            attestation: Attestation::None,
            credentials: Vec::new(),
            logging_enabled: false,
            last_log: None,
            last_heartbeat: None,
            last_scored: None,
            update: None,
            secure_erase: None,
            client_id: None,
            permissive_grants: Vec::new(),
            first_seen: BTreeMap::new(),
        }
    }
}

/// What only the whole fleet shows: identities that more than one device uses.
#[derive(Debug, Clone, Default)]
pub struct FleetFacts {
    /// Certificate fingerprints held by more than one device.
    pub shared_fingerprints: HashSet<CertFingerprint>,
    /// Public keys held by more than one device.
    pub shared_keys: HashSet<KeyDigest>,
    /// MQTT client ids used by more than one device.
    pub conflicting_client_ids: HashSet<String>,
}

impl FleetFacts {
    /// Computes the shared identities of `devices` (each device counts once per value).
    pub fn from_devices<'a>(devices: impl IntoIterator<Item = &'a DeviceEvidence>) -> Self {
        let mut certs: HashMap<CertFingerprint, DeviceId> = HashMap::new();
        let mut keys: HashMap<KeyDigest, DeviceId> = HashMap::new();
        let mut clients: HashMap<&'a str, DeviceId> = HashMap::new();
        let mut facts = Self::default();
        for d in devices {
            for c in &d.certificates {
                if *certs.entry(c.fingerprint).or_insert(d.id) != d.id {
                    facts.shared_fingerprints.insert(c.fingerprint);
                }
                if let Some(k) = c.key
                    && *keys.entry(k).or_insert(d.id) != d.id
                {
                    facts.shared_keys.insert(k);
                }
            }
            if let Some(cid) = d.client_id.as_deref()
                && *clients.entry(cid).or_insert(d.id) != d.id
            {
                facts.conflicting_client_ids.insert(cid.to_owned());
            }
        }
        facts
    }
}

/// User names that ship as factory defaults on common IoT/OT devices (seen in clear text, they mean the
/// default account is in use).
pub const DEFAULT_USERS: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "user",
    "guest",
    "support",
    "service",
    "operator",
    "default",
    "anonymous",
    "ftp",
    "supervisor",
    "tech",
    "ubnt",
    "pi",
    "666666",
    "888888",
    "mg3500",
    "installer",
    "factory",
];

/// The operator's reference values: what "current", "golden" and "allowed" mean, per model or class.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baselines {
    /// The golden configuration hash per model.
    #[serde(default)]
    pub golden_config: BTreeMap<Model, ConfigHash>,
    /// The minimum supported firmware per model.
    #[serde(default)]
    pub min_firmware: BTreeMap<Model, FirmwareVersion>,
    /// The ports a class may listen on.
    #[serde(default)]
    pub allowed_ports: BTreeMap<DeviceClass, BTreeSet<Port>>,
    /// The end of the vendor's security support per model.
    #[serde(default)]
    pub support_end: BTreeMap<Model, Timestamp>,
    /// Firmware images known good per model.
    #[serde(default)]
    pub allowed_images: BTreeMap<Model, BTreeSet<ImageDigest>>,
    /// Default user names (lowercase); empty means [`DEFAULT_USERS`].
    #[serde(default)]
    pub default_users: BTreeSet<String>,
}

impl Baselines {
    /// Whether `user` is a factory-default account name.
    pub fn is_default_user(&self, user: &str) -> bool {
        let user = user.to_ascii_lowercase();
        if self.default_users.is_empty() {
            DEFAULT_USERS.contains(&user.as_str())
        } else {
            self.default_users.contains(&user)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_ports_parse_and_show() {
        let hex = "ab".repeat(32);
        let d: ImageDigest = format!("sha256:{hex}").parse().unwrap();
        assert_eq!(d, hex.parse().unwrap());
        assert_eq!(d.to_string(), format!("sha256:{hex}"));
        assert!("sha256:abcd".parse::<ImageDigest>().is_err());
        assert_eq!("tcp/502".parse::<Port>().unwrap(), Port::tcp(502));
        assert_eq!(Port::udp(161).to_string(), "udp/161");
        assert!("sctp/1".parse::<Port>().is_err());
        assert!("tcp/70000".parse::<Port>().is_err());
    }

    #[test]
    fn baselines_read_from_toml() {
        let hex = "ab".repeat(32);
        let b: Baselines = toml::from_str(&format!(
            r#"
            default_users = ["installer"]
            [golden_config]
            "VC-200" = "sha256:{hex}"
            [min_firmware]
            "VC-200" = "4.0"
            [allowed_ports]
            camera = ["tcp/443", "udp/554"]
            [support_end]
            "VC-200" = "2030-12-31T00:00:00Z"
            [allowed_images]
            "VC-200" = ["{hex}"]
            "#
        ))
        .unwrap();
        let m: Model = "VC-200".parse().unwrap();
        assert_eq!(b.min_firmware[&m].as_str(), "4.0");
        assert!(b.allowed_ports[&DeviceClass::Camera].contains(&Port::udp(554)));
        assert_eq!(b.allowed_images[&m].len(), 1);
        assert!(b.is_default_user("INSTALLER") && !b.is_default_user("admin"));
        assert!(Baselines::default().is_default_user("admin"));
        assert!(toml::from_str::<Baselines>("golden = {}").is_err());
        assert!(toml::from_str::<Baselines>("[allowed_ports]\ncamera = [\"tcp/x\"]").is_err());
    }

    #[test]
    fn shared_identities_are_found_once_per_device() {
        let fp: CertFingerprint = "cd".repeat(32).parse().unwrap();
        let cert = Certificate {
            fingerprint: fp,
            key: None,
            algorithm: KeyAlgorithm::Ec,
            key_bits: 256,
            not_after: Timestamp::EPOCH,
            revoked: false,
            connected: false,
        };
        let mut a = DeviceEvidence::new(DeviceId::derived("a"), DeviceClass::Sensor);
        a.certificates = vec![cert.clone(), cert.clone()];
        a.client_id = Some("c1".into());
        let solo = FleetFacts::from_devices([&a]);
        assert!(solo.shared_fingerprints.is_empty() && solo.conflicting_client_ids.is_empty());
        let mut b = DeviceEvidence::new(DeviceId::derived("b"), DeviceClass::Sensor);
        b.certificates = vec![cert];
        b.client_id = Some("c1".into());
        let both = FleetFacts::from_devices([&a, &b]);
        assert!(both.shared_fingerprints.contains(&fp));
        assert!(both.conflicting_client_ids.contains("c1"));
    }
}
