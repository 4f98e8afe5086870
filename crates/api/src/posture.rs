//! Device posture reports: what a device runs and how it is configured (firmware, configuration hash, open
//! ports, attestation), reported by an operator's tooling on the main API or by the device itself over mutual
//! TLS on the EST listener. Both routes share one core ([`record`]): the body is checked once here, then the
//! report is logged (`posture.reported`), a changed firmware version is written to the device record through
//! the store's normal edit path, and the report is queued in the store's observation queue for the trust
//! service (whichever process runs it) and handed to in-process subscribers
//! ([`AppState::observations`](crate::AppState::observations)).

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::Digest as _;
use vouch_events::{Action, EventDraft};
use vouch_store::{Change, DeviceEdit};
use vouch_types::{
    Actor, CertFingerprint, DeviceId, DevicePatch, FirmwareVersion, Observation, PostureReport,
    Reason,
};

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiPath};
use crate::tls::TlsPeer;
use crate::{ApiError, AppState};

/// The largest posture report body accepted, in bytes: a full report with 1,024 ports is under 8 KiB.
pub const MAX_POSTURE_BODY: usize = 16 * 1024;

/// The most open ports one report may list.
pub const MAX_OPEN_PORTS: usize = 1024;

/// The path both listeners serve reports on.
pub const POSTURE_PATH: &str = "/api/v1/devices/{id}/posture";

/// A report as the client sends it. Every field is optional but at least one of `firmware`, `config_hash`,
/// `open_ports` and `attestation` must be present. Fields arrive as plain JSON values and are checked in
/// [`PostureBody::check`], so that each refusal names the field and what is wrong with it rather than a
/// parser position.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostureBody {
    /// The device the report is about; if present it must be the one in the path (a report sent to the wrong
    /// device's URL is refused rather than filed under the wrong record).
    device: Option<DeviceId>,
    firmware: Option<String>,
    config_hash: Option<String>,
    /// Signed and wide so that 0, negatives and 70000 reach our own check and its clear message.
    open_ports: Option<Vec<i64>>,
    attestation: Option<Attestation>,
}

/// The outcome of an attestation (secure boot measurement, TPM quote) the device or its tooling verified.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Attestation {
    verified: bool,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail)
}

impl PostureBody {
    /// The report this body makes for `device`, received `at`; a 422 naming the first problem otherwise.
    fn check(
        self,
        device: DeviceId,
        at: vouch_types::Timestamp,
    ) -> Result<PostureReport, ApiError> {
        if let Some(named) = self.device
            && named != device
        {
            return Err(invalid(format!(
                "the report names device {named} but was sent for device {device}"
            )));
        }
        if self.firmware.is_none()
            && self.config_hash.is_none()
            && self.open_ports.is_none()
            && self.attestation.is_none()
        {
            return Err(invalid(
                "a posture report needs at least one of firmware, config_hash, open_ports, attestation",
            ));
        }
        let firmware = self
            .firmware
            .map(FirmwareVersion::try_from)
            .transpose()
            .map_err(|e| invalid(format!("firmware: {e}")))?;
        let config_hash = self.config_hash.map(config_hash).transpose()?;
        let open_ports = self.open_ports.map(open_ports).transpose()?;
        Ok(PostureReport {
            device,
            at,
            firmware,
            config_hash,
            open_ports: open_ports.unwrap_or_default(),
            attestation_ok: self.attestation.map(|a| a.verified),
        })
    }
}

/// A SHA-256 in hex, normalised to lower case (so equal configurations compare equal).
fn config_hash(text: String) -> Result<String, ApiError> {
    let chars = text.chars().count();
    if chars != 64 {
        return Err(invalid(format!(
            "config_hash must be exactly 64 hex digits (a SHA-256), not {chars} characters"
        )));
    }
    if !text.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid(
            "config_hash must be exactly 64 hex digits (a SHA-256): it contains non-hex characters",
        ));
    }
    Ok(text.to_ascii_lowercase())
}

