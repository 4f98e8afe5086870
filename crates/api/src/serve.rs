//! The HTTP serving loop of every listener this crate serves (the API with OCSP/CRL, and EST over TLS), on
//! hyper directly: connections are bounded in number, per source and in time, so that idle or slow clients
//! cannot take the descriptors that real clients need.
//!
//! - **Caps.** At most `max_connections` connections (a TLS handshake in progress counts), at most
//!   `max_handshakes` of them in their handshake, and per source address (IPv6 by /64) at most
//!   `max_connections_per_source` and `max_handshakes_per_source`: that much unauthenticated work per host.
//! - **Shedding.** The accept loop never waits for a slot: a newcomer over a cap takes the place of the oldest
//!   connection that does no work (idle keep-alive, a request head still coming in, or a pending handshake;
//!   of its own source for a per-source cap), else it is refused at once (plain HTTP: a short 503 with
//!   `Retry-After`).
//! - **Timeouts.** A request head must arrive within `header_timeout` (hyper's header read timeout, which is
//!   also the idle keep-alive timeout), a request body must not pause longer than `body_timeout` between
//!   frames, a write that cannot proceed fails after `write_timeout` (a client that stops reading is
//!   dropped), and a TLS handshake has `handshake_timeout`.
//! - **Reporting.** Refusals, sheds and timeouts are counted in the metrics
//!   (`vouch_connections_closed_total{listener, reason}`, `vouch_connections_open{listener}`) and logged as
//!   one summary line per listener at most every `summary_every`, never one line per connection.
//!
//! Why one long file: the caps, the deadlines and the connection bookkeeping are one state machine over the
//! same per-connection guard; split, each half would need the other's private types.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::Metrics;
use crate::canonical::CanonicalHeads;
use crate::tls::TlsPeer;

/// How long shutdown waits for connections to finish their request before it lets them go.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often a listener logs what it refused, shed and timed out (when it did).
const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// The smallest default share (per source, in handshakes), unless the whole is smaller.
const FLOOR: usize = 64;

/// The soft limit on open file descriptors this process has (`RLIMIT_NOFILE`), or `None` when unlimited.
/// Every socket is one: the connection caps are derived from it.
pub fn open_files_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Limits on one listener's connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections held at once (TLS handshakes in progress included).
    pub max_connections: usize,
    /// Connections held at once from one source (an IPv4 address, an IPv6 /64).
    pub max_connections_per_source: usize,
    /// TLS handshakes in progress at once.
    pub max_handshakes: usize,
    /// TLS handshakes in progress at once from one source.
    pub max_handshakes_per_source: usize,
    /// Time allowed for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for a request head to arrive, counted from the connection or the previous answer (so
    /// also the idle keep-alive timeout).
    pub header_timeout: Duration,
    /// The longest pause allowed between two pieces of a request body.
    pub body_timeout: Duration,
    /// How long a write may stay blocked (the client does not read) before the connection is dropped.
    pub write_timeout: Duration,
}

