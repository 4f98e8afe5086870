//! PostgreSQL rows into the shared row types (decoded in `vouch-store`). Columns are read with `try_get`: a
//! column whose type was changed behind Vouch's back is a corrupt row, not a panic.

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;
use vouch_events::Event;
use vouch_store::{EventRow, StoreError, TokenRecord, TokenRow};
use vouch_types::{Device, DeviceId};

/// An engine error as a store error, with the server's message when there is one.
pub(crate) fn backend(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("{}: {}", db.code().code(), db.message())),
        None => StoreError::Backend(e.to_string()),
    }
}

/// Column `i` of `r` from `table`.
pub(crate) fn col<'a, T: FromSql<'a>>(
    r: &'a Row,
    i: usize,
    table: &'static str,
) -> Result<T, StoreError> {
    r.try_get(i)
        .map_err(|e| StoreError::corrupt(table, format!("column {i}: {e}")))
}

pub(crate) fn device_from_doc(doc: &str) -> Result<Device, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::corrupt("devices", e))
}

pub(crate) fn event_from_row(r: &Row) -> Result<Event, StoreError> {
    EventRow {
        seq: col(r, 0, "events")?,
        at: col(r, 1, "events")?,
        device_id: col::<Option<uuid::Uuid>>(r, 2, "events")?.map(DeviceId::from_uuid),
        actor: col(r, 3, "events")?,
        action: col(r, 4, "events")?,
        before: col(r, 5, "events")?,
        after: col(r, 6, "events")?,
        reason: col(r, 7, "events")?,
        prev_hash: col(r, 8, "events")?,
        hash: col(r, 9, "events")?,
    }
    .decode()
}

pub(crate) fn token_from_row(r: &Row) -> Result<TokenRecord, StoreError> {
    TokenRow {
        id: col(r, 0, "tokens")?,
        operator: col(r, 1, "tokens")?,
        role: col(r, 2, "tokens")?,
        secret_hash: col(r, 3, "tokens")?,
        created_at: col(r, 4, "tokens")?,
        expires_at: col(r, 5, "tokens")?,
        revoked_at: col(r, 6, "tokens")?,
    }
    .decode()
}
