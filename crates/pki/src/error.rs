//! What can go wrong in the PKI, typed so that an enrollment can say precisely why it was refused.

/// A PKI operation that did not happen. Nothing was signed when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The input is not the DER or PEM it should be.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// What was being read (`certificate signing request`, `private key`, …).
        what: &'static str,
        /// The parser's explanation.
        why: String,
    },
    /// The request's signature does not verify with its own public key (altered, or proof of possession
    /// missing).
    #[error("the certificate signing request's signature does not verify")]
    BadSignature,
    /// The key is too weak to certify.
    #[error("weak key: {0}")]
    WeakKey(String),
    /// The key type is not one Vouch certifies.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// An encrypted key could not be decrypted: wrong passphrase or damaged file.
    #[error("cannot decrypt the private key: wrong passphrase or damaged key")]
    WrongPassphrase,
    /// A certificate could not be built or signed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// A value does not fit a certificate field.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Why.
        why: String,
    },
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        Self::Signing(e.to_string())
    }
}
