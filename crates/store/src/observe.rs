//! The observation queue: what enforcement points and reporters observed (gateway traffic windows, posture
//! reports, discovery), written by any process to the store and read by the trust service.
//!
//! Not the event log: observations are measurements, not facts anyone must be able to prove later, so they
//! are not hash-chained, and they are pruned (bounded by age and by count). Each row holds one
//! [`Observation`] as versioned JSON ([`OBSERVATION_VERSION`]); a row this build cannot read is handed out
//! as an error for that row alone, so one bad row never stalls a consumer.
//!
//! A consumer ([`ObservationFeed`]) keeps a cursor of its own in the queue's sequence (not the log's) with an
//! opaque snapshot of its state, saved together in one statement: a restart resumes after the cursor with the
//! state as it was when the cursor was saved, so nothing is handled twice and nothing learned is lost beyond
//! the last save.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vouch_types::{ConsumerId, Observation, Timestamp};

use crate::feed::Wakeup;
use crate::{Result, Store, StoreError};

/// The version of the JSON an observation is queued as; a newer one is refused when read. 2 added
/// discovery's `network` sightings: a version-1 row (traffic, posture) reads as it always did, and a build
/// that knows only version 1 refuses a sighting's row as newer rather than as damaged.
pub const OBSERVATION_VERSION: u32 = 2;
/// The largest snapshot a consumer may save (the trust service's models of a large fleet fit well within).
pub const MAX_SNAPSHOT_BYTES: usize = 64 << 20;
/// Observations read per query.
const PAGE: u32 = 1000;

/// A position in the observation queue (its own sequence, unrelated to the event log's).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct ObservationSeq(pub u64);

impl std::fmt::Display for ObservationSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One queued observation as stored: its position, when it was queued, and its encoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedObservation {
    /// Its position in the queue.
    pub seq: ObservationSeq,
    /// When it was queued.
    pub at: Timestamp,
    /// The versioned JSON ([`encode_observation`]); read it with [`QueuedObservation::observation`].
    pub body: String,
}

impl QueuedObservation {
    /// The observation, or why this row cannot be read (a newer version, a damaged row).
    pub fn observation(&self) -> Result<Observation> {
        decode_observation(&self.body)
    }
}

/// A consumer's cursor in the queue and the state it had reached there, saved and loaded as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationSnapshot {
    /// The last position handled.
    pub through: ObservationSeq,
    /// The consumer's state after handling it (its own encoding, at most [`MAX_SNAPSHOT_BYTES`]).
    pub state: Vec<u8>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    v: u32,
    observation: &'a Observation,
}

#[derive(Deserialize)]
struct Stored {
    v: u32,
    observation: Observation,
}

/// The JSON a backend stores for `o`.
pub fn encode_observation(o: &Observation) -> Result<String> {
    Ok(serde_json::to_string(&Envelope {
        v: OBSERVATION_VERSION,
        observation: o,
    })?)
}

/// Reads back what [`encode_observation`] wrote; refuses a version newer than this build knows.
pub fn decode_observation(body: &str) -> Result<Observation> {
    let stored: Stored =
        serde_json::from_str(body).map_err(|e| StoreError::corrupt("observations", e))?;
    if stored.v > OBSERVATION_VERSION {
        return Err(StoreError::corrupt(
            "observations",
            format!(
                "version {} is newer than this build knows ({OBSERVATION_VERSION})",
                stored.v
            ),
        ));
    }
    Ok(stored.observation)
}

/// Checks a snapshot before a backend stores it.
pub fn check_snapshot(snapshot: &ObservationSnapshot) -> Result<()> {
    if snapshot.state.len() > MAX_SNAPSHOT_BYTES {
        return Err(StoreError::Backend(format!(
            "a consumer snapshot of {} bytes is over the limit of {MAX_SNAPSHOT_BYTES}",
            snapshot.state.len()
        )));
    }
    Ok(())
}

/// A durable reader of the observation queue: resumes after the cursor its consumer last saved, and
/// waits for the backend's wake-up ([`Store::subscribe`]) or its poll interval when nothing is new.
pub struct ObservationFeed {
    store: Arc<dyn Store>,
    consumer: ConsumerId,
    cursor: Option<ObservationSeq>,
    wakeup: Option<Wakeup>,
    poll: Duration,
}

