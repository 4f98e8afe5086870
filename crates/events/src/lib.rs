//! The event log's content and its tamper evidence.
//!
//! Every change Vouch makes appends one [`Event`]: who ([`Actor`]), what ([`Action`]), to which device, the
//! record before and after, why, and when. Events form one hash chain: each event's hash covers its own fields
//! and the previous event's hash, so altering, removing or reordering any stored event breaks the chain at
//! that event, and [`ChainVerifier`] names it. Sealing and verifying are pure; the store crates persist.
//!
//! A plain hash chain proves integrity against edits that do not recompute every later hash; signed
//! [`checkpoint`]s of its head, kept outside the database, catch those too.

pub mod checkpoint;
pub mod payload;

pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointSigner, KeyId, PublicKey, SignedCheckpoint,
};
pub use payload::{
    CertificateLogged, DocumentLogged, EnrollmentRefused, EnrollmentTokenLogged, LoggedCertStatus,
    MfaEnrollment, MfaFailure, MfaReset, PAYLOAD_VERSION, Payload, PayloadError, PolicyLogged,
    ResponseRecord, ResponseStep, SessionCut, TokenLogged, TrustChanged, TrustReason, WindowSpan,
};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use vouch_types::{Actor, Device, DeviceId, Reason, Timestamp, ValidationError};

/// A SHA-256 digest in the chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The `prev_hash` of the first event.
    pub const GENESIS: Digest = Digest([0; 32]);

    /// A digest from bytes read back from the store; `None` unless exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(b).ok().map(Self)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&text, &mut bytes)
            .map_err(|_| serde::de::Error::custom("a digest is 64 hex digits"))?;
        Ok(Self(bytes))
    }
}

/// An event's position in the log: 1, 2, 3, … without gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventSeq(pub u64);

