//! `GET /api/v1/devices/{id}/trust`: a device's trust score now, with its reasons, and its history (every
//! change the trust service recorded, oldest first) for charts.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use vouch_respond::TrustHistory;
use vouch_types::{DeviceId, Timestamp};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};

/// Query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrustParams {
    /// Only changes after this time (RFC 3339).
    since: Option<Timestamp>,
}

/// `GET /api/v1/devices/{id}/trust`.
pub(crate) async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiQuery(p): ApiQuery<TrustParams>,
) -> Result<Json<TrustHistory>, ApiError> {
    Ok(Json(
        vouch_respond::history(&*state.store, id, p.since).await?,
    ))
}
