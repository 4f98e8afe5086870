//! Vouch's private PKI: the CA hierarchy, keys encrypted at rest, the device certificate profile, and the
//! checks every certificate signing request passes before anything is signed.
//!
//! Pure: keys, requests and certificates go in and out as bytes; the caller stores them and supplies the time
//! ([`vouch_types::Clock`]). Signing uses `rcgen` (on `ring`); parsing and signature checks use `x509-parser`;
//! keys at rest are PKCS#8 encrypted with PBES2 (scrypt + AES-256-CBC) by the `pkcs8` crate, which OpenSSL reads.
//!
//! Device identity: every device certificate carries exactly one URI SAN, a SPIFFE ID
//! `spiffe://<trust-domain>/device/<device-id>` (see [`device_uri`]), so that SPIFFE-aware software (service
//! meshes, SPIRE federation) understands Vouch identities without translation.

mod ca;
mod csr;
mod error;
pub mod hsm;
mod keyinfo;
mod keys;
pub mod ocsp;
pub mod pkcs7;
mod profile;

pub use ca::{
    CaMaterial, CaSubject, CertSummary, IssuedCert, IssuingCa, ca_certificates, cert_der_from_pem,
    idevid_serial, import_intermediate, init_ca, intermediate_request, pem_encode,
    read_certificate, summarize_pem, verify_issued_by,
};
pub use csr::{CheckedCsr, csr_der_from_text, new_request};
pub use error::PkiError;
pub use keyinfo::{PublicKeyInfo, certificate_key};
pub use keys::{KeyAlgorithm, Passphrase, decrypt_key_pem, encrypt_key_pem};
pub use profile::{DeviceProfile, device_uri, random_serial};
pub use vouch_types::Serial;
