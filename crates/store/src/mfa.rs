//! Second factors as a bank keeps them: how many codes may be tried, how long a holder waits after wrong
//! ones, and when the factor locks until an administrator resets it. Every backend applies these same rules
//! inside one transaction.
//!
//! A try is counted *before* its code is checked ([`plan_mfa_attempt`]) and forgiven only when a code is
//! accepted: a burst of concurrent guesses, even spread over several servers on one store, gets no more tries
//! than a patient one. With [`MFA_MAX_FAILURES`] tries before the lock and three valid codes out of a million
//! at any time (one step of clock skew either way), a guesser's chance before the lock is 3·10⁻⁵.

use vouch_events::{Action, EventDraft, MfaFailure, MfaReset, PAYLOAD_VERSION};
use vouch_types::{Reason, Timestamp, TokenId};

use crate::{Change, MfaRecord};

/// Wrong codes in a row that cost nothing: a typo or two, a code read a step too late.
pub const MFA_FREE_FAILURES: u32 = 3;
/// Wrong codes in a row after which the factor is locked until an administrator resets it.
pub const MFA_MAX_FAILURES: u32 = 10;
/// The longest wait between two tries before the lock, in seconds.
pub const MFA_MAX_BACKOFF_SECS: i64 = 300;

/// What a new try of a code may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MfaAttempt {
    /// The token has no secret enrolled: there is nothing to check a code against.
    NoFactor,
    /// No code is checked now: until `retry_at`, or (`None`) until an administrator resets the factor.
    Locked {
        /// When the next try is allowed; `None` when only a reset unlocks it.
        retry_at: Option<Timestamp>,
    },
    /// Check the code against this record, whose try is already counted.
    Granted(MfaRecord),
}

/// The try's verdict on `current` at `now`, and the record to write when it is granted (one more try
/// counted).
pub fn plan_mfa_attempt(current: Option<&MfaRecord>, now: Timestamp) -> MfaAttempt {
    let Some(rec) = current.filter(|r| r.has_secret()) else {
        return MfaAttempt::NoFactor;
    };
    if rec.failures >= MFA_MAX_FAILURES {
        return MfaAttempt::Locked { retry_at: None };
    }
    if let Some(at) = rec.retry_at.filter(|at| *at > now) {
        return MfaAttempt::Locked { retry_at: Some(at) };
    }
    MfaAttempt::Granted(MfaRecord {
        failures: rec.failures.saturating_add(1),
        ..rec.clone()
    })
}

/// How long the holder waits after `failures` wrong codes in a row: nothing for the first
/// [`MFA_FREE_FAILURES`], then 1 s doubling to [`MFA_MAX_BACKOFF_SECS`].
pub fn mfa_backoff_secs(failures: u32) -> i64 {
    if failures < MFA_FREE_FAILURES {
        return 0;
    }
    let doublings = (failures - MFA_FREE_FAILURES).min(16);
    (1i64 << doublings).min(MFA_MAX_BACKOFF_SECS)
}

/// The record after a wrong code was tried on `current` at `at` (its try was counted when granted), and
/// the `mfa.failed` event; only the event when the token has no record at all (a code sent for a token that
/// never enrolled is a failed code too).
pub fn plan_mfa_failure(
    token: TokenId,
    current: Option<&MfaRecord>,
    change: &Change,
    source: Option<&str>,
) -> (Option<MfaRecord>, EventDraft) {
    let next = current.map(|rec| {
        let wait = mfa_backoff_secs(rec.failures);
        MfaRecord {
            retry_at: (wait > 0).then(|| change.at.plus_micros(wait * 1_000_000)),
            ..rec.clone()
        }
    });
    let failures = next.as_ref().map_or(0, |r| r.failures);
    let locked = failures >= MFA_MAX_FAILURES;
    let reason = change.reason.clone().or_else(|| {
        Reason::try_from(if locked {
            format!(
                "{failures} wrong one-time codes in a row: locked until an administrator resets it"
            )
        } else {
            "wrong, expired or replayed one-time code".to_owned()
        })
        .ok()
    });
    let event = EventDraft {
        device_id: None,
        actor: change.actor.clone(),
        action: Action::MfaFailed,
        before: None,
        after: Some(crate::plan::after(&MfaFailure {
            v: PAYLOAD_VERSION,
            token,
            failures,
            locked,
            retry_at: next.as_ref().and_then(|r| r.retry_at),
            source: source.map(str::to_owned),
        })),
        reason,
    };
    (next, event)
}

