//! The trust service as a durable consumer of the store's observation queue: whatever process queued a
//! window (the gateway inside `vouch serve`, a standalone `vouch gateway`, the API's posture route), the
//! service judges it once, and a restart resumes where it stopped with what it had learned.
//!
//! Its cursor and a snapshot of its models (each device's baseline, last score and remembered penalties, the
//! class models, the playbooks' per-device memory, attestation results) are saved together in one store call
//! every [`SaveEvery::observations`] observations or [`SaveEvery::interval`], and when it stops. So a clean
//! stop handles nothing twice and loses nothing learned; a crash replays what came after the last save (the
//! events those observations wrote are written again) and the models are those of the last save — at least
//! once, never lost. A snapshot that cannot be read (another version, damaged) is logged and ignored: the
//! service starts fresh, it never refuses to start.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use vouch_store::{MAX_SNAPSHOT_BYTES, ObservationFeed, ObservationSeq};
use vouch_trust::{Learned, ResponderMemory};
use vouch_types::{ConsumerId, DeviceId};

use crate::{RespondError, TrustService};

/// The trust service's consumer id in the observation queue.
pub const CONSUMER: &str = "trust";
/// The version of the snapshot's encoding; another one is ignored (the service starts fresh).
pub const SNAPSHOT_VERSION: u32 = 1;
/// Observations kept in the queue: a day's worth, and at most this many (whichever is fewer).
pub const QUEUE_KEEP_LAST: u64 = 1_000_000;
/// How long an observation is kept in the queue.
pub const QUEUE_KEEP_SECS: i64 = 86_400;
/// How long the service waits before reading the queue again after the database failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often the service saves its cursor and models while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveEvery {
    /// After this many observations handled since the last save.
    pub observations: u64,
    /// Or this long after the last save, if anything was handled since.
    pub interval: Duration,
}