impl ConnectionLimits {
    /// `max_connections` with the shares derived from it: an eighth per source, a quarter in handshakes, an
    /// eighth of those per source (each at least 64, or all: a burst of real clients behind one address, a
    /// fleet enrolling through one NAT, must fit), and 10-second timeouts.
    pub fn new(max_connections: usize) -> Self {
        let max_connections = max_connections.max(1);
        let max_handshakes = (max_connections / 4).max(max_connections.min(FLOOR));
        Self {
            max_connections,
            max_connections_per_source: Self::per_source(max_connections),
            max_handshakes,
            max_handshakes_per_source: Self::per_source(max_handshakes),
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }

    /// The default per-source share of `total` connections (or handshakes): an eighth, at least 64 (or all).
    pub fn per_source(total: usize) -> usize {
        (total / 8).max(total.min(FLOOR)).max(1)
    }

    /// The same limits with every count at least 1 and no per-source share above its whole.
    fn sane(mut self) -> Self {
        self.max_connections = self.max_connections.max(1);
        self.max_handshakes = self.max_handshakes.clamp(1, self.max_connections);
        self.max_connections_per_source = self
            .max_connections_per_source
            .clamp(1, self.max_connections);
        self.max_handshakes_per_source =
            self.max_handshakes_per_source.clamp(1, self.max_handshakes);
        self
    }
}

/// How a listener speaks HTTP/1.1 beyond what HTTP requires, for clients that need it (the API listener keeps
/// the defaults: keep-alive, hyper's lower-case header names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Http1Options {
    /// One answer per connection: every answer says `Connection: close`, then the server closes (with TLS,
    /// after its `close_notify`). For clients that read an answer until the server closes (libest).
    pub close_after_answer: bool,
    /// Header names of answers in canonical spelling (`Content-Type`, `WWW-Authenticate`) instead of lower
    /// case, for clients that match them case-sensitively (libest; see the `canonical` module). Implies
    /// `close_after_answer`: only the head of a connection's one answer is rewritten.
    pub canonical_header_case: bool,
}

impl Http1Options {
    /// What the EST listener needs for libest's `estclient`: canonical header names, one answer per
    /// connection.
    pub const EST: Self = Self {
        close_after_answer: true,
        canonical_header_case: true,
    };

    fn keep_alive(self) -> bool {
        !self.close_after_answer && !self.canonical_header_case
    }
}

/// Why a connection was refused or closed by the server, as counted and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// Refused: the listener holds `max_connections` and none could be shed.
    RefusedTotal,
    /// Refused: its source holds `max_connections_per_source` and none of them could be shed.
    RefusedSource,
    /// Closed to make room: it was idle (or its request head had not come in).
    ShedIdle,
    /// Closed to make room: its TLS handshake was pending.
    ShedHandshake,
    /// The TLS handshake did not finish in time.
    HandshakeTimeout,
    /// The TLS handshake failed (or the client left during it).
    HandshakeFailed,
    /// No complete request head within `header_timeout` (idle keep-alive included).
    HeaderTimeout,
    /// A request body paused longer than `body_timeout`.
    BodyTimeout,
    /// A write stayed blocked longer than `write_timeout`.
    WriteTimeout,
    /// `accept` itself failed (out of descriptors, most likely).
    AcceptFailed,
}

impl Closed {
    const ALL: [Self; 10] = [
        Self::RefusedTotal,
        Self::RefusedSource,
        Self::ShedIdle,
        Self::ShedHandshake,
        Self::HandshakeTimeout,
        Self::HandshakeFailed,
        Self::HeaderTimeout,
        Self::BodyTimeout,
        Self::WriteTimeout,
        Self::AcceptFailed,
    ];

    /// Its name in metrics and logs.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::RefusedTotal => "refused_max_connections",
            Self::RefusedSource => "refused_max_connections_per_source",
            Self::ShedIdle => "shed_idle",
            Self::ShedHandshake => "shed_handshake",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::HandshakeFailed => "handshake_failed",
            Self::HeaderTimeout => "header_timeout",
            Self::BodyTimeout => "body_timeout",
            Self::WriteTimeout => "write_timeout",
            Self::AcceptFailed => "accept_failed",
        }
    }

    /// Whether the server turned someone away (worth a warning), rather than a client being slow or leaving.
    const fn is_pressure(self) -> bool {
        matches!(
            self,
            Self::RefusedTotal
                | Self::RefusedSource
                | Self::ShedIdle
                | Self::ShedHandshake
                | Self::AcceptFailed
        )
    }
}

/// Counts of one listener, for the metrics and the summary lines.
struct Counters {
    listener: &'static str,
    counts: [AtomicU64; Closed::ALL.len()],
    /// The counts as of the last summary line.
    reported: Mutex<[u64; Closed::ALL.len()]>,
    /// The listener's series in the metrics: connections open, and closed by reason (in `Closed::ALL`'s
    /// order).
    series: Option<(Gauge, Vec<Counter>)>,
}

