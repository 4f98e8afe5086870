//! The change feed on PostgreSQL: durable consumer cursors, and a `LISTEN vouch_events` connection that
//! turns the notifications the chain head's trigger sends (migration 5) into wake-ups.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::{AsyncMessage, NoTls};
use vouch_events::EventSeq;
use vouch_store::{Announcer, Result, StoreError};
use vouch_types::ConsumerId;

use crate::PostgresStore;
use crate::rows::{backend, col};

/// The channel the chain head's trigger notifies.
const CHANNEL: &str = "vouch_events";
/// How long the listener waits before reconnecting after it lost its connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// How often the listener checks that someone still holds a wake-up handle.
const CHECK_HEARD: Duration = Duration::from_secs(5);

/// The listener's state, shared by the store's clones.
#[derive(Debug, Default)]
pub(crate) struct Listener {
    appended: Announcer,
    running: AtomicBool,
}

impl Listener {
    /// Starts the listening task unless it runs (it ends when no handle is held any more); needs a tokio
    /// runtime, and without one the handle only polls.
    pub(crate) fn start(self: &Arc<Self>, config: &tokio_postgres::Config) -> vouch_store::Wakeup {
        let wakeup = self.appended.subscribe();
        if let Ok(rt) = tokio::runtime::Handle::try_current()
            && !self.running.swap(true, Ordering::AcqRel)
        {
            rt.spawn(listen(self.clone(), config.clone()));
        }
        wakeup
    }
}

/// Holds a `LISTEN` connection while anyone holds a wake-up handle, reconnecting when it drops.
async fn listen(listener: Arc<Listener>, config: tokio_postgres::Config) {
    loop {
        if !listener.appended.is_heard() {
            listener.running.store(false, Ordering::Release);
            // A handle taken between the check and the store above found the task running: take over again.
            if !listener.appended.is_heard() || listener.running.swap(true, Ordering::AcqRel) {
                return;
            }
        }
        match config.connect(NoTls).await {
            Ok((client, mut conn)) => {
                let appended = listener.appended.clone();
                let mut driver = tokio::spawn(async move {
                    while let Some(Ok(message)) =
                        std::future::poll_fn(|cx| conn.poll_message(cx)).await
                    {
                        if let AsyncMessage::Notification(_) = message {
                            appended.announce();
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        // Appends made while no connection listened were not announced.
                        listener.appended.announce();
                        loop {
                            tokio::select! {
                                _ = &mut driver => break,
                                () = tokio::time::sleep(CHECK_HEARD) => {
                                    if !listener.appended.is_heard() {
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "LISTEN failed; the change feed polls"),
                }
                driver.abort();
            }
            Err(e) => tracing::warn!(error = %e, "no LISTEN connection; the change feed polls"),
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

impl PostgresStore {
    /// The position `consumer` last saved.
    pub(crate) async fn load_cursor(&self, consumer: &ConsumerId) -> Result<Option<EventSeq>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT seq FROM consumer_cursors WHERE consumer = $1",
                &[&consumer.as_str()],
            )
            .await
            .map_err(backend)?;
        row.map(|r| col::<i64>(&r, 0, "consumer_cursors").map(|s| EventSeq(s as u64)))
            .transpose()
    }

    /// Saves `through` unless that moves the cursor backwards; one statement, so concurrent saves cannot
    /// interleave between a check and a write.
    pub(crate) async fn save_cursor(&self, consumer: &ConsumerId, through: EventSeq) -> Result<()> {
        let changed = self
            .client()
            .await?
            .execute(
                "INSERT INTO consumer_cursors (consumer, seq) VALUES ($1, $2)
                 ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq
                 WHERE excluded.seq >= consumer_cursors.seq",
                &[&consumer.as_str(), &(through.0 as i64)],
            )
            .await
            .map_err(backend)?;
        if changed == 0 {
            let saved = self.load_cursor(consumer).await?.map_or(0, |s| s.0);
            return Err(StoreError::CursorBackwards {
                consumer: consumer.to_string(),
                saved,
                offered: through.0,
            });
        }
        Ok(())
    }
}
