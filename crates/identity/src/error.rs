//! Why an identity operation did not happen. Nothing was issued when one of these is returned.

use vouch_pki::PkiError;
use vouch_store::StoreError;

/// An identity operation that was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The request itself is unacceptable (malformed, weak key, bad signature).
    #[error(transparent)]
    BadRequest(#[from] PkiError),
    /// The credential presented does not allow this enrollment.
    #[error("enrollment refused: {0}")]
    Unauthorized(String),
    /// The request names another device than the credential.
    #[error("the request names {requested}, but the credential is for {device}")]
    WrongDevice {
        /// What the request asked for.
        requested: String,
        /// The device the credential is bound to.
        device: String,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
