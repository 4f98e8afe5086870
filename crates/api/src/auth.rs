//! Operators' API tokens over HTTP: the bearer header, the one-time-code header, and the answers. Minting,
//! issuing and checking a token, and the step-up sessions, are `vouch_control::tokens`' (re-exported here),
//! which the CLI calls too.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use vouch_store::Store;
use vouch_types::{Actor, OperatorName, Permission, Role, Timestamp, TokenId};

pub use vouch_control::tokens::{
    STEP_UP_MICROS, SecretToken, StepUps, TokenRefused, bootstrap_admin, issue, mint,
};

use crate::{ApiError, AppState};

/// The operator behind an authenticated request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token presented.
    pub token: TokenId,
    /// Its holder.
    pub operator: OperatorName,
    /// Its role.
    pub role: Role,
    /// Whether a valid one-time code (TOTP) came with the request.
    pub mfa: bool,
}

/// The header that carries a one-time code for privileged actions.
pub const OTP_HEADER: &str = "x-vouch-otp";

impl Principal {
    /// The actor the event log records for this operator.
    pub fn actor(&self) -> Actor {
        Actor::Operator(self.token)
    }
}

/// Checks a presented token; the same error for every failure so that a caller learns nothing from it.
pub async fn authenticate(
    store: &dyn Store,
    now: Timestamp,
    text: &str,
) -> Result<Principal, ApiError> {
    let record = vouch_control::tokens::authenticate(store, now, text)
        .await
        .map_err(|e| match e {
            TokenRefused::Invalid => ApiError::unauthenticated(e.to_string()),
            TokenRefused::Store(s) => s.into(),
        })?;
    Ok(Principal {
        token: record.id,
        operator: record.operator,
        role: record.role,
        mfa: false,
    })
}

/// Asks the policy engine whether `principal` may do `permission`; a denial is a 403 naming the policy.
pub fn authorize(
    state: &AppState,
    principal: &Principal,
    permission: Permission,
) -> Result<(), ApiError> {
    let d = state
        .decisions
        .decide_operator(&vouch_policy::OperatorRequest {
            token: principal.token,
            name: principal.operator.to_string(),
            role: principal.role,
            permission,
            now: state.clock.now(),
            mfa: principal.mfa,
        });
    if d.allowed {
        return Ok(());
    }
    if d.policies.iter().any(|p| p == "vouch.mfa.privileged") {
        return Err(ApiError::forbidden(format!(
            "`{}` is a privileged action: send a one-time code from your authenticator in the \
             X-Vouch-OTP header (enroll one with POST /api/v1/mfa/totp)",
            permission.action()
        )));
    }
    Err(ApiError::forbidden(format!(
        "the {} role may not do `{}` ({})",
        principal.role,
        permission.action(),
        d.reason()
    )))
}

/// Route middleware: authenticates the bearer token (and a one-time code, if sent) and asks the policy engine
/// whether the operator may take the route's action.
pub(crate) async fn require(
    State((state, permission)): State<(AppState, Permission)>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthenticated("this route needs an API token: Authorization: Bearer vouch_…")
    })?;
    let text = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
        })?;
    let mut principal = authenticate(&*state.store, state.clock.now(), text.trim()).await?;
    // Only routes where a second factor matters read the code: elsewhere it is ignored, so no route is an
    // oracle for guessing codes (and a read-only token cannot lock its owner out by guessing).
    if permission.reads_second_factor()
        && let Some(code) = req.headers().get(OTP_HEADER)
    {
        let code = code.to_str().unwrap_or_default().to_owned();
        let source = crate::mfa::source_of(&req);
        crate::mfa::try_code(&state, &principal, &code, source, true).await?;
        principal.mfa = true;
    }
    authorize(&state, &principal, permission)?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}
