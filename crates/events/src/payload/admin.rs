//! Payloads of the control plane's own records: operator tokens, policies, certificates, enrollment
//! tokens, second factors. The audit replay (`vouch_store::Replay`) reads tokens and policies back from
//! these to compare the log with the live tables, so a field here is a field it checks.

use serde::{Deserialize, Serialize};
use vouch_types::{
    CertFingerprint, DeviceId, DocumentKey, DocumentKind, OperatorName, PolicyId, PolicyMode,
    RevocationReason, Role, Serial, Timestamp, TokenId,
};

use super::{Payload, v1};
use crate::{Action, Digest};

/// `token.created`, `token.revoked`: an operator token's public view, never its secret or the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenLogged {
    /// Payload version.
    #[serde(default = "v1")]
    pub v: u32,
    /// The token's public id.
    pub id: TokenId,
    /// Whom it was issued to.
    pub operator: OperatorName,
    /// What it may do.
    pub role: Role,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// A digest of the secret's hash (`vouch_store::credential_digest`), enough to notice the stored hash
    /// swapped for another; tokens logged before it existed lack it.
    #[serde(default)]
    pub credential: Option<Digest>,
}

impl Payload for TokenLogged {
    const ACTIONS: &'static [Action] = &[Action::TokenCreated, Action::TokenRevoked];
    fn payload_version(&self) -> u32 {
        self.v
    }
}

/// `policy.added`, `policy.updated`, `policy.mode_changed`, `policy.removed`: one version of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyLogged {
    /// Payload version.
    #[serde(default = "v1")]
    pub v: u32,
    /// Which policy.
    pub id: PolicyId,
    /// Its version, 1 for the first and one more for each write.
    pub version: u32,
    /// Shadow or enforce.
    pub mode: PolicyMode,
    /// This version removes the policy.
    pub removed: bool,
    /// Its Cedar text.
    pub text: String,
}

impl Payload for PolicyLogged {
    const ACTIONS: &'static [Action] = &[
        Action::PolicyAdded,
        Action::PolicyUpdated,
        Action::PolicyModeChanged,
        Action::PolicyRemoved,
    ];
    fn payload_version(&self) -> u32 {
        self.v
    }
}

/// A certificate's status as its events record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoggedCertStatus {
    /// Neither revoked nor released.
    Good,
    /// Revoked (see the reason and time).
    Revoked,
}

/// `certificate.issued` (after), `certificate.revoked` and `certificate.released` (before and after): a
/// certificate without its DER.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateLogged {
    /// Payload version.
    #[serde(default = "v1")]
    pub v: u32,
    /// Its serial number.
    pub serial: Serial,
    /// The device it identifies.
    pub device_id: DeviceId,
    /// SHA-256 of its DER.
    pub fingerprint: CertFingerprint,
    /// Valid from.
    pub not_before: Timestamp,
    /// Valid until.
    pub not_after: Timestamp,
    /// Good or revoked.
    pub status: LoggedCertStatus,
    /// Why it was revoked.
    pub reason: Option<RevocationReason>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

impl Payload for CertificateLogged {
    const ACTIONS: &'static [Action] = &[
        Action::CertificateIssued,
        Action::CertificateRevoked,
        Action::CertificateReleased,
    ];
    fn payload_version(&self) -> u32 {
        self.v
    }
}

/// `enrollment_token.created`: a one-time enrollment token, never its secret or the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentTokenLogged {
    /// Payload version.
    #[serde(default = "v1")]
    pub v: u32,
    /// The token's public id.
    pub id: TokenId,
    /// The device it may enroll.
    pub device_id: DeviceId,
    /// When it stops working.
    pub expires_at: Timestamp,
}

impl Payload for EnrollmentTokenLogged {
    const ACTIONS: &'static [Action] = &[Action::EnrollmentTokenCreated];
    fn payload_version(&self) -> u32 {
        self.v
    }
}

/// `enrollment.refused`: why an enrollment was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentRefused {
    /// Payload version.
    #[serde(default = "v1")]
    pub v: u32,
    /// The refusal, in words.
    pub why: String,
}

impl Payload for EnrollmentRefused {
    const ACTIONS: &'static [Action] = &[Action::EnrollmentRefused];
    fn payload_version(&self) -> u32 {
        self.v
    }
}

/// `mfa.enrolled`, `mfa.confirmed`: a token's second factor was enrolled, or its first code confirmed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaEnrollment {
    /// Payload version.
    #[serde(default = "v1")]
    pub v: u32,
    /// Whose second factor.
    pub token: TokenId,
    /// Confirmed by a first good code.
    pub confirmed: bool,
}

impl Payload for MfaEnrollment {
    const ACTIONS: &'static [Action] = &[Action::MfaEnrolled, Action::MfaConfirmed];
    fn payload_version(&self) -> u32 {
        self.v
    }
}

/// `mfa.failed`: a wrong, expired or replayed one-time code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaFailure {
    /// Payload version.
    #[serde(default = "v1")]
    pub v: u32,
    /// The token the code was sent with.
    pub token: TokenId,
    /// Wrong codes in a row now.
    pub failures: u32,
    /// Locked until an administrator resets it.
    pub locked: bool,
    /// No code is tried before this time.
    pub retry_at: Option<Timestamp>,
    /// The address the code came from, when known.
    pub source: Option<String>,
}

impl Payload for MfaFailure {
    const ACTIONS: &'static [Action] = &[Action::MfaFailed];
    fn payload_version(&self) -> u32 {
        self.v
    }
}

/// `mfa.reset`: an administrator cleared a token's failures and let it enroll a new factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaReset {
    /// Payload version.
    #[serde(default = "v1")]
    pub v: u32,
    /// Whose second factor.
    pub token: TokenId,
    /// Until when it may enroll a new one.
    pub enroll_until: Timestamp,
    /// The wrong codes in a row it had.
    pub had_failures: u32,
}

impl Payload for MfaReset {
    const ACTIONS: &'static [Action] = &[Action::MfaReset];
    fn payload_version(&self) -> u32 {
        self.v
    }
}

/// `compliance.document_imported`: which document, and a digest of its bytes (the bytes are in the store's
/// document table, too large for the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentLogged {
    /// Payload version.
    #[serde(default = "v1")]
    pub v: u32,
    /// What it is.
    pub kind: DocumentKind,
    /// The name it is kept under.
    pub key: DocumentKey,
    /// SHA-256 of its bytes.
    pub digest: Digest,
    /// Its size in bytes.
    pub bytes: u64,
}

impl Payload for DocumentLogged {
    const ACTIONS: &'static [Action] = &[Action::DocumentImported];
    fn payload_version(&self) -> u32 {
        self.v
    }
}
