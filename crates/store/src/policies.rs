//! Stored policies and operators' second factors: the write rules every backend shares.
//!
//! A policy is a chain of versions; a change of text, of mode, or a removal each writes the next version and
//! one event. Writing what is already there writes nothing. Several writes go in one transaction: either all
//! of them land or none (a policy file is adopted whole).

use vouch_events::{Action, EventDraft, MfaEnrollment, PAYLOAD_VERSION, PolicyLogged};
use vouch_types::{PolicyId, PolicyMode, PolicyRecord, Timestamp, TokenId};

use crate::{Change, StoreError};

/// What one policy write asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyOp {
    /// Store this text (already validated by the policy engine) in this mode.
    Put {
        /// The Cedar source of exactly one policy.
        text: String,
        /// Its mode.
        mode: PolicyMode,
    },
    /// Keep the text, change the mode.
    SetMode(PolicyMode),
    /// Remove the policy from the active set.
    Remove,
}

/// One write to one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWrite {
    /// Which policy.
    pub id: PolicyId,
    /// What to do.
    pub op: PolicyOp,
    /// Refuse unless the current version is this one (optimistic concurrency); `Some(0)`: must be new.
    pub expected_version: Option<u32>,
}

fn policy_json(p: &PolicyRecord) -> String {
    crate::plan::after(&PolicyLogged {
        v: PAYLOAD_VERSION,
        id: p.id.clone(),
        version: p.version,
        mode: p.mode,
        removed: p.removed,
        text: p.text.clone(),
    })
}

/// The next version and its event, or `None` when the write changes nothing; `current` is the latest version
/// (removed or not), if the policy ever existed.
pub fn plan_policy_write(
    current: Option<&PolicyRecord>,
    write: &PolicyWrite,
    change: &Change,
) -> Result<Option<(PolicyRecord, EventDraft)>, StoreError> {
    let live = current.filter(|c| !c.removed);
    if let Some(expected) = write.expected_version {
        let actual = live.map_or(0, |c| c.version);
        if expected != actual {
            return Err(StoreError::RevisionMismatch {
                id: write.id.to_string(),
                expected: expected.into(),
                actual: actual.into(),
            });
        }
    }
    let (text, mode, removed, action) = match (&write.op, live) {
        (PolicyOp::Put { text, mode }, None) => (text.clone(), *mode, false, Action::PolicyAdded),
        (PolicyOp::Put { text, mode }, Some(c)) => {
            if c.text == *text && c.mode == *mode {
                return Ok(None);
            }
            let action = if c.text == *text {
                Action::PolicyModeChanged
            } else {
                Action::PolicyUpdated
            };
            (text.clone(), *mode, false, action)
        }
        (PolicyOp::SetMode(mode), Some(c)) => {
            if c.mode == *mode {
                return Ok(None);
            }
            (c.text.clone(), *mode, false, Action::PolicyModeChanged)
        }
        (PolicyOp::Remove, Some(c)) => (c.text.clone(), c.mode, true, Action::PolicyRemoved),
        (PolicyOp::SetMode(_) | PolicyOp::Remove, None) => {
            return Err(StoreError::NotFound {
                what: "policy",
                id: write.id.to_string(),
            });
        }
    };
    let next = PolicyRecord {
        id: write.id.clone(),
        version: current.map_or(1, |c| c.version + 1),
        text,
        mode,
        removed,
        author: change.actor.clone(),
        at: change.at,
    };
    let event = EventDraft {
        device_id: None,
        actor: change.actor.clone(),
        action,
        before: live.map(policy_json),
        after: Some(policy_json(&next)),
        reason: change.reason.clone(),
    };
    Ok(Some((next, event)))
}

