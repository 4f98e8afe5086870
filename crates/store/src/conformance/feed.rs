//! The change feed's cases: durable cursors across a reopened store, wake-ups, monotonic and independent
//! cursors. A backend's test file calls [`feed_suite!`](crate::feed_suite) with an async expression that
//! yields a fresh store and a way to open the same database again (a restart).

use std::sync::Arc;
use std::time::Duration;

use vouch_events::{Action, EventDraft, EventSeq};
use vouch_types::{Actor, ConsumerId, Timestamp};

use crate::{Feed, Store, StoreError};

/// Opens the database behind a store again, as a restarted process would.
pub type Reopen =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>> + Send + Sync>;

/// Generates one test per feed case; `$make` is an async expression giving a new, empty store and its
/// [`Reopen`].
#[macro_export]
macro_rules! feed_suite {
    ($make:expr) => {
        $crate::feed_suite!(@cases $make;
            a_cursor_survives_reopening,
            a_committed_event_is_not_handed_out_again_after_a_restart,
            a_wakeup_arrives_after_an_append,
            a_cursor_never_moves_backwards,
            consumers_are_independent,
            a_filter_passes_over_events_but_moves_the_cursor,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $crate::feed_suite!(@in feed, $make; $($case),*);
    };
    // One test per case of `conformance::$module` over a store that can be reopened (also the queue's
    // cases, `observe_suite!`).
    (@in $module:ident, $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, reopen): (
                    ::std::sync::Arc<dyn $crate::Store>,
                    $crate::conformance::feed::Reopen,
                ) = $make.await;
                $crate::conformance::$module::$case(store, reopen).await;
            }
        )*
    };
}

/// Generous: a wake-up must arrive, how fast is not asserted.
const PATIENCE: Duration = Duration::from_secs(60);

fn consumer(name: &str) -> ConsumerId {
    name.parse().unwrap()
}

async fn append(s: &dyn Store, n: u32) -> Vec<EventSeq> {
    let mut seqs = Vec::new();
    for i in 0..n {
        let draft = EventDraft {
            device_id: None,
            actor: Actor::Cli("ops".into()),
            action: Action::CaInitialized,
            before: None,
            after: Some(format!(r#"{{"n":{i}}}"#)),
            reason: None,
        };
        let at = Timestamp::from_unix_micros(1_700_000_000_000_000 + i64::from(i));
        seqs.push(s.append_event(draft, at).await.unwrap().seq);
    }
    seqs
}

/// Everything the feed has now, committing after each batch when `commit` is set.
async fn drain(feed: &mut Feed, commit: bool) -> Vec<EventSeq> {
    let mut seen = Vec::new();
    while let Some(batch) = feed.try_next_batch().await.unwrap() {
        seen.extend(batch.events.iter().map(|e| e.seq));
        if commit {
            feed.commit(batch.through).await.unwrap();
        }
    }
    seen
}

pub async fn a_cursor_survives_reopening(s: Arc<dyn Store>, reopen: Reopen) {
    let first = append(&*s, 5).await;
    let mut feed = Feed::durable(s.clone(), consumer("test.resume"))
        .await
        .unwrap();
    assert_eq!(drain(&mut feed, true).await, first);
    drop((feed, s));
    let s = reopen().await;
    assert_eq!(
        s.consumer_cursor(&consumer("test.resume")).await.unwrap(),
        first.last().copied()
    );
    let mut feed = Feed::durable(s.clone(), consumer("test.resume"))
        .await
        .unwrap();
    assert_eq!(feed.position(), first.last().copied());
    assert!(feed.try_next_batch().await.unwrap().is_none());
    let second = append(&*s, 2).await;
    assert_eq!(drain(&mut feed, true).await, second);
}

pub async fn a_committed_event_is_not_handed_out_again_after_a_restart(
    s: Arc<dyn Store>,
    reopen: Reopen,
) {
    let c = consumer("test.once");
    let first = append(&*s, 3).await;
    let mut feed = Feed::durable(s.clone(), c.clone()).await.unwrap();
    assert_eq!(drain(&mut feed, true).await, first);
    // Read but not committed: the process "crashes" before it finished these.
    let second = append(&*s, 3).await;
    assert_eq!(drain(&mut feed, false).await, second);
    drop((feed, s));
    let s = reopen().await;
    let mut feed = Feed::durable(s.clone(), c.clone()).await.unwrap();
    // At least once: the uncommitted ones come again, the committed ones never.
    assert_eq!(drain(&mut feed, true).await, second);
    drop((feed, s));
    let s = reopen().await;
    let mut feed = Feed::durable(s.clone(), c).await.unwrap();
    assert!(drain(&mut feed, true).await.is_empty());
}

pub async fn a_wakeup_arrives_after_an_append(s: Arc<dyn Store>, _reopen: Reopen) {
    let mut wakeup = s.subscribe();
    wakeup.mark_seen();
    // The feed's poll is far beyond the test's patience: only the wake-up can deliver in time.
    let mut feed = Feed::transient(s.clone(), None).with_poll(Duration::from_secs(3600));
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            // Lets the feed start waiting first (it also works if it does not: the append is then read).
            tokio::time::sleep(Duration::from_millis(200)).await;
            append(&*s, 1).await
        })
    };
    let batch = tokio::time::timeout(PATIENCE, feed.next_batch())
        .await
        .expect("the feed was not woken by an append")
        .unwrap();
    let appended = writer.await.unwrap();
    assert_eq!(
        batch.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        appended
    );
    tokio::time::timeout(PATIENCE, wakeup.changed())
        .await
        .expect("a handle subscribed before the append was not woken");
    // Again, now that any connection behind the wake-up is surely up: this one comes from the append alone.
    let writer = {
        let s = s.clone();
        tokio::spawn(async move { append(&*s, 1).await })
    };
    let batch = tokio::time::timeout(PATIENCE, feed.next_batch())
        .await
        .expect("the feed was not woken by a second append")
        .unwrap();
    let appended = writer.await.unwrap();
    assert_eq!(batch.events.last().map(|e| e.seq), appended.last().copied());
}

