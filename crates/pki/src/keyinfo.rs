//! What a certificate's public key is, described rather than judged: the compliance rules decide what is
//! strong enough, and a shared key is recognised by its digest under different certificates.

use sha2::{Digest as _, Sha256};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_DSA, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_SIG_ED448, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use vouch_types::KeyFamily;

use crate::PkiError;

/// A certificate's public key: its family, its size and the SHA-256 of its SubjectPublicKeyInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// The family.
    pub kind: KeyFamily,
    /// The size in bits: the RSA modulus, the curve's field (0 when unknown).
    pub bits: u32,
    /// SHA-256 of the DER SubjectPublicKeyInfo: the same key under two certificates has the same digest.
    pub spki_sha256: [u8; 32],
}

/// Describes the public key of the DER certificate `der`.
pub fn certificate_key(der: &[u8]) -> Result<PublicKeyInfo, PkiError> {
    let malformed = |why: String| PkiError::Malformed {
        what: "certificate",
        why,
    };
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| malformed(e.to_string()))?;
    let spki = cert.public_key();
    let oid = &spki.algorithm.algorithm;
    let (kind, bits) = if *oid == OID_SIG_ED25519 {
        (KeyFamily::Ed25519, 256)
    } else if *oid == OID_SIG_ED448 {
        (KeyFamily::Ed448, 448)
    } else if *oid == OID_KEY_TYPE_DSA {
        (KeyFamily::Dsa, 0)
    } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let bits = match curve {
            Some(c) if c == OID_EC_P256 => 256,
            Some(c) if c == OID_NIST_EC_P384 => 384,
            Some(c) if c == OID_NIST_EC_P521 => 521,
            _ => 0,
        };
        (KeyFamily::Ec, bits)
    } else {
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => (KeyFamily::Rsa, u32::try_from(rsa.key_size()).unwrap_or(0)),
            _ => (KeyFamily::Other, 0),
        }
    };
    Ok(PublicKeyInfo {
        kind,
        bits,
        spki_sha256: Sha256::digest(spki.raw).into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(alg: &'static rcgen::SignatureAlgorithm) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["d".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (
            cert.der().to_vec(),
            rcgen::PublicKeyData::subject_public_key_info(&key),
        )
    }

    #[test]
    fn families_sizes_and_the_key_digest_are_read_from_the_certificate() {
        for (alg, kind, bits) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, KeyFamily::Ec, 256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, KeyFamily::Ec, 384),
            (&rcgen::PKCS_ED25519, KeyFamily::Ed25519, 256),
        ] {
            let (der, spki) = self_signed(alg);
            let info = certificate_key(&der).unwrap();
            assert_eq!((info.kind, info.bits), (kind, bits));
            let want: [u8; 32] = Sha256::digest(&spki).into();
            assert_eq!(
                info.spki_sha256, want,
                "the digest is of the SubjectPublicKeyInfo"
            );
        }
        assert!(certificate_key(b"not a certificate").is_err());
    }
}
