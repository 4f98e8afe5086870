//! Device routes: create, list, show, update, transition, events; and the audit log.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vouch_events::{Event, EventSeq};
use vouch_store::{Change, DeviceEdit, DeviceQuery, MAX_PAGE, verify_audit_full};
use vouch_types::{
    Device, DeviceClass, DeviceId, DevicePatch, DeviceState, FirmwareVersion, Groups, Identifiers,
    LabelKey, LabelValue, Labels, Model, NewDevice, Reason, Vendor, Zone,
};

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// A device as the API shows it: the record plus what follows from it.
#[derive(Serialize)]
pub(crate) struct DeviceView {
    #[serde(flatten)]
    device: Device,
    managed: bool,
}

impl From<Device> for DeviceView {
    fn from(device: Device) -> Self {
        Self {
            managed: device.is_managed(),
            device,
        }
    }
}

/// The device and its revision as an ETag, for `If-Match` on the next update.
fn device_response(status: StatusCode, device: Device) -> Response {
    let etag = format!("\"{}\"", device.revision);
    let mut resp = (status, Json(DeviceView::from(device))).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateDevice {
    id: Option<DeviceId>,
    state: Option<DeviceState>,
    #[serde(default)]
    class: DeviceClass,
    #[serde(default)]
    identifiers: Identifiers,
    vendor: Option<Vendor>,
    model: Option<Model>,
    firmware: Option<FirmwareVersion>,
    zone: Option<Zone>,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    groups: Groups,
    reason: Option<Reason>,
}

/// `POST /api/v1/devices`: registers a device (onboarding unless another initial state is asked for).
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<CreateDevice>,
) -> Result<Response, ApiError> {
    let new = NewDevice {
        id: body.id.unwrap_or_else(DeviceId::new),
        state: body.state.unwrap_or(DeviceState::Onboarding),
        class: body.class,
        identifiers: body.identifiers,
        vendor: body.vendor,
        model: body.model,
        firmware: body.firmware,
        zone: body.zone,
        labels: body.labels,
        groups: body.groups,
    };
    let change = Change {
        actor: who.actor(),
        reason: body.reason,
        at: state.clock.now(),
    };
    let device = vouch_control::devices::create(&*state.store, new, change).await?;
    let location = format!("/api/v1/devices/{}", device.id);
    let mut resp = device_response(StatusCode::CREATED, device);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    state: Option<DeviceState>,
    managed: Option<bool>,
    class: Option<DeviceClass>,
    zone: Option<Zone>,
    vendor: Option<Vendor>,
    serial: Option<vouch_types::HardwareSerial>,
    group: Option<vouch_types::GroupName>,
    /// `key=value`.
    label: Option<String>,
    cursor: Option<DeviceId>,
    limit: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct DeviceList {
    items: Vec<DeviceView>,
    next_cursor: Option<DeviceId>,
}

/// `GET /api/v1/devices`: a filtered page of devices; follow `next_cursor` for the next page.
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<DeviceList>, ApiError> {
    let label = p
        .label
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| ApiError::bad_request("label must be key=value"))?;
            Ok::<_, ApiError>((k.parse::<LabelKey>()?, v.parse::<LabelValue>()?))
        })
        .transpose()?;
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let q = DeviceQuery {
        state: p.state,
        managed: p.managed,
        class: p.class,
        zone: p.zone,
        vendor: p.vendor,
        serial: p.serial,
        group: p.group,
        label,
        after: p.cursor,
        limit,
    };
    let page = state.store.list_devices(&q).await?;
    Ok(Json(DeviceList {
        items: page.devices.into_iter().map(DeviceView::from).collect(),
        next_cursor: page.next,
    }))
}

/// `GET /api/v1/devices/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> Result<Response, ApiError> {
    Ok(device_response(
        StatusCode::OK,
        state.store.get_device(id).await?,
    ))
}

/// The revision an `If-Match: "N"` header asks for.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .map(|s| s.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("If-Match must be the device's ETag, e.g. \"3\""))
}

/// `PATCH /api/v1/devices/{id}`: JSON Merge Patch of the device's attributes, plus an optional `reason`.
pub(crate) async fn update(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<DeviceId>,
    headers: HeaderMap,
    ApiJson(mut body): ApiJson<serde_json::Map<String, Value>>,
) -> Result<Response, ApiError> {
    let reason = match body.remove("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Reason::try_from(s)?),
        Some(_) => return Err(ApiError::bad_request("reason must be a string")),
    };
    let patch: DevicePatch = serde_json::from_value(Value::Object(body))
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()))?;
    let change = Change {
        actor: who.actor(),
        reason,
        at: state.clock.now(),
    };
    let device =
        vouch_control::devices::update(&*state.store, id, patch, if_match(&headers)?, change)
            .await?;
    Ok(device_response(StatusCode::OK, device))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransitionBody {
    to: DeviceState,
    reason: Option<Reason>,
}

