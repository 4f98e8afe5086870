//! `GET /api/v1/devices/{id}/trust`: a device's trust score now, with its reasons, and its history (every
//! change the trust service recorded, oldest first) for charts.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use vouch_events::{Action, EventSeq};
use vouch_types::{DeviceId, Timestamp};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};

/// Events read per page while collecting the history.
const PAGE: u32 = 1000;
/// History points returned at most (the most recent ones).
const MAX_POINTS: usize = 2000;

/// Query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrustParams {
    /// Only changes after this time (RFC 3339).
    since: Option<Timestamp>,
}

/// One recorded change.
#[derive(Debug, Serialize)]
pub(crate) struct Point {
    at: Timestamp,
    score: u64,
    band: String,
    reasons: serde_json::Value,
}

/// The answer.
#[derive(Debug, Serialize)]
pub(crate) struct TrustView {
    device_id: DeviceId,
    /// The score now (`null` until the trust service scored the device), and the reasons of its last change
    /// (empty when `since` left that change out).
    score: Option<u64>,
    band: Option<String>,
    reasons: serde_json::Value,
    /// Whether it is in quarantine now, and which playbook put it there.
    quarantined_by: Option<String>,
    history: Vec<Point>,
    /// Older points were left out (at most 2000 are returned; ask with `since`).
    truncated: bool,
}

/// `GET /api/v1/devices/{id}/trust`.
pub(crate) async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiQuery(p): ApiQuery<TrustParams>,
) -> Result<Json<TrustView>, ApiError> {
    let device = state.store.get_device(id).await?;
    let mut history: std::collections::VecDeque<Point> = std::collections::VecDeque::new();
    let mut truncated = false;
    let mut cursor: Option<EventSeq> = None;
    loop {
        let page = state.store.device_events(id, cursor, PAGE).await?;
        let full = page.len() == PAGE as usize;
        for e in &page {
            if e.draft.action != Action::TrustChanged || p.since.is_some_and(|s| e.at <= s) {
                continue;
            }
            let Some(after) = e
                .draft
                .after
                .as_deref()
                .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
            else {
                continue;
            };
            if history.len() == MAX_POINTS {
                history.pop_front();
                truncated = true;
            }
            history.push_back(Point {
                at: e.at,
                score: after["score"].as_u64().unwrap_or(0),
                band: after["band"].as_str().unwrap_or_default().to_owned(),
                reasons: after["reasons"].clone(),
            });
        }
        cursor = page.last().map(|e| e.seq);
        if !full {
            break;
        }
    }
    let label = |k: &str| {
        k.parse()
            .ok()
            .and_then(|k| device.labels.get(&k).map(ToString::to_string))
    };
    // The record holds the score in force (the trust service writes it there for the policy context).
    let score = label("trust/score").and_then(|s| s.parse::<u64>().ok());
    let reasons = match history.back() {
        Some(p) if Some(p.score) == score => p.reasons.clone(),
        _ => serde_json::Value::Array(Vec::new()),
    };
    Ok(Json(TrustView {
        device_id: id,
        score,
        band: label("trust/band"),
        reasons,
        quarantined_by: label("response/quarantined-by"),
        history: history.into_iter().collect(),
        truncated,
    }))
}
