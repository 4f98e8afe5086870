//! Operators' second factors (TOTP): the rules that hold whichever transport asks — who may enroll or replace
//! a factor, how a presented code is checked and counted, and the administrator's (or the host's) permit.
//! The API adds what is per server and per connection: the step-up sessions, the per-source throttle, the
//! metrics and the answers.
//!
//! - Every try is counted in the store *before* its code is checked, and forgiven only by an accepted code
//!   (`vouch_store::plan_mfa_attempt`): from the fourth wrong code in a row each try waits, and after ten
//!   the factor is locked until an administrator resets it, even for the right code.
//! - Enrolling or replacing a factor needs a fresh confirmation: a current code from the confirmed factor,
//!   or an enrollment permit ([`allow_enrollment`]). A token that merely holds no factor cannot enroll one.

use vouch_store::{Change, MfaAttempt, MfaRecord, Store, StoreError, plan_mfa_attempt};
use vouch_types::{Actor, Clock, Reason, Timestamp, TokenId};

use crate::totp::{self, SECRET_BYTES, SealError, SealKey};

/// How long an enrollment permit lasts.
pub const PERMIT_MICROS: i64 = 24 * 3_600 * 1_000_000;
/// How long a holder who replaced a confirmed factor with a current code may enroll again (a QR code
/// scanned wrong) before an administrator is needed.
pub const REPLACE_PERMIT_MICROS: i64 = 15 * 60 * 1_000_000;

/// Allows `token`'s holder to enroll a (new) second factor for [`PERMIT_MICROS`], and clears a lock: what an
/// administrator's reset, the host's command line and the first start do.
pub async fn allow_enrollment(
    store: &dyn Store,
    clock: &dyn Clock,
    token: TokenId,
    actor: Actor,
    reason: Option<Reason>,
) -> Result<Timestamp, StoreError> {
    let now = clock.now();
    let until = now.plus_micros(PERMIT_MICROS);
    store
        .reset_mfa(
            token,
            until,
            Change {
                actor,
                reason,
                at: now,
            },
        )
        .await?;
    Ok(until)
}

/// Why a presented one-time code was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CodeRefused {
    /// The token holds no second factor (counted as a wrong code).
    #[error("this token has no second factor")]
    NoFactor,
    /// Its factor is enrolled but not confirmed, and this use needs a confirmed one (counted).
    #[error("this token's second factor is not confirmed yet")]
    NotConfirmed,
    /// Wrong or outside the one-step skew window (counted).
    #[error("the one-time code is wrong or expired")]
    Wrong,
    /// A code whose step was used already (counted).
    #[error("the one-time code was used already")]
    Reused,
    /// Too many wrong codes in a row: the next try waits until `retry_at` (not checked, not counted).
    #[error("too many wrong one-time codes for this token")]
    Waiting {
        /// When the next try is checked.
        retry_at: Timestamp,
    },
    /// Locked after too many wrong codes: only an administrator's reset lifts it.
    #[error("this token's second factor is locked")]
    Locked,
    /// The stored secret did not open under this server's seal key.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CodeRefused {
    /// Whether this refusal is a wrong code (what a per-source throttle counts).
    pub fn is_wrong_code(&self) -> bool {
        matches!(
            self,
            Self::NoFactor | Self::NotConfirmed | Self::Wrong | Self::Reused
        )
    }
}

/// Checks `code` for `token`'s second factor at `now`, counting the try first; the factor's record (as it
/// was) and the accepted step. A wrong code is an `mfa.failed` event (from `source`, when known) and counts
/// towards the lock. `require_confirmed`: only a confirmed factor counts (every use but confirming).
#[allow(clippy::too_many_arguments)]
pub async fn check_code(
    store: &dyn Store,
    seal: &SealKey,
    token: TokenId,
    actor: Actor,
    code: &str,
    source: Option<String>,
    now: Timestamp,
    require_confirmed: bool,
) -> Result<(MfaRecord, u64), CodeRefused> {
    let outcome = match store.take_mfa_attempt(token, now).await? {
        MfaAttempt::NoFactor => Err(CodeRefused::NoFactor),
        MfaAttempt::Locked { retry_at: Some(at) } => {
            return Err(CodeRefused::Waiting { retry_at: at });
        }
        MfaAttempt::Locked { retry_at: None } => return Err(CodeRefused::Locked),
        MfaAttempt::Granted(rec) if require_confirmed && !rec.confirmed => {
            Err(CodeRefused::NotConfirmed)
        }
        MfaAttempt::Granted(rec) => {
            let secret = seal.open(rec.token.to_string().as_bytes(), &rec.sealed_secret)?;
            let step_now = totp::step_at(now.unix_micros() / 1_000_000);
            match totp::verify(&secret, code, step_now) {
                None => Err(CodeRefused::Wrong),
                Some(step) if !store.use_mfa_step(rec.token, step).await? => {
                    Err(CodeRefused::Reused)
                }
                Some(step) => Ok((rec, step)),
            }
        }
    };
    if let Err(e) = &outcome
        && e.is_wrong_code()
    {
        let change = Change {
            actor,
            reason: None,
            at: now,
        };
        store.record_mfa_failure(token, change, source).await?;
    }
    outcome
}

