//! The contract between Vouch and its database.
//!
//! [`Store`] is what every backend implements (SQLite embedded, PostgreSQL at scale). The rules that must be
//! the same whatever the backend live here, not in the backends: how an edit changes a device
//! ([`plan_edit`]), which event it appends, and how the audit log is verified ([`verify_audit`]). Each
//! backend only moves rows, and proves it does so faithfully by passing the [`conformance`] suite.
//!
//! Architecture Invariant: every change to a device and its event are written in one transaction; a backend
//! never exposes one without the other.

mod audit;
mod certs;
#[cfg(feature = "conformance")]
pub mod conformance;
mod documents;
mod error;
mod feed;
mod mfa;
mod observe;
mod plan;
mod policies;
mod query;
mod replay;
mod rows;

pub use audit::{
    AuditAnalysis, AuditReport, AuditWalk, CheckpointCheck, CheckpointOutcome, verify_audit,
    verify_audit_full,
};
pub use certs::{
    CertStatus, CertificateRecord, EnrollmentTokenRecord, Issuance, IssuancePlan, Refusal,
    StatusPlan, plan_enrollment_token_created, plan_issuance, plan_release, plan_revocation,
};
pub use documents::{DocumentRow, plan_document};
pub use error::StoreError;
pub use feed::{Announcer, Batch, EventFilter, Feed, POLL_EVERY, Wakeup};
pub use mfa::{
    MFA_FREE_FAILURES, MFA_MAX_BACKOFF_SECS, MFA_MAX_FAILURES, MfaAttempt, mfa_backoff_secs,
    plan_mfa_attempt, plan_mfa_failure, plan_mfa_reset,
};
pub use observe::{
    MAX_SNAPSHOT_BYTES, OBSERVATION_VERSION, ObservationFeed, ObservationSeq, ObservationSnapshot,
    QueuedObservation, check_snapshot, decode_observation, encode_observation,
};
pub use plan::{
    Change, DeviceEdit, Edited, credential_digest, plan_create, plan_edit, plan_token_created,
    plan_token_revoked,
};
pub use policies::{
    MfaRecord, MfaRow, PolicyOp, PolicyRow, PolicyWrite, plan_mfa, plan_policy_write, step_column,
};
pub use query::{DevicePage, DeviceQuery, ImportOutcome, MAX_PAGE, TokenRecord};
pub use replay::{
    LiveTables, NotCheckable, PolicyField, Replay, StateFinding, StateReport, TokenField,
};
pub use rows::{CertRow, EnrollmentTokenRow, EventRow, TokenRow, decode_head, status_columns};

use std::collections::BTreeMap;

use async_trait::async_trait;
use vouch_events::{Digest, Event, EventSeq};
use vouch_types::{
    CertFingerprint, ConsumerId, Device, DeviceId, DeviceState, DocumentKey, DocumentKind,
    DocumentRecord, NewDevice, Observation, PolicyId, PolicyRecord, RevocationReason, Serial,
    Timestamp, TokenId,
};

/// A shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (the default, zero configuration).
    Sqlite,
    /// PostgreSQL (when the fleet outgrows one machine).
    Postgres,
}

