//! The observation queue's cases: batches in order, pages, pruning, the wake-up, and a consumer's cursor and
//! state surviving a reopened database. A backend's test file calls [`observe_suite!`](crate::observe_suite)
//! with the same expression as [`feed_suite!`](crate::feed_suite).

use std::sync::Arc;
use std::time::Duration;

use vouch_types::{ConsumerId, DeviceId, Observation, PostureReport, Timestamp, TrafficWindow};

use super::feed::Reopen;
use crate::{ObservationFeed, ObservationSeq, ObservationSnapshot, Store, StoreError};

/// Generates one test per queue case; `$make` gives a new, empty store and its [`Reopen`].
#[macro_export]
macro_rules! observe_suite {
    ($make:expr) => {
        $crate::observe_suite!(@cases $make;
            a_batch_is_queued_in_order_and_read_in_pages,
            a_consumer_resumes_after_its_cursor_with_its_state_after_reopening,
            a_consumer_cursor_never_moves_backwards,
            pruning_drops_the_old_and_keeps_the_newest,
            a_wakeup_arrives_after_a_batch,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $crate::feed_suite!(@in observe, $make; $($case),*);
    };
}

const PATIENCE: Duration = Duration::from_secs(60);

fn at(n: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_700_000_000_000_000 + n * 1_000_000)
}

fn window(device: u32, n: i64) -> Observation {
    Observation::Traffic(TrafficWindow {
        device: DeviceId::derived(&format!("queue:{device}")),
        start: at(n),
        end: at(n + 10),
        connects: 1,
        disconnects: 0,
        sessions: 1,
        auth_failures: device,
        msgs_in: 20,
        msgs_out: 1,
        bytes_in: 1280,
        bytes_out: 64,
        distinct_topics: 2,
        new_topics: 0,
        remotes: vec!["10.1.0.7".parse().unwrap()],
    })
}

fn posture(n: i64) -> Observation {
    Observation::Posture(PostureReport {
        device: DeviceId::derived("queue:posture"),
        at: at(n),
        firmware: None,
        config_hash: None,
        open_ports: vec![22, 443],
        attestation_ok: Some(true),
    })
}

async fn everything(s: &dyn Store) -> Vec<(ObservationSeq, Observation)> {
    s.observations(None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|q| (q.seq, q.observation().unwrap()))
        .collect()
}

pub async fn a_batch_is_queued_in_order_and_read_in_pages(s: Arc<dyn Store>, _reopen: Reopen) {
    assert_eq!(
        s.append_observations(Vec::new(), at(0)).await.unwrap(),
        None
    );
    let first: Vec<Observation> = (0..5).map(|d| window(d, 0)).collect();
    let last = s
        .append_observations(first.clone(), at(10))
        .await
        .unwrap()
        .unwrap();
    let second = vec![posture(11), window(9, 10)];
    let last2 = s
        .append_observations(second.clone(), at(20))
        .await
        .unwrap()
        .unwrap();
    assert!(last2 > last);
    let all = everything(&*s).await;
    let expected: Vec<Observation> = first.iter().chain(&second).cloned().collect();
    assert_eq!(
        all.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(all.windows(2).all(|p| p[0].0 < p[1].0), "positions ascend");
    assert_eq!(all[4].0, last);
    assert_eq!(all[6].0, last2);
    // Pages: after a position, at most `limit`.
    let page = s.observations(Some(all[1].0), 3).await.unwrap();
    assert_eq!(
        page.iter().map(|q| q.seq).collect::<Vec<_>>(),
        vec![all[2].0, all[3].0, all[4].0]
    );
    assert_eq!(page[0].at, at(10));
    let tail = s.observations(Some(last), 100).await.unwrap();
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[0].at, at(20));
    assert!(s.observations(Some(last2), 100).await.unwrap().is_empty());
}

