//! Certificate signing requests, checked before anything is signed: well-formed DER, a signature that
//! verifies with the request's own key (proof of possession), and a key strong enough to certify.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::PkiError;

/// The smallest RSA modulus Vouch certifies (NIST SP 800-131A: 112-bit security).
pub const MIN_RSA_BITS: usize = 2048;

/// A request that passed every check. Only its public key and requested names are used: everything else a
/// request asks for (extensions, key usages) is decided by Vouch's profile, never by the requester.
#[derive(Debug, Clone)]
pub struct CheckedCsr {
    spki_der: Vec<u8>,
    common_name: Option<String>,
    uris: Vec<String>,
    key: String,
}

fn malformed(why: impl std::fmt::Display) -> PkiError {
    PkiError::Malformed {
        what: "certificate signing request",
        why: why.to_string(),
    }
}

impl CheckedCsr {
    /// Parses and checks a DER-encoded PKCS#10 request.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let (rest, csr) = X509CertificationRequest::from_der(der).map_err(malformed)?;
        if !rest.is_empty() {
            return Err(malformed(format!(
                "{} trailing bytes after the request",
                rest.len()
            )));
        }
        let info = &csr.certification_request_info;
        let spki = &info.subject_pki;
        // The key first: a weak key is named as such, not as a signature that some verifier refused.
        let key = match spki.parsed().map_err(malformed)? {
            PublicKey::RSA(rsa) => {
                if spki.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
                    return Err(PkiError::UnsupportedKey(
                        "RSA keys must be rsaEncryption".into(),
                    ));
                }
                let bits = rsa.key_size();
                if bits < MIN_RSA_BITS {
                    return Err(PkiError::WeakKey(format!(
                        "RSA-{bits}: at least RSA-{MIN_RSA_BITS} is required"
                    )));
                }
                format!("RSA-{bits}")
            }
            PublicKey::EC(_) if spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok());
                match curve {
                    Some(c) if c == OID_EC_P256 => "ECDSA P-256".to_owned(),
                    Some(c) if c == OID_NIST_EC_P384 => "ECDSA P-384".to_owned(),
                    Some(c) if c == OID_NIST_EC_P521 => {
                        return Err(PkiError::UnsupportedKey(
                            "ECDSA P-521 is not supported; use P-256 or P-384".into(),
                        ));
                    }
                    Some(c) => {
                        return Err(PkiError::WeakKey(format!(
                            "elliptic curve {c} is not allowed: use P-256 or P-384"
                        )));
                    }
                    None => return Err(malformed("EC key without a named curve")),
                }
            }
            _ if spki.algorithm.algorithm == OID_SIG_ED25519 => "Ed25519".to_owned(),
            _ => {
                return Err(PkiError::UnsupportedKey(format!(
                    "key algorithm {} (use ECDSA P-256/P-384, Ed25519 or RSA ≥ {MIN_RSA_BITS})",
                    spki.algorithm.algorithm
                )));
            }
        };
        csr.verify_signature().map_err(|_| PkiError::BadSignature)?;
        let common_name = info
            .subject
            .iter_common_name()
            .next()
            .map(|cn| cn.as_str().map(str::to_owned).map_err(malformed))
            .transpose()?;
        let mut uris = Vec::new();
        if let Some(exts) = csr.requested_extensions() {
            for ext in exts {
                if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
                    for name in &san.general_names {
                        if let x509_parser::extensions::GeneralName::URI(u) = name {
                            uris.push((*u).to_owned());
                        }
                    }
                }
            }
        }
        Ok(Self {
            spki_der: spki.raw.to_vec(),
            common_name,
            uris,
            key,
        })
    }

    /// The requester's public key (SubjectPublicKeyInfo DER).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The subject's common name, if the request has one.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The URI subject alternative names the request asks for.
    pub fn uris(&self) -> &[String] {
        &self.uris
    }

    /// The key's kind and size, for logs and events (`ECDSA P-256`, `RSA-3072`).
    pub fn key_description(&self) -> &str {
        &self.key
    }
}

/// The DER of a certificate request given as PEM (`CERTIFICATE REQUEST`) or as base64 DER (what EST sends;
/// line breaks allowed).
pub fn csr_der_from_text(text: &str) -> Result<Vec<u8>, PkiError> {
    use base64::Engine as _;
    let trimmed = text.trim();
    if trimmed.starts_with("-----BEGIN") {
        let (label, der) = pkcs8::der::pem::decode_vec(trimmed.as_bytes()).map_err(malformed)?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(malformed(format!(
                "expected a CERTIFICATE REQUEST, found {label}"
            )));
        }
        return Ok(der);
    }
    let compact: String = trimmed
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| malformed(format!("not base64: {e}")))
}

/// A DER PKCS#10 request for a fresh ECDSA P-256 key with CN `cn` (the key is dropped): for benchmarks and
/// simulated devices, which need many valid requests fast.
pub fn new_request(cn: &str) -> Result<Vec<u8>, PkiError> {
    let key = crate::KeyAlgorithm::EcdsaP256.generate()?;
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    Ok(p.serialize_request(&key)?.der().to_vec())
}
