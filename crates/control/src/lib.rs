//! The application layer: each use case of the control plane written once, as a function over the store,
//! so that the transports (the HTTP API, the CLI, later the dashboard) parse, call and render but hold no
//! rule of their own — a rule kept in one adapter drifts from its copy in another.
//!
//! Here so far (issue 17): device creation and edits with the reserved-label rule ([`devices`]), onboarding
//! and the discovery merge ([`discovery`]), operators' tokens ([`tokens`]) and second factors ([`mfa`],
//! [`totp`]), certificate import ([`certs`]), posture ingest ([`posture`]). The policy writes move here next.

pub mod certs;
pub mod compliance;
pub mod devices;
pub mod discovery;
pub mod import;
pub mod mfa;
pub mod posture;
pub mod tokens;
pub mod totp;

use vouch_store::StoreError;
use vouch_types::{LabelKey, ValidationError};

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The request sets a label in a namespace Vouch writes (`trust/`, `response/`).
    #[error(
        "label {key} is written by Vouch (labels under trust/ and response/ are the trust service's and the \
         playbooks'); leave it out or send it unchanged"
    )]
    ReservedLabel {
        /// The first reserved label the request would set or change.
        key: LabelKey,
    },
    /// A certificate offered for import was refused.
    #[error(transparent)]
    Import(#[from] certs::ImportRefused),
    /// A compliance document offered for import was refused.
    #[error(transparent)]
    Document(#[from] compliance::DocumentRefused),
    /// A value broke a domain rule (too many labels, say).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
