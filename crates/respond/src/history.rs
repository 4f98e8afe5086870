//! A device's trust as recorded: the score in force (from the record's labels) and every change the trust
//! service logged (`trust.changed`), for the API's chart data and `vouch device trust`.

use serde::Serialize;
use vouch_events::{Action, EventSeq};
use vouch_store::{Store, StoreError};
use vouch_trust::QUARANTINED_BY;
use vouch_types::{DeviceId, Timestamp};

use crate::BAND_LABEL;

/// Events read per page while collecting the history.
const PAGE: u32 = 1000;
/// History points kept at most (the most recent ones).
pub const MAX_POINTS: usize = 2000;

/// One recorded change.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// When it was recorded.
    pub at: Timestamp,
    /// The score from then on.
    pub score: u64,
    /// Its band.
    pub band: String,
    /// The reasons, as recorded (`[{penalty, component, why}]`).
    pub reasons: serde_json::Value,
}

/// A device's trust.
#[derive(Debug, Clone, Serialize)]
pub struct TrustHistory {
    /// Whose.
    pub device_id: DeviceId,
    /// The score in force (`None` until the trust service scored the device).
    pub score: Option<u64>,
    /// Its band.
    pub band: Option<String>,
    /// The reasons of the last change (empty when `since` left that change out).
    pub reasons: serde_json::Value,
    /// The playbook that quarantined it, if one did.
    pub quarantined_by: Option<String>,
    /// The changes, oldest first.
    pub history: Vec<Point>,
    /// Older points were left out (at most [`MAX_POINTS`] are kept; ask with `since`).
    pub truncated: bool,
}

/// Reads `device`'s trust: the record's labels and the `trust.changed` events after `since`.
pub async fn history(
    store: &dyn Store,
    device: DeviceId,
    since: Option<Timestamp>,
) -> Result<TrustHistory, StoreError> {
    let record = store.get_device(device).await?;
    let mut history = std::collections::VecDeque::new();
    let mut truncated = false;
    let mut cursor: Option<EventSeq> = None;
    loop {
        let page = store.device_events(device, cursor, PAGE).await?;
        let full = page.len() == PAGE as usize;
        for e in &page {
            if e.draft.action != Action::TrustChanged || since.is_some_and(|s| e.at <= s) {
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
            .and_then(|k| record.labels.get(&k).map(ToString::to_string))
    };
    // The record holds the score in force (written there for the policy context).
    let score = record.labels.trust_score().map(|s| u64::from(s.get()));
    let reasons = match history.back() {
        Some(p) if Some(p.score) == score => p.reasons.clone(),
        _ => serde_json::Value::Array(Vec::new()),
    };
    Ok(TrustHistory {
        device_id: device,
        score,
        band: label(BAND_LABEL),
        reasons,
        quarantined_by: label(QUARANTINED_BY),
        history: history.into_iter().collect(),
        truncated,
    })
}
