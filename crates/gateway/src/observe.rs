//! Per-device traffic counters, closed into [`TrafficWindow`] observations at the end of each window.
//!
//! Each window's observations go to the store's observation queue as one batch (one append per window,
//! whatever the number of devices), written in order by one task, so the trust service judges them whichever
//! process this gateway runs in; they are also broadcast in this process for live displays and tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use vouch_store::Store;
use vouch_types::{Clock, DeviceId, MAX_REMOTES, Observation, Timestamp, TrafficWindow};

use crate::Inner;
use crate::session::Session;

/// Windows kept per device for [`crate::Gateway::recent`].
const KEEP: usize = 6;
/// Observations queued for slow readers before the oldest are dropped.
const QUEUE: usize = 65_536;
/// Window batches waiting for the store before new ones are dropped (a store that slow loses windows, not
/// memory).
const BATCHES: usize = 64;

#[derive(Default, Clone, Copy)]
struct Events {
    connects: u32,
    disconnects: u32,
    msgs_in: u64,
    msgs_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    denied: u64,
    /// The most distinct addresses the device was live from at once during the window.
    places: u32,
    /// Distinct topics published to by sessions that ended during the window, and how many were new.
    topics: u32,
    new_topics: u32,
}

pub(crate) struct Observer {
    tx: broadcast::Sender<Observation>,
    /// To the task that appends each window's batch to the store.
    batches: mpsc::Sender<Vec<Observation>>,
    state: Mutex<State>,
}

struct State {
    start: Option<Timestamp>,
    /// Counts of sessions that ended (or connected) during the window, by device, with where they came from.
    pending: HashMap<DeviceId, (Events, Vec<IpAddr>)>,
    recent: HashMap<DeviceId, VecDeque<TrafficWindow>>,
    /// Topics each device published to before, shared by its sessions (so a reconnect is not "new topics").
    known: HashMap<DeviceId, Arc<Mutex<HashSet<String>>>>,
}

