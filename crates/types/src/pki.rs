//! Certificate vocabulary shared by the PKI, the store and the API: serial numbers and revocation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// A certificate serial number: 1 to 20 octets, positive (RFC 5280 §4.1.2.2), as DER encodes it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Serial {
    bytes: [u8; 20],
    len: u8,
}

impl Serial {
    /// A serial from its big-endian bytes: 1 to 20 of them, the first below 0x80 (positive).
    pub fn from_slice(b: &[u8]) -> Result<Self, ValidationError> {
        if b.is_empty() || b.len() > 20 {
            return Err(ValidationError::new(
                "serial number",
                "must be 1 to 20 bytes",
            ));
        }
        if b[0] & 0x80 != 0 {
            return Err(ValidationError::new("serial number", "must be positive"));
        }
        let mut bytes = [0u8; 20];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Self {
            bytes,
            len: b.len() as u8,
        })
    }

    /// A 16-byte serial from random bytes, made positive and kept at 16 bytes in DER (the first byte is
    /// forced into 0x01..=0x7f).
    pub fn from_random(mut b: [u8; 16]) -> Self {
        b[0] = (b[0] & 0x7f) | 0x01;
        let mut bytes = [0u8; 20];
        bytes[..16].copy_from_slice(&b);
        Self { bytes, len: 16 }
    }

    /// The big-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

impl FromStr for Serial {
    type Err = ValidationError;
    /// Parses hex, with or without `:` separators (as `openssl x509 -serial` prints it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || ValidationError::new("serial number", format!("`{s}` is not 1 to 20 hex bytes"));
        let hex: Vec<u8> = s.bytes().filter(|&c| c != b':').collect();
        if hex.is_empty() || !hex.len().is_multiple_of(2) || hex.len() > 40 {
            return Err(bad());
        }
        let bytes = hex
            .chunks(2)
            .map(|p| {
                std::str::from_utf8(p)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(bad)
            })
            .collect::<Result<Vec<u8>, _>>()?;
        Self::from_slice(&bytes)
    }
}

impl TryFrom<String> for Serial {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Serial> for String {
    fn from(s: Serial) -> String {
        s.to_string()
    }
}

/// Why a certificate was revoked: the CRLReason codes of RFC 5280 §5.3.1 that a CA may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    /// No reason given (code 0).
    Unspecified,
    /// The device's private key was compromised (1).
    KeyCompromise,
    /// The CA's key was compromised (2).
    CaCompromise,
    /// The device changed owner or role (3).
    AffiliationChanged,
    /// A new certificate replaces this one (4).
    Superseded,
    /// The device was retired (5).
    CessationOfOperation,
    /// Suspended for now; can be released (6).
    CertificateHold,
    /// The device lost the right to act (9).
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// Every reason.
    pub const ALL: [RevocationReason; 8] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
    ];

    /// The RFC 5280 code.
    pub const fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
        }
    }

    /// The reason with this RFC 5280 code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The name RFC 5280 and OpenSSL use (`keyCompromise`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevocationReason {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::parse_named("revocation reason", s, &Self::ALL, Self::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_forms() {
        let s: Serial = "5d:d5:59:d9".parse().unwrap();
        assert_eq!(s.to_string(), "5dd559d9");
        assert_eq!("5DD559D9".parse::<Serial>().unwrap(), s);
        assert!("80".parse::<Serial>().is_err(), "negative");
        assert!("".parse::<Serial>().is_err());
        assert!("00".repeat(21).parse::<Serial>().is_err());
        assert!("abc".parse::<Serial>().is_err());
    }

    #[test]
    fn reason_codes() {
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_code(r.code()), Some(r));
            assert_eq!(r.as_str().parse::<RevocationReason>().unwrap(), r);
        }
        assert_eq!(RevocationReason::from_code(7), None);
    }
}

/// A public key's algorithm family, as a certificate states it: read from the DER by `vouch-pki`, judged by
/// the compliance rules (what is strong enough is theirs to say, not the reader's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyFamily {
    /// RSA, judged by its modulus size.
    Rsa,
    /// An elliptic curve (ECDSA), judged by its field size.
    Ec,
    /// Ed25519 (128-bit security).
    Ed25519,
    /// Ed448.
    Ed448,
    /// DSA: deprecated whatever its size.
    Dsa,
    /// Anything else: not known to be strong.
    Other,
}
