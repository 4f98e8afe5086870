//! A device's trust as recorded: the score in force (from the record's labels) and every change the trust
//! service logged (`trust.changed`), for the API's chart data and `vouch device trust`.

use serde::Serialize;
use vouch_events::{Action, EventSeq, TrustChanged, TrustReason};
use vouch_store::{Store, StoreError};
use vouch_types::{DeviceId, Quarantine, Timestamp, TrustBand, TrustScore};

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
    pub score: TrustScore,
    /// Its band.
    pub band: TrustBand,
    /// The reasons, as recorded.
    pub reasons: Vec<TrustReason>,
}

/// A device's trust.
#[derive(Debug, Clone, Serialize)]
pub struct TrustHistory {
    /// Whose.
    pub device_id: DeviceId,
    /// The score in force (`None` until the trust service scored the device).
    pub score: Option<TrustScore>,
    /// Its band.
    pub band: Option<TrustBand>,
    /// The reasons of the last change (empty when `since` left that change out).
    pub reasons: Vec<TrustReason>,
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
            // An unreadable payload is left out of the chart rather than drawn as a score of 0.
            let Ok(p) = e.payload::<TrustChanged>() else {
                continue;
            };
            if history.len() == MAX_POINTS {
                history.pop_front();
                truncated = true;
            }
            history.push_back(Point {
                at: e.at,
                score: p.score,
                band: p.band,
                reasons: p.reasons,
            });
        }
        cursor = page.last().map(|e| e.seq);
        if !full {
            break;
        }
    }
    // The record holds the score in force (written there for the policy context).
    let score = record.labels.trust_score();
    let reasons = match history.back() {
        Some(p) if Some(p.score) == score => p.reasons.clone(),
        _ => Vec::new(),
    };
    Ok(TrustHistory {
        device_id: device,
        score,
        band: score.map(TrustScore::band),
        reasons,
        quarantined_by: record
            .quarantine()
            .as_ref()
            .and_then(Quarantine::playbook)
            .map(str::to_owned),
        history: history.into_iter().collect(),
        truncated,
    })
}
