//! The observation queue and its consumers' cursors with their state (migration 6).

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use vouch_store::{
    ObservationSeq, ObservationSnapshot, QueuedObservation, Result, StoreError, encode_observation,
};
use vouch_types::{ConsumerId, Observation, Timestamp};

use crate::rows::backend;

/// Queues `batch` in one transaction; the position of the last one.
pub(crate) fn append(
    conn: &mut Connection,
    batch: &[Observation],
    at: Timestamp,
) -> Result<Option<ObservationSeq>> {
    let bodies = batch
        .iter()
        .map(encode_observation)
        .collect::<Result<Vec<_>>>()?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let mut last = None;
    {
        let mut insert = tx
            .prepare_cached("INSERT INTO observations (at, body) VALUES (?1, ?2)")
            .map_err(backend)?;
        for body in &bodies {
            insert
                .execute(params![at.unix_micros(), body])
                .map_err(backend)?;
            last = Some(ObservationSeq(tx.last_insert_rowid() as u64));
        }
    }
    tx.commit().map_err(backend)?;
    Ok(last)
}

/// The observations after `after`, oldest first.
pub(crate) fn page(
    conn: &Connection,
    after: Option<ObservationSeq>,
    limit: u32,
) -> Result<Vec<QueuedObservation>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, at, body FROM observations WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![after.map_or(0, |s| s.0 as i64), limit], |r| {
            Ok(QueuedObservation {
                seq: ObservationSeq(r.get::<_, i64>(0)? as u64),
                at: Timestamp::from_unix_micros(r.get(1)?),
                body: r.get(2)?,
            })
        })
        .map_err(backend)?;
    rows.map(|r| r.map_err(backend)).collect()
}

/// Drops what is older than `before` and all but the newest `keep_last`.
pub(crate) fn prune(conn: &mut Connection, before: Timestamp, keep_last: u64) -> Result<u64> {
    let keep = i64::try_from(keep_last).unwrap_or(i64::MAX);
    let gone = conn
        .prepare_cached(
            "DELETE FROM observations WHERE at < ?1
               OR seq <= (SELECT COALESCE(MAX(seq), 0) FROM observations) - ?2",
        )
        .map_err(backend)?
        .execute(params![before.unix_micros(), keep])
        .map_err(backend)?;
    Ok(gone as u64)
}

/// The cursor and state `consumer` saved.
pub(crate) fn snapshot(
    conn: &Connection,
    consumer: &ConsumerId,
) -> Result<Option<ObservationSnapshot>> {
    conn.prepare_cached("SELECT seq, state FROM observation_cursors WHERE consumer = ?1")
        .map_err(backend)?
        .query_row([consumer.as_str()], |r| {
            Ok(ObservationSnapshot {
                through: ObservationSeq(r.get::<_, i64>(0)? as u64),
                state: r.get(1)?,
            })
        })
        .optional()
        .map_err(backend)
}

/// Saves the cursor and state together unless the cursor would move backwards; one statement.
pub(crate) fn save(
    conn: &mut Connection,
    consumer: &ConsumerId,
    snap: &ObservationSnapshot,
) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let changed = tx
        .prepare_cached(
            "INSERT INTO observation_cursors (consumer, seq, state) VALUES (?1, ?2, ?3)
             ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq, state = excluded.state
             WHERE excluded.seq >= observation_cursors.seq",
        )
        .map_err(backend)?
        .execute(params![
            consumer.as_str(),
            snap.through.0 as i64,
            snap.state
        ])
        .map_err(backend)?;
    if changed == 0 {
        let saved = snapshot(&tx, consumer)?.map_or(0, |s| s.through.0);
        return Err(StoreError::CursorBackwards {
            consumer: consumer.to_string(),
            saved,
            offered: snap.through.0,
        });
    }
    tx.commit().map_err(backend)
}
