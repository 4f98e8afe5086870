//! Token routes: admins issue, list and revoke operators' API tokens.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use vouch_store::{Change, TokenRecord};
use vouch_types::{OperatorName, Reason, Role, Timestamp, TokenId};

use crate::auth::{Principal, issue};
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};

/// The longest lifetime a token may be issued with.
const MAX_DAYS: u32 = 3_650;

#[derive(Serialize)]
pub(crate) struct TokenView {
    id: TokenId,
    operator: OperatorName,
    role: Role,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
}

impl From<TokenRecord> for TokenView {
    fn from(t: TokenRecord) -> Self {
        Self {
            id: t.id,
            operator: t.operator,
            role: t.role,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// `GET /api/v1/tokens`.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<TokenView>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_tokens()
            .await?
            .into_iter()
            .map(TokenView::from)
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    operator: OperatorName,
    role: Role,
    expires_in_days: Option<u32>,
    reason: Option<Reason>,
}

#[derive(Serialize)]
pub(crate) struct Created {
    #[serde(flatten)]
    view: TokenView,
    /// The token itself: shown this once, never again.
    token: String,
}

/// `POST /api/v1/tokens`: issues a token; the response is the only place its secret appears.
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let expires_at = match body.expires_in_days {
        None => None,
        Some(d) if d == 0 || d > MAX_DAYS => {
            return Err(ApiError::bad_request(format!(
                "expires_in_days must be between 1 and {MAX_DAYS}"
            )));
        }
        Some(d) => Some(state.clock.now().plus_micros(i64::from(d) * 86_400_000_000)),
    };
    let (record, secret) = issue(
        &*state.store,
        &*state.clock,
        who.actor(),
        body.operator,
        body.role,
        expires_at,
        body.reason,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            view: record.into(),
            token: secret.expose().to_owned(),
        }),
    ))
}

/// `DELETE /api/v1/tokens/{id}`: revokes a token (idempotent).
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<TokenId>,
) -> Result<Json<TokenView>, ApiError> {
    let change = Change {
        actor: who.actor(),
        reason: None,
        at: state.clock.now(),
    };
    Ok(Json(state.store.revoke_token(id, change).await?.into()))
}