impl Counters {
    fn count(&self, what: Closed) {
        self.counts[what as usize].fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.series.as_ref().and_then(|(_, c)| c.get(what as usize)) {
            c.inc();
        }
    }

    fn open(&self, n: usize) {
        if let Some((g, _)) = &self.series {
            g.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    fn snapshot(&self) -> [u64; Closed::ALL.len()] {
        std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }

    fn new(listener: &'static str, metrics: Option<&Metrics>) -> Self {
        let reasons = Closed::ALL.map(Closed::as_str);
        Self {
            listener,
            counts: Default::default(),
            reported: Mutex::default(),
            series: metrics.map(|m| m.connection_series(listener, &reasons)),
        }
    }

    /// Logs what happened since the last summary (one line, nothing when nothing happened).
    fn summarize(&self, open: usize, every: Duration) {
        let now = self.snapshot();
        let Ok(mut last) = self.reported.lock() else {
            return;
        };
        let delta: Vec<(Closed, u64)> = Closed::ALL
            .iter()
            .map(|c| (*c, now[*c as usize] - last[*c as usize]))
            .filter(|(_, n)| *n > 0)
            .collect();
        *last = now;
        drop(last);
        if delta.is_empty() {
            return;
        }
        let counts = delta
            .iter()
            .map(|(c, n)| format!("{}={n}", c.as_str()))
            .collect::<Vec<_>>()
            .join(" ");
        let secs = every.as_secs();
        if delta.iter().any(|(c, _)| c.is_pressure()) {
            tracing::warn!(listener = self.listener, open, %counts, "connections refused or shed to stay within the limits (last {secs} s)");
        } else if delta.iter().any(|(c, _)| *c != Closed::HeaderTimeout) {
            tracing::info!(listener = self.listener, open, %counts, "slow connections closed (last {secs} s)");
        } else {
            tracing::debug!(listener = self.listener, open, %counts, "idle connections closed (last {secs} s)");
        }
    }
}

/// Where a connection comes from, for the per-source caps: an IPv4 address, or an IPv6 /64 (one host's
/// usual allocation, so a host cannot multiply itself by changing the interface identifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// What a connection is doing, for shedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// In its TLS handshake.
    Handshake,
    /// No request in flight: between requests, or its request head has not come in yet.
    Idle,
    /// A request is being answered.
    Busy,
}

struct Entry {
    source: Source,
    phase: Phase,
    /// When it entered its phase (a sequence number: smaller is older).
    stamp: u64,
    in_flight: u32,
    kill: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct PerSource {
    connections: usize,
    handshakes: usize,
    /// Its connections (at most `max_connections_per_source`, so scanning them is cheap).
    ids: Vec<u64>,
}

#[derive(Default)]
struct PoolState {
    next_id: u64,
    next_stamp: u64,
    entries: HashMap<u64, Entry>,
    /// Idle connections and pending handshakes by age (stamp → id): the ones that may be shed.
    idle: BTreeMap<u64, u64>,
    handshaking: BTreeMap<u64, u64>,
    sources: HashMap<Source, PerSource>,
}

impl PoolState {
    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    fn handshakes(&self) -> usize {
        self.handshaking.len()
    }

    /// Removes `id`; returns what it was doing and its kill switch.
    fn remove(&mut self, id: u64) -> Option<(Phase, Option<oneshot::Sender<()>>)> {
        let e = self.entries.remove(&id)?;
        match e.phase {
            Phase::Idle => {
                self.idle.remove(&e.stamp);
            }
            Phase::Handshake => {
                self.handshaking.remove(&e.stamp);
            }
            Phase::Busy => {}
        }
        if let Some(p) = self.sources.get_mut(&e.source) {
            p.connections -= 1;
            if e.phase == Phase::Handshake {
                p.handshakes -= 1;
            }
            p.ids.retain(|x| *x != id);
            if p.connections == 0 {
                self.sources.remove(&e.source);
            }
        }
        Some((e.phase, e.kill))
    }

