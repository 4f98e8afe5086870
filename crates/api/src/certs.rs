//! Certificate routes: enrollment tokens, issuance from a request, listing, revocation; and the public
//! revocation endpoints (CRL, OCSP).

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use vouch_identity::{IdentityError, IdentityService};
use vouch_pki::IssuedCert;
use vouch_store::{CertStatus, CertificateRecord};
use vouch_types::{
    CertFingerprint, DeviceId, Reason, RevocationReason, Serial, Timestamp, TokenId,
};

use crate::auth::Principal;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::BadRequest(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad-request", e.to_string())
            }
            IdentityError::Unauthorized(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "enrollment-refused", e.to_string())
            }
            IdentityError::WrongDevice { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "wrong-device", e.to_string())
            }
            IdentityError::Store(s) => s.into(),
        }
    }
}

/// The identity service, or 503 when no CA is configured.
pub(crate) fn identity(state: &AppState) -> Result<&Arc<IdentityService>, ApiError> {
    state.identity.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-ca",
            "this server has no certificate authority: run `vouch ca init` and restart with VOUCH_CA_PASSPHRASE",
        )
    })
}

fn pem(der: &[u8]) -> String {
    vouch_pki::pem_encode("CERTIFICATE", der)
}

#[derive(Serialize)]
pub(crate) struct CertView {
    serial: Serial,
    device_id: DeviceId,
    fingerprint: CertFingerprint,
    not_before: Timestamp,
    not_after: Timestamp,
    renew_after: Timestamp,
    status: &'static str,
    revocation_reason: Option<RevocationReason>,
    revoked_at: Option<Timestamp>,
    certificate_pem: String,
}