/// An operator token's second factor (TOTP, RFC 6238).
#[derive(Clone, PartialEq, Eq)]
pub struct MfaRecord {
    /// The token it belongs to (tokens name their operator).
    pub token: TokenId,
    /// The shared secret, sealed with the server's key (AEAD); the store never sees it in the clear.
    pub sealed_secret: Vec<u8>,
    /// Whether a valid code has been shown since enrollment; only then does it count as a second factor.
    pub confirmed: bool,
    /// The last time step whose code was accepted: a code is never accepted twice.
    pub last_step: u64,
    /// Codes tried since the last one accepted (each counted before it is checked: see
    /// [`crate::plan_mfa_attempt`]).
    pub failures: u32,
    /// No code is checked before this time (the backoff after wrong codes).
    pub retry_at: Option<Timestamp>,
    /// Until when the token's holder may enroll a factor without showing a current code: granted by an
    /// administrator's reset, the host's command line, or the first start.
    pub enroll_until: Option<Timestamp>,
}

impl MfaRecord {
    /// A record with no factor yet, only the permission to enroll one until `until`.
    pub fn permit(token: TokenId, until: Timestamp) -> Self {
        Self {
            token,
            sealed_secret: Vec::new(),
            confirmed: false,
            last_step: 0,
            failures: 0,
            retry_at: None,
            enroll_until: Some(until),
        }
    }

    /// Whether a secret was enrolled (confirmed or not).
    pub fn has_secret(&self) -> bool {
        !self.sealed_secret.is_empty()
    }
}

impl std::fmt::Debug for MfaRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaRecord")
            .field("token", &self.token)
            .field("confirmed", &self.confirmed)
            .field("last_step", &self.last_step)
            .field("failures", &self.failures)
            .field("retry_at", &self.retry_at)
            .field("enroll_until", &self.enroll_until)
            .finish_non_exhaustive()
    }
}

/// The event for storing `mfa` (enrolled when unconfirmed, confirmed otherwise); the secret is not in it.
pub fn plan_mfa(mfa: &MfaRecord, change: &Change) -> EventDraft {
    EventDraft {
        device_id: None,
        actor: change.actor.clone(),
        action: if mfa.confirmed {
            Action::MfaConfirmed
        } else {
            Action::MfaEnrolled
        },
        before: None,
        after: Some(crate::plan::after(&MfaEnrollment {
            v: PAYLOAD_VERSION,
            token: mfa.token,
            confirmed: mfa.confirmed,
        })),
        reason: change.reason.clone(),
    }
}

/// A `policy_versions` row before decoding.
#[derive(Debug)]
pub struct PolicyRow {
    /// The policy id as text.
    pub id: String,
    /// The version number.
    pub version: i64,
    /// The Cedar source.
    pub text: String,
    /// `PolicyMode` as text.
    pub mode: String,
    /// Whether this version removed the policy.
    pub removed: bool,
    /// `Actor` as text.
    pub author: String,
    /// Microseconds since the epoch.
    pub at: i64,
}

impl PolicyRow {
    /// The policy version, or which of its columns is corrupt.
    pub fn decode(self) -> Result<PolicyRecord, StoreError> {
        let bad = |why: String| StoreError::corrupt("policy_versions", why);
        let id = PolicyId::try_from(self.id).map_err(|e| bad(e.to_string()))?;
        Ok(PolicyRecord {
            version: u32::try_from(self.version).map_err(|_| {
                bad(format!(
                    "policy {id}: version {} out of range",
                    self.version
                ))
            })?,
            text: self.text,
            mode: self
                .mode
                .parse()
                .map_err(|e| bad(format!("policy {id}: {e}")))?,
            removed: self.removed,
            author: self
                .author
                .parse()
                .map_err(|e| bad(format!("policy {id}: {e}")))?,
            at: Timestamp::from_unix_micros(self.at),
            id,
        })
    }
}

/// An `operator_mfa` row before decoding.
pub struct MfaRow {
    /// 8 bytes.
    pub token: Vec<u8>,
    /// The sealed secret.
    pub sealed_secret: Vec<u8>,
    /// Whether confirmed.
    pub confirmed: bool,
    /// The last accepted time step.
    pub last_step: i64,
    /// Codes tried since the last accepted one.
    pub failures: i64,
    /// Backoff end, Unix microseconds.
    pub retry_at: Option<i64>,
    /// Enrollment permitted until, Unix microseconds.
    pub enroll_until: Option<i64>,
}