    /// The oldest connection of `source` that may be shed (only pending handshakes if `handshakes_only`).
    fn oldest_of(&self, source: Source, handshakes_only: bool) -> Option<u64> {
        let p = self.sources.get(&source)?;
        p.ids
            .iter()
            .filter_map(|id| self.entries.get(id).map(|e| (id, e)))
            .filter(|(_, e)| match e.phase {
                Phase::Handshake => true,
                Phase::Idle => !handshakes_only,
                Phase::Busy => false,
            })
            .min_by_key(|(_, e)| e.stamp)
            .map(|(id, _)| *id)
    }

    /// The oldest connection of all that may be shed (only pending handshakes if `handshakes_only`).
    fn oldest(&self, handshakes_only: bool) -> Option<u64> {
        let hs = self.handshaking.first_key_value();
        let idle = if handshakes_only {
            None
        } else {
            self.idle.first_key_value()
        };
        match (hs, idle) {
            (Some(h), Some(i)) => Some(if h.0 < i.0 { *h.1 } else { *i.1 }),
            (Some(h), None) => Some(*h.1),
            (None, Some(i)) => Some(*i.1),
            (None, None) => None,
        }
    }
}

/// One listener's connections: who holds a slot, doing what, since when.
struct Pool {
    limits: ConnectionLimits,
    counters: Arc<Counters>,
    state: Mutex<PoolState>,
}

/// A connection's place in the pool; gives it back when dropped.
struct Slot {
    pool: Arc<Pool>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.release(self.id);
    }
}

/// Marks a connection busy while a request of it is answered (until its answer's body is written).
struct BusyGuard {
    pool: Arc<Pool>,
    id: u64,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.pool.request_done(self.id);
    }
}

impl Pool {
    fn open_gauge(&self, st: &PoolState) {
        self.counters.open(st.entries.len());
    }

    fn open(&self) -> usize {
        self.state.lock().map(|s| s.entries.len()).unwrap_or(0)
    }

    /// Admits a connection from `source` (starting in its TLS handshake if `tls`), shedding older idle
    /// connections or pending handshakes to make room; refuses it when the caps are reached and nothing can
    /// be shed.
    fn admit(
        self: &Arc<Self>,
        source: Source,
        tls: bool,
    ) -> Result<(Slot, oneshot::Receiver<()>), Closed> {
        let l = &self.limits;
        let Ok(mut st) = self.state.lock() else {
            return Err(Closed::RefusedTotal);
        };
        let mut victims = Vec::new();
        let (conns, hs) = st
            .sources
            .get(&source)
            .map_or((0, 0), |p| (p.connections, p.handshakes));
        // Per source first: shedding one of its own also makes room under the global caps. Refusals happen
        // before anything was shed (a pending handshake can always be shed, so the handshake caps never
        // refuse).
        if conns >= l.max_connections_per_source {
            let prefer_handshake = tls && hs >= l.max_handshakes_per_source;
            let victim = prefer_handshake
                .then(|| st.oldest_of(source, true))
                .flatten()
                .or_else(|| st.oldest_of(source, false));
            match victim {
                Some(v) => victims.extend(st.remove(v)),
                None => return Err(Closed::RefusedSource),
            }
        }
        if tls {
            while st.sources.get(&source).map_or(0, |p| p.handshakes) >= l.max_handshakes_per_source
            {
                let Some(v) = st.oldest_of(source, true) else {
                    break;
                };
                victims.extend(st.remove(v));
            }
        }
        while st.entries.len() >= l.max_connections {
            let Some(v) = st.oldest(false) else {
                drop(st);
                self.kill(victims);
                return Err(Closed::RefusedTotal);
            };
            victims.extend(st.remove(v));
        }
        if tls {
            while st.handshakes() >= l.max_handshakes {
                let Some(v) = st.oldest(true) else { break };
                victims.extend(st.remove(v));
            }
        }
        st.next_id += 1;
        let id = st.next_id;
        let stamp = st.stamp();
        let phase = if tls { Phase::Handshake } else { Phase::Idle };
        let (kill, killed) = oneshot::channel();
        st.entries.insert(
            id,
            Entry {
                source,
                phase,
                stamp,
                in_flight: 0,
                kill: Some(kill),
            },
        );
        match phase {
            Phase::Handshake => st.handshaking.insert(stamp, id),
            _ => st.idle.insert(stamp, id),
        };
        let p = st.sources.entry(source).or_default();
        p.connections += 1;
        if tls {
            p.handshakes += 1;
        }
        p.ids.push(id);
        self.open_gauge(&st);
        drop(st);
        self.kill(victims);
        Ok((
            Slot {
                pool: self.clone(),
                id,
            },
            killed,
        ))
    }