impl From<&CertificateRecord> for CertView {
    fn from(c: &CertificateRecord) -> Self {
        let (status, revocation_reason, revoked_at) = match c.status {
            CertStatus::Good => ("good", None, None),
            CertStatus::Revoked {
                reason: RevocationReason::CertificateHold,
                at,
            } => ("on-hold", Some(RevocationReason::CertificateHold), Some(at)),
            CertStatus::Revoked { reason, at } => ("revoked", Some(reason), Some(at)),
        };
        Self {
            serial: c.serial,
            device_id: c.device_id,
            fingerprint: c.fingerprint,
            not_before: c.not_before,
            not_after: c.not_after,
            renew_after: IdentityService::renew_after(c.not_before, c.not_after),
            status,
            revocation_reason,
            revoked_at,
            certificate_pem: pem(&c.der),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct IssuedView {
    #[serde(flatten)]
    cert: CertView,
    /// The issuing CA, to complete the chain.
    issuing_ca_pem: String,
}

fn issued_view(device: DeviceId, c: &IssuedCert, ca_der: &[u8]) -> IssuedView {
    let record = CertificateRecord {
        serial: c.serial,
        device_id: device,
        fingerprint: c.fingerprint,
        not_before: c.not_before,
        not_after: c.not_after,
        status: CertStatus::Good,
        der: c.der.clone(),
    };
    IssuedView {
        cert: CertView::from(&record),
        issuing_ca_pem: pem(ca_der),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenBody {
    reason: Option<Reason>,
}

#[derive(Serialize)]
pub(crate) struct TokenCreated {
    id: TokenId,
    device_id: DeviceId,
    expires_at: Timestamp,
    /// The token: shown this once.
    token: String,
}

/// `POST /api/v1/devices/{id}/enrollment-tokens`: a one-time token for the device to enroll with over EST.
pub(crate) async fn create_token(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let svc = identity(&state)?;
    let (record, secret) = svc
        .create_enrollment_token(id, who.actor(), body.reason)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id: record.id,
            device_id: id,
            expires_at: record.expires_at,
            token: secret.expose().to_owned(),
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueBody {
    /// PEM or base64 DER PKCS#10.
    csr: String,
    reason: Option<Reason>,
}

/// `POST /api/v1/devices/{id}/certificates`: an operator issues a certificate from the device's request.
pub(crate) async fn issue(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(body): ApiJson<IssueBody>,
) -> Result<(StatusCode, Json<IssuedView>), ApiError> {
    let svc = identity(&state)?;
    let der = vouch_pki::csr_der_from_text(&body.csr).map_err(IdentityError::from)?;
    let cert = svc
        .issue_for_device(id, &der, who.actor(), body.reason)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(issued_view(id, &cert, svc.ca_cert_der())),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportBody {
    /// The certificate, PEM.
    certificate_pem: String,
    reason: Option<Reason>,
}

/// `POST /api/v1/devices/{id}/certificates/import`: records a certificate an existing PKI issued to the
/// device, once it chains to a CA this server trusts for devices (its issuing and root CA, and those given
/// with [`AppState::with_import_issuers`]). 400 for what is not a certificate, 422 for an untrusted or
/// expired one, 409 for one already recorded or a device that cannot hold an identity; nothing changes.
pub(crate) async fn import(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(body): ApiJson<ImportBody>,
) -> Result<(StatusCode, Json<CertView>), ApiError> {
    let mut issuers = state.import_issuers.as_ref().clone();
    if let Some(svc) = &state.identity {
        issuers.push(svc.ca_cert_der().to_vec());
        issuers.push(svc.root_cert_der().to_vec());
    }
    let change = vouch_store::Change {
        actor: who.actor(),
        reason: body.reason,
        at: state.clock.now(),
    };
    let record =
        vouch_control::certs::import(&*state.store, &body.certificate_pem, id, &issuers, change)
            .await?;
    Ok((StatusCode::CREATED, Json(CertView::from(&record))))
}

/// `GET /api/v1/devices/{id}/certificates`.
pub(crate) async fn of_device(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> Result<Json<Vec<CertView>>, ApiError> {
    state.store.get_device(id).await?;
    Ok(Json(
        state
            .store
            .device_certificates(id)
            .await?
            .iter()
            .map(CertView::from)
            .collect(),
    ))
}

/// `GET /api/v1/certificates/{serial}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    ApiPath(serial): ApiPath<Serial>,
) -> Result<Json<CertView>, ApiError> {
    let c = state.store.get_certificate(serial).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("certificate {serial} not found"),
        )
    })?;
    Ok(Json(CertView::from(&c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpiringParams {
    expiring_within_days: u32,
    limit: Option<u32>,
}

/// `GET /api/v1/certificates?expiring_within_days=N`: unrevoked certificates expiring soon, soonest first.
pub(crate) async fn expiring(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ExpiringParams>,
) -> Result<Json<Vec<CertView>>, ApiError> {
    if p.expiring_within_days > 3_650 {
        return Err(ApiError::bad_request(
            "expiring_within_days must be at most 3650",
        ));
    }
    let limit = p.limit.unwrap_or(1000).clamp(1, vouch_store::MAX_PAGE);
    let before = state
        .clock
        .now()
        .plus_micros(i64::from(p.expiring_within_days) * 86_400_000_000);
    Ok(Json(
        state
            .store
            .expiring_certificates(before, limit)
            .await?
            .iter()
            .map(CertView::from)
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    reason: RevocationReason,
    comment: Option<Reason>,
}

/// `POST /api/v1/certificates/{serial}/revoke`: revoke (or hold, with `certificateHold`).
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(serial): ApiPath<Serial>,
    ApiJson(body): ApiJson<RevokeBody>,
) -> Result<Json<CertView>, ApiError> {
    let svc = identity(&state)?;
    Ok(Json(CertView::from(
        &svc.revoke(serial, body.reason, who.actor(), body.comment)
            .await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseBody {
    comment: Option<Reason>,
}

/// `POST /api/v1/certificates/{serial}/release`: take a certificate off hold.
pub(crate) async fn release(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(serial): ApiPath<Serial>,
    ApiJson(body): ApiJson<ReleaseBody>,
) -> Result<Json<CertView>, ApiError> {
    let svc = identity(&state)?;
    Ok(Json(CertView::from(
        &svc.release(serial, who.actor(), body.comment).await?,
    )))
}

fn binary(content_type: &'static str, body: Vec<u8>) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `GET /pki/crl`: the current CRL, DER (public, as CRL distribution points are).
pub(crate) async fn crl(State(state): State<AppState>) -> Result<Response, ApiError> {
    let der = identity(&state)?.crl().await?;
    Ok(binary("application/pkix-crl", der.as_ref().clone()))
}

/// `POST /pki/ocsp`: an OCSP request in the body (RFC 6960 appendix A), public. POST answers are not
/// cached by HTTP caches, so they carry no caching headers.
pub(crate) async fn ocsp_post(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    Ok(binary(
        "application/ocsp-response",
        identity(&state)?.ocsp(&body).await,
    ))
}

/// `GET /pki/ocsp/{request}`: the request base64 in the path (RFC 6960 appendix A), public, with the
/// caching headers of RFC 5019 §6.2. The path is read whole: the RFC asks clients to URL-encode the base64,
/// but many send its `/` raw, and for most requests to Vouch's CA the SHA-1 CertID contains one.
pub(crate) async fn ocsp_get(
    State(state): State<AppState>,
    ApiPath(encoded): ApiPath<String>,
) -> Result<Response, ApiError> {
    use base64::Engine as _;
    let svc = identity(&state)?;
    // The path parameter arrives percent-decoded; a `+` is a base64 digit here, not a space.
    let der = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim().as_bytes())
        .map_err(|e| ApiError::bad_request(format!("the OCSP request is not base64: {e}")))?;
    let answer = svc.ocsp_answer(&der).await;
    let mut resp = binary("application/ocsp-response", answer.der.as_ref().clone());
    let h = resp.headers_mut();
    match answer.validity {
        Some((this_update, next_update)) => {
            for (name, value) in ocsp_cache_headers(&answer.der, this_update, next_update, now()) {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            }
        }
        // An error response, or one bound to a nonce: nothing for a cache to keep.
        None => {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    Ok(resp)
}

/// The wall clock, for `max-age` (the response's own times come from the service's clock).
fn now() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Timestamp::from_unix_micros(micros)
}

/// RFC 5019 §6.2's headers for a response valid from `this_update` to `next_update`, answered at `now`:
/// `Last-Modified` (thisUpdate), `Expires` (nextUpdate), `ETag` (a digest of the response) and
/// `Cache-Control: max-age=<seconds until nextUpdate>, public, no-transform, must-revalidate`.
pub(crate) fn ocsp_cache_headers(
    der: &[u8],
    this_update: Timestamp,
    next_update: Timestamp,
    now: Timestamp,
) -> [(header::HeaderName, String); 4] {
    use sha2::Digest as _;
    let http_date = |t: Timestamp| {
        let secs = u64::try_from(t.unix_micros().div_euclid(1_000_000)).unwrap_or(0);
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    };
    let max_age = (next_update.unix_micros() - now.unix_micros()).max(0) / 1_000_000;
    [
        (
            header::CACHE_CONTROL,
            format!("max-age={max_age}, public, no-transform, must-revalidate"),
        ),
        (header::LAST_MODIFIED, http_date(this_update)),
        (header::EXPIRES, http_date(next_update)),
        (
            header::ETAG,
            format!("\"{}\"", hex::encode(sha2::Sha256::digest(der))),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocsp_caching_headers_follow_rfc_5019() {
        let this = Timestamp::from_unix_micros(1_764_000_000_000_000);
        let next = this.plus_micros(3_600_000_000);
        let now = this.plus_micros(600_500_000);
        let h = ocsp_cache_headers(b"response", this, next, now);
        let get = |n: header::HeaderName| {
            h.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            get(header::CACHE_CONTROL),
            "max-age=2999, public, no-transform, must-revalidate"
        );
        assert_eq!(get(header::LAST_MODIFIED), "Mon, 24 Nov 2025 16:00:00 GMT");
        assert_eq!(get(header::EXPIRES), "Mon, 24 Nov 2025 17:00:00 GMT");
        assert!(get(header::ETAG).starts_with('"'));
        // Past nextUpdate: nothing left to cache.
        let late = ocsp_cache_headers(b"response", this, next, next.plus_micros(1));
        assert!(late[0].1.starts_with("max-age=0,"));
    }
}