/// Everything Vouch persists: devices, the event log, operators' tokens.
///
/// Every method that changes something appends its events in the same transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The engine behind this store.
    fn backend(&self) -> Backend;

    /// Checks that the database answers (readiness).
    async fn ping(&self) -> Result<()>;

    /// Creates a device; [`StoreError::AlreadyExists`] if its id is taken.
    async fn create_device(&self, new: NewDevice, change: Change) -> Result<Device>;

    /// Creates the devices of `batch` whose ids do not exist yet, in one transaction; the others are left
    /// alone, so re-running an interrupted import completes it without duplicates.
    async fn import_devices(&self, batch: Vec<NewDevice>, change: Change) -> Result<ImportOutcome>;

    /// One device; [`StoreError::NotFound`] if there is none with this id.
    async fn get_device(&self, id: DeviceId) -> Result<Device>;

    /// A page of devices matching `query`, in id order.
    async fn list_devices(&self, query: &DeviceQuery) -> Result<DevicePage>;

    /// Applies `edit` to a device (see [`plan_edit`]); with `expected_revision`, only if the device is still at
    /// that revision ([`StoreError::RevisionMismatch`] otherwise).
    async fn edit_device(
        &self,
        id: DeviceId,
        edit: DeviceEdit,
        expected_revision: Option<u64>,
        change: Change,
    ) -> Result<Device>;

    /// How many devices are in each state (states with none are absent).
    async fn count_devices_by_state(&self) -> Result<BTreeMap<DeviceState, u64>>;

    /// The events about one device after position `after`, oldest first, at most `limit`.
    async fn device_events(
        &self,
        id: DeviceId,
        after: Option<EventSeq>,
        limit: u32,
    ) -> Result<Vec<Event>>;

    /// The whole log after position `after`, oldest first, at most `limit`.
    async fn events(&self, after: Option<EventSeq>, limit: u32) -> Result<Vec<Event>>;

    /// A handle that fires after appends to the log (in this process on SQLite, in any process through
    /// `LISTEN`/`NOTIFY` on PostgreSQL). Best effort: a [`Feed`] polls as well.
    fn subscribe(&self) -> Wakeup;

    /// The position `consumer` last committed, if it ever did.
    async fn consumer_cursor(&self, consumer: &ConsumerId) -> Result<Option<EventSeq>>;

    /// Records that `consumer` processed the log up to `through`. Monotonic: saving the same position again
    /// changes nothing, an earlier one is refused ([`StoreError::CursorBackwards`]) and nothing changes.
    async fn save_consumer_cursor(&self, consumer: &ConsumerId, through: EventSeq) -> Result<()>;

    /// Queues `batch` (one gateway window's observations, a posture report) in one transaction, queued at
    /// `at`, and fires the wake-up ([`Store::subscribe`]); returns the position of the last one (`None` for
    /// an empty batch). Not part of the event log: see [`ObservationFeed`].
    async fn append_observations(
        &self,
        batch: Vec<Observation>,
        at: Timestamp,
    ) -> Result<Option<ObservationSeq>>;

    /// The queued observations after `after`, oldest first, at most `limit`.
    async fn observations(
        &self,
        after: Option<ObservationSeq>,
        limit: u32,
    ) -> Result<Vec<QueuedObservation>>;

    /// Drops the observations queued before `before`, and all but the newest `keep_last`; returns how many
    /// went. A consumer whose cursor was among them resumes at the oldest one kept.
    async fn prune_observations(&self, before: Timestamp, keep_last: u64) -> Result<u64>;

    /// The cursor and state `consumer` last saved in the observation queue, if it ever did.
    async fn observation_snapshot(
        &self,
        consumer: &ConsumerId,
    ) -> Result<Option<ObservationSnapshot>>;

    /// Saves `consumer`'s cursor and state as one ([`check_snapshot`] first). Monotonic: the same position
    /// again replaces the state, an earlier one is refused ([`StoreError::CursorBackwards`]), nothing changed.
    async fn save_observation_snapshot(
        &self,
        consumer: &ConsumerId,
        snapshot: ObservationSnapshot,
    ) -> Result<()>;

    /// The position and hash recorded with the last append, if any.
    async fn audit_head(&self) -> Result<Option<(EventSeq, Digest)>>;

    /// Stores a newly issued token.
    async fn create_token(&self, token: TokenRecord, change: Change) -> Result<()>;

    /// One token by id, revoked or not.
    async fn get_token(&self, id: TokenId) -> Result<Option<TokenRecord>>;

    /// Every token, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;

    /// Revokes a token (idempotent: revoking a revoked token changes nothing and logs nothing).
    async fn revoke_token(&self, id: TokenId, change: Change) -> Result<TokenRecord>;

    /// Appends an event that records something outside the store's tables (a CA created, say); returns it as
    /// sealed. Events about devices must come with the change they describe, through the methods above.
    async fn append_event(&self, draft: vouch_events::EventDraft, at: Timestamp) -> Result<Event>;

    /// Stores a one-time enrollment token for a device (which must exist).
    async fn create_enrollment_token(
        &self,
        token: EnrollmentTokenRecord,
        change: Change,
    ) -> Result<()>;

    /// One enrollment token by id.
    async fn get_enrollment_token(&self, id: TokenId) -> Result<Option<EnrollmentTokenRecord>>;

    /// Records an issued certificate in one transaction with everything it implies (see [`plan_issuance`]):
    /// the token is consumed, the device updated, the events appended. Refused ([`StoreError::Refused`]) with
    /// nothing changed if the token is unknown, used, expired or for another device, or the device cannot
    /// enroll; the caller must then discard the certificate.
    async fn record_issuance(&self, issuance: Issuance, change: Change) -> Result<Device>;

    /// One certificate by serial.
    async fn get_certificate(&self, serial: Serial) -> Result<Option<CertificateRecord>>;

    /// One certificate by the SHA-256 fingerprint of its DER.
    async fn get_certificate_by_fingerprint(
        &self,
        fingerprint: CertFingerprint,
    ) -> Result<Option<CertificateRecord>>;

    /// A device's certificates, newest first.
    async fn device_certificates(&self, id: DeviceId) -> Result<Vec<CertificateRecord>>;

    /// Unrevoked certificates that expire before `before`, soonest first, at most `limit`.
    async fn expiring_certificates(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<CertificateRecord>>;

    /// Every revoked certificate (serial, when, why), for the CRL.
    async fn revoked_certificates(&self) -> Result<Vec<(Serial, Timestamp, RevocationReason)>>;

    /// Revokes a certificate (see [`plan_revocation`]); idempotent for the same reason.
    async fn revoke_certificate(
        &self,
        serial: Serial,
        reason: RevocationReason,
        change: Change,
    ) -> Result<CertificateRecord>;

    /// A number that grows with every revocation, hold or release, in any process: caches of CRL and OCSP
    /// answers compare it to know when they went stale.
    async fn revocation_generation(&self) -> Result<u64>;

    /// Releases a certificate from hold (see [`plan_release`]).
    async fn release_certificate(
        &self,
        serial: Serial,
        change: Change,
    ) -> Result<CertificateRecord>;

    /// The latest version of every policy that is not removed, ordered by id.
    async fn policies(&self) -> Result<Vec<PolicyRecord>>;

    /// Every version of one policy, oldest first (removed ones included); empty if it never existed.
    async fn policy_history(&self, id: &PolicyId) -> Result<Vec<PolicyRecord>>;

    /// Applies `writes` in one transaction (see [`plan_policy_write`]): all land or none. Returns the versions
    /// written (writes that change nothing are skipped).
    async fn write_policies(
        &self,
        writes: Vec<PolicyWrite>,
        change: Change,
    ) -> Result<Vec<PolicyRecord>>;

    /// A number that grows with every policy write, in any process: the engine recompiles when it changes.
    async fn policy_generation(&self) -> Result<u64>;

    /// Keeps `body` as the compliance document `kind`/`key`, replacing one kept under that name, and logs
    /// `compliance.document_imported`, in one transaction (see [`plan_document`]). `None`: the same bytes
    /// were kept under that name already, and nothing was written.
    async fn put_document(
        &self,
        kind: DocumentKind,
        key: DocumentKey,
        body: Vec<u8>,
        change: Change,
    ) -> Result<Option<DocumentRecord>>;

    /// The kept documents of `kind` (every kind when `None`), by kind then key.
    async fn documents(&self, kind: Option<DocumentKind>) -> Result<Vec<DocumentRecord>>;

    /// A token's second factor, if one was enrolled.
    async fn get_mfa(&self, token: TokenId) -> Result<Option<MfaRecord>>;

    /// Stores (replaces) a token's second factor with its event (see [`plan_mfa`]). The token must exist.
    async fn put_mfa(&self, mfa: MfaRecord, change: Change) -> Result<()>;

    /// Records that the code for `step` was used, if no code for this or a later step was: `false` means a
    /// replay (or no enrollment). Atomic, so two servers cannot both accept one code. An accepted code
    /// forgives the tries counted before it (failures and backoff cleared). Not an event: it is a counter,
    /// not a change anyone made.
    async fn use_mfa_step(&self, token: TokenId, step: u64) -> Result<bool>;

    /// Counts one try of a code for `token` before it is checked, in one transaction with the read that
    /// decides whether a try is allowed at all ([`plan_mfa_attempt`]): concurrent guesses cannot outrun the
    /// limit.
    async fn take_mfa_attempt(&self, token: TokenId, now: Timestamp) -> Result<MfaAttempt>;

    /// Records that a code tried for `token` was wrong: the backoff it earns and the `mfa.failed` event
    /// ([`plan_mfa_failure`]), in one transaction. `source` is where the request came from.
    async fn record_mfa_failure(
        &self,
        token: TokenId,
        change: Change,
        source: Option<String>,
    ) -> Result<()>;

    /// An administrator's reset of `token`'s factor: failures and backoff cleared, enrollment of a new one
    /// allowed until `enroll_until`, and the `mfa.reset` event ([`plan_mfa_reset`]). The token must exist.
    async fn reset_mfa(
        &self,
        token: TokenId,
        enroll_until: Timestamp,
        change: Change,
    ) -> Result<()>;
}