/// Why a second factor may not be enrolled now.
#[derive(Debug, thiserror::Error)]
pub enum EnrollRefused {
    /// A confirmed factor exists and no current code from it came with the request.
    #[error(
        "a second factor is already confirmed for this token: a current code is needed to replace it"
    )]
    NeedsCurrentCode,
    /// No factor is confirmed and no permit is open: an administrator (or the host) must allow it.
    #[error("enrolling a second factor needs an administrator's confirmation")]
    NeedsPermit,
    /// The factor is locked: only an administrator's reset (which grants a permit) lifts it.
    #[error("this token's second factor is locked: an administrator must reset it")]
    Locked,
    /// No randomness for the new secret.
    #[error("no randomness for a new secret")]
    Randomness,
    /// The new secret could not be sealed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Enrolls a new, unconfirmed second factor for `token` and returns its shared secret (to show once).
/// `stepped_up`: a current code from the confirmed factor came with the request. Allowed under an open
/// permit, or with such a code (which opens a short permit to enroll again); refused otherwise, and for a
/// locked factor without a permit.
pub async fn enroll(
    store: &dyn Store,
    seal: &SealKey,
    token: TokenId,
    stepped_up: bool,
    change: Change,
) -> Result<[u8; SECRET_BYTES], EnrollRefused> {
    let now = change.at;
    let current = store.get_mfa(token).await?;
    let permitted = current
        .as_ref()
        .and_then(|r| r.enroll_until)
        .is_some_and(|until| until > now);
    let confirmed = current
        .as_ref()
        .is_some_and(|r| r.confirmed && r.has_secret());
    let enroll_until = match (confirmed, permitted, stepped_up) {
        (_, true, _) => current.as_ref().and_then(|r| r.enroll_until),
        (true, false, true) => Some(now.plus_micros(REPLACE_PERMIT_MICROS)),
        (true, false, false) => return Err(EnrollRefused::NeedsCurrentCode),
        (false, false, _) => return Err(EnrollRefused::NeedsPermit),
    };
    // A lock stays a lock: only an administrator's reset (which grants a permit) lifts it.
    if current.as_ref().is_some_and(|r| {
        matches!(
            plan_mfa_attempt(Some(r), now),
            MfaAttempt::Locked { retry_at: None }
        )
    }) && !permitted
    {
        return Err(EnrollRefused::Locked);
    }
    let secret = totp::new_secret().map_err(|_| EnrollRefused::Randomness)?;
    let sealed = seal.seal(token.to_string().as_bytes(), &secret)?;
    let record = MfaRecord {
        token,
        sealed_secret: sealed,
        confirmed: false,
        last_step: current.as_ref().map_or(0, |r| r.last_step),
        failures: 0,
        retry_at: None,
        enroll_until,
    };
    store.put_mfa(record, change).await?;
    Ok(secret)
}

/// Confirms the enrolled factor `rec` with the step of the code [`check_code`] accepted for it: the factor
/// counts from now on, its permit is used up.
pub async fn confirm(
    store: &dyn Store,
    rec: MfaRecord,
    step: u64,
    change: Change,
) -> Result<(), StoreError> {
    let confirmed = MfaRecord {
        confirmed: true,
        last_step: step,
        failures: 0,
        retry_at: None,
        enroll_until: None,
        ..rec
    };
    store.put_mfa(confirmed, change).await
}
