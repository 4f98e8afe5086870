//! The device certificate profile: identity, lifetime, renewal, and where revocation is published.

use vouch_types::{DeviceId, Serial, Timestamp};

use crate::PkiError;

/// A fresh serial number: 16 bytes from the operating system's CSPRNG, positive and without a leading zero
/// byte, so unique without depending on the store: a transaction lost in a crash can never make the CA reuse
/// one (RFC 5280 §4.1.2.2; the CA/Browser Forum asks for 64 random bits, this has 126).
pub fn random_serial() -> Serial {
    use rand_core::RngCore;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    Serial::from_random(b)
}

/// How device certificates are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProfile {
    /// The SPIFFE trust domain in device identities (`spiffe://<trust_domain>/device/<id>`).
    pub trust_domain: String,
    /// How long a device certificate is valid, in days (short by default: renewal is automatic).
    pub lifetime_days: u32,
    /// Where the CRL is published (CRL distribution point).
    pub crl_url: String,
    /// Where the OCSP responder answers (authority information access).
    pub ocsp_url: String,
}

impl DeviceProfile {
    /// The longest device certificate lifetime accepted.
    pub const MAX_LIFETIME_DAYS: u32 = 398;

    /// Checks the profile's values.
    pub fn validate(&self) -> Result<(), PkiError> {
        let invalid = |what, why: &str| {
            Err(PkiError::Invalid {
                what,
                why: why.to_owned(),
            })
        };
        if self.lifetime_days == 0 || self.lifetime_days > Self::MAX_LIFETIME_DAYS {
            return invalid("lifetime", "must be between 1 and 398 days");
        }
        let domain_ok = !self.trust_domain.is_empty()
            && self.trust_domain.len() <= 255
            && self
                .trust_domain
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c));
        if !domain_ok {
            return invalid(
                "trust domain",
                "must be lowercase letters, digits, `.`, `-` or `_` (SPIFFE)",
            );
        }
        for url in [&self.crl_url, &self.ocsp_url] {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.chars().any(|c| c.is_whitespace())
            {
                return invalid("URL", "CRL and OCSP URLs must be http:// or https:// URLs");
            }
        }
        Ok(())
    }

    /// When a certificate valid from `not_before` to `not_after` should be renewed: two thirds in.
    pub fn renew_after(not_before: Timestamp, not_after: Timestamp) -> Timestamp {
        let span = not_after.unix_micros() - not_before.unix_micros();
        not_before.plus_micros(span / 3 * 2)
    }
}

/// The SPIFFE ID naming `device` in `trust_domain`.
pub fn device_uri(trust_domain: &str, device: DeviceId) -> String {
    format!("spiffe://{trust_domain}/device/{device}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_sixteen_bytes_and_distinct() {
        let a = random_serial();
        let b = random_serial();
        assert_ne!(a, b);
        assert!(a.as_bytes()[0] & 0x80 == 0 && a.as_bytes()[0] != 0);
        assert_eq!(a.to_string().len(), 32);
    }

    #[test]
    fn renewal_starts_two_thirds_in() {
        let t = DeviceProfile::renew_after(
            Timestamp::from_unix_micros(0),
            Timestamp::from_unix_micros(300),
        );
        assert_eq!(t.unix_micros(), 200);
    }
}
