//! Errors as RFC 9457 problem documents: a stable `type`, a short `title`, the status, and a `detail` that
//! tells the client what to fix. Internal failures are logged and answered with a bare 500.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use vouch_store::StoreError;

/// An API error, answered as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable identifier of the kind of problem (the `type` URI's last part).
    pub kind: &'static str,
    /// What went wrong, for the client.
    pub detail: String,
    /// Seconds after which the client may try again (`Retry-After`), for 429 and 503 answers.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Problem<'a> {
    r#type: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl ApiError {
    /// An error with this status, kind and detail.
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 429: too many tries; the client may try again after `retry_after_secs` seconds.
    pub fn too_many(retry_after_secs: u64, detail: impl Into<String>) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", detail)
        }
    }

    /// 400: the request could not be understood.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 401: no valid credentials.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    /// 403: credentials valid, permission missing.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 500: something failed inside; the detail stays in the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = Problem {
            r#type: format!("urn:vouch:problem:{}", self.kind),
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
        };
        let mut resp = (self.status, Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"vouch\""),
            );
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "not-found", e.to_string())
            }
            StoreError::AlreadyExists { .. } => {
                Self::new(StatusCode::CONFLICT, "already-exists", e.to_string())
            }
            StoreError::RevisionMismatch { .. } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "revision-mismatch",
                e.to_string(),
            ),
            StoreError::IllegalTransition(_) => {
                Self::new(StatusCode::CONFLICT, "illegal-transition", e.to_string())
            }
            StoreError::Invalid(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
            }
            StoreError::Refused(_) => Self::new(StatusCode::CONFLICT, "refused", e.to_string()),
            StoreError::Corrupt { .. }
            | StoreError::Migration { .. }
            | StoreError::SchemaTooNew { .. }
            // No request moves a consumer's cursor: if one is refused, a background consumer misbehaved.
            | StoreError::CursorBackwards { .. }
            | StoreError::Backend(_) => Self::internal(e),
        }
    }
}

impl From<vouch_control::ControlError> for ApiError {
    fn from(e: vouch_control::ControlError) -> Self {
        use vouch_control::ControlError;
        match e {
            ControlError::ReservedLabel { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "reserved-label",
                e.to_string(),
            ),
            ControlError::Import(i) => {
                use vouch_control::certs::ImportRefused;
                let (status, kind) = match i {
                    ImportRefused::Malformed(_) | ImportRefused::TooLarge => {
                        (StatusCode::BAD_REQUEST, "bad-certificate")
                    }
                    ImportRefused::Untrusted(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "untrusted-certificate")
                    }
                    ImportRefused::DuplicateSerial(_) | ImportRefused::DuplicateFingerprint(_) => {
                        (StatusCode::CONFLICT, "already-exists")
                    }
                };
                Self::new(status, kind, i.to_string())
            }
            ControlError::Document(d) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-document",
                d.to_string(),
            ),
            ControlError::Invalid(v) => v.into(),
            ControlError::Store(s) => s.into(),
        }
    }
}

impl From<vouch_types::ValidationError> for ApiError {
    fn from(e: vouch_types::ValidationError) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
    }
}

/// The fallback for paths no route serves.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such route")
}

/// The fallback for a known path with a method it does not serve.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not serve that method",
    )
}
