//! Device posture reports: what a device runs and how it is configured (firmware, configuration hash, open
//! ports, attestation), reported by an operator's tooling on the main API or by the device itself over mutual
//! TLS on the EST listener. Both routes parse the body into a [`PostureClaim`] and call the one use case,
//! [`vouch_control::posture::record`] (the checks, the `posture.reported` event, the firmware on the record,
//! the queue for the trust service); here are only the routes' own parts: who is asking, the metrics, the
//! in-process subscribers ([`AppState::observations`](crate::AppState::observations)) and the answer.

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::Digest as _;
use vouch_control::posture::{PostureClaim, PostureError, PostureRefused};
use vouch_types::{Actor, CertFingerprint, DeviceId, Observation, PostureReport};

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiPath};
use crate::tls::TlsPeer;
use crate::{ApiError, AppState};

pub use vouch_control::posture::MAX_OPEN_PORTS;

/// The largest posture report body accepted, in bytes: a full report with 1,024 ports is under 8 KiB.
pub const MAX_POSTURE_BODY: usize = 16 * 1024;

/// The path both listeners serve reports on.
pub const POSTURE_PATH: &str = "/api/v1/devices/{id}/posture";

/// A report as the client sends it. Every field is optional but at least one of `firmware`, `config_hash`,
/// `open_ports` and `attestation` must be present. Fields arrive as plain JSON values and are checked by
/// [`PostureClaim::check`], so that each refusal names the field and what is wrong with it rather than a
/// parser position.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostureBody {
    /// The device the report is about; if present it must be the one in the path (a report sent to the wrong
    /// device's URL is refused rather than filed under the wrong record).
    device: Option<DeviceId>,
    firmware: Option<String>,
    config_hash: Option<String>,
    /// Signed and wide so that 0, negatives and 70000 reach the check and its clear message.
    open_ports: Option<Vec<i64>>,
    attestation: Option<Attestation>,
}

/// The outcome of an attestation (secure boot measurement, TPM quote) the device or its tooling verified.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Attestation {
    verified: bool,
}

impl From<PostureBody> for PostureClaim {
    fn from(b: PostureBody) -> Self {
        PostureClaim {
            device: b.device,
            firmware: b.firmware,
            config_hash: b.config_hash,
            open_ports: b.open_ports,
            attestation_verified: b.attestation.map(|a| a.verified),
        }
    }
}

impl From<PostureError> for ApiError {
    fn from(e: PostureError) -> Self {
        match e {
            PostureError::Refused(r @ PostureRefused::NotEnrolled { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "not-enrolled", r.to_string())
            }
            PostureError::Refused(r) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", r.to_string())
            }
            PostureError::Store(s) => s.into(),
        }
    }
}

/// Where a report came in, for the metrics.
#[derive(Clone, Copy)]
enum Via {
    Api,
    Est,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Est => "est",
        }
    }
}

/// Checks and records a report for `device` by `actor` through the use case, then hands it to in-process
/// subscribers: the one core both routes call.
async fn record(
    state: &AppState,
    device: DeviceId,
    actor: Actor,
    body: PostureBody,
) -> Result<PostureReport, ApiError> {
    let now = state.clock.now();
    let recorded =
        vouch_control::posture::record(&*state.store, device, actor, body.into(), now).await?;
    if let Some(e) = &recorded.not_queued {
        tracing::warn!(error = %e, %device, "a posture report could not be queued for the trust service");
    }
    // No in-process subscriber is not an error.
    let _ = state
        .observations
        .send(Observation::Posture(recorded.report.clone()));
    Ok(recorded.report)
}

/// Counts the outcome and answers it: the stored report (200), or the problem.
fn answer(state: &AppState, via: Via, outcome: Result<PostureReport, ApiError>) -> Response {
    state.metrics.posture_report(via.as_str(), outcome.is_ok());
    match outcome {
        Ok(report) => (StatusCode::OK, Json(report)).into_response(),
        Err(e) => {
            tracing::info!(via = via.as_str(), status = %e.status, detail = %e.detail, "posture report refused");
            e.into_response()
        }
    }
}

/// The body, with an oversized one explained in this route's own terms.
fn body_or_refuse(body: Result<ApiJson<PostureBody>, ApiError>) -> Result<PostureBody, ApiError> {
    body.map(|ApiJson(b)| b).map_err(|e| {
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                e.status,
                e.kind,
                format!(
                    "a posture report is at most {} KiB",
                    MAX_POSTURE_BODY / 1024
                ),
            )
        } else {
            e
        }
    })
}

/// `POST /api/v1/devices/{id}/posture` on the main API: an operator (or its tooling) reports for a device.
pub(crate) async fn report_api(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    id: Result<ApiPath<DeviceId>, ApiError>,
    body: Result<ApiJson<PostureBody>, ApiError>,
) -> Response {
    let outcome = async {
        let ApiPath(id) = id?;
        record(&state, id, who.actor(), body_or_refuse(body)?).await
    }
    .await;
    answer(&state, Via::Api, outcome)
}

/// The actor the log records for a device speaking for itself over mutual TLS. `Actor` has no device
/// variant yet; `system:device:<id>` reads unambiguously and parses back.
fn device_actor(id: DeviceId) -> Actor {
    Actor::System(format!("device:{id}"))
}

/// The device behind the client certificate, which must be on record, valid now, and `device`'s own.
async fn authenticate_device(
    state: &AppState,
    peer: &TlsPeer,
    device: DeviceId,
) -> Result<(), ApiError> {
    let Some(leaf) = peer.chain.first() else {
        return Err(ApiError::unauthenticated(
            "a device reports its posture with its Vouch certificate over mutual TLS; none was presented",
        ));
    };
    let fp = CertFingerprint::from_bytes(sha2::Sha256::digest(leaf).into());
    let Some(cert) = state.store.get_certificate_by_fingerprint(fp).await? else {
        return Err(ApiError::unauthenticated(
            "the client certificate is not a device certificate Vouch issued",
        ));
    };
    if !cert.is_valid_at(state.clock.now()) {
        let why = match cert.status {
            vouch_store::CertStatus::Revoked { .. } => "the client certificate is revoked",
            vouch_store::CertStatus::Good => "the client certificate is expired or not yet valid",
        };
        return Err(ApiError::unauthenticated(why));
    }
    if cert.device_id != device {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong-device",
            format!(
                "the client certificate belongs to another device ({}): a device reports only its own posture",
                cert.device_id
            ),
        ));
    }
    Ok(())
}

/// `POST /api/v1/devices/{id}/posture` on the EST listener: the device reports for itself, authenticated by
/// its current certificate.
pub(crate) async fn report_est(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<TlsPeer>,
    id: Result<ApiPath<DeviceId>, ApiError>,
    body: Result<ApiJson<PostureBody>, ApiError>,
) -> Response {
    let outcome = async {
        let ApiPath(id) = id?;
        // Who is asking comes first: an unauthenticated client learns nothing about the body or the device.
        authenticate_device(&state, &peer, id).await?;
        record(&state, id, device_actor(id), body_or_refuse(body)?).await
    }
    .await;
    answer(&state, Via::Est, outcome)
}
