//! SQLite rows into the shared row types (decoded in `vouch-store`).

use vouch_events::Event;
use vouch_store::{EventRow, StoreError, TokenRecord, TokenRow};
use vouch_types::{Device, DeviceId};

/// An engine error as a store error.
pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(crate) fn device_from_doc(doc: &str) -> Result<Device, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::corrupt("devices", e))
}

/// Decodes an events row; the outer error is the engine's, the inner one names the corrupt event.
pub(crate) fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Event, StoreError>> {
    let device_id: Option<Vec<u8>> = r.get(2)?;
    let row = EventRow {
        seq: r.get(0)?,
        at: r.get(1)?,
        device_id: None,
        actor: r.get(3)?,
        action: r.get(4)?,
        before: r.get(5)?,
        after: r.get(6)?,
        reason: r.get(7)?,
        prev_hash: r.get(8)?,
        hash: r.get(9)?,
    };
    let device_id = match device_id.map(|b| uuid::Uuid::from_slice(&b)).transpose() {
        Ok(id) => id.map(DeviceId::from_uuid),
        Err(e) => {
            return Ok(Err(StoreError::corrupt(
                "devices",
                format!("event {}: device id: {e}", row.seq),
            )));
        }
    };
    Ok(EventRow { device_id, ..row }.decode())
}

pub(crate) fn token_from_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<TokenRecord, StoreError>> {
    Ok(TokenRow {
        id: r.get(0)?,
        operator: r.get(1)?,
        role: r.get(2)?,
        secret_hash: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
    }
    .decode())
}