    /// Closes the shed connections (their tasks drop them) and counts them.
    fn kill(&self, victims: Vec<(Phase, Option<oneshot::Sender<()>>)>) {
        for (phase, kill) in victims {
            self.counters.count(if phase == Phase::Handshake {
                Closed::ShedHandshake
            } else {
                Closed::ShedIdle
            });
            if let Some(k) = kill {
                let _ = k.send(());
            }
        }
    }

    fn release(&self, id: u64) {
        if let Ok(mut st) = self.state.lock()
            && st.remove(id).is_some()
        {
            self.open_gauge(&st);
        }
    }

    /// Moves `id` out of its handshake or idleness into `to`.
    fn move_to(st: &mut PoolState, id: u64, to: Phase) {
        let stamp = st.stamp();
        let Some(e) = st.entries.get_mut(&id) else {
            return;
        };
        let (from, old) = (e.phase, e.stamp);
        e.phase = to;
        e.stamp = stamp;
        let source = e.source;
        match from {
            Phase::Handshake => {
                st.handshaking.remove(&old);
                if let Some(p) = st.sources.get_mut(&source) {
                    p.handshakes -= 1;
                }
            }
            Phase::Idle => {
                st.idle.remove(&old);
            }
            Phase::Busy => {}
        }
        if to == Phase::Idle {
            st.idle.insert(stamp, id);
        }
    }

    fn handshake_done(&self, id: u64) {
        if let Ok(mut st) = self.state.lock() {
            Self::move_to(&mut st, id, Phase::Idle);
        }
    }

    fn request_started(self: &Arc<Self>, id: u64) -> BusyGuard {
        if let Ok(mut st) = self.state.lock()
            && let Some(e) = st.entries.get_mut(&id)
        {
            e.in_flight += 1;
            if e.phase != Phase::Busy {
                Self::move_to(&mut st, id, Phase::Busy);
            }
        }
        BusyGuard {
            pool: self.clone(),
            id,
        }
    }

    fn request_done(&self, id: u64) {
        if let Ok(mut st) = self.state.lock()
            && let Some(e) = st.entries.get_mut(&id)
        {
            e.in_flight = e.in_flight.saturating_sub(1);
            if e.in_flight == 0 {
                Self::move_to(&mut st, id, Phase::Idle);
            }
        }
    }
}

/// Logs a listener's summary every `every` until its pool is gone.
async fn summaries(pool: Weak<Pool>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        pool.counters.summarize(pool.open(), every);
    }
}

/// A stream whose writes fail once they have been blocked for `timeout` (the peer stopped reading).
struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    blocked: Option<Pin<Box<Sleep>>>,
    counters: Arc<Counters>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, timeout: Duration, counters: Arc<Counters>) -> Self {
        Self {
            inner,
            timeout,
            blocked: None,
            counters,
        }
    }

    /// Called when a write could not proceed: pending until the deadline, then an error.
    fn blocked<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let sleep = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.counters.count(Closed::WriteTimeout);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client did not read for write_timeout",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.blocked = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.blocked(cx),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, r)
    }
}

