//! Rows back into domain values. A row that does not decode is reported as corrupt, never guessed at.

use tokio_postgres::Row;
use vouch_events::{Digest, Event, EventDraft, EventSeq};
use vouch_store::{StoreError, TokenRecord};
use vouch_types::{Device, DeviceId, Timestamp, TokenId};

/// An engine error as a store error, with the server's message when there is one.
pub(crate) fn backend(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("{}: {}", db.code().code(), db.message())),
        None => StoreError::Backend(e.to_string()),
    }
}

pub(crate) fn device_from_doc(doc: &str) -> Result<Device, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::corrupt("devices", e))
}

pub(crate) fn event_from_row(r: &Row) -> Result<Event, StoreError> {
    let seq: i64 = r.get(0);
    let bad = |why: String| StoreError::corrupt("events", format!("event {seq}: {why}"));
    let device_id: Option<uuid::Uuid> = r.get(2);
    let actor: &str = r.get(3);
    let action: &str = r.get(4);
    let reason: Option<String> = r.get(7);
    let prev_hash: Vec<u8> = r.get(8);
    let hash: Vec<u8> = r.get(9);
    Ok(Event {
        seq: EventSeq(u64::try_from(seq).map_err(|_| bad("negative seq".into()))?),
        at: Timestamp::from_unix_micros(r.get(1)),
        draft: EventDraft {
            device_id: device_id.map(DeviceId::from_uuid),
            actor: actor.parse().map_err(|e| bad(format!("{e}")))?,
            action: action.parse().map_err(|e| bad(format!("{e}")))?,
            before: r.get(5),
            after: r.get(6),
            reason: reason
                .map(|r| r.try_into().map_err(|e| bad(format!("{e}"))))
                .transpose()?,
        },
        prev_hash: Digest::from_slice(&prev_hash)
            .ok_or_else(|| bad("prev_hash is not 32 bytes".into()))?,
        hash: Digest::from_slice(&hash).ok_or_else(|| bad("hash is not 32 bytes".into()))?,
    })
}

pub(crate) fn token_from_row(r: &Row) -> Result<TokenRecord, StoreError> {
    let bad = |why: String| StoreError::corrupt("tokens", why);
    let id: Vec<u8> = r.get(0);
    let operator: String = r.get(1);
    let role: &str = r.get(2);
    let secret_hash: Vec<u8> = r.get(3);
    Ok(TokenRecord {
        id: TokenId::from_bytes(
            <[u8; 8]>::try_from(id.as_slice()).map_err(|_| bad("id is not 8 bytes".into()))?,
        ),
        operator: operator.try_into().map_err(|e| bad(format!("{e}")))?,
        role: role.parse().map_err(|e| bad(format!("{e}")))?,
        secret_hash: <[u8; 32]>::try_from(secret_hash.as_slice())
            .map_err(|_| bad("secret hash is not 32 bytes".into()))?,
        created_at: Timestamp::from_unix_micros(r.get(4)),
        expires_at: r.get::<_, Option<i64>>(5).map(Timestamp::from_unix_micros),
        revoked_at: r.get::<_, Option<i64>>(6).map(Timestamp::from_unix_micros),
    })
}