/// `POST /api/v1/devices/{id}/transition`: moves the device through its lifecycle; 409 if not allowed.
pub(crate) async fn transition(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<DeviceId>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TransitionBody>,
) -> Result<Response, ApiError> {
    let change = Change {
        actor: who.actor(),
        reason: body.reason,
        at: state.clock.now(),
    };
    let device = state
        .store
        .edit_device(
            id,
            DeviceEdit::Transition(body.to),
            if_match(&headers)?,
            change,
        )
        .await?;
    Ok(device_response(StatusCode::OK, device))
}

/// An event as the API shows it: before/after as JSON values, hashes in hex.
#[derive(Serialize)]
pub(crate) struct EventView {
    seq: EventSeq,
    at: vouch_types::Timestamp,
    device_id: Option<DeviceId>,
    actor: String,
    action: vouch_events::Action,
    before: Option<Value>,
    after: Option<Value>,
    reason: Option<Reason>,
    prev_hash: vouch_events::Digest,
    hash: vouch_events::Digest,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        let json =
            |s: Option<String>| s.map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s)));
        Self {
            seq: e.seq,
            at: e.at,
            device_id: e.draft.device_id,
            actor: e.draft.actor.to_string(),
            action: e.draft.action,
            before: json(e.draft.before),
            after: json(e.draft.after),
            reason: e.draft.reason,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventParams {
    after: Option<u64>,
    limit: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct EventList {
    items: Vec<EventView>,
    next_after: Option<EventSeq>,
}

fn event_page(events: Vec<Event>, limit: u32) -> EventList {
    let next_after = if events.len() == limit as usize {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    EventList {
        items: events.into_iter().map(EventView::from).collect(),
        next_after,
    }
}

fn event_limit(p: &EventParams) -> Result<u32, ApiError> {
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    Ok(limit)
}

/// `GET /api/v1/devices/{id}/events`: the device's life, oldest first.
pub(crate) async fn events(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiQuery(p): ApiQuery<EventParams>,
) -> Result<Json<EventList>, ApiError> {
    let limit = event_limit(&p)?;
    // 404 for an unknown device rather than an empty list that looks like a quiet one.
    state.store.get_device(id).await?;
    let events = state
        .store
        .device_events(id, p.after.map(EventSeq), limit)
        .await?;
    Ok(Json(event_page(events, limit)))
}

/// `GET /api/v1/audit/events`: the whole log, oldest first.
pub(crate) async fn all_events(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<EventParams>,
) -> Result<Json<EventList>, ApiError> {
    let limit = event_limit(&p)?;
    let events = state.store.events(p.after.map(EventSeq), limit).await?;
    Ok(Json(event_page(events, limit)))
}

#[derive(Serialize)]
pub(crate) struct VerifyView {
    /// Nothing found: the chain holds and the token and policy tables are what it says.
    intact: bool,
    verified: u64,
    first_break: Option<String>,
    /// Where the token and policy tables differ from what the log says (each named).
    findings: Vec<String>,
    /// What could not be checked either way.
    not_checkable: Vec<String>,
}

/// `GET /api/v1/audit/verify`: walks the hash chain and names the first tampered event, then compares the
/// token and policy tables with the state the log implies. (Signed checkpoints live in files, which this
/// crate does not read: `vouch audit verify --checkpoint` checks them.)
pub(crate) async fn verify(State(state): State<AppState>) -> Result<Json<VerifyView>, ApiError> {
    let report = match verify_audit_full(&*state.store, &[]).await {
        Ok(r) => r,
        // A row that no longer decodes was tampered with too: report it rather than fail.
        Err(vouch_store::StoreError::Corrupt { table, why }) => {
            return Ok(Json(VerifyView {
                intact: false,
                verified: 0,
                first_break: Some(format!("{table}: {why}")),
                findings: Vec::new(),
                not_checkable: Vec::new(),
            }));
        }
        Err(e) => return Err(e.into()),
    };
    let (findings, mut not_checkable) = match &report.state {
        Some(s) => (
            s.findings.iter().map(ToString::to_string).collect(),
            s.not_checkable.iter().map(ToString::to_string).collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    not_checkable.extend(report.state_skipped.clone());
    Ok(Json(VerifyView {
        intact: report.is_clean(),
        verified: report.chain.verified,
        first_break: report.chain.first_break.map(|b| b.to_string()),
        findings,
        not_checkable,
    }))
}