impl std::fmt::Debug for ObservationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservationFeed")
            .field("consumer", &self.consumer)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl ObservationFeed {
    /// The feed of `consumer` and the state it saved with its cursor (`None`: it never saved, and reads from
    /// the oldest observation kept).
    pub async fn open(
        store: Arc<dyn Store>,
        consumer: ConsumerId,
    ) -> Result<(Self, Option<Vec<u8>>)> {
        let snapshot = store.observation_snapshot(&consumer).await?;
        let (cursor, state) = match snapshot {
            Some(s) => (Some(s.through), Some(s.state)),
            None => (None, None),
        };
        Ok((
            Self {
                store,
                consumer,
                cursor,
                wakeup: None,
                poll: crate::POLL_EVERY,
            },
            state,
        ))
    }

    /// Reads the queue at least this often when no wake-up comes.
    #[must_use]
    pub fn with_poll(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    /// The last position read (not necessarily saved).
    pub fn position(&self) -> Option<ObservationSeq> {
        self.cursor
    }

    /// The next observations after the cursor (at most one page) if there are any now; never waits.
    pub async fn try_next(&mut self) -> Result<Vec<QueuedObservation>> {
        if let Some(w) = &mut self.wakeup {
            w.mark_seen();
        }
        let page = self.store.observations(self.cursor, PAGE).await?;
        if let Some(last) = page.last() {
            self.cursor = Some(last.seq);
        }
        Ok(page)
    }

    /// The next observations after the cursor, waiting (wake-up or poll) until there are some.
    pub async fn next(&mut self) -> Result<Vec<QueuedObservation>> {
        if self.wakeup.is_none() {
            // Before the first read, so that an append landing after it still wakes us.
            self.wakeup = Some(self.store.subscribe());
        }
        loop {
            let page = self.try_next().await?;
            if !page.is_empty() {
                return Ok(page);
            }
            let poll = tokio::time::sleep(self.poll);
            match &mut self.wakeup {
                Some(w) => tokio::select! {
                    () = w.changed() => {}
                    () = poll => {}
                },
                None => poll.await,
            }
        }
    }

    /// Saves the cursor at `through` with `state`, in one statement: a restarted feed resumes after
    /// `through` with `state`. Monotonic ([`StoreError::CursorBackwards`]).
    pub async fn save(&self, through: ObservationSeq, state: Vec<u8>) -> Result<()> {
        self.store
            .save_observation_snapshot(&self.consumer, ObservationSnapshot { through, state })
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use vouch_types::{DeviceId, PostureReport};

    #[test]
    fn an_observation_round_trips_and_a_newer_version_is_refused() {
        let o = Observation::Posture(PostureReport {
            device: DeviceId::derived("v"),
            at: Timestamp::from_unix_micros(1),
            firmware: None,
            config_hash: None,
            open_ports: vec![22],
            attestation_ok: None,
        });
        let body = encode_observation(&o).unwrap();
        assert!(body.starts_with(r#"{"v":2,"#), "{body}");
        assert_eq!(decode_observation(&body).unwrap(), o);
        let newer = body.replacen(r#""v":2"#, r#""v":3"#, 1);
        let err = decode_observation(&newer).unwrap_err();
        assert!(err.to_string().contains("version 3 is newer"), "{err}");
        assert!(decode_observation("{").is_err());
    }

    #[test]
    fn rows_written_before_sightings_read_as_they_did() {
        // Verbatim rows of version 1, as an earlier build queued them.
        let traffic = r#"{"v":1,"observation":{"kind":"traffic","device":"0190a4d2-7c00-7000-8000-000000000001","start":"2027-01-15T08:00:00Z","end":"2027-01-15T08:00:10Z","connects":1,"disconnects":0,"sessions":1,"auth_failures":0,"msgs_in":20,"msgs_out":0,"bytes_in":1600,"bytes_out":0,"distinct_topics":1,"new_topics":0,"remotes":["127.0.10.5"]}}"#;
        let Observation::Traffic(w) = decode_observation(traffic).unwrap() else {
            panic!("not a window");
        };
        assert_eq!((w.msgs_in, w.remotes.len()), (20, 1));
        let posture = r#"{"v":1,"observation":{"kind":"posture","device":"0190a4d2-7c00-7000-8000-000000000001","at":"2027-01-15T08:00:00Z","open_ports":[22]}}"#;
        assert!(matches!(
            decode_observation(posture).unwrap(),
            Observation::Posture(p) if p.open_ports == [22]
        ));
    }

    #[test]
    fn a_sighting_round_trips_and_an_oversized_one_is_refused() {
        use vouch_types::{Bounded, NetworkRisk, NetworkSighting};
        let risks: Vec<NetworkRisk> = (0..2)
            .map(|_| NetworkRisk::InsecureService {
                protocol: "telnet".parse().unwrap(),
            })
            .collect();
        let o = Observation::Network(NetworkSighting {
            device: DeviceId::derived("v"),
            start: Timestamp::from_unix_micros(1),
            end: Timestamp::from_unix_micros(2),
            peers: Bounded::default(),
            peers_left_out: 0,
            client_of: Bounded::default(),
            server_of: Bounded::default(),
            risks: risks.try_into().unwrap(),
        });
        let body = encode_observation(&o).unwrap();
        assert!(body.contains(r#""kind":"network""#), "{body}");
        assert_eq!(decode_observation(&body).unwrap(), o);
        let many =
            vec![r#"{"risk":"insecure_service","protocol":"ftp"}"#; vouch_types::MAX_RISKS + 1];
        let hostile = format!(
            r#"{{"v":2,"observation":{{"kind":"network","device":"{}","start":"2027-01-15T08:00:00Z","end":"2027-01-15T08:00:10Z","risks":[{}]}}}}"#,
            DeviceId::derived("v"),
            many.join(",")
        );
        let err = decode_observation(&hostile).unwrap_err();
        assert!(err.to_string().contains("more than 32 entries"), "{err}");
    }
}