/// Why a request body was cut off.
#[derive(Debug, thiserror::Error)]
#[error("the request body paused longer than body_timeout ({0:?})")]
struct BodyTimedOut(Duration);

/// A request body that fails when the client pauses longer than `timeout` between two pieces of it.
struct BodyDeadline {
    inner: Incoming,
    timeout: Duration,
    waiting: Option<Pin<Box<Sleep>>>,
    counters: Arc<Counters>,
}

impl HttpBody for BodyDeadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.waiting = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.counters.count(Closed::BodyTimeout);
                        Poll::Ready(Some(Err(Box::new(BodyTimedOut(timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body that keeps its connection marked busy until it has been written (or dropped).
struct Answer {
    inner: Body,
    _busy: BusyGuard,
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a listener's connection tasks share.
struct Shared {
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    http1: Http1Options,
    counters: Arc<Counters>,
}

/// An HTTP/1.1 server for one listener, plain or TLS, with bounded connections (see the module
/// documentation). Handlers see the peer as `ConnectInfo<SocketAddr>` (plain) or `ConnectInfo<TlsPeer>`
/// (TLS, with the client's certificate chain).
pub struct HttpServer {
    listener: TcpListener,
    local: SocketAddr,
    name: &'static str,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnectionLimits,
    metrics: Option<Arc<Metrics>>,
    summary_every: Duration,
    http1: Http1Options,
}

impl HttpServer {
    /// Binds `addr` for the listener called `name` (in logs and metrics: `api`, `est`), with the limits
    /// [`ConnectionLimits::new`] derives from 1,024 connections until [`HttpServer::limits`] says otherwise.
    pub async fn bind(name: &'static str, addr: SocketAddr) -> io::Result<Self> {
        Self::from_listener(name, TcpListener::bind(addr).await?)
    }

    /// Serves on an already bound `listener`.
    pub fn from_listener(name: &'static str, listener: TcpListener) -> io::Result<Self> {
        let local = listener.local_addr()?;
        Ok(Self {
            listener,
            local,
            name,
            tls: None,
            limits: ConnectionLimits::new(1024),
            metrics: None,
            summary_every: SUMMARY_EVERY,
            http1: Http1Options::default(),
        })
    }

    /// Terminates TLS with `config` (see [`crate::tls::server_config`]).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Bounds connections by `limits`.
    pub fn limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits.sane();
        self
    }

    /// Counts refusals, sheds and timeouts in `metrics`.
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Logs the summary of refusals, sheds and timeouts at most this often (default 10 s).
    pub fn summary_every(mut self, every: Duration) -> Self {
        self.summary_every = every.max(Duration::from_millis(10));
        self
    }

    /// Speaks HTTP/1.1 with `options` (default: [`Http1Options::default`]).
    pub fn http1_options(mut self, options: Http1Options) -> Self {
        self.http1 = options;
        self
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The HTTP/1 settings of every connection: the limits' header timeout, and the listener's options
    /// (header case is [`CanonicalHeads`]' business, on the stream).
    fn http1(limits: &ConnectionLimits, options: Http1Options) -> http1::Builder {
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(options.keep_alive());
        b
    }

    /// Serves `app` until `stop` resolves; then stops accepting, lets connections finish the request they
    /// are answering (for up to 10 s), and returns.
    pub async fn serve(self, app: Router, stop: impl Future<Output = ()> + Send) {
        let counters = Arc::new(Counters::new(self.name, self.metrics.as_deref()));
        let pool = Arc::new(Pool {
            limits: self.limits.clone(),
            counters: counters.clone(),
            state: Mutex::default(),
        });
        let shared = Arc::new(Shared {
            app,
            tls: self.tls.clone().map(TlsAcceptor::from),
            limits: self.limits.clone(),
            http1: self.http1,
            counters: counters.clone(),
        });
        tokio::spawn(summaries(Arc::downgrade(&pool), self.summary_every));
        let (stop_tx, stop_rx) = watch::channel(false);
        // Every connection task holds a receiver: when all are gone, every connection has ended.
        let (done_tx, done_rx) = watch::channel(());
        let mut stop = pin!(stop);
        loop {
            let (tcp, remote) = tokio::select! {
                a = self.listener.accept() => match a {
                    Ok(x) => x,
                    Err(_) => {
                        // Out of descriptors, most likely: counted, and a pause instead of a spin.
                        counters.count(Closed::AcceptFailed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let (slot, killed) = match pool.admit(Source::from(remote.ip()), shared.tls.is_some()) {
                Ok(x) => x,
                Err(refusal) => {
                    counters.count(refusal);
                    if shared.tls.is_none() {
                        refuse(&tcp, refusal);
                    }
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (shared, stop, done) = (shared.clone(), stop_rx.clone(), done_rx.clone());
            tokio::spawn(async move {
                connection(shared, slot, tcp, remote, killed, stop).await;
                drop(done);
            });
        }
        drop(self.listener);
        let _ = stop_tx.send(true);
        drop(done_rx);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, done_tx.closed()).await;
        counters.summarize(pool.open(), self.summary_every);
    }
}

/// Answers a refused plain-HTTP connection with a 503 in one non-blocking write (a fresh socket's buffer
/// has room), then closes it.
fn refuse(tcp: &TcpStream, why: Closed) {
    let limit = match why {
        Closed::RefusedSource => "max_connections_per_source",
        _ => "max_connections",
    };
    let body = format!(
        "{{\"type\":\"urn:vouch:problem:too-many-connections\",\"title\":\"Service Unavailable\",\"status\":503,\
         \"detail\":\"the server holds its maximum of connections ({limit}); retry shortly\"}}"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.try_write(answer.as_bytes());
}

/// Resolves once `stop` is true.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// One connection from accept to close: the TLS handshake (if any), then HTTP/1.1.
async fn connection(
    shared: Arc<Shared>,
    slot: Slot,
    tcp: TcpStream,
    remote: SocketAddr,
    mut killed: oneshot::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let io = WriteDeadline::new(tcp, shared.limits.write_timeout, shared.counters.clone());
    let Some(acceptor) = &shared.tls else {
        if shared.http1.canonical_header_case {
            return http(&shared, slot, CanonicalHeads::new(io), remote, killed, stop).await;
        }
        return http(&shared, slot, io, remote, killed, stop).await;
    };
    let handshake = tokio::time::timeout(shared.limits.handshake_timeout, acceptor.accept(io));
    let tls = tokio::select! {
        r = handshake => r,
        _ = &mut killed => return,
        () = stopped(&mut stop) => return,
    };
    let tls = match tls {
        Ok(Ok(tls)) => tls,
        Ok(Err(_)) => return shared.counters.count(Closed::HandshakeFailed),
        Err(_) => return shared.counters.count(Closed::HandshakeTimeout),
    };
    slot.pool.handshake_done(slot.id);
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.to_vec()).collect())
        .unwrap_or_default();
    let peer = TlsPeer {
        remote,
        chain: Arc::new(chain),
    };
    if shared.http1.canonical_header_case {
        return http(&shared, slot, CanonicalHeads::new(tls), peer, killed, stop).await;
    }
    http(&shared, slot, tls, peer, killed, stop).await;
}

/// Serves HTTP/1.1 on `io` until the client leaves, a timeout closes it, it is shed, or shutdown.
async fn http<Io, Peer>(
    shared: &Shared,
    slot: Slot,
    io: Io,
    peer: Peer,
    mut killed: oneshot::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Peer: Clone + Send + Sync + 'static,
{
    let app = shared.app.clone();
    let body_timeout = shared.limits.body_timeout;
    let counters = shared.counters.clone();
    let slot = Arc::new(slot);
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = slot.pool.request_started(slot.id);
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ConnectInfo(peer.clone()));
        let body = Body::new(BodyDeadline {
            inner: body,
            timeout: body_timeout,
            waiting: None,
            counters: counters.clone(),
        });
        let answer = app.clone().oneshot(hyper::Request::from_parts(parts, body));
        async move {
            let resp = match answer.await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(resp.map(|inner| Answer { inner, _busy: busy }))
        }
    });
    let conn =
        HttpServer::http1(&shared.limits, shared.http1).serve_connection(TokioIo::new(io), service);
    let mut conn = pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r
                    && e.is_timeout()
                {
                    shared.counters.count(Closed::HeaderTimeout);
                }
                return;
            }
            // Shed: dropping the connection closes it.
            _ = &mut killed => return,
            () = stopped(&mut stop), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pool(limits: ConnectionLimits) -> Arc<Pool> {
        Arc::new(Pool {
            limits: limits.sane(),
            counters: Arc::new(Counters::new("test", None)),
            state: Mutex::default(),
        })
    }

    fn src(last: u8) -> Source {
        Source::from(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn reasons_are_listed_in_their_own_order() {
        for (i, c) in Closed::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
        }
    }

    #[test]
    fn ipv6_sources_are_their_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::from(a), Source::from(b));
        assert_ne!(Source::from(a), Source::from(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            Source::from(mapped),
            Source::from(IpAddr::from([10, 0, 0, 1]))
        );
    }

    #[test]
    fn the_oldest_idle_connection_makes_room_and_busy_ones_never_do() {
        let mut l = ConnectionLimits::new(3);
        l.max_connections_per_source = 3;
        let p = pool(l);
        let (a, mut ka) = p.admit(src(1), false).unwrap();
        let (b, mut kb) = p.admit(src(2), false).unwrap();
        let (c, mut kc) = p.admit(src(3), false).unwrap();
        let _busy_a = p.request_started(a.id);
        // Full: the oldest idle one (b, since a is busy) is shed.
        let (_d, _kd) = p.admit(src(4), false).unwrap();
        assert!(kb.try_recv().is_ok());
        assert!(ka.try_recv().is_err() && kc.try_recv().is_err());
        drop(b);
        let _busy_c = p.request_started(c.id);
        let (_e, _ke) = p.admit(src(5), false).unwrap(); // sheds d
        // a, c busy and e idle: e goes; then all are busy and the next is refused.
        let _f = p.admit(src(6), false).unwrap();
        let _busy_f = p.request_started(_f.0.id);
        assert_eq!(p.admit(src(7), false).err(), Some(Closed::RefusedTotal));
        assert_eq!(p.open(), 3);
    }

    #[test]
    fn a_source_over_its_share_sheds_its_own_oldest_and_handshakes_are_capped() {
        let mut l = ConnectionLimits::new(100);
        l.max_connections_per_source = 2;
        l.max_handshakes = 3;
        l.max_handshakes_per_source = 2;
        let p = pool(l);
        let (_x, mut kx) = p.admit(src(9), true).unwrap();
        let (_a, mut ka) = p.admit(src(1), true).unwrap();
        let (_b, _kb) = p.admit(src(1), true).unwrap();
        // Source 1 is at its share: its own oldest goes, not source 9's.
        let (_c, _kc) = p.admit(src(1), true).unwrap();
        assert!(ka.try_recv().is_ok());
        assert!(kx.try_recv().is_err());
        // Three handshakes in flight (x, b, c): a fourth from elsewhere sheds the oldest (x).
        let (_d, _kd) = p.admit(src(2), true).unwrap();
        assert!(kx.try_recv().is_ok());
        let st = p.state.lock().unwrap();
        assert_eq!(st.handshakes(), 3);
        assert_eq!(st.entries.len(), 3);
    }
}
