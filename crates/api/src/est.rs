//! Enrollment over Secure Transport (RFC 7030) under `/.well-known/est/`: `cacerts`, `simpleenroll`,
//! `simplereenroll` and `csrattrs`, with the RFC's encodings (base64 PKCS#10 in, base64 PKCS#7 certs-only out).
//!
//! Bootstrap (`simpleenroll`) authenticates with a one-time enrollment token, as the HTTP Basic password
//! (any user name) or a Bearer token. Re-enrollment (`simplereenroll`) authenticates with the device's
//! current certificate over mutual TLS.
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
use vouch_pki::pkcs7;

use crate::certs::identity;
use crate::tls::TlsPeer;
use crate::{ApiError, AppState};

/// The largest EST request body accepted (a PKCS#10 request is a few KB even with RSA-4096).
pub const MAX_EST_BODY: usize = 64 * 1024;

/// The EST application (to be served over TLS with [`crate::tls::TlsListener`]).
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

/// `GET /cacerts`: the issuing CA and the root, so that a new device can pin its trust anchor.
async fn cacerts(State(state): State<AppState>) -> Result<Response, ApiError> {
    let svc = identity(&state)?;
    Ok(pkcs7_response(&[svc.ca_cert_der(), svc.root_cert_der()]))
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
) -> Result<Response, ApiError> {
    let svc = identity(&state)?;
    let token = token_from(&headers);
    if token.is_none()
        && let Some(idevid) = peer.chain.first()
    {
        let body = body_or_refuse(&state, body).await?;
        let csr = csr_der(&body, svc).await?;
        let cert = svc.enroll_with_idevid(idevid, &csr).await?;
        return Ok(pkcs7_response(&[&cert.der]));
    }
    let Some(token) = token else {
        svc.log_refusal("simpleenroll without credentials").await;
        let mut resp = ApiError::unauthenticated(
            "EST enrollment needs a one-time token: HTTP Basic password or Bearer",
        )
        .into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"vouch-est\""),
        );
        return Ok(resp);
    };
    let body = body_or_refuse(&state, body).await?;
    let csr = csr_der(&body, svc).await?;
    let cert = svc.enroll_with_token(&token, &csr).await?;
    Ok(pkcs7_response(&[&cert.der]))
}

/// `POST /simplereenroll`: renew with the current certificate over mutual TLS.
async fn simplereenroll(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<TlsPeer>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let svc = identity(&state)?;
    let Some(leaf) = peer.chain.first() else {
        svc.log_refusal("simplereenroll without a client certificate")
            .await;
        return Err(ApiError::unauthenticated(
            "re-enrollment needs the current certificate over mutual TLS",
        ));
    };
    let body = body_or_refuse(&state, body).await?;
    let csr = csr_der(&body, svc).await?;
    let cert = svc.reenroll(leaf, &csr).await?;
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
