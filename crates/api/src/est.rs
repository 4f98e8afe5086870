//! Enrollment over Secure Transport (RFC 7030) under `/.well-known/est/`: `cacerts`, `simpleenroll`,
//! `simplereenroll` and `csrattrs`, with the RFC's encodings (base64 PKCS#10 in, base64 PKCS#7 certs-only out).
//!
//! Bootstrap (`simpleenroll`) authenticates with a one-time enrollment token, as the HTTP Basic password
//! (any user name) or a Bearer token. Re-enrollment (`simplereenroll`) authenticates with the device's
//! current certificate over mutual TLS.
//!
//! The answers are shaped for libest's `estclient`, the reference client many devices build on, as well as
//! for curl and openssl: the listener writes canonical header names and closes after each answer (see
//! [`crate::serve::Http1Options::EST`]), and every refusal uses a status libest handles ([`for_libest`]):
//! 401 with a Basic challenge when credentials are missing or refused, 400 for a request it should not
//! repeat. An anonymous first attempt, which libest sends before its credentials, is challenged without
//! being logged; refusals that carried credentials are logged as `enrollment.refused`.
//!
//! Devices also report their posture here (`POST /api/v1/devices/{id}/posture`, see [`crate::posture`]),
//! authenticated by their current certificate: this is the listener where they hold one.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use vouch_identity::IdentityError;
use vouch_pki::pkcs7;

use crate::certs::identity;
use crate::tls::TlsPeer;
use crate::{ApiError, AppState};

/// The largest EST request body accepted (a PKCS#10 request is a few KB even with RSA-4096).
pub const MAX_EST_BODY: usize = 64 * 1024;

/// The EST application (to be served over TLS by [`crate::serve::HttpServer`] with its EST options).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/.well-known/est/cacerts", get(cacerts))
        .route("/.well-known/est/simpleenroll", post(simpleenroll))
        .route("/.well-known/est/simplereenroll", post(simplereenroll))
        .route("/.well-known/est/csrattrs", get(csrattrs))
        .route(
            crate::posture::POSTURE_PATH,
            post(crate::posture::report_est)
                .layer(DefaultBodyLimit::max(crate::posture::MAX_POSTURE_BODY)),
        )
        .fallback(crate::error::not_found)
        .layer(DefaultBodyLimit::max(MAX_EST_BODY))
        .with_state(state)
}

fn pkcs7_response(certs: &[&[u8]]) -> Response {
    let body = pkcs7::base64_lines(&pkcs7::certs_only(certs));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pkcs7-mime; smime-type=certs-only"),
    );
    h.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    resp
}

/// The challenge of every EST 401: libest fails an answer 401 without one, and retries a challenged
/// enrollment with its HTTP Basic credentials on a new connection.
const CHALLENGE: &str = "Basic realm=\"vouch-est\"";

/// The statuses libest's `estclient` handles (3.2: 200, 202, 204, 400, 401, 404, 423, 500, 502, 504); any
/// other reaches its user as "unhandled response".
const LIBEST_STATUSES: [u16; 10] = [200, 202, 204, 400, 401, 404, 423, 500, 502, 504];

/// `e` as an EST answer: its status one libest handles (a 403 becomes a challenged 401, any other 4xx a 400,
/// any other 5xx a 500), every 401 challenged. The problem document keeps its kind and detail.
pub(crate) fn for_libest(mut e: ApiError) -> Response {
    let code = e.status.as_u16();
    if !LIBEST_STATUSES.contains(&code) {
        e.status = match code {
            403 => StatusCode::UNAUTHORIZED,
            400..=499 => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // libest has no use for a retry time on a 400 or 500.
        e.retry_after = None;
    }
    let challenged = e.status == StatusCode::UNAUTHORIZED;
    let mut resp = e.into_response();
    if challenged {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(CHALLENGE),
        );
    }
    resp
}

/// A handler's outcome as an EST answer.
fn answer(outcome: Result<Response, ApiError>) -> Response {
    outcome.unwrap_or_else(for_libest)
}

/// An identity service refusal as EST says it: refused credentials are 401 (challenged, so that libest can
/// try its HTTP credentials), a request naming another device is 400 (the same request will never pass).
fn est_refusal(e: IdentityError) -> ApiError {
    match e {
        IdentityError::Unauthorized(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "enrollment-refused",
            e.to_string(),
        ),
        IdentityError::WrongDevice { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "wrong-device", e.to_string())
        }
        other => other.into(),
    }
}

/// `GET /cacerts`: the issuing CA and the root, so that a new device can pin its trust anchor.
async fn cacerts(State(state): State<AppState>) -> Response {
    answer(identity(&state).map(|svc| pkcs7_response(&[svc.ca_cert_der(), svc.root_cert_der()])))
}

