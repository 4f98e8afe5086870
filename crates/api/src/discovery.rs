//! Discovery routes: upload a capture, read the last inventory and communication map, onboard a discovered
//! device. The merge and onboarding themselves are `vouch_control::discovery`'s, which the CLI calls too.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use vouch_control::discovery::{merge_report, onboard};
use vouch_discover::{Discovery, Limits, Report};
use vouch_store::Change;
use vouch_types::{DeviceId, DeviceState, Reason, Timestamp};

pub use vouch_control::discovery::MergeSummary;

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};

/// The largest capture the upload route accepts.
pub const MAX_CAPTURE_BYTES: usize = 256 << 20;
/// What a refused concurrent upload is told to wait, in seconds (a large capture takes about this long).
pub const UPLOAD_RETRY_AFTER_SECS: u32 = 10;

/// The last report this server produced, for the map and inventory routes (per server: another node keeps
/// its own; the devices themselves are in the shared store).
#[derive(Debug, Default)]
pub struct LastReport {
    report: Mutex<Option<Arc<Report>>>,
    /// Held for a whole upload, from before its body is read: one run at a time (each compared with the one
    /// before), and one capture's worth of memory. Owned by the run, so that a client hanging up does not
    /// free it while the capture is still being read.
    running: Arc<Mutex<()>>,
}

/// `POST /api/v1/discovery/captures`: a pcap or pcapng file as the body; returns the report after merging it
/// into the registry. A truncated or corrupt capture is still reported up to the bad record (its error is in
/// `capture.errors`) and answered 422 without touching the registry. While another upload runs, the request is
/// refused at once (429, `Retry-After`) before its body is read: uploads never queue, so memory holds one
/// capture at most, and the last report stays readable meanwhile.
pub(crate) async fn upload(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    req: Request,
) -> Result<Response, ApiError> {
    let Ok(running) = state.discovery.running.clone().try_lock_owned() else {
        return Err(ApiError {
            kind: "upload-in-progress",
            ..ApiError::too_many(
                u64::from(UPLOAD_RETRY_AFTER_SECS),
                "another capture is being read on this server (one upload at a time); retry when it is done",
            )
        });
    };
    let body = Bytes::from_request(req, &())
        .await
        .map_err(crate::extract::bytes_rejection)?;
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty-capture",
            "the body must be a pcap or pcapng file",
        ));
    }
    let previous = state.discovery.report.lock().await.clone();
    let (_running, error, mut report) = tokio::task::spawn_blocking(move || {
        let mut run = Discovery::new(Limits::default());
        let read = run.read("upload", &body[..]);
        (
            running,
            read.err().map(|e| e.to_string()),
            run.finish(previous.as_deref()),
        )
    })
    .await
    .map_err(|e| ApiError::internal(format!("discovery stopped: {e}")))?;
    if let Some(e) = error {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-capture",
            format!("{e}; nothing was merged"),
        ));
    }
    let change = Change {
        actor: who.actor(),
        reason: Reason::try_from("passive discovery".to_owned()).ok(),
        at: state.clock.now(),
    };
    let summary = merge_report(&*state.store, &mut report, change).await?;
    let report = Arc::new(report);
    *state.discovery.report.lock().await = Some(report.clone());
    Ok((
        StatusCode::OK,
        Json(UploadView {
            merged: summary,
            report,
        }),
    )
        .into_response())
}

/// What the upload route answers.
#[derive(Serialize)]
pub(crate) struct UploadView {
    merged: MergeSummary,
    report: Arc<Report>,
}

/// `GET /api/v1/discovery`: the last report (devices, endpoints, map).
pub(crate) async fn last(State(state): State<AppState>) -> Result<Json<Arc<Report>>, ApiError> {
    match state.discovery.report.lock().await.clone() {
        Some(r) => Ok(Json(r)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no-discovery",
            "no capture has been uploaded to this server yet",
        )),
    }
}

/// The communication map as the API shows it: the devices as nodes, the conversations as edges.
#[derive(Serialize)]
pub(crate) struct MapView {
    nodes: Vec<MapNode>,
    edges: Vec<vouch_discover::Edge>,
}

#[derive(Serialize)]
struct MapNode {
    key: String,
    class: vouch_types::DeviceClass,
    role: String,
    ips: Vec<std::net::IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<DeviceId>,
    managed: bool,
}

/// `GET /api/v1/discovery/map`: who talks to whom in the last report, over which protocols, with volumes.
pub(crate) async fn map(State(state): State<AppState>) -> Result<Json<MapView>, ApiError> {
    let Some(r) = state.discovery.report.lock().await.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no-discovery",
            "no capture has been uploaded to this server yet",
        ));
    };
    let nodes = r
        .devices
        .iter()
        .map(|d| MapNode {
            key: d.key.clone(),
            class: d.class,
            role: d.role.clone(),
            ips: d.ips.clone(),
            name: d.hostname.clone().or(d.model.clone()),
            device_id: d.registry.as_ref().map(|l| l.device_id),
            managed: d.registry.as_ref().is_some_and(|l| l.managed),
        })
        .collect();
    Ok(Json(MapView {
        nodes,
        edges: r.map.clone(),
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct OnboardBody {
    reason: Option<Reason>,
}

/// What onboarding answers: the device and its enrollment token, shown this once.
#[derive(Serialize)]
pub(crate) struct Onboarded {
    device_id: DeviceId,
    state: DeviceState,
    token_id: vouch_types::TokenId,
    expires_at: Timestamp,
    token: String,
}

/// `POST /api/v1/devices/{id}/onboard`: an unmanaged (discovered) device moves to onboarding and gets a
/// one-time enrollment token.
pub(crate) async fn onboard_route(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(body): ApiJson<OnboardBody>,
) -> Result<(StatusCode, Json<Onboarded>), ApiError> {
    let svc = crate::certs::identity(&state)?;
    let change = Change {
        actor: who.actor(),
        reason: body.reason.clone(),
        at: state.clock.now(),
    };
    let device = onboard(&*state.store, id, change).await?;
    let (record, secret) = svc
        .create_enrollment_token(id, who.actor(), body.reason)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Onboarded {
            device_id: id,
            state: device.state,
            token_id: record.id,
            expires_at: record.expires_at,
            token: secret.expose().to_owned(),
        }),
    ))
}
