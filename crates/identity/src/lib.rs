//! The "identify" step of Vouch's loop: gives devices their machine identity and takes it away.
//!
//! [`IdentityService`] joins the pure PKI (`vouch-pki`) to the store: it checks a request, signs it, and
//! records the certificate with everything that follows (token used, device active, events) in one store
//! transaction; only then does the certificate leave. Revocation suspends the device, and the CRL and OCSP
//! answers are regenerated from the store when revocations change. Every refused enrollment is logged.
//!
//! Architecture Invariant: a certificate is handed out only after the store committed it, so every
//! certificate a client ever received is on record (and its serial can never be reused).

mod error;
mod service;
mod tokens;

pub use error::IdentityError;
pub use service::{IdentityService, OcspAnswer, PkiSettings};
pub use tokens::{EnrollmentSecret, issue_enrollment_token, parse_enrollment_secret};
