//! Decisions over HTTP for enforcement points elsewhere: `POST /api/v1/authorize` (one request or a batch)
//! and an endpoint in the shape EMQX's HTTP authorizer speaks, so an EMQX cluster can use Vouch as its
//! decision point.
//!
//! The context of a decision is Vouch's, not the caller's: the device's record and certificate come from
//! the store. A caller may add only what it observes and Vouch cannot: where the device is seen
//! (`location`).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use vouch_policy::{
    Decision, DeviceAction, DeviceContext, DeviceFacts, DeviceRequest, Resource, ResourceName,
    TopicFilter, TopicName,
};
use vouch_store::StoreError;
use vouch_types::DeviceId;

use crate::extract::ApiJson;
use crate::{ApiError, AppState};

/// The most requests one batch may carry.
pub const MAX_BATCH: usize = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityRef {
    r#type: String,
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WireContext {
    location: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequest {
    principal: EntityRef,
    action: String,
    resource: EntityRef,
    #[serde(default)]
    context: WireContext,
}

/// One answer.
#[derive(Serialize)]
pub(crate) struct Answer {
    decision: &'static str,
    #[serde(flatten)]
    detail: Decision,
    reason: String,
}

impl From<Decision> for Answer {
    fn from(d: Decision) -> Self {
        Self {
            decision: if d.allowed { "allow" } else { "deny" },
            reason: d.reason(),
            detail: d,
        }
    }
}

fn type_name(t: &str) -> &str {
    t.strip_prefix("Vouch::").unwrap_or(t)
}

/// A well-formed request: device, action, resource, and the location the caller observed.
struct Parsed(DeviceId, DeviceAction, Resource, Option<String>);

/// Parses one request; a malformed one is a 4xx (nothing is decided or logged).
fn parse(v: serde_json::Value, index: Option<usize>) -> Result<Parsed, ApiError> {
    let at = |msg: String| match index {
        Some(i) => format!("requests[{i}]: {msg}"),
        None => msg,
    };
    let w: WireRequest =
        serde_json::from_value(v).map_err(|e| ApiError::bad_request(at(e.to_string())))?;
    if type_name(&w.principal.r#type) != "Device" {
        return Err(ApiError::bad_request(at(format!(
            "unknown principal type `{}`: this endpoint decides for `Device` principals (operators are decided \
             by the API itself)",
            w.principal.r#type
        ))));
    }
    let id: DeviceId = w
        .principal
        .id
        .parse()
        .map_err(|e: vouch_types::ValidationError| ApiError::bad_request(at(e.to_string())))?;
    let action: DeviceAction = w
        .action
        .parse()
        .map_err(|e: vouch_types::ValidationError| ApiError::bad_request(at(e.to_string())))?;
    let bad = |e: String| ApiError::bad_request(at(e));
    let resource = match (type_name(&w.resource.r#type), action) {
        ("Topic", DeviceAction::Subscribe) | ("TopicFilter", DeviceAction::Subscribe) => {
            Resource::Subscription(
                TopicFilter::new(&w.resource.id).map_err(|e| bad(e.to_string()))?,
            )
        }
        ("Topic", _) => {
            Resource::Topic(TopicName::new(&w.resource.id).map_err(|e| bad(e.to_string()))?)
        }
        ("Service", _) => Resource::Service(
            ResourceName::try_from(w.resource.id).map_err(|e| bad(e.to_string()))?,
        ),
        ("Asset", _) => {
            Resource::Asset(ResourceName::try_from(w.resource.id).map_err(|e| bad(e.to_string()))?)
        }
        (other, _) => {
            return Err(bad(format!(
                "unknown resource type `{other}`: one of Topic, TopicFilter, Service, Asset"
            )));
        }
    };
    if !resource.suits(action) {
        return Err(bad(format!(
            "`{action}` does not apply to a {} resource",
            w.resource.r#type
        )));
    }
    if let Some(l) = &w.context.location
        && (l.is_empty()
            || l.len() > 128
            || l.chars()
                .any(|c| c.is_control() || vouch_types::is_invisible(c)))
    {
        return Err(bad(
            "context.location must be 1 to 128 printable bytes".into()
        ));
    }
    Ok(Parsed(id, action, resource, w.context.location))
}

/// Builds the live request for `device` from the store and decides it.
pub(crate) async fn decide_live(
    state: &AppState,
    device: DeviceId,
    action: DeviceAction,
    resource: Resource,
    location: Option<String>,
) -> Result<Decision, ApiError> {
    let now = state.clock.now();
    let record = match state.store.get_device(device).await {
        Ok(d) => d,
        Err(StoreError::NotFound { .. }) => {
            let d = Decision {
                allowed: false,
                policies: vec![],
                errors: vec![format!("device {device} is not registered")],
                shadow: None,
                version: state.decisions.engine().version(),
            };
            // Probing with made-up ids leaves a trace too.
            state.decisions.trace_unknown(device, action, &resource, &d);
            return Ok(d);
        }
        Err(e) => return Err(e.into()),
    };
    let cert_not_after = state
        .store
        .device_certificates(device)
        .await?
        .iter()
        .filter(|c| c.is_valid_at(now))
        .map(|c| c.not_after)
        .max();
    let facts = DeviceFacts::from(&record);
    let context = DeviceContext {
        location,
        ..DeviceContext::for_device(&facts, now, cert_not_after)
    };
    let req = DeviceRequest {
        device: facts,
        action,
        resource,
        context,
    };
    Ok(state.decisions.decide_device(&req))
}

/// `POST /api/v1/authorize`: `{principal, action, resource, context?}` or `{"requests": [...]}`.
pub(crate) async fn authorize(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let batch = match &body {
        serde_json::Value::Object(m) if m.contains_key("requests") => {
            if m.len() != 1 {
                return Err(ApiError::bad_request(
                    "a batch is {\"requests\": [...]} and nothing else",
                ));
            }
            Some(m.get("requests").cloned().unwrap_or_default())
        }
        _ => None,
    };
    let Some(batch) = batch else {
        let Parsed(id, action, resource, location) = parse(body, None)?;
        let d = decide_live(&state, id, action, resource, location).await?;
        return Ok(Json(
            serde_json::to_value(Answer::from(d)).map_err(ApiError::internal)?,
        ));
    };
    let serde_json::Value::Array(items) = batch else {
        return Err(ApiError::bad_request("`requests` must be an array"));
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "a batch holds 1 to {MAX_BATCH} requests"
        )));
    }
    // Parse everything before deciding anything: a malformed batch is refused whole.
    let parsed = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| parse(v, Some(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut answers = Vec::with_capacity(parsed.len());
    for Parsed(id, action, resource, location) in parsed {
        answers.push(Answer::from(
            decide_live(&state, id, action, resource, location).await?,
        ));
    }
    Ok(Json(serde_json::json!({ "decisions": answers })))
}

/// What EMQX sends, with Vouch's recommended request template:
/// `{"clientid": "${clientid}", "username": "${username}", "peerhost": "${peerhost}",
///   "cert_common_name": "${cert_common_name}", "action": "${action}", "topic": "${topic}"}`.
#[derive(Deserialize)]
pub(crate) struct EmqxRequest {
    clientid: Option<String>,
    cert_common_name: Option<String>,
    action: Option<String>,
    topic: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct EmqxAnswer {
    result: &'static str,
    /// Not read by EMQX; for people reading its logs.
    reason: String,
}

fn emqx_deny(reason: impl Into<String>) -> Json<EmqxAnswer> {
    Json(EmqxAnswer {
        result: "deny",
        reason: reason.into(),
    })
}

/// `POST /api/v1/emqx/authorize`: always `200 {"result": "allow"|"deny"|"ignore"}`. A malformed request is
/// denied, not answered 4xx: EMQX treats any other status as "ignore", which fails open unless its
/// `no_match` is `deny`. A client that is not a Vouch device id is "ignore"d (for other authorizers).
pub(crate) async fn emqx(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<EmqxAnswer>, ApiError> {
    let req: EmqxRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return Ok(emqx_deny(format!("malformed request: {e}"))),
    };
    let cn = req
        .cert_common_name
        .filter(|s| !s.is_empty() && !s.starts_with("${"));
    let client = req
        .clientid
        .filter(|s| !s.is_empty() && !s.starts_with("${"));
    let claimed = match (&cn, &client) {
        (Some(cn), Some(client)) if cn != client => {
            return Ok(emqx_deny(
                "the client id is not the device its certificate names",
            ));
        }
        (Some(id), _) | (None, Some(id)) => id.clone(),
        (None, None) => return Ok(emqx_deny("neither cert_common_name nor clientid was sent")),
    };
    let Ok(device) = claimed.parse::<DeviceId>() else {
        return Ok(Json(EmqxAnswer {
            result: "ignore",
            reason: "not a Vouch device id".into(),
        }));
    };
    let (Some(action), Some(topic)) = (req.action, req.topic) else {
        return Ok(emqx_deny("`action` and `topic` are required"));
    };
    let resource = match action.as_str() {
        "publish" => TopicName::new(&topic).map(Resource::Topic),
        "subscribe" => TopicFilter::new(&topic).map(Resource::Subscription),
        other => return Ok(emqx_deny(format!("unknown action `{other}`"))),
    };
    let resource = match resource {
        Ok(r) => r,
        Err(e) => return Ok(emqx_deny(e.to_string())),
    };
    let action = if action == "publish" {
        DeviceAction::Publish
    } else {
        DeviceAction::Subscribe
    };
    let d = decide_live(&state, device, action, resource, None).await?;
    Ok(Json(EmqxAnswer {
        result: if d.allowed { "allow" } else { "deny" },
        reason: d.reason(),
    }))
}
