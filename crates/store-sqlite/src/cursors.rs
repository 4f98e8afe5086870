//! The change feed's durable cursors, one row per consumer.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use vouch_events::EventSeq;
use vouch_store::{Result, StoreError};
use vouch_types::ConsumerId;

use crate::rows::backend;

/// The position `consumer` last saved.
pub(crate) fn load(conn: &Connection, consumer: &ConsumerId) -> Result<Option<EventSeq>> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM consumer_cursors WHERE consumer = ?1")
        .map_err(backend)?
        .query_row([consumer.as_str()], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    Ok(seq.map(|s| EventSeq(s as u64)))
}

/// Saves `through` for `consumer` unless that would move its cursor backwards; one statement, so two
/// writers cannot interleave between a check and a write.
pub(crate) fn save(conn: &mut Connection, consumer: &ConsumerId, through: EventSeq) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let changed = tx
        .prepare_cached(
            "INSERT INTO consumer_cursors (consumer, seq) VALUES (?1, ?2)
             ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq WHERE excluded.seq >= consumer_cursors.seq",
        )
        .map_err(backend)?
        .execute(params![consumer.as_str(), through.0 as i64])
        .map_err(backend)?;
    if changed == 0 {
        let saved = load(&tx, consumer)?.map_or(0, |s| s.0);
        return Err(StoreError::CursorBackwards {
            consumer: consumer.to_string(),
            saved,
            offered: through.0,
        });
    }
    tx.commit().map_err(backend)
}
