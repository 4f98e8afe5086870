//! The change feed: a resumable cursor over the event log, woken when the log grows.
//!
//! A [`Feed`] reads [`Store::events`] after its cursor. When there is nothing new it waits for the backend's
//! wake-up ([`Store::subscribe`]: an in-process signal on SQLite, `LISTEN`/`NOTIFY` on PostgreSQL) or for
//! the poll interval, whichever comes first: the poll always runs, so a lost notification (another process
//! writing a SQLite file, a dropped listener connection) only delays.
//!
//! Delivery is at least once. A durable feed ([`Feed::durable`]) starts after the cursor its consumer last
//! committed ([`Feed::commit`]); a consumer commits after it has processed a batch, so a crash in between
//! replays that batch on restart. A consumer that must not act twice either makes its effect and the cursor
//! commit in one transaction where it can, or makes its effect idempotent by [`EventSeq`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use vouch_events::{Event, EventSeq};
use vouch_types::ConsumerId;

use crate::{Result, Store};

/// How long a feed waits for a wake-up before it reads the log anyway.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// Events read per query.
const PAGE: u32 = 1000;

/// The sending side of a backend's wake-up: announced after every committed append.
#[derive(Debug, Clone)]
pub struct Announcer(Arc<watch::Sender<u64>>);

impl Default for Announcer {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }
}

impl Announcer {
    /// Tells every [`Wakeup`] that the log may have grown.
    pub fn announce(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A new wake-up handle; it fires for announcements made after this call.
    pub fn subscribe(&self) -> Wakeup {
        Wakeup(Some(self.0.subscribe()))
    }

    /// Whether any [`Wakeup`] is still listening (a listener task ends when none is).
    pub fn is_heard(&self) -> bool {
        self.0.receiver_count() > 0
    }
}

/// A handle that resolves when the log may have grown (see [`Store::subscribe`]).
#[derive(Debug)]
pub struct Wakeup(Option<watch::Receiver<u64>>);

impl Wakeup {
    /// A handle that never fires: its holder relies on polling alone.
    pub fn never() -> Self {
        Self(None)
    }

    /// Marks every announcement so far as seen: [`Wakeup::changed`] then waits for a later one. Call it
    /// before reading the log, so that an append landing after the read still wakes the reader.
    pub fn mark_seen(&mut self) {
        if let Some(rx) = &mut self.0 {
            rx.borrow_and_update();
        }
    }

    /// Waits until an announcement not yet seen arrives; never returns if the backend has no wake-up.
    pub async fn changed(&mut self) {
        if let Some(rx) = &mut self.0
            && rx.changed().await.is_ok()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}

/// Which events a consumer is handed (the others are read and passed over).
pub type EventFilter = Box<dyn Fn(&Event) -> bool + Send + Sync>;

/// What one read of the feed produced.
#[derive(Debug)]
pub struct Batch {
    /// The events that passed the filter, oldest first; empty when every event read was filtered out.
    pub events: Vec<Event>,
    /// The last position read (filtered events included): what to [`Feed::commit`] once `events` are done.
    pub through: EventSeq,
    /// Whether this read reached the end of the log (less than a page came back): a caller catching up
    /// stops here rather than spending a read that finds nothing.
    pub caught_up: bool,
}

/// A resumable reader of the event log (see the module documentation).
pub struct Feed {
    store: Arc<dyn Store>,
    consumer: Option<ConsumerId>,
    cursor: Option<EventSeq>,
    filter: Option<EventFilter>,
    /// Taken by the first [`Feed::next_batch`], not before: a feed only ever read with
    /// [`Feed::try_next_batch`] holds no wake-up (on PostgreSQL, no listening connection).
    wakeup: Option<Wakeup>,
    poll: Duration,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("consumer", &self.consumer)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// The feed of `consumer`: it resumes after the cursor the consumer last committed (from the start of the
    /// log if it never did).
    pub async fn durable(store: Arc<dyn Store>, consumer: ConsumerId) -> Result<Self> {
        let cursor = store.consumer_cursor(&consumer).await?;
        Ok(Self {
            store,
            consumer: Some(consumer),
            cursor,
            filter: None,
            wakeup: None,
            poll: POLL_EVERY,
        })
    }

    /// A feed that records nothing, starting after `after` (`None`: the start of the log). For consumers
    /// whose state dies with the process (the gateway's live sessions): they start at the head each time.
    pub fn transient(store: Arc<dyn Store>, after: Option<EventSeq>) -> Self {
        Self {
            store,
            consumer: None,
            cursor: after,
            filter: None,
            wakeup: None,
            poll: POLL_EVERY,
        }
    }

    /// Hands over only the events `keep` accepts.
    #[must_use]
    pub fn with_filter(mut self, keep: impl Fn(&Event) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Box::new(keep));
        self
    }

    /// Reads the log at least this often when no wake-up comes.
    #[must_use]
    pub fn with_poll(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    /// The consumer whose cursor this feed records, if it is durable.
    pub fn consumer(&self) -> Option<&ConsumerId> {
        self.consumer.as_ref()
    }

    /// The last position read (not necessarily committed).
    pub fn position(&self) -> Option<EventSeq> {
        self.cursor
    }

    /// The next events after the cursor, waiting for them (wake-up or poll) when there are none yet.
    pub async fn next_batch(&mut self) -> Result<Batch> {
        if self.wakeup.is_none() {
            // Before the first read below, so that an append landing after that read still wakes us.
            self.wakeup = Some(self.store.subscribe());
        }
        loop {
            if let Some(batch) = self.try_next_batch().await? {
                return Ok(batch);
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

    /// The next events after the cursor if there are any now (at most one page); never waits.
    pub async fn try_next_batch(&mut self) -> Result<Option<Batch>> {
        if let Some(w) = &mut self.wakeup {
            w.mark_seen();
        }
        let events = self.store.events(self.cursor, PAGE).await?;
        let caught_up = events.len() < PAGE as usize;
        let Some(through) = events.last().map(|e| e.seq) else {
            return Ok(None);
        };
        self.cursor = Some(through);
        let events = match &self.filter {
            Some(keep) => events.into_iter().filter(|e| keep(e)).collect(),
            None => events,
        };
        Ok(Some(Batch {
            events,
            through,
            caught_up,
        }))
    }

    /// Records durably that everything up to `through` is processed; a restarted [`Feed::durable`] resumes
    /// after it. Does nothing on a transient feed. A cursor never moves backwards
    /// ([`crate::StoreError::CursorBackwards`]).
    pub async fn commit(&mut self, through: EventSeq) -> Result<()> {
        match &self.consumer {
            Some(c) => self.store.save_consumer_cursor(c, through).await,
            None => Ok(()),
        }
    }
}
