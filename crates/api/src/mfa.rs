//! Operators' second factors (TOTP) as a bank keeps them, over HTTP. The rules that hold whichever
//! transport asks (counting tries, the lock, who may enroll) are `vouch_control::mfa`'s; this module adds
//! the per-server step-up sessions and per-source throttle, the metrics, and the answers.
//!
//! - A code is read only where it matters: on routes whose permission
//!   [`reads_second_factor`](vouch_types::Permission::reads_second_factor). Elsewhere the header is ignored,
//!   so a read-only token cannot use any route as a guessing oracle.
//! - Every try is counted in the store *before* its code is checked, and forgiven only by an accepted code
//!   (`vouch_store::plan_mfa_attempt`): from the fourth wrong code in a row each try waits (1 s doubling to
//!   5 min, answered 429 with `Retry-After`), and after ten the factor is locked until an administrator
//!   resets it, even for the right code. Every wrong code is an `mfa.failed` event and a metric.
//! - Each source address (IPv6 by /64) may present at most [`SOURCE_FAILURES`] wrong codes per
//!   [`SOURCE_WINDOW`], whatever tokens it uses; then it waits (429), and its codes are not checked.
//! - Enrolling or replacing a factor needs a fresh confirmation: a current code from the confirmed factor,
//!   or an enrollment permit from an administrator's step-up reset (`POST /api/v1/tokens/{id}/mfa/reset`),
//!   the host's command line (`vouch token create`, `vouch token mfa-reset`) or the first start. A token
//!   that merely holds no factor cannot enroll one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use vouch_control::mfa::{CodeRefused, EnrollRefused};
use vouch_store::{Change, MFA_MAX_FAILURES, MfaRecord};
use vouch_types::{Reason, TokenId};

pub use vouch_control::mfa::{PERMIT_MICROS, allow_enrollment};

use crate::auth::{Principal, STEP_UP_MICROS};
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};

/// Wrong codes one source may present per [`SOURCE_WINDOW`].
pub const SOURCE_FAILURES: u32 = 20;
/// The window over which a source's wrong codes are counted.
pub const SOURCE_WINDOW: Duration = Duration::from_secs(600);
/// The most sources remembered at once (memory stays bounded whatever a scan does).
const MAX_SOURCES: usize = 65_536;

/// Wrong codes per source address, in memory on each server (the per-token limit, in the store, is the one
/// that holds across servers and restarts).
#[derive(Default)]
pub struct SourceThrottle(Mutex<HashMap<IpAddr, (u32, Instant)>>);

/// A source as throttled: an IPv4 address, or an IPv6 /64 (one host usually holds a whole /64).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl SourceThrottle {
    /// Seconds `ip` must wait before its next code is checked, if it used up its wrong codes.
    fn wait(&self, ip: IpAddr) -> Option<u64> {
        let m = self.0.lock().ok()?;
        let (n, since) = m.get(&source_key(ip))?;
        let left = SOURCE_WINDOW.checked_sub(since.elapsed())?;
        (*n >= SOURCE_FAILURES).then(|| left.as_secs() + 1)
    }

    /// Counts a wrong code from `ip`.
    fn failed(&self, ip: IpAddr) {
        let Ok(mut m) = self.0.lock() else { return };
        if m.len() >= MAX_SOURCES {
            m.retain(|_, (_, since)| since.elapsed() < SOURCE_WINDOW);
            if m.len() >= MAX_SOURCES {
                // Still full of live sources: forget the oldest rather than grow.
                if let Some(oldest) = m.iter().min_by_key(|(_, (_, s))| *s).map(|(k, _)| *k) {
                    m.remove(&oldest);
                }
            }
        }
        let e = m.entry(source_key(ip)).or_insert((0, Instant::now()));
        if e.1.elapsed() >= SOURCE_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }
}

/// Where a request came from, when the server knows (it always does over a socket).
pub fn source_of<B>(req: &Request<B>) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Checks `code` for `principal`'s second factor, counting the try first; `Ok` with the accepted step (and
/// the record as it was) or the refusal to answer. A code inside its step-up session is accepted again
/// without a new try. `require_confirmed`: only a confirmed factor counts (every use but confirming).
pub(crate) async fn try_code(
    state: &AppState,
    principal: &Principal,
    code: &str,
    source: Option<IpAddr>,
    require_confirmed: bool,
) -> Result<Option<(MfaRecord, u64)>, ApiError> {
    let now = state.clock.now();
    if require_confirmed && state.step_ups.holds(principal.token, code, now) {
        state.metrics.mfa_code("accepted");
        return Ok(None);
    }
    if let Some(wait) = source.and_then(|ip| state.mfa_sources.wait(ip)) {
        state.metrics.mfa_code("throttled");
        return Err(ApiError::too_many(
            wait,
            format!("too many wrong one-time codes from this address: try again in {wait} s"),
        ));
    }
    let checked = vouch_control::mfa::check_code(
        &*state.store,
        &state.seal,
        principal.token,
        principal.actor(),
        code,
        source.map(|ip| ip.to_string()),
        now,
        require_confirmed,
    )
    .await;
    let refused = match checked {
        Ok(accepted) => {
            state.metrics.mfa_code("accepted");
            state.step_ups.grant(principal.token, code, now);
            return Ok(Some(accepted));
        }
        Err(e) => e,
    };
    if refused.is_wrong_code() {
        state.metrics.mfa_code("wrong");
        if let Some(ip) = source {
            state.mfa_sources.failed(ip);
        }
    }
    Err(match refused {
        CodeRefused::NoFactor => ApiError::unauthenticated(
            "this token has no second factor: enroll one with POST /api/v1/mfa/totp",
        ),
        CodeRefused::NotConfirmed => ApiError::unauthenticated(
            "this token's second factor is not confirmed yet: POST /api/v1/mfa/totp/confirm",
        ),
        CodeRefused::Wrong => ApiError::unauthenticated("the one-time code is wrong or expired"),
        CodeRefused::Reused => ApiError::unauthenticated("the one-time code was used already"),
        CodeRefused::Waiting { retry_at } => {
            state.metrics.mfa_code("locked");
            let wait = u64::try_from((retry_at.unix_micros() - now.unix_micros()) / 1_000_000)
                .unwrap_or(0)
                + 1;
            ApiError::too_many(
                wait,
                format!("too many wrong one-time codes for this token: try again in {wait} s"),
            )
        }
        CodeRefused::Locked => {
            state.metrics.mfa_code("locked");
            ApiError::new(
                StatusCode::FORBIDDEN,
                "mfa-locked",
                format!(
                    "this token's second factor is locked after {MFA_MAX_FAILURES} wrong codes in a row: \
                     an administrator must reset it (POST /api/v1/tokens/{}/mfa/reset)",
                    principal.token
                ),
            )
        }
        CodeRefused::Seal(e) => ApiError::internal(e),
        CodeRefused::Store(e) => e.into(),
    })
}

