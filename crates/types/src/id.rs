//! Identifiers minted by Vouch.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ValidationError;

/// The namespace for device ids derived from a natural key (serial, MAC) so that imports are idempotent.
const DEVICE_NAMESPACE: Uuid = Uuid::from_u128(0x7a1c_5e0e_3c1b_4f0e_9d5a_6b2f_0c4e_8d11);

/// A device's identity in Vouch: a UUID, time-ordered (v7) when minted, name-based (v5) when derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(Uuid);

impl DeviceId {
    /// Mints a fresh id; v7 keeps ids of devices created together close in the store's indexes.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id a device with this natural key (e.g. `serial:ABC123`) always gets: re-running an import after a
    /// crash finds the same ids and so creates no duplicates.
    pub fn derived(natural_key: &str) -> Self {
        Self(Uuid::new_v5(&DEVICE_NAMESPACE, natural_key.as_bytes()))
    }

    /// Wraps a UUID read back from the store.
    pub const fn from_uuid(u: Uuid) -> Self {
        Self(u)
    }

    /// The UUID, for storage.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The 16 bytes of the UUID, for storage and hashing.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for DeviceId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|e| ValidationError::new("device id", format!("{e} (expected a UUID)")))
    }
}

impl TryFrom<String> for DeviceId {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> String {
        id.to_string()
    }
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name([u8; 8]);

        impl $name {
            /// Wraps 8 bytes (from a CSPRNG when minted, from the store when read back).
            pub const fn from_bytes(b: [u8; 8]) -> Self {
                Self(b)
            }

            /// The 8 bytes.
            pub const fn to_bytes(self) -> [u8; 8] {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bad = || ValidationError::new($what, "expected 16 lowercase hex digits");
                if s.len() != 16 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(bad());
                }
                let mut out = [0u8; 8];
                for (i, o) in out.iter_mut().enumerate() {
                    *o = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
                }
                Ok(Self(out))
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }
    };
}

hex_id!(
    /// An API token's public identifier (the part of a token that may be logged).
    TokenId,
    "token id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable() {
        assert_eq!(
            DeviceId::derived("serial:X1"),
            DeviceId::derived("serial:X1")
        );
        assert_ne!(
            DeviceId::derived("serial:X1"),
            DeviceId::derived("serial:X2")
        );
    }

    #[test]
    fn token_id_round_trip() {
        let id = TokenId::from_bytes([0, 1, 2, 3, 0xaa, 0xbb, 0xcc, 0xff]);
        assert_eq!(id.to_string(), "00010203aabbccff");
        assert_eq!("00010203aabbccff".parse::<TokenId>().unwrap(), id);
        assert!("00010203AABBCCFF".parse::<TokenId>().is_err());
        assert!("0001".parse::<TokenId>().is_err());
    }
}