/// `GET /csrattrs`: Vouch needs no particular attributes (RFC 7030 §4.5.2: 204 when there are none).
async fn csrattrs() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// The enrollment token from `Authorization: Basic <user:token>` or `Bearer <token>`.
fn token_from(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(b) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text.split_once(':').map(|(_, pass)| pass.to_owned());
    }
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

/// The body, or a logged refusal when it is too large or unreadable.
async fn body_or_refuse(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    match body {
        Ok(b) => Ok(b),
        Err(r) => {
            let svc = identity(state)?;
            let e = crate::extract::bytes_rejection(r);
            svc.log_refusal(&e.detail).await;
            Err(e)
        }
    }
}

/// `POST /simpleenroll`: bootstrap with a one-time token, or with a manufacturer certificate (IDevID) over
/// mutual TLS.
async fn simpleenroll(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<TlsPeer>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(enroll(&state, &peer, &headers, body).await)
}

async fn enroll(
    state: &AppState,
    peer: &TlsPeer,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let svc = identity(state)?;
    let token = token_from(headers);
    if token.is_none()
        && let Some(idevid) = peer.chain.first()
    {
        let body = body_or_refuse(state, body).await?;
        let csr = csr_der(&body, svc).await?;
        let cert = svc
            .enroll_with_idevid(idevid, &csr)
            .await
            .map_err(est_refusal)?;
        return Ok(pkcs7_response(&[&cert.der]));
    }
    let Some(token) = token else {
        // libest's first attempt carries no credentials: answered with the challenge, not logged.
        return Err(ApiError::unauthenticated(
            "EST enrollment needs a one-time token: HTTP Basic password or Bearer",
        ));
    };
    let body = body_or_refuse(state, body).await?;
    let csr = csr_der(&body, svc).await?;
    let cert = svc
        .enroll_with_token(&token, &csr)
        .await
        .map_err(est_refusal)?;
    Ok(pkcs7_response(&[&cert.der]))
}

/// `POST /simplereenroll`: renew with the current certificate over mutual TLS.
async fn simplereenroll(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<TlsPeer>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(reenroll(&state, &peer, body).await)
}

async fn reenroll(
    state: &AppState,
    peer: &TlsPeer,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let svc = identity(state)?;
    let Some(leaf) = peer.chain.first() else {
        // No credential at all: challenged, not logged (as an anonymous enrollment).
        return Err(ApiError::unauthenticated(
            "re-enrollment needs the current certificate over mutual TLS",
        ));
    };
    let body = body_or_refuse(state, body).await?;
    let csr = csr_der(&body, svc).await?;
    let cert = svc.reenroll(leaf, &csr).await.map_err(est_refusal)?;
    Ok(pkcs7_response(&[&cert.der]))
}

/// The DER request from an EST body (base64 DER; PEM accepted too), refusals logged.
async fn csr_der(body: &[u8], svc: &vouch_identity::IdentityService) -> Result<Vec<u8>, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not base64 text"));
    let der = text.and_then(|t| {
        vouch_pki::csr_der_from_text(t).map_err(|e| ApiError::bad_request(e.to_string()))
    });
    if let Err(e) = &der {
        svc.log_refusal(&e.detail).await;
    }
    der
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(status: StatusCode) -> (u16, Option<String>) {
        let r = for_libest(ApiError::new(status, "x", "why"));
        let challenge = r
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        (r.status().as_u16(), challenge)
    }

    #[test]
    fn every_refusal_gets_a_status_libest_handles_and_every_401_a_challenge() {
        for code in 400..=599u16 {
            let Ok(status) = StatusCode::from_u16(code) else {
                continue;
            };
            let (out, challenge) = status_of(status);
            assert!(LIBEST_STATUSES.contains(&out), "{code} → {out}");
            assert_eq!(out == 401, challenge.is_some(), "{code}");
            if LIBEST_STATUSES.contains(&code) {
                assert_eq!(out, code, "kept as it is");
            }
        }
        assert_eq!(status_of(StatusCode::FORBIDDEN).0, 401);
        assert_eq!(status_of(StatusCode::PAYLOAD_TOO_LARGE).0, 400);
        assert_eq!(status_of(StatusCode::SERVICE_UNAVAILABLE).0, 500);
        assert_eq!(
            status_of(StatusCode::UNAUTHORIZED).1.as_deref(),
            Some(CHALLENGE)
        );
    }

    #[test]
    fn a_request_naming_another_device_is_400_and_refused_credentials_401() {
        let wrong = est_refusal(IdentityError::WrongDevice {
            requested: "SN-OTHER".into(),
            device: "d".into(),
        });
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
        let refused = est_refusal(IdentityError::Unauthorized("used already".into()));
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert!(refused.detail.contains("used already"));
    }
}