pub async fn a_cursor_never_moves_backwards(s: Arc<dyn Store>, _reopen: Reopen) {
    let c = consumer("test.monotonic");
    append(&*s, 7).await;
    s.save_consumer_cursor(&c, EventSeq(5)).await.unwrap();
    s.save_consumer_cursor(&c, EventSeq(5)).await.unwrap();
    let err = s.save_consumer_cursor(&c, EventSeq(3)).await.unwrap_err();
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
    assert_eq!(s.consumer_cursor(&c).await.unwrap(), Some(EventSeq(5)));
    s.save_consumer_cursor(&c, EventSeq(7)).await.unwrap();
    assert_eq!(s.consumer_cursor(&c).await.unwrap(), Some(EventSeq(7)));
}

pub async fn consumers_are_independent(s: Arc<dyn Store>, _reopen: Reopen) {
    let seqs = append(&*s, 4).await;
    let mut a = Feed::durable(s.clone(), consumer("test/a")).await.unwrap();
    let batch = a.try_next_batch().await.unwrap().unwrap();
    a.commit(batch.through).await.unwrap();
    s.save_consumer_cursor(&consumer("test/b"), seqs[1])
        .await
        .unwrap();
    assert_eq!(
        s.consumer_cursor(&consumer("test/a")).await.unwrap(),
        seqs.last().copied()
    );
    assert_eq!(
        s.consumer_cursor(&consumer("test/b")).await.unwrap(),
        Some(seqs[1])
    );
    assert_eq!(s.consumer_cursor(&consumer("test/c")).await.unwrap(), None);
    let mut b = Feed::durable(s.clone(), consumer("test/b")).await.unwrap();
    assert_eq!(drain(&mut b, false).await, seqs[2..].to_vec());
    let mut c = Feed::durable(s.clone(), consumer("test/c")).await.unwrap();
    assert_eq!(drain(&mut c, false).await, seqs);
}

pub async fn a_filter_passes_over_events_but_moves_the_cursor(s: Arc<dyn Store>, _reopen: Reopen) {
    let seqs = append(&*s, 3).await;
    let mut feed = Feed::durable(s.clone(), consumer("test.filter"))
        .await
        .unwrap()
        .with_filter(|e| e.draft.action == Action::DeviceCreated);
    let batch = feed.try_next_batch().await.unwrap().unwrap();
    assert!(batch.events.is_empty());
    assert_eq!(Some(batch.through), seqs.last().copied());
    feed.commit(batch.through).await.unwrap();
    assert!(feed.try_next_batch().await.unwrap().is_none());
}