fn change(state: &AppState, who: &Principal) -> Change {
    Change {
        actor: who.actor(),
        reason: None,
        at: state.clock.now(),
    }
}

#[derive(Serialize)]
pub(crate) struct Enrolled {
    /// The shared secret, base32: shown this once.
    secret: String,
    /// The same as an `otpauth://` URI for a QR code.
    otpauth_uri: String,
    /// What to do next.
    next: &'static str,
}

/// `POST /api/v1/mfa/totp`: enrolls a second factor for the calling token. Replacing a confirmed factor
/// needs a current code from it (`X-Vouch-OTP`); a token without one needs an enrollment permit.
pub(crate) async fn enroll_totp(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<(StatusCode, Json<Enrolled>), ApiError> {
    let secret = vouch_control::mfa::enroll(
        &*state.store,
        &state.seal,
        who.token,
        who.mfa,
        change(&state, &who),
    )
    .await
    .map_err(|e| match e {
        EnrollRefused::NeedsCurrentCode => ApiError::forbidden(
            "a second factor is already confirmed for this token: send a current code in X-Vouch-OTP \
             to replace it",
        ),
        EnrollRefused::NeedsPermit => ApiError::forbidden(format!(
            "enrolling a second factor needs an administrator's confirmation: ask one to allow it \
             (POST /api/v1/tokens/{}/mfa/reset), or on the server's host run `vouch token mfa-reset {}`",
            who.token, who.token
        )),
        EnrollRefused::Locked => ApiError::forbidden(e.to_string()),
        EnrollRefused::Randomness => ApiError::internal("no randomness"),
        EnrollRefused::Seal(e) => ApiError::internal(e),
        EnrollRefused::Store(e) => e.into(),
    })?;
    // The session the old factor opened does not outlive it.
    state.step_ups.end(who.token);
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            secret: vouch_control::totp::secret_base32(&secret),
            otpauth_uri: vouch_control::totp::otpauth_uri("Vouch", who.operator.as_str(), &secret),
            next: "add it to an authenticator app, then POST a current code to /api/v1/mfa/totp/confirm",
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Confirm {
    code: String,
}

/// `POST /api/v1/mfa/totp/confirm`: a valid code confirms the enrolled factor (its try counted like any).
pub(crate) async fn confirm_totp(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ConnectInfoOpt(source): ConnectInfoOpt,
    ApiJson(body): ApiJson<Confirm>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some((mfa, step)) = try_code(&state, &who, &body.code, source, false).await? else {
        return Err(ApiError::bad_request("enroll first: POST /api/v1/mfa/totp"));
    };
    vouch_control::mfa::confirm(&*state.store, mfa, step, change(&state, &who)).await?;
    Ok(Json(serde_json::json!({
        "confirmed": true,
        "step_up_seconds": STEP_UP_MICROS / 1_000_000,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetBody {
    reason: Option<Reason>,
}

/// `POST /api/v1/tokens/{id}/mfa/reset` (privileged): unlocks the token's second factor and allows its
/// holder to enroll a new one for a day; the current factor works until replaced.
pub(crate) async fn reset(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<TokenId>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    // The body is optional: `{"reason": "…"}` for the log.
    let reason = if body.is_empty() {
        None
    } else {
        serde_json::from_slice::<ResetBody>(&body)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()))?
            .reason
    };
    let until = allow_enrollment(&*state.store, &*state.clock, id, who.actor(), reason).await?;
    state.step_ups.end(id);
    Ok(Json(serde_json::json!({
        "token": id,
        "enroll_until": until,
        "next": "the token's holder may now POST /api/v1/mfa/totp, then confirm",
    })))
}

/// The client's address from the connection, when served over a socket.
pub(crate) struct ConnectInfoOpt(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ConnectInfoOpt {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_hosts_and_slash_64s() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let t = SourceThrottle::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..SOURCE_FAILURES - 1 {
            t.failed(ip);
        }
        assert_eq!(t.wait(ip), None);
        t.failed(ip);
        assert!(
            t.wait(ip)
                .is_some_and(|s| s > 0 && s <= SOURCE_WINDOW.as_secs() + 1)
        );
        assert_eq!(t.wait("192.0.2.8".parse().unwrap()), None);
    }
}
