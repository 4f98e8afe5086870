//! The typed content of events, one type per family of actions, (de)serialized here only.
//!
//! An event's `after` is canonical JSON; for the actions below, it is one of these types. Writers build the
//! type and readers get it back with [`Event::payload`], so no crate spells the JSON keys again or reads them
//! by hand. Every payload carries a version (`v`); one written before versions existed reads as version 1, and
//! a reader refuses a version it does not know rather than misread it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use vouch_types::{CertFingerprint, Timestamp, TrustBand, TrustScore};

use crate::{Action, Event};

mod admin;

pub use admin::{
    CertificateLogged, DocumentLogged, EnrollmentRefused, EnrollmentTokenLogged, LoggedCertStatus,
    MfaEnrollment, MfaFailure, MfaReset, PolicyLogged, TokenLogged,
};

/// The payload version this build writes and reads.
pub const PAYLOAD_VERSION: u32 = 1;

fn v1() -> u32 {
    PAYLOAD_VERSION
}

/// A typed event payload and the actions it is the content of.
pub trait Payload: Serialize + DeserializeOwned {
    /// The actions whose `after` is this type.
    const ACTIONS: &'static [Action];
    /// The payload's version.
    fn payload_version(&self) -> u32;
}

/// Why a payload could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The event's action has another payload type (or none).
    #[error("a {action} event does not carry this payload")]
    WrongAction {
        /// The event's action.
        action: Action,
    },
    /// The event has no content.
    #[error("the event has no payload")]
    Missing,
    /// The content is not this payload.
    #[error("unreadable payload: {0}")]
    Invalid(#[from] serde_json::Error),
    /// Written by a newer Vouch.
    #[error("payload version {0} is newer than this build reads ({PAYLOAD_VERSION})")]
    Newer(u32),
}

impl Event {
    /// The event's content as `P`.
    pub fn payload<P: Payload>(&self) -> Result<P, PayloadError> {
        if !P::ACTIONS.contains(&self.draft.action) {
            return Err(PayloadError::WrongAction {
                action: self.draft.action,
            });
        }
        read(self.draft.after.as_deref())
    }

    /// The event's `before` as `P`: what an edit found (a revocation records the token as it was).
    pub fn payload_before<P: Payload>(&self) -> Result<P, PayloadError> {
        if !P::ACTIONS.contains(&self.draft.action) {
            return Err(PayloadError::WrongAction {
                action: self.draft.action,
            });
        }
        read(self.draft.before.as_deref())
    }
}

fn read<P: Payload>(text: Option<&str>) -> Result<P, PayloadError> {
    let p: P = serde_json::from_str(text.ok_or(PayloadError::Missing)?)?;
    if p.payload_version() > PAYLOAD_VERSION {
        return Err(PayloadError::Newer(p.payload_version()));
    }
    Ok(p)
}

/// The canonical JSON of a payload, as an event's `after`.
pub fn to_after<P: Payload>(p: &P) -> Result<String, serde_json::Error> {
    serde_json::to_string(p)
}

/// One reason a trust score moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustReason {
    /// Points taken off.
    pub penalty: u8,
    /// Which component of the score (`identity`, `behaviour`, …).
    pub component: String,
    /// Why, in words.
    pub why: String,
    /// When a remembered (decaying) penalty was incurred; absent for what the latest window says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incurred: Option<Timestamp>,
}

/// The observation window a score was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpan {
    /// Its start.
    pub start: Timestamp,
    /// Its end.
    pub end: Timestamp,
}

/// `trust.changed`: a device's new score, the one before, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustChanged {
    /// Payload version.
    #[serde(default = "v1")]
    pub v: u32,
    /// The new score.
    pub score: TrustScore,
    /// Its band.
    pub band: TrustBand,
    /// The score before, if the device had one.
    pub previous: Option<TrustScore>,
    /// Why the score is below 100, largest penalty first.
    pub reasons: Vec<TrustReason>,
    /// Judged by its class's model while its own baseline was still learning.
    #[serde(default)]
    pub cold_start: bool,
    /// How unusual the window was for the device's class (0–1).
    #[serde(default)]
    pub class_anomaly: f64,
    /// The window it was computed from.
    pub window: WindowSpan,
}

impl Payload for TrustChanged {
    const ACTIONS: &'static [Action] = &[Action::TrustChanged];
    fn payload_version(&self) -> u32 {
        self.v
    }
}

/// What a playbook step did, as events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseStep {
    /// Put the device in the quarantine group.
    Quarantine,
    /// Revoked its certificates (key compromise).
    Revoke,
    /// Revoked its certificates as superseded, demanding a new enrollment.
    #[serde(rename = "re-enroll")]
    Reenroll,
    /// Raised a finding.
    Notify,
    /// Lifted the playbook's quarantine.
    Release,
}

impl ResponseStep {
    /// The step's name in events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Quarantine => "quarantine",
            Self::Revoke => "revoke",
            Self::Reenroll => "re-enroll",
            Self::Notify => "notify",
            Self::Release => "release",
        }
    }
}

/// `response.taken`, `response.released`, `finding.raised`: one playbook step on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseRecord {
    /// Payload version.
    #[serde(default = "v1")]
    pub v: u32,
    /// The playbook.
    pub playbook: String,
    /// What it did.
    pub step: ResponseStep,
    /// Only logged: the playbook runs in shadow mode.
    pub shadow: bool,
    /// Why, in words.
    pub why: String,
    /// The device's score when it acted.
    pub trust: TrustScore,
}

