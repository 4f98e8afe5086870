//! Identifiers a device brings with it: hardware address, serial number, certificate fingerprint, class.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// An IEEE 802 MAC-48 address, shown as lowercase `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// A MAC address from its six octets.
    pub const fn from_octets(o: [u8; 6]) -> Self {
        Self(o)
    }

    /// The six octets.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// The organisationally unique identifier (first three octets), for vendor lookup.
    pub const fn oui(self) -> [u8; 3] {
        [self.0[0], self.0[1], self.0[2]]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = ValidationError;
    /// Accepts `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` and `aabb.ccdd.eeff`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ValidationError::new(
                "MAC address",
                format!("`{s}` is not six hex octets like aa:bb:cc:dd:ee:ff"),
            )
        };
        let hex: Vec<u8> = s
            .bytes()
            .filter(|c| !matches!(c, b':' | b'-' | b'.'))
            .collect();
        if hex.len() != 12 || s.len() > 17 {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (i, o) in out.iter_mut().enumerate() {
            let pair = std::str::from_utf8(&hex[2 * i..2 * i + 2]).map_err(|_| bad())?;
            *o = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl TryFrom<String> for MacAddr {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> String {
        m.to_string()
    }
}

/// The manufacturer's serial number of a device: printable ASCII, 1–64 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct HardwareSerial(String);

impl HardwareSerial {
    /// The serial as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HardwareSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for HardwareSerial {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 64 {
            return Err(ValidationError::new(
                "hardware serial",
                "must be 1 to 64 characters",
            ));
        }
        if !s.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(ValidationError::new(
                "hardware serial",
                "must be printable ASCII without spaces",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for HardwareSerial {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<HardwareSerial> for String {
    fn from(s: HardwareSerial) -> String {
        s.0
    }
}

/// The SHA-256 fingerprint of a device certificate's DER encoding, shown as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CertFingerprint([u8; 32]);

impl CertFingerprint {
    /// A fingerprint from its 32 digest bytes.
    pub const fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// The 32 digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for CertFingerprint {
    type Err = ValidationError;
    /// Accepts 64 hex digits, with or without `:` separators, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ValidationError::new(
                "certificate fingerprint",
                "expected a SHA-256 digest as 64 hex digits",
            )
        };
        let hex: Vec<u8> = s.bytes().filter(|&c| c != b':').collect();
        if hex.len() != 64 || s.len() > 95 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            let pair = std::str::from_utf8(&hex[2 * i..2 * i + 2]).map_err(|_| bad())?;
            *o = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl TryFrom<String> for CertFingerprint {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CertFingerprint> for String {
    fn from(f: CertFingerprint) -> String {
        f.to_string()
    }
}

/// What kind of device this is: drives default policies, behaviour models and compliance controls.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceClass {
    /// Not yet classified.
    #[default]
    Unknown,
    /// A sensor reporting measurements.
    Sensor,
    /// An actuator (valve, motor drive, relay).
    Actuator,
    /// An IP camera.
    Camera,
    /// A programmable logic controller.
    Plc,
    /// A remote terminal unit.
    Rtu,
    /// A human-machine interface panel.
    Hmi,
    /// An engineering workstation that programs controllers.
    EngineeringStation,
    /// An IoT or protocol gateway.
    Gateway,
    /// A network device (switch, router, access point).
    Network,
    /// A medical device.
    Medical,
    /// A vehicle unit (telematics, ECU gateway).
    Vehicle,
    /// A general-purpose IT host.
    ItHost,
}

impl DeviceClass {
    /// Every class, in a stable order.
    pub const ALL: [DeviceClass; 13] = [
        Self::Unknown,
        Self::Sensor,
        Self::Actuator,
        Self::Camera,
        Self::Plc,
        Self::Rtu,
        Self::Hmi,
        Self::EngineeringStation,
        Self::Gateway,
        Self::Network,
        Self::Medical,
        Self::Vehicle,
        Self::ItHost,
    ];

    /// The class's name as stored and shown (`engineering-station`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Sensor => "sensor",
            Self::Actuator => "actuator",
            Self::Camera => "camera",
            Self::Plc => "plc",
            Self::Rtu => "rtu",
            Self::Hmi => "hmi",
            Self::EngineeringStation => "engineering-station",
            Self::Gateway => "gateway",
            Self::Network => "network",
            Self::Medical => "medical",
            Self::Vehicle => "vehicle",
            Self::ItHost => "it-host",
        }
    }
}

impl fmt::Display for DeviceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceClass {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::parse_named("device class", s, &Self::ALL, Self::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_forms() {
        let m: MacAddr = "00:1D:9C:C7:B0:70".parse().unwrap();
        assert_eq!(m.to_string(), "00:1d:9c:c7:b0:70");
        assert_eq!("00-1d-9c-c7-b0-70".parse::<MacAddr>().unwrap(), m);
        assert_eq!("001d.9cc7.b070".parse::<MacAddr>().unwrap(), m);
        assert!("00:1d:9c:c7:b0".parse::<MacAddr>().is_err());
        assert!("zz:1d:9c:c7:b0:70".parse::<MacAddr>().is_err());
        assert!("00:1d:9c:c7:b0:7é".parse::<MacAddr>().is_err());
    }

    #[test]
    fn class_names_round_trip() {
        for c in DeviceClass::ALL {
            assert_eq!(c.as_str().parse::<DeviceClass>().unwrap(), c);
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
        }
        assert!(
            "toaster"
                .parse::<DeviceClass>()
                .unwrap_err()
                .to_string()
                .contains("plc")
        );
    }

    #[test]
    fn fingerprint_forms() {
        let hex = "ab".repeat(32);
        let f: CertFingerprint = hex.parse().unwrap();
        assert_eq!(f.to_string(), hex);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(colons.parse::<CertFingerprint>().unwrap(), f);
        assert!("abcd".parse::<CertFingerprint>().is_err());
    }
}
