//! Policy routes (list, show with history, validate, put, mode, remove) and operators' second factor.
//!
//! Every write is validated against the schema as part of the whole set it would produce; an invalid one is
//! answered 422 with Cedar's diagnostics and changes nothing. Changing what is enforced — putting a policy
//! into enforce mode, editing, relaxing or removing an enforced one — is a privileged action
//! (`policies.enforce`): it needs a one-time code.
//!
//! Policy texts are bounded before Cedar sees them (`vouch_policy::limits`): a request body of at most
//! [`MAX_POLICY_BODY`] (413), then the text's size, number of policies, nesting and expression depth (413 for
//! size, 422 for shape, naming the limit). Validation runs off the async workers, one at a time per server:
//! a maximum-size text costs a fraction of a second of one core, never a worker the gateway needs.

use axum::Extension;
use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use vouch_policy::{Engine, PolicyErrors};
use vouch_store::{Change, PolicyOp, PolicyWrite};
use vouch_types::{Permission, PolicyId, PolicyMode, PolicyRecord, Reason};

use crate::auth::{Principal, authorize};
use crate::decide::{PolicyWriteError, write_policies};
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};

impl From<PolicyWriteError> for ApiError {
    fn from(e: PolicyWriteError) -> Self {
        match e {
            PolicyWriteError::Invalid(errors) => invalid(&errors),
            PolicyWriteError::Store(e) => e.into(),
        }
    }
}

/// The largest body `POST /api/v1/policies/validate` and `PUT /api/v1/policies/{id}` accept: a policy text
/// of at most [`vouch_policy::limits::MAX_TEXT_BYTES`] in JSON.
pub(crate) const MAX_POLICY_BODY: usize = vouch_policy::limits::MAX_TEXT_BYTES;

/// Policy checks run one at a time per server (each on a thread of its own), so that validation requests
/// cannot take more than one core however many arrive.
static CHECKS: Semaphore = Semaphore::const_new(1);

fn invalid(errors: &PolicyErrors) -> ApiError {
    match errors.first_limit() {
        Some(limit) if limit.is_size() => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "policy-too-large",
            errors.to_string(),
        ),
        Some(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "policy-too-complex",
            errors.to_string(),
        ),
        None => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-policy",
            errors.to_string(),
        ),
    }
}

/// A policy request's JSON body, at most [`MAX_POLICY_BODY`] (the route's `DefaultBodyLimit`); a larger one
/// is answered 413 naming the limit.
pub(crate) struct PolicyJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for PolicyJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match ApiJson::<T>::from_request(req, state).await {
            Ok(ApiJson(v)) => Ok(Self(v)),
            Err(e) if e.status == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!(
                    "a policy request body must be at most {} KiB",
                    MAX_POLICY_BODY / 1024
                ),
            )),
            Err(e) => Err(e),
        }
    }
}

/// Runs `check` on a blocking thread (it parses on a large stack of its own from there), one at a time.
async fn off_runtime<T: Send + 'static>(
    check: impl FnOnce() -> Result<T, PolicyErrors> + Send + 'static,
) -> Result<T, ApiError> {
    let _turn = CHECKS
        .acquire()
        .await
        .map_err(|_| ApiError::internal("the policy checks' semaphore is closed"))?;
    tokio::task::spawn_blocking(check)
        .await
        .map_err(|e| ApiError::internal(format!("a policy check stopped: {e}")))?
        .map_err(|e| invalid(&e))
}

/// The mode of the policy's latest version, if it exists and is not removed.
async fn current_mode(state: &AppState, id: &PolicyId) -> Result<Option<PolicyMode>, ApiError> {
    Ok(state
        .store
        .policy_history(id)
        .await?
        .pop()
        .filter(|p| !p.removed)
        .map(|p| p.mode))
}

fn parse_id(id: &str) -> Result<PolicyId, ApiError> {
    Ok(id.parse::<PolicyId>()?)
}

/// `GET /api/v1/policies`: the policies in the store, latest versions.
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let policies = state.store.policies().await?;
    Ok(Json(serde_json::json!({
        "in_force": state.decisions.stats(),
        "policies": policies,
    })))
}

/// `GET /api/v1/policies/schema`: the Cedar schema policies are validated against.
pub(crate) async fn schema() -> &'static str {
    Engine::schema_text()
}

#[derive(Serialize)]
pub(crate) struct PolicyView {
    #[serde(flatten)]
    current: PolicyRecord,
    history: Vec<PolicyRecord>,
}