impl fmt::Display for EventSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Action {
    /// A device record was created by an operator or a component.
    DeviceCreated,
    /// A device record was created by a bulk import.
    DeviceImported,
    /// A device's attributes changed.
    DeviceUpdated,
    /// A device moved through its lifecycle.
    DeviceTransitioned,
    /// An operator API token was issued.
    TokenCreated,
    /// An operator API token was revoked.
    TokenRevoked,
    /// A certificate authority was created.
    CaInitialized,
    /// A one-time enrollment token was issued for a device.
    EnrollmentTokenCreated,
    /// A certificate was issued to a device.
    CertificateIssued,
    /// A certificate was revoked or put on hold.
    CertificateRevoked,
    /// A held certificate was released.
    CertificateReleased,
    /// An enrollment was refused (bad request or credential); nothing was issued.
    EnrollmentRefused,
    /// A policy was stored for the first time.
    PolicyAdded,
    /// A policy's text changed (a new version).
    PolicyUpdated,
    /// A policy moved between shadow and enforce.
    PolicyModeChanged,
    /// A policy was removed (its history stays).
    PolicyRemoved,
    /// A request was denied by the enforced policies.
    AccessDenied,
    /// A request was allowed, but the policies in shadow mode would have denied it.
    AccessWouldDeny,
    /// An operator enrolled a second factor (TOTP); not yet confirmed.
    MfaEnrolled,
    /// An operator confirmed their second factor with a valid code.
    MfaConfirmed,
    /// An enforcement point cut a live session because the device no longer may keep it (revoked
    /// certificate, lifecycle change, policy).
    SessionCut,
    /// A device reported its posture (firmware, configuration hash, open ports, attestation).
    PostureReported,
    /// A device's trust score changed; the event carries the score and its reasons.
    TrustChanged,
    /// A playbook acted on a device (quarantine, revoke, re-enrollment), or would have in shadow mode.
    ResponseTaken,
    /// A playbook's restriction was lifted because the device behaved again.
    ResponseReleased,
    /// A finding for SIEMs and webhooks (a detection, what was done about it).
    FindingRaised,
    /// A one-time code was wrong (or replayed) for an operator's second factor; the event says how many in a
    /// row and whether the factor is now locked.
    MfaFailed,
    /// An administrator unlocked an operator's second factor and allowed its holder to enroll a new one.
    MfaReset,
    /// A compliance document (SBOM, advisory, KEV catalogue, VEX) was imported or replaced.
    DocumentImported,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 29] = [
        Self::DeviceCreated,
        Self::DeviceImported,
        Self::DeviceUpdated,
        Self::DeviceTransitioned,
        Self::TokenCreated,
        Self::TokenRevoked,
        Self::CaInitialized,
        Self::EnrollmentTokenCreated,
        Self::CertificateIssued,
        Self::CertificateRevoked,
        Self::CertificateReleased,
        Self::EnrollmentRefused,
        Self::PolicyAdded,
        Self::PolicyUpdated,
        Self::PolicyModeChanged,
        Self::PolicyRemoved,
        Self::AccessDenied,
        Self::AccessWouldDeny,
        Self::MfaEnrolled,
        Self::MfaConfirmed,
        Self::SessionCut,
        Self::PostureReported,
        Self::TrustChanged,
        Self::ResponseTaken,
        Self::ResponseReleased,
        Self::FindingRaised,
        Self::MfaFailed,
        Self::MfaReset,
        Self::DocumentImported,
    ];

    /// The action's stable name, as stored, hashed and exported (`device.created`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DeviceCreated => "device.created",
            Self::DeviceImported => "device.imported",
            Self::DeviceUpdated => "device.updated",
            Self::DeviceTransitioned => "device.transitioned",
            Self::TokenCreated => "token.created",
            Self::TokenRevoked => "token.revoked",
            Self::CaInitialized => "ca.initialized",
            Self::EnrollmentTokenCreated => "enrollment_token.created",
            Self::CertificateIssued => "certificate.issued",
            Self::CertificateRevoked => "certificate.revoked",
            Self::CertificateReleased => "certificate.released",
            Self::EnrollmentRefused => "enrollment.refused",
            Self::PolicyAdded => "policy.added",
            Self::PolicyUpdated => "policy.updated",
            Self::PolicyModeChanged => "policy.mode_changed",
            Self::PolicyRemoved => "policy.removed",
            Self::AccessDenied => "access.denied",
            Self::AccessWouldDeny => "access.would_deny",
            Self::MfaEnrolled => "mfa.enrolled",
            Self::MfaConfirmed => "mfa.confirmed",
            Self::SessionCut => "session.cut",
            Self::PostureReported => "posture.reported",
            Self::TrustChanged => "trust.changed",
            Self::ResponseTaken => "response.taken",
            Self::ResponseReleased => "response.released",
            Self::FindingRaised => "finding.raised",
            Self::MfaFailed => "mfa.failed",
            Self::MfaReset => "mfa.reset",
            Self::DocumentImported => "compliance.document_imported",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Action> for &'static str {
    fn from(a: Action) -> Self {
        a.as_str()
    }
}

impl FromStr for Action {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        vouch_types::parse_named("event action", s, &Self::ALL, Self::as_str)
    }
}

impl TryFrom<String> for Action {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Who, what, why: the part of an event its author supplies. The log adds position, time and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// The device the event is about, if any.
    pub device_id: Option<DeviceId>,
    /// Who acted.
    pub actor: Actor,
    /// What happened.
    pub action: Action,
    /// The subject before the change, as canonical JSON (`None` when it did not exist).
    pub before: Option<String>,
    /// The subject after the change, as canonical JSON (`None` when it no longer exists).
    pub after: Option<String>,
    /// Why, when someone said.
    pub reason: Option<Reason>,
}

impl EventDraft {
    /// An event about a device, with its record before and after the change.
    pub fn device(
        action: Action,
        actor: Actor,
        before: Option<&Device>,
        after: &Device,
        reason: Option<Reason>,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            device_id: Some(after.id),
            actor,
            action,
            before: before.map(serde_json::to_string).transpose()?,
            after: Some(serde_json::to_string(after)?),
            reason,
        })
    }

    /// Fixes the draft at position `seq`, time `at`, after the event whose hash is `prev_hash`.
    pub fn seal(self, seq: EventSeq, at: Timestamp, prev_hash: Digest) -> Event {
        let hash = chain_hash(&self, seq, at, &prev_hash);
        Event {
            seq,
            at,
            draft: self,
            prev_hash,
            hash,
        }
    }
}