impl Payload for ResponseRecord {
    const ACTIONS: &'static [Action] = &[
        Action::ResponseTaken,
        Action::ResponseReleased,
        Action::FindingRaised,
    ];
    fn payload_version(&self) -> u32 {
        self.v
    }
}

/// `session.cut`: an enforcement point cut a live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCut {
    /// Payload version.
    #[serde(default = "v1")]
    pub v: u32,
    /// The close reason's name (`revoked`, `not_authorized`, …).
    pub reason: String,
    /// Why, in words.
    pub why: String,
    /// The certificate the session was authenticated with.
    pub fingerprint: CertFingerprint,
}

impl Payload for SessionCut {
    const ACTIONS: &'static [Action] = &[Action::SessionCut];
    fn payload_version(&self) -> u32 {
        self.v
    }
}

/// `posture.reported`: the report as the device (or its tooling) sent it, checked at the edge.
impl Payload for vouch_types::PostureReport {
    const ACTIONS: &'static [Action] = &[Action::PostureReported];
    fn payload_version(&self) -> u32 {
        1
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Digest, EventDraft, EventSeq};
    use vouch_types::{Actor, DeviceId};

    fn event(action: Action, after: &str) -> Event {
        EventDraft {
            device_id: Some(DeviceId::derived("serial:p")),
            actor: Actor::System("trust".into()),
            action,
            before: None,
            after: Some(after.to_owned()),
            reason: None,
        }
        .seal(EventSeq(1), Timestamp::from_unix_micros(0), Digest::GENESIS)
    }

    #[test]
    fn a_payload_written_before_versions_reads_as_version_1_and_round_trips() {
        // As the trust service wrote it before payloads were typed.
        let old = r#"{"score":30,"band":"low","previous":100,"reasons":[{"penalty":70,"component":"behaviour","why":"bytes out 40σ above its baseline"}],"cold_start":false,"class_anomaly":0.912,"window":{"start":"2026-12-03T10:00:00Z","end":"2026-12-03T10:00:10Z"}}"#;
        let p: TrustChanged = event(Action::TrustChanged, old).payload().unwrap();
        assert_eq!(
            (p.v, p.score.get(), p.previous.map(TrustScore::get)),
            (1, 30, Some(100))
        );
        assert_eq!(p.reasons[0].why, "bytes out 40σ above its baseline");
        let again: TrustChanged = event(Action::TrustChanged, &to_after(&p).unwrap())
            .payload()
            .unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn every_step_is_named_in_events_as_it_serializes() {
        use ResponseStep::*;
        for s in [Quarantine, Revoke, Reenroll, Notify, Release] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn a_payload_is_refused_for_another_action_a_newer_version_or_a_bad_shape() {
        let r =
            r#"{"playbook":"isolate","step":"re-enroll","shadow":false,"why":"cloned","trust":12}"#;
        let ok: ResponseRecord = event(Action::ResponseTaken, r).payload().unwrap();
        assert_eq!(ok.step, ResponseStep::Reenroll);
        assert!(matches!(
            event(Action::TrustChanged, r).payload::<ResponseRecord>(),
            Err(PayloadError::WrongAction { .. })
        ));
        let newer =
            r#"{"v":2,"playbook":"isolate","step":"notify","shadow":false,"why":"x","trust":1}"#;
        assert!(matches!(
            event(Action::FindingRaised, newer).payload::<ResponseRecord>(),
            Err(PayloadError::Newer(2))
        ));
        let bad = r#"{"playbook":"isolate","step":"explode","shadow":false,"why":"x","trust":1}"#;
        assert!(matches!(
            event(Action::ResponseTaken, bad).payload::<ResponseRecord>(),
            Err(PayloadError::Invalid(_))
        ));
    }

    #[test]
    fn records_logged_before_versions_read_and_a_bad_digest_is_named() {
        let token = r#"{"id":"0101010101010101","operator":"ada","role":"auditor","created_at":"1970-01-01T00:00:00.000005Z","expires_at":null,"revoked_at":null}"#;
        let t: TokenLogged = event(Action::TokenCreated, token).payload().unwrap();
        assert_eq!((t.v, t.credential), (1, None));
        let with = token.replace('}', &format!(r#","credential":"{}"}}"#, "ab".repeat(32)));
        let t: TokenLogged = event(Action::TokenRevoked, &with).payload().unwrap();
        assert_eq!(t.credential, Some(Digest([0xab; 32])));
        let bad = token.replace('}', r#","credential":"abc"}"#);
        let e = event(Action::TokenCreated, &bad)
            .payload::<TokenLogged>()
            .unwrap_err();
        assert!(e.to_string().contains("64 hex digits"), "{e}");
        let newer = token.replace('}', r#","v":9}"#);
        let e = event(Action::TokenCreated, &newer)
            .payload::<TokenLogged>()
            .unwrap_err();
        assert!(matches!(e, PayloadError::Newer(9)), "{e}");
        // A policy's payload is not a token's.
        let e = event(Action::PolicyAdded, token)
            .payload::<TokenLogged>()
            .unwrap_err();
        assert!(matches!(e, PayloadError::WrongAction { .. }), "{e}");
    }
}