/// `GET /api/v1/policies/{id}`: the latest version and every earlier one.
pub(crate) async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PolicyView>, ApiError> {
    let id = parse_id(&id)?;
    let history = state.store.policy_history(&id).await?;
    let current = history
        .last()
        .filter(|p| !p.removed)
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("policy {id} does not exist"),
            )
        })?;
    Ok(Json(PolicyView { current, history }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Validate {
    text: String,
}

/// `POST /api/v1/policies/validate`: checks a file of policies (each with `@id`) against the schema and the
/// stored set, storing nothing.
pub(crate) async fn validate(
    State(state): State<AppState>,
    PolicyJson(body): PolicyJson<Validate>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // The cheap refusal first: a text past a limit costs no store read and no turn.
    vouch_policy::limits::check_text(&body.text).map_err(|l| invalid(&PolicyErrors::from(l)))?;
    let stored: Vec<vouch_policy::PolicySource> = state
        .store
        .policies()
        .await?
        .iter()
        .map(Into::into)
        .collect();
    let decisions = state.decisions.clone();
    let candidate = off_runtime(move || {
        decisions
            .engine()
            .check_text(&stored, &body.text, PolicyMode::Shadow)
    })
    .await?;
    let ids: Vec<String> = candidate.iter().map(|c| c.id.to_string()).collect();
    Ok(Json(serde_json::json!({ "valid": true, "policies": ids })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Put {
    /// The Cedar source of one policy.
    text: String,
    /// Shadow (the default: new policies are observed before they enforce) or enforce.
    #[serde(default)]
    mode: Option<PolicyMode>,
    /// Refuse unless the current version is this one; 0: must be new.
    #[serde(default)]
    expected_version: Option<u32>,
    reason: Option<Reason>,
}

fn change(state: &AppState, who: &Principal, reason: Option<Reason>) -> Change {
    Change {
        actor: who.actor(),
        reason,
        at: state.clock.now(),
    }
}

/// `PUT /api/v1/policies/{id}`: stores a new version (shadow mode unless `mode` says enforce).
pub(crate) async fn put(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    PolicyJson(body): PolicyJson<Put>,
) -> Result<(StatusCode, Json<PolicyRecord>), ApiError> {
    let id = parse_id(&id)?;
    vouch_policy::limits::check_policy_text(&body.text)
        .map_err(|l| invalid(&PolicyErrors::from(l).for_policy(id.as_str())))?;
    let current = current_mode(&state, &id).await?;
    // An edit keeps the policy's mode unless it says otherwise; a new policy starts in shadow mode.
    let mode = body.mode.or(current).unwrap_or(PolicyMode::Shadow);
    if mode == PolicyMode::Enforce || current == Some(PolicyMode::Enforce) {
        // Changing what is enforced — tightening or loosening — is privileged.
        authorize(&state, &who, Permission::PoliciesEnforce)?;
    }
    let write = PolicyWrite {
        id: id.clone(),
        op: PolicyOp::Put {
            text: body.text,
            mode,
        },
        expected_version: body.expected_version,
    };
    let written = write_policies(
        &*state.store,
        state.decisions.engine(),
        vec![write],
        change(&state, &who, body.reason),
    )
    .await?;
    state.decisions.reload().await?;
    match written.into_iter().next() {
        Some(p) => Ok((StatusCode::OK, Json(p))),
        // Unchanged: answer with what is stored.
        None => {
            let current = state
                .store
                .policy_history(&id)
                .await?
                .pop()
                .ok_or_else(|| ApiError::internal("a policy vanished after its write"))?;
            Ok((StatusCode::OK, Json(current)))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetMode {
    mode: PolicyMode,
    reason: Option<Reason>,
}

/// `POST /api/v1/policies/{id}/mode`: shadow ↔ enforce (enforce needs a one-time code).
pub(crate) async fn set_mode(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SetMode>,
) -> Result<Json<Vec<PolicyRecord>>, ApiError> {
    let id = parse_id(&id)?;
    if body.mode == PolicyMode::Enforce
        || current_mode(&state, &id).await? == Some(PolicyMode::Enforce)
    {
        // Into enforce, or out of it (which loosens what is enforced): privileged either way.
        authorize(&state, &who, Permission::PoliciesEnforce)?;
    }
    let write = PolicyWrite {
        id,
        op: PolicyOp::SetMode(body.mode),
        expected_version: None,
    };
    let written = write_policies(
        &*state.store,
        state.decisions.engine(),
        vec![write],
        change(&state, &who, body.reason),
    )
    .await?;
    state.decisions.reload().await?;
    Ok(Json(written))
}

/// `DELETE /api/v1/policies/{id}`: removes a policy from the set (its history stays).
pub(crate) async fn remove(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    if current_mode(&state, &id).await? == Some(PolicyMode::Enforce) {
        // Removing an enforced policy loosens what is enforced.
        authorize(&state, &who, Permission::PoliciesEnforce)?;
    }
    let write = PolicyWrite {
        id,
        op: PolicyOp::Remove,
        expected_version: None,
    };
    write_policies(
        &*state.store,
        state.decisions.engine(),
        vec![write],
        change(&state, &who, None),
    )
    .await?;
    state.decisions.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}