/// Port numbers, each 1–65535, at most [`MAX_OPEN_PORTS`], no duplicates; ascending.
fn open_ports(ports: Vec<i64>) -> Result<Vec<u16>, ApiError> {
    if ports.len() > MAX_OPEN_PORTS {
        return Err(invalid(format!(
            "open_ports lists {} ports; at most {MAX_OPEN_PORTS} are accepted",
            ports.len()
        )));
    }
    let mut out = Vec::with_capacity(ports.len());
    for p in ports {
        match u16::try_from(p) {
            Ok(port) if port != 0 => out.push(port),
            _ => {
                return Err(invalid(format!(
                    "open_ports: {p} is not a port number (1 to 65535)"
                )));
            }
        }
    }
    out.sort_unstable();
    if let Some(w) = out.windows(2).find(|w| w[0] == w[1]) {
        return Err(invalid(format!(
            "open_ports lists port {} more than once",
            w[0]
        )));
    }
    Ok(out)
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

/// Checks and records a report for `device` by `actor`: the one core both routes call. Nothing is written
/// unless every check passed.
async fn record(
    state: &AppState,
    device: DeviceId,
    actor: Actor,
    body: PostureBody,
) -> Result<PostureReport, ApiError> {
    let now = state.clock.now();
    let report = body.check(device, now)?;
    let current = state.store.get_device(device).await?;
    if !current.state.is_managed() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not-enrolled",
            format!(
                "device {device} is {}: only enrolled devices (active, restricted, suspended) report posture",
                current.state.as_str()
            ),
        ));
    }
    let after = serde_json::to_string(&report).map_err(ApiError::internal)?;
    state
        .store
        .append_event(
            EventDraft {
                device_id: Some(device),
                actor: actor.clone(),
                action: Action::PostureReported,
                before: None,
                after: Some(after),
                reason: None,
            },
            now,
        )
        .await?;
    // The report is the device's own word on what it runs: the registry (and the policies that read it)
    // follow it, through the same edit path an operator's PATCH takes, so the change is logged as usual.
    if let Some(fw) = &report.firmware
        && current.firmware.as_ref() != Some(fw)
    {
        let patch = DevicePatch {
            firmware: Some(Some(fw.clone())),
            ..DevicePatch::default()
        };
        let reason = Reason::try_from("posture report".to_owned())?;
        state
            .store
            .edit_device(
                device,
                DeviceEdit::Patch(Box::new(patch)),
                None,
                Change {
                    actor,
                    reason: Some(reason),
                    at: now,
                },
            )
            .await?;
    }
    // The report is logged and the record updated already: a queue that fails costs the trust service this
    // report's attestation, not the request (a retry would log the report twice).
    if let Err(e) = state
        .store
        .append_observations(vec![Observation::Posture(report.clone())], now)
        .await
    {
        tracing::warn!(error = %e, %device, "a posture report could not be queued for the trust service");
    }
    // No in-process subscriber is not an error.
    let _ = state
        .observations
        .send(Observation::Posture(report.clone()));
    Ok(report)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_sorted_and_checked() {
        assert_eq!(open_ports(vec![1883, 22, 443]).unwrap(), [22, 443, 1883]);
        for bad in [vec![0], vec![70000], vec![-1], vec![22, 80, 22]] {
            assert!(open_ports(bad).is_err());
        }
        assert!(open_ports((1..=1025).collect()).is_err());
        assert_eq!(open_ports((1..=1024).collect()).unwrap().len(), 1024);
    }

    #[test]
    fn hashes_are_normalised() {
        let h = "AB".repeat(32);
        assert_eq!(config_hash(h).unwrap(), "ab".repeat(32));
        assert!(config_hash("a".repeat(65)).is_err());
        assert!(config_hash("g".repeat(64)).is_err());
        assert!(config_hash("é".repeat(32)).is_err());
    }
}