pub async fn a_consumer_resumes_after_its_cursor_with_its_state_after_reopening(
    s: Arc<dyn Store>,
    reopen: Reopen,
) {
    let c: ConsumerId = "test.trust".parse().unwrap();
    s.append_observations((0..3).map(|d| window(d, 0)).collect(), at(10))
        .await
        .unwrap();
    let (mut feed, state) = ObservationFeed::open(s.clone(), c.clone()).await.unwrap();
    assert_eq!(state, None);
    let page = feed.try_next().await.unwrap();
    assert_eq!(page.len(), 3);
    feed.save(page[2].seq, b"after three".to_vec())
        .await
        .unwrap();
    // Read but not saved: a restart hands these out again, with the state saved before them.
    s.append_observations(vec![window(7, 10)], at(20))
        .await
        .unwrap();
    assert_eq!(feed.try_next().await.unwrap().len(), 1);
    drop((feed, s));
    let s = reopen().await;
    let (mut feed, state) = ObservationFeed::open(s.clone(), c.clone()).await.unwrap();
    assert_eq!(state.as_deref(), Some(&b"after three"[..]));
    assert_eq!(feed.position(), Some(page[2].seq));
    let again = feed.try_next().await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].observation().unwrap(), window(7, 10));
    feed.save(again[0].seq, b"after four".to_vec())
        .await
        .unwrap();
    drop((feed, s));
    let s = reopen().await;
    let (mut feed, state) = ObservationFeed::open(s.clone(), c).await.unwrap();
    assert_eq!(state.as_deref(), Some(&b"after four"[..]));
    assert!(
        feed.try_next().await.unwrap().is_empty(),
        "nothing handed out twice"
    );
    // Another consumer is independent: it starts at the oldest kept.
    let (mut other, state) = ObservationFeed::open(s.clone(), "test.other".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(state, None);
    assert_eq!(other.try_next().await.unwrap().len(), 4);
}

pub async fn a_consumer_cursor_never_moves_backwards(s: Arc<dyn Store>, _reopen: Reopen) {
    let c: ConsumerId = "test.monotonic".parse().unwrap();
    let snap = |n: u64, state: &[u8]| ObservationSnapshot {
        through: ObservationSeq(n),
        state: state.to_vec(),
    };
    s.save_observation_snapshot(&c, snap(5, b"five"))
        .await
        .unwrap();
    // The same position again replaces the state (a save at shutdown after one on a timer).
    s.save_observation_snapshot(&c, snap(5, b"five again"))
        .await
        .unwrap();
    let err = s
        .save_observation_snapshot(&c, snap(3, b"three"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::CursorBackwards {
                saved: 5,
                offered: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        s.observation_snapshot(&c).await.unwrap(),
        Some(snap(5, b"five again"))
    );
    s.save_observation_snapshot(&c, snap(9, b"")).await.unwrap();
    assert_eq!(
        s.observation_snapshot(&c).await.unwrap(),
        Some(snap(9, b""))
    );
    // Oversized state is refused, nothing changes.
    let big = vec![0u8; crate::MAX_SNAPSHOT_BYTES + 1];
    assert!(
        s.save_observation_snapshot(&c, snap(10, &big))
            .await
            .is_err()
    );
    assert_eq!(
        s.observation_snapshot(&c).await.unwrap(),
        Some(snap(9, b""))
    );
}

pub async fn pruning_drops_the_old_and_keeps_the_newest(s: Arc<dyn Store>, _reopen: Reopen) {
    for n in 0..4 {
        s.append_observations(vec![window(1, n), window(2, n)], at(n * 10))
            .await
            .unwrap();
    }
    // By age: the batch queued at 0 goes.
    assert_eq!(s.prune_observations(at(5), 1_000).await.unwrap(), 2);
    let left = everything(&*s).await;
    assert_eq!(left.len(), 6);
    // By count: the newest three stay.
    assert_eq!(s.prune_observations(at(0), 3).await.unwrap(), 3);
    let kept = everything(&*s).await;
    assert_eq!(
        kept.iter().map(|k| k.0).collect::<Vec<_>>(),
        left[3..].iter().map(|k| k.0).collect::<Vec<_>>()
    );
    // Emptied, a new batch still gets a later position than any handed out.
    assert_eq!(s.prune_observations(at(1_000), 0).await.unwrap(), 3);
    assert!(everything(&*s).await.is_empty());
    let next = s
        .append_observations(vec![window(3, 50)], at(50))
        .await
        .unwrap()
        .unwrap();
    assert!(next > kept[2].0, "{next} after {}", kept[2].0);
}

pub async fn a_wakeup_arrives_after_a_batch(s: Arc<dyn Store>, _reopen: Reopen) {
    let (feed, _) = ObservationFeed::open(s.clone(), "test.wake".parse().unwrap())
        .await
        .unwrap();
    // The poll is far beyond the test's patience: only the wake-up can deliver in time.
    let mut feed = feed.with_poll(Duration::from_secs(3600));
    for round in 0..2 {
        let writer = {
            let s = s.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                s.append_observations(vec![window(round, 0)], at(round.into()))
                    .await
                    .unwrap()
            })
        };
        let page = tokio::time::timeout(PATIENCE, feed.next())
            .await
            .expect("the feed was not woken by a batch")
            .unwrap();
        let last = writer.await.unwrap();
        assert_eq!(page.last().map(|q| q.seq), last);
    }
}