impl Default for SaveEvery {
    fn default() -> Self {
        Self {
            observations: 10_000,
            interval: Duration::from_secs(30),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    v: u32,
    engine: Learned,
    responder: ResponderMemory,
    attestation: HashMap<DeviceId, bool>,
}

impl TrustService {
    /// Consumes the store's observation queue until `stop` turns true, then saves and returns. Starts from
    /// the snapshot saved last (models and cursor), or fresh if there is none or it cannot be read.
    pub fn consume(
        &self,
        every: SaveEvery,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<Result<(), RespondError>> {
        let me = self.clone();
        tokio::spawn(async move { me.run_queue(every, stop).await })
    }

    async fn run_queue(
        &self,
        every: SaveEvery,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), RespondError> {
        let consumer: ConsumerId = CONSUMER
            .parse()
            .map_err(|e| RespondError::Store(vouch_store::StoreError::Invalid(e)))?;
        let (mut feed, state) = ObservationFeed::open(self.inner.store.clone(), consumer).await?;
        if let Some(state) = state.filter(|s| !s.is_empty()) {
            match self.restore(&state) {
                Ok(devices) => tracing::info!(
                    devices,
                    after = ?feed.position().map(|p| p.0),
                    "trust service resumed with its saved models"
                ),
                Err(why) => tracing::warn!(
                    error = %why,
                    "the trust service's saved models could not be read: starting fresh"
                ),
            }
        }
        let mut handled: Option<ObservationSeq> = None;
        let mut since_save = 0u64;
        let mut last_save = Instant::now();
        loop {
            if *stop.borrow() {
                break;
            }
            let page = tokio::select! {
                page = feed.next() => match page {
                    Ok(page) => page,
                    Err(e) => {
                        // A database that went away comes back: wait, then read again.
                        tracing::warn!(error = %e, "the observation queue could not be read; retrying");
                        tokio::time::sleep(RETRY_AFTER).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
                () = tokio::time::sleep_until(last_save + every.interval), if handled.is_some() => {
                    self.save_or_warn(&feed, &mut handled).await;
                    (since_save, last_save) = (0, Instant::now());
                    continue;
                }
            };
            for q in page {
                match q.observation() {
                    Ok(o) => {
                        if let Err(e) = self.handle(o).await {
                            self.inner.counters.failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(error = %e, seq = q.seq.0, "an observation could not be handled");
                        }
                    }
                    Err(e) => {
                        self.inner.counters.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, seq = q.seq.0, "a queued observation could not be read; passed over");
                    }
                }
                handled = Some(q.seq);
                since_save += 1;
            }
            if since_save >= every.observations || last_save.elapsed() >= every.interval {
                self.save_or_warn(&feed, &mut handled).await;
                (since_save, last_save) = (0, Instant::now());
            }
        }
        self.save(&feed, &mut handled).await
    }

    /// Saves; a failure is logged and the next save tries again (what is handled stays handled in memory).
    async fn save_or_warn(&self, feed: &ObservationFeed, handled: &mut Option<ObservationSeq>) {
        if let Err(e) = self.save(feed, handled).await {
            tracing::warn!(error = %e, "the trust service's cursor and models could not be saved; retrying later");
        }
    }

    /// Saves the cursor at the last handled position with the models as they are, then prunes the queue.
    async fn save(
        &self,
        feed: &ObservationFeed,
        handled: &mut Option<ObservationSeq>,
    ) -> Result<(), RespondError> {
        let Some(through) = *handled else {
            return Ok(());
        };
        let mut state = self.snapshot()?;
        if state.len() > MAX_SNAPSHOT_BYTES {
            // The cursor still moves (nothing is handled twice); a restart then starts with fresh models.
            tracing::warn!(
                bytes = state.len(),
                limit = MAX_SNAPSHOT_BYTES,
                "the trust service's models are too large to save; only its cursor is saved"
            );
            state = Vec::new();
        }
        feed.save(through, state).await?;
        *handled = None;
        self.inner.counters.saves.fetch_add(1, Ordering::Relaxed);
        let now = self.inner.clock.now();
        let before = vouch_types::Timestamp::from_unix_micros(
            now.unix_micros() - QUEUE_KEEP_SECS * 1_000_000,
        );
        self.inner
            .store
            .prune_observations(before, QUEUE_KEEP_LAST)
            .await?;
        Ok(())
    }

    /// The models, encoded: copied under the lock, encoded outside it.
    fn snapshot(&self) -> Result<Vec<u8>, RespondError> {
        let snapshot = {
            let Ok(m) = self.inner.models.lock() else {
                return Ok(Vec::new());
            };
            Snapshot {
                v: SNAPSHOT_VERSION,
                engine: m.judge.engine.learned(),
                responder: m.judge.responder.memory(),
                attestation: m.attestation.clone(),
            }
        };
        Ok(serde_json::to_vec(&snapshot)?)
    }

    /// Takes up saved models; the number of devices they hold, or why they cannot be read.
    fn restore(&self, state: &[u8]) -> Result<usize, String> {
        let s: Snapshot = serde_json::from_slice(state).map_err(|e| e.to_string())?;
        if s.v != SNAPSHOT_VERSION {
            return Err(format!(
                "version {} (this build reads {SNAPSHOT_VERSION})",
                s.v
            ));
        }
        let devices = s.engine.devices();
        let mut m = self
            .inner
            .models
            .lock()
            .map_err(|_| "the models' lock is poisoned".to_owned())?;
        m.judge.engine.restore(s.engine);
        m.judge.responder.restore(s.responder);
        m.attestation = s.attestation;
        Ok(devices)
    }

    /// Whether `device` is judged against its class (its own baseline not ready): for tests and displays.
    pub fn cold_start(&self, device: DeviceId) -> bool {
        self.inner
            .models
            .lock()
            .map_or(true, |m| m.judge.engine.cold_start(device))
    }
}
