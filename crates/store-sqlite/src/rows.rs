//! Rows back into domain values. A row that does not decode is reported as corrupt, never guessed at.

use vouch_events::{Digest, Event, EventDraft, EventSeq};
use vouch_store::{StoreError, TokenRecord};
use vouch_types::{Device, DeviceId, Timestamp, TokenId};

/// An engine error as a store error.
pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(crate) fn device_from_doc(doc: &str) -> Result<Device, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::corrupt("devices", e))
}

/// Decodes an events row; the outer error is the engine's, the inner one names the corrupt event.
pub(crate) fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Event, StoreError>> {
    let seq: i64 = r.get(0)?;
    let at: i64 = r.get(1)?;
    let device_id: Option<Vec<u8>> = r.get(2)?;
    let actor: String = r.get(3)?;
    let action: String = r.get(4)?;
    let before: Option<String> = r.get(5)?;
    let after: Option<String> = r.get(6)?;
    let reason: Option<String> = r.get(7)?;
    let prev_hash: Vec<u8> = r.get(8)?;
    let hash: Vec<u8> = r.get(9)?;
    Ok((|| {
        let bad = |why: String| StoreError::corrupt("events", format!("event {seq}: {why}"));
        let device_id = device_id
            .map(|b| {
                uuid::Uuid::from_slice(&b)
                    .map(DeviceId::from_uuid)
                    .map_err(|e| bad(format!("device id: {e}")))
            })
            .transpose()?;
        Ok(Event {
            seq: EventSeq(u64::try_from(seq).map_err(|_| bad("negative seq".into()))?),
            at: Timestamp::from_unix_micros(at),
            draft: EventDraft {
                device_id,
                actor: actor.parse().map_err(|e| bad(format!("{e}")))?,
                action: action.parse().map_err(|e| bad(format!("{e}")))?,
                before,
                after,
                reason: reason
                    .map(|r| r.try_into().map_err(|e| bad(format!("{e}"))))
                    .transpose()?,
            },
            prev_hash: Digest::from_slice(&prev_hash)
                .ok_or_else(|| bad("prev_hash is not 32 bytes".into()))?,
            hash: Digest::from_slice(&hash).ok_or_else(|| bad("hash is not 32 bytes".into()))?,
        })
    })())
}

pub(crate) fn token_from_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<TokenRecord, StoreError>> {
    let id: Vec<u8> = r.get(0)?;
    let operator: String = r.get(1)?;
    let role: String = r.get(2)?;
    let secret_hash: Vec<u8> = r.get(3)?;
    let created_at: i64 = r.get(4)?;
    let expires_at: Option<i64> = r.get(5)?;
    let revoked_at: Option<i64> = r.get(6)?;
    Ok((|| {
        let bad = |why: String| StoreError::corrupt("tokens", why);
        Ok(TokenRecord {
            id: TokenId::from_bytes(
                <[u8; 8]>::try_from(id.as_slice()).map_err(|_| bad("id is not 8 bytes".into()))?,
            ),
            operator: operator.try_into().map_err(|e| bad(format!("{e}")))?,
            role: role.parse().map_err(|e| bad(format!("{e}")))?,
            secret_hash: <[u8; 32]>::try_from(secret_hash.as_slice())
                .map_err(|_| bad("secret hash is not 32 bytes".into()))?,
            created_at: Timestamp::from_unix_micros(created_at),
            expires_at: expires_at.map(Timestamp::from_unix_micros),
            revoked_at: revoked_at.map(Timestamp::from_unix_micros),
        })
    })())
}