impl Observer {
    /// An observer whose batches go to the store through the task [`write`] runs on the receiver.
    pub(crate) fn new() -> (Self, mpsc::Receiver<Vec<Observation>>) {
        let (batches, rx) = mpsc::channel(BATCHES);
        let observer = Self {
            tx: broadcast::channel(QUEUE).0,
            batches,
            state: Mutex::new(State {
                start: None,
                pending: HashMap::new(),
                recent: HashMap::new(),
                known: HashMap::new(),
            }),
        };
        (observer, rx)
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Observation> {
        self.tx.subscribe()
    }

    pub(crate) fn recent(&self, device: DeviceId) -> Vec<TrafficWindow> {
        self.state
            .lock()
            .map(|s| {
                s.recent
                    .get(&device)
                    .map(|q| q.iter().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// The device's known topics, shared with its other sessions.
    pub(crate) fn known_topics(&self, device: DeviceId) -> Arc<Mutex<HashSet<String>>> {
        match self.state.lock() {
            Ok(mut s) => s.known.entry(device).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    pub(crate) fn connected(&self, device: DeviceId, from: IpAddr, places: u32) {
        if let Ok(mut s) = self.state.lock() {
            let (e, remotes) = s.pending.entry(device).or_default();
            e.connects += 1;
            e.places = e.places.max(places);
            note(remotes, from);
        }
    }

    /// A session ended: what it did since the window opened is kept for the window.
    pub(crate) fn disconnected(&self, session: &Session) {
        let drained = drain(session);
        if let Ok(mut s) = self.state.lock() {
            let (e, remotes) = s.pending.entry(session.device).or_default();
            e.disconnects += 1;
            add(e, &drained);
            note(remotes, session.remote);
        }
    }

    /// A refusal before any session existed (a CONNECT the policy refused, a client id that lied).
    pub(crate) fn refused(&self, device: DeviceId, from: IpAddr) {
        if let Ok(mut s) = self.state.lock() {
            let (e, remotes) = s.pending.entry(device).or_default();
            e.denied += 1;
            note(remotes, from);
        }
    }
}

/// Remembers an address, up to [`MAX_REMOTES`] distinct ones.
fn note(remotes: &mut Vec<IpAddr>, ip: IpAddr) {
    if remotes.len() < MAX_REMOTES && !remotes.contains(&ip) {
        remotes.push(ip);
    }
}

fn add(e: &mut Events, d: &Events) {
    e.msgs_in += d.msgs_in;
    e.msgs_out += d.msgs_out;
    e.bytes_in += d.bytes_in;
    e.bytes_out += d.bytes_out;
    e.denied += d.denied;
    e.places = e.places.max(d.places);
    e.topics += d.topics;
    e.new_topics += d.new_topics;
}

fn drain(s: &Session) -> Events {
    let t = &s.traffic;
    let (topics, new_topics) = match s.authz.lock() {
        Ok(mut a) => {
            let t = (a.topics.len() as u32, a.new_topics);
            a.topics.clear();
            a.new_topics = 0;
            t
        }
        Err(_) => (0, 0),
    };
    Events {
        topics,
        new_topics,
        msgs_in: t.msgs_in.swap(0, Ordering::Relaxed),
        msgs_out: t.msgs_out.swap(0, Ordering::Relaxed),
        bytes_in: t.bytes_in.swap(0, Ordering::Relaxed),
        bytes_out: t.bytes_out.swap(0, Ordering::Relaxed),
        denied: t.denied.swap(0, Ordering::Relaxed),
        ..Events::default()
    }
}

/// Appends each window's batch to the store's observation queue, in order, until the gateway is dropped.
pub(crate) async fn write(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mut batches: mpsc::Receiver<Vec<Observation>>,
) {
    while let Some(batch) = batches.recv().await {
        let n = batch.len();
        if let Err(e) = store.append_observations(batch, clock.now()).await {
            tracing::warn!(error = %e, windows = n, "a window's observations could not be queued in the store");
        }
    }
}

/// Closes a window every `every` until the gateway is dropped.
pub(crate) async fn run(inner: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    if let Some(inner) = inner.upgrade()
        && let Ok(mut s) = inner.observer.state.lock()
    {
        s.start = Some(inner.clock.now());
    }
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        close_window(&inner);
    }
}

/// Closes the current window: one observation per device that had traffic, sessions or refusals.
pub(crate) fn close_window(inner: &Inner) {
    let end = inner.clock.now();
    // Live sessions' counters and topic counts are taken first (each under its own lock).
    let mut windows: HashMap<DeviceId, (Events, u32, Vec<IpAddr>)> = HashMap::new();
    for s in inner.sessions.all() {
        let d = drain(&s);
        let w = windows.entry(s.device).or_default();
        add(&mut w.0, &d);
        w.1 += 1;
        note(&mut w.2, s.remote);
    }
    let observer = &inner.observer;
    let Ok(mut state) = observer.state.lock() else {
        return;
    };
    let start = state.start.replace(end).unwrap_or(end);
    for (device, (e, remotes)) in std::mem::take(&mut state.pending) {
        let w = windows.entry(device).or_default();
        add(&mut w.0, &e);
        w.0.connects += e.connects;
        w.0.disconnects += e.disconnects;
        for ip in remotes {
            note(&mut w.2, ip);
        }
    }
    let mut batch = Vec::with_capacity(windows.len());
    for (device, (e, sessions, remotes)) in windows {
        let (topics, new) = (e.topics, e.new_topics);
        let window = TrafficWindow {
            device,
            start,
            end,
            connects: e.connects,
            disconnects: e.disconnects,
            sessions: sessions.max(e.places),
            auth_failures: u32::try_from(e.denied).unwrap_or(u32::MAX),
            msgs_in: e.msgs_in,
            msgs_out: e.msgs_out,
            bytes_in: e.bytes_in,
            bytes_out: e.bytes_out,
            distinct_topics: topics,
            new_topics: new,
            remotes,
        };
        let q = state.recent.entry(device).or_default();
        if q.len() == KEEP {
            q.pop_front();
        }
        q.push_back(window.clone());
        // No reader yet is not an error: live displays subscribe when they run.
        let _ = observer.tx.send(Observation::Traffic(window.clone()));
        batch.push(Observation::Traffic(window));
    }
    if !batch.is_empty()
        && let Err(e) = observer.batches.try_send(batch)
    {
        tracing::warn!(error = %e, "the store is behind: a window's observations were dropped");
    }
    // Devices gone quiet are forgotten once their last window is older than the kept ones.
    let horizon =
        end.unix_micros() - (KEEP as i64) * (end.unix_micros() - start.unix_micros()).max(1);
    state
        .recent
        .retain(|_, q| q.back().is_some_and(|w| w.end.unix_micros() > horizon));
    // A device's known topics go with its recent windows (a live session keeps producing windows).
    let State { recent, known, .. } = &mut *state;
    known.retain(|d, k| recent.contains_key(d) || Arc::strong_count(k) > 1);
}