/// One entry of the event log, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its position in the log.
    pub seq: EventSeq,
    /// When it was appended.
    pub at: Timestamp,
    /// Its content.
    pub draft: EventDraft,
    /// The hash of the event before it ([`Digest::GENESIS`] for the first).
    pub prev_hash: Digest,
    /// The hash of this event, covering its content, position, time and `prev_hash`.
    pub hash: Digest,
}

impl Event {
    /// Whether the stored hash matches the event's content.
    pub fn hash_matches(&self) -> bool {
        chain_hash(&self.draft, self.seq, self.at, &self.prev_hash) == self.hash
    }
}

/// The chain hash: SHA-256 over a length-prefixed encoding, so that no two different events encode alike.
fn chain_hash(d: &EventDraft, seq: EventSeq, at: Timestamp, prev: &Digest) -> Digest {
    fn field(h: &mut Sha256, v: Option<&[u8]>) {
        match v {
            None => h.update([0u8]),
            Some(b) => {
                h.update([1u8]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
        }
    }
    let mut h = Sha256::new();
    h.update(b"vouch-event-v1");
    h.update(seq.0.to_be_bytes());
    h.update(at.unix_micros().to_be_bytes());
    field(&mut h, d.device_id.as_ref().map(|id| &id.as_bytes()[..]));
    field(&mut h, Some(d.actor.to_string().as_bytes()));
    field(&mut h, Some(d.action.as_str().as_bytes()));
    field(&mut h, d.before.as_deref().map(str::as_bytes));
    field(&mut h, d.after.as_deref().map(str::as_bytes));
    field(&mut h, d.reason.as_ref().map(|r| r.as_str().as_bytes()));
    h.update(prev.0);
    Digest(h.finalize().into())
}

/// The first place where the stored log is not the log that was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The event's content no longer matches its hash: it was edited.
    #[error("event {seq} was altered: its content does not match its hash")]
    Altered {
        /// The edited event.
        seq: EventSeq,
    },
    /// Positions jump: events in between were removed.
    #[error("{}: expected event {expected}, found {found}", missing_range(*expected, *found))]
    Missing {
        /// The position that should have come next.
        expected: EventSeq,
        /// The position that came instead.
        found: EventSeq,
    },
    /// The event does not follow the one stored before it: events were removed and renumbered, or reordered.
    #[error("event {seq} does not follow event {}: events were removed or reordered before it", seq.0 - 1)]
    Unlinked {
        /// The first event that does not link to its predecessor.
        seq: EventSeq,
    },
    /// Positions repeat or run backwards.
    #[error("event {found} appears where event {expected} should be: the log was reordered")]
    OutOfOrder {
        /// The position that should have come next.
        expected: EventSeq,
        /// The position found.
        found: EventSeq,
    },
    /// The log ends before the recorded head: its newest events were removed.
    #[error(
        "the log ends at event {last} but its recorded head is event {head}: newer events were removed"
    )]
    Truncated {
        /// The last event found.
        last: EventSeq,
        /// The head recorded with the last append.
        head: EventSeq,
    },
    /// Events exist but no head was recorded: the head was removed.
    #[error("the log holds events but its recorded head is missing")]
    HeadMissing,
    /// The recorded head does not match the last event.
    #[error("the recorded head (event {head}) does not match the stored events")]
    HeadMismatch {
        /// The head's position.
        head: EventSeq,
    },
}

fn missing_range(expected: EventSeq, found: EventSeq) -> String {
    if found.0 == expected.0 + 1 {
        format!("event {expected} is missing")
    } else {
        format!(
            "events {expected} to {} are missing",
            found.0.saturating_sub(1)
        )
    }
}

/// Walks the log in order and reports the first break. Feed it every event with [`push`](Self::push), then
/// compare with the recorded head using [`finish`](Self::finish).
#[derive(Debug, Default)]
pub struct ChainVerifier {
    last: Option<(EventSeq, Digest)>,
    count: u64,
}