impl std::fmt::Debug for MfaRow {
    // Like `MfaRecord`: the sealed secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaRow")
            .field("token", &self.token)
            .field("confirmed", &self.confirmed)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

impl MfaRow {
    /// The second factor, or which of its columns is corrupt.
    pub fn decode(self) -> Result<MfaRecord, StoreError> {
        let bad = |why: &str| StoreError::corrupt("operator_mfa", why);
        Ok(MfaRecord {
            token: TokenId::from_bytes(
                <[u8; 8]>::try_from(self.token.as_slice())
                    .map_err(|_| bad("token id is not 8 bytes"))?,
            ),
            sealed_secret: self.sealed_secret,
            confirmed: self.confirmed,
            last_step: u64::try_from(self.last_step).map_err(|_| bad("negative last_step"))?,
            failures: u32::try_from(self.failures).map_err(|_| bad("failures out of range"))?,
            retry_at: self.retry_at.map(Timestamp::from_unix_micros),
            enroll_until: self.enroll_until.map(Timestamp::from_unix_micros),
        })
    }
}

/// A time step as stored (a signed 64-bit column); steps beyond it are refused, never wrapped.
pub fn step_column(step: u64) -> Result<i64, StoreError> {
    i64::try_from(step).map_err(|_| {
        StoreError::Invalid(vouch_types::ValidationError::new(
            "mfa step",
            format!("{step} is out of range"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_types::Actor;

    fn change() -> Change {
        Change {
            actor: Actor::Cli("t".into()),
            reason: None,
            at: Timestamp::EPOCH,
        }
    }

    fn put(text: &str, mode: PolicyMode) -> PolicyWrite {
        PolicyWrite {
            id: "p".parse().unwrap(),
            op: PolicyOp::Put {
                text: text.into(),
                mode,
            },
            expected_version: None,
        }
    }

    #[test]
    fn versions_follow_changes() {
        let (v1, e1) = plan_policy_write(None, &put("a", PolicyMode::Shadow), &change())
            .unwrap()
            .unwrap();
        assert_eq!((v1.version, e1.action), (1, Action::PolicyAdded));
        assert!(
            plan_policy_write(Some(&v1), &put("a", PolicyMode::Shadow), &change())
                .unwrap()
                .is_none()
        );
        let (v2, e2) = plan_policy_write(Some(&v1), &put("a", PolicyMode::Enforce), &change())
            .unwrap()
            .unwrap();
        assert_eq!((v2.version, e2.action), (2, Action::PolicyModeChanged));
        let rm = PolicyWrite {
            op: PolicyOp::Remove,
            ..put("", PolicyMode::Shadow)
        };
        let (v3, e3) = plan_policy_write(Some(&v2), &rm, &change())
            .unwrap()
            .unwrap();
        assert_eq!(
            (v3.version, v3.removed, e3.action),
            (3, true, Action::PolicyRemoved)
        );
        assert!(matches!(
            plan_policy_write(Some(&v3), &rm, &change()),
            Err(StoreError::NotFound { .. })
        ));
        // Re-adding after removal continues the version chain.
        let (v4, e4) = plan_policy_write(Some(&v3), &put("b", PolicyMode::Shadow), &change())
            .unwrap()
            .unwrap();
        assert_eq!((v4.version, e4.action), (4, Action::PolicyAdded));
    }

    #[test]
    fn expected_version_is_checked() {
        let mut w = put("a", PolicyMode::Shadow);
        w.expected_version = Some(1);
        assert!(matches!(
            plan_policy_write(None, &w, &change()),
            Err(StoreError::RevisionMismatch { .. })
        ));
        w.expected_version = Some(0);
        assert!(plan_policy_write(None, &w, &change()).unwrap().is_some());
    }
}
