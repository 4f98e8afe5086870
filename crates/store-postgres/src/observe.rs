//! The observation queue and its consumers' cursors with their state (migration 6).

use vouch_store::{
    ObservationSeq, ObservationSnapshot, QueuedObservation, Result, StoreError, encode_observation,
};
use vouch_types::{ConsumerId, Observation, Timestamp};

use crate::PostgresStore;
use crate::rows::{backend, col};

/// A constant advisory-lock key: appends to the queue commit in the order of their positions.
const APPEND_LOCK: i64 = 0x766f_7563_685f_6f62;

impl PostgresStore {
    /// Queues `batch` in one transaction (one round trip for the rows) and notifies the feed's channel.
    pub(crate) async fn append_observations_impl(
        &self,
        batch: Vec<Observation>,
        at: Timestamp,
    ) -> Result<Option<ObservationSeq>> {
        if batch.is_empty() {
            return Ok(None);
        }
        let bodies = batch
            .iter()
            .map(encode_observation)
            .collect::<Result<Vec<_>>>()?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Without it a later position could commit first, and a reader past it would never see the earlier.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
            .await
            .map_err(backend)?;
        let row = tx
            .query_one(
                "WITH added AS (
                   INSERT INTO observations (at, body)
                   SELECT $1, b FROM unnest($2::text[]) WITH ORDINALITY AS u(b, n) ORDER BY n
                   RETURNING seq)
                 SELECT max(seq) FROM added",
                &[&at.unix_micros(), &bodies],
            )
            .await
            .map_err(backend)?;
        let last: Option<i64> = col(&row, 0, "observations")?;
        // Delivered at commit; the listener turns it into a wake-up in every process.
        tx.execute("SELECT pg_notify('vouch_events', '')", &[])
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(last.map(|s| ObservationSeq(s as u64)))
    }

    /// The observations after `after`, oldest first.
    pub(crate) async fn observations_impl(
        &self,
        after: Option<ObservationSeq>,
        limit: u32,
    ) -> Result<Vec<QueuedObservation>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT seq, at, body FROM observations WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after.map_or(0, |s| s.0 as i64), &i64::from(limit)],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(QueuedObservation {
                    seq: ObservationSeq(col::<i64>(r, 0, "observations")? as u64),
                    at: Timestamp::from_unix_micros(col(r, 1, "observations")?),
                    body: col(r, 2, "observations")?,
                })
            })
            .collect()
    }

    /// Drops what is older than `before` and all but the newest `keep_last`.
    pub(crate) async fn prune_observations_impl(
        &self,
        before: Timestamp,
        keep_last: u64,
    ) -> Result<u64> {
        let keep = i64::try_from(keep_last).unwrap_or(i64::MAX);
        self.client()
            .await?
            .execute(
                "DELETE FROM observations WHERE at < $1
                   OR seq <= (SELECT COALESCE(MAX(seq), 0) FROM observations) - $2",
                &[&before.unix_micros(), &keep],
            )
            .await
            .map_err(backend)
    }

    /// The cursor and state `consumer` saved.
    pub(crate) async fn observation_snapshot_impl(
        &self,
        consumer: &ConsumerId,
    ) -> Result<Option<ObservationSnapshot>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT seq, state FROM observation_cursors WHERE consumer = $1",
                &[&consumer.as_str()],
            )
            .await
            .map_err(backend)?;
        row.map(|r| {
            Ok(ObservationSnapshot {
                through: ObservationSeq(col::<i64>(&r, 0, "observation_cursors")? as u64),
                state: col(&r, 1, "observation_cursors")?,
            })
        })
        .transpose()
    }

    /// Saves the cursor and state together unless the cursor would move backwards; one statement.
    pub(crate) async fn save_observation_snapshot_impl(
        &self,
        consumer: &ConsumerId,
        snap: ObservationSnapshot,
    ) -> Result<()> {
        vouch_store::check_snapshot(&snap)?;
        let changed = self
            .client()
            .await?
            .execute(
                "INSERT INTO observation_cursors (consumer, seq, state) VALUES ($1, $2, $3)
                 ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq, state = excluded.state
                 WHERE excluded.seq >= observation_cursors.seq",
                &[&consumer.as_str(), &(snap.through.0 as i64), &snap.state],
            )
            .await
            .map_err(backend)?;
        if changed == 0 {
            let saved = self
                .observation_snapshot_impl(consumer)
                .await?
                .map_or(0, |s| s.through.0);
            return Err(StoreError::CursorBackwards {
                consumer: consumer.to_string(),
                saved,
                offered: snap.through.0,
            });
        }
        Ok(())
    }
}