/// The record after an administrator's reset of `current` at `change.at`: no failures, no wait, and its
/// holder may enroll a new factor until `enroll_until` (the current one keeps working until replaced); and
/// the `mfa.reset` event.
pub fn plan_mfa_reset(
    token: TokenId,
    current: Option<&MfaRecord>,
    enroll_until: Timestamp,
    change: &Change,
) -> (MfaRecord, EventDraft) {
    let next = match current {
        Some(rec) => MfaRecord {
            failures: 0,
            retry_at: None,
            enroll_until: Some(enroll_until),
            ..rec.clone()
        },
        None => MfaRecord::permit(token, enroll_until),
    };
    let event = EventDraft {
        device_id: None,
        actor: change.actor.clone(),
        action: Action::MfaReset,
        before: None,
        after: Some(crate::plan::after(&MfaReset {
            v: PAYLOAD_VERSION,
            token,
            enroll_until,
            had_failures: current.map_or(0, |r| r.failures),
        })),
        reason: change.reason.clone(),
    };
    (next, event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_types::Actor;

    fn rec(failures: u32, retry_at: Option<Timestamp>) -> MfaRecord {
        MfaRecord {
            token: TokenId::from_bytes([7; 8]),
            sealed_secret: vec![1, 2, 3],
            confirmed: true,
            last_step: 0,
            failures,
            retry_at,
            enroll_until: None,
        }
    }

    fn change(at: Timestamp) -> Change {
        Change {
            actor: Actor::Operator(TokenId::from_bytes([7; 8])),
            reason: None,
            at,
        }
    }

    #[test]
    fn backoff_doubles_then_locks() {
        let waits: Vec<i64> = (0..=12).map(mfa_backoff_secs).collect();
        assert_eq!(waits, [0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        let now = Timestamp::from_unix_micros(1_000_000_000);
        // Tries are counted before the check.
        let MfaAttempt::Granted(r) = plan_mfa_attempt(Some(&rec(0, None)), now) else {
            panic!("the first try is granted")
        };
        assert_eq!(r.failures, 1);
        // Waiting: no check, however right the code would be.
        let later = now.plus_micros(5_000_000);
        assert_eq!(
            plan_mfa_attempt(Some(&rec(4, Some(later))), now),
            MfaAttempt::Locked {
                retry_at: Some(later)
            }
        );
        assert!(matches!(
            plan_mfa_attempt(Some(&rec(4, Some(now))), later),
            MfaAttempt::Granted(_)
        ));
        // Locked for good at the limit, whatever the time.
        assert_eq!(
            plan_mfa_attempt(Some(&rec(MFA_MAX_FAILURES, None)), later),
            MfaAttempt::Locked { retry_at: None }
        );
        assert_eq!(plan_mfa_attempt(None, now), MfaAttempt::NoFactor);
        let permit = MfaRecord::permit(TokenId::from_bytes([7; 8]), now);
        assert_eq!(plan_mfa_attempt(Some(&permit), now), MfaAttempt::NoFactor);
    }

    #[test]
    fn failures_are_events_and_resets_clear_them() {
        let now = Timestamp::from_unix_micros(1_000_000_000);
        let (next, e) = plan_mfa_failure(
            TokenId::from_bytes([7; 8]),
            Some(&rec(4, None)),
            &change(now),
            Some("127.0.0.2"),
        );
        let next = next.unwrap();
        assert_eq!(next.retry_at, Some(now.plus_micros(2_000_000)));
        assert_eq!(e.action, Action::MfaFailed);
        let after: serde_json::Value = serde_json::from_str(e.after.as_deref().unwrap()).unwrap();
        assert_eq!(after["failures"], 4);
        assert_eq!(after["locked"], false);
        assert_eq!(after["source"], "127.0.0.2");
        let (_, e) = plan_mfa_failure(
            TokenId::from_bytes([7; 8]),
            Some(&rec(MFA_MAX_FAILURES, None)),
            &change(now),
            None,
        );
        assert!(e.reason.unwrap().as_str().contains("locked"));
        let (none, e) = plan_mfa_failure(TokenId::from_bytes([7; 8]), None, &change(now), None);
        assert!(none.is_none());
        assert_eq!(e.action, Action::MfaFailed);
        let until = now.plus_micros(86_400_000_000);
        let (reset, e) = plan_mfa_reset(
            TokenId::from_bytes([7; 8]),
            Some(&rec(MFA_MAX_FAILURES, Some(until))),
            until,
            &change(now),
        );
        assert_eq!((reset.failures, reset.retry_at), (0, None));
        assert_eq!(reset.enroll_until, Some(until));
        assert!(
            reset.has_secret(),
            "the current factor keeps working until replaced"
        );
        assert_eq!(e.action, Action::MfaReset);
    }
}