impl ChainVerifier {
    /// A verifier at the start of the log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next stored event.
    pub fn push(&mut self, e: &Event) -> Result<(), ChainBreak> {
        let (expected, prev) = match self.last {
            None => (EventSeq(1), Digest::GENESIS),
            Some((s, h)) => (EventSeq(s.0 + 1), h),
        };
        if e.seq < expected {
            return Err(ChainBreak::OutOfOrder {
                expected,
                found: e.seq,
            });
        }
        if !e.hash_matches() {
            return Err(ChainBreak::Altered { seq: e.seq });
        }
        if e.seq > expected {
            return Err(ChainBreak::Missing {
                expected,
                found: e.seq,
            });
        }
        if e.prev_hash != prev {
            return Err(ChainBreak::Unlinked { seq: e.seq });
        }
        self.last = Some((e.seq, e.hash));
        self.count += 1;
        Ok(())
    }

    /// Ends the walk against the head recorded with the last append; returns how many events were verified.
    pub fn finish(self, head: Option<(EventSeq, Digest)>) -> Result<u64, ChainBreak> {
        match (self.last, head) {
            (None, None) => Ok(0),
            (Some(_), None) => Err(ChainBreak::HeadMissing),
            (None, Some((h, _))) => Err(ChainBreak::Truncated {
                last: EventSeq(0),
                head: h,
            }),
            (Some((last, _)), Some((h, _))) if last < h => {
                Err(ChainBreak::Truncated { last, head: h })
            }
            (Some((last, hash)), Some((h, hh))) if last == h && hash == hh => Ok(self.count),
            (Some(_), Some((h, _))) => Err(ChainBreak::HeadMismatch { head: h }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<Event> {
        let mut prev = Digest::GENESIS;
        (1..=n)
            .map(|i| {
                let e = EventDraft {
                    device_id: Some(DeviceId::derived(&format!("serial:{i}"))),
                    actor: Actor::System("test".into()),
                    action: Action::DeviceCreated,
                    before: None,
                    after: Some(format!("{{\"n\":{i}}}")),
                    reason: None,
                }
                .seal(EventSeq(i), Timestamp::from_unix_micros(i as i64), prev);
                prev = e.hash;
                e
            })
            .collect()
    }

    fn verify(events: &[Event]) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::new();
        for e in events {
            v.push(e)?;
        }
        let head = events.last().map(|e| (e.seq, e.hash));
        v.finish(head)
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn altered_event_is_named() {
        let mut c = chain(5);
        c[2].draft.after = Some("{\"n\":99}".into());
        assert_eq!(verify(&c), Err(ChainBreak::Altered { seq: EventSeq(3) }));
        let mut c = chain(5);
        c[1].at = Timestamp::from_unix_micros(77);
        assert_eq!(verify(&c), Err(ChainBreak::Altered { seq: EventSeq(2) }));
    }

    #[test]
    fn removed_event_is_named() {
        let mut c = chain(5);
        c.remove(2);
        assert_eq!(
            verify(&c),
            Err(ChainBreak::Missing {
                expected: EventSeq(3),
                found: EventSeq(4)
            })
        );
    }

    #[test]
    fn reordered_events_are_named() {
        let mut c = chain(5);
        c.swap(1, 3);
        assert_eq!(
            verify(&c),
            Err(ChainBreak::Missing {
                expected: EventSeq(2),
                found: EventSeq(4)
            })
        );
        // Swapping positions along with content: the hash covers the position.
        let mut c = chain(5);
        let (s1, s3) = (c[1].seq, c[3].seq);
        c.swap(1, 3);
        c[1].seq = s1;
        c[3].seq = s3;
        assert_eq!(verify(&c), Err(ChainBreak::Altered { seq: EventSeq(2) }));
    }

    #[test]
    fn truncated_tail_is_named() {
        let c = chain(5);
        let head = Some((c[4].seq, c[4].hash));
        let mut v = ChainVerifier::new();
        for e in &c[..3] {
            v.push(e).unwrap();
        }
        assert_eq!(
            v.finish(head),
            Err(ChainBreak::Truncated {
                last: EventSeq(3),
                head: EventSeq(5)
            })
        );
    }

    #[test]
    fn break_messages_are_clear() {
        let msg = ChainBreak::Missing {
            expected: EventSeq(3),
            found: EventSeq(6),
        }
        .to_string();
        assert_eq!(msg, "events 3 to 5 are missing: expected event 3, found 6");
        let msg = ChainBreak::Missing {
            expected: EventSeq(3),
            found: EventSeq(4),
        }
        .to_string();
        assert_eq!(msg, "event 3 is missing: expected event 3, found 4");
    }
}
