//! The "enforce" step of Vouch's loop: an MQTT gateway in front of the broker users already run.
//!
//! A device connects over mutual TLS; its certificate must chain to a Vouch CA (or an imported issuer) and
//! be on record and unrevoked in the store, which names the device. Its CONNECT must carry the device's id
//! as client id. Then every PUBLISH, every SUBSCRIBE filter and every message the broker delivers is
//! decided by the policy engine (through the decision point, so denials leave their trace), with decisions
//! cached per session. Allowed bytes are forwarded unchanged; refusals are answered in the client's
//! protocol version ([`vouch_mqtt`]).
//!
//! Verification is continuous ([`follow`]): the gateway follows the store's event log and the policy
//! version, and when a device's certificate is revoked, its lifecycle state or record changes, or the
//! policies change, it re-decides that device's live sessions within a tick (100 ms) and closes them or
//! narrows them to what is still allowed. Traffic is counted per device and emitted as
//! [`vouch_types::Observation`]s for the trust engine: one batch per window into the store's observation
//! queue (so the trust service sees them from any process), and a broadcast in this process.
//!
//! Architecture Invariant: nothing reaches the broker before the client's certificate, client id and
//! CONNECT were accepted; the upstream connection is opened only then.
//! Architecture Invariant: a gateway holds no state that matters: sessions, caches and counters are
//! rebuilt from the store, so several gateways can serve one fleet and any can restart.

mod admission;
mod close;
mod follow;
mod observe;
mod pump;
mod relay;
mod session;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::ServerName;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast};
use vouch_decide::DecisionPoint;
use vouch_policy::ResourceName;
use vouch_store::Store;
use vouch_types::{Clock, DeviceId, Observation, TrafficWindow};

pub use close::CloseReason;

/// How a refused PUBLISH from an MQTT 3.1.1 client is handled (3.1.1 has no way to say "refused").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeniedPublish {
    /// Drop the message (acknowledged as if delivered, so the client does not resend it).
    Drop,
    /// Close the connection.
    Disconnect,
}

/// Where allowed traffic goes.
#[derive(Clone)]
pub struct Upstream {
    /// The broker's address.
    pub addr: SocketAddr,
    /// TLS towards the broker, with the name its certificate must carry; `None` for plain TCP (loopback).
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

/// How the gateway behaves.
#[derive(Clone)]
pub struct GatewayConfig {
    /// The broker behind the gateway.
    pub upstream: Upstream,
    /// The service name devices `connect` to in policies (`Vouch::Service::"mqtt"`).
    pub service: ResourceName,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed between the handshake and a complete CONNECT.
    pub connect_timeout: Duration,
    /// The largest MQTT packet accepted in either direction, fixed header included.
    pub max_packet: usize,
    /// What happens to a refused PUBLISH from a 3.1.1 client.
    pub v311_denied_publish: DeniedPublish,
    /// The most sessions (and handshakes in progress) held at once; a connection beyond is closed at once.
    /// Each session holds two sockets (device and broker): `vouch` derives this from the descriptor limit.
    pub max_sessions: usize,
    /// The most connections from one source (an IPv4 address, an IPv6 /64) still unauthenticated at once
    /// (in their TLS handshake or before their CONNECT was accepted); one beyond is closed at once.
    pub max_pending_per_source: usize,
    /// How long a write towards the device or the broker may stay blocked (the peer does not read) before
    /// the session is closed (`slow_client`, `slow_upstream`).
    pub write_timeout: Duration,
    /// The length of an observation window.
    pub window: Duration,
}

impl GatewayConfig {
    /// Defaults in front of `upstream`.
    pub fn new(upstream: Upstream) -> Self {
        Self {
            upstream,
            service: ResourceName::mqtt(),
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_packet: 256 * 1024,
            v311_denied_publish: DeniedPublish::Drop,
            max_sessions: 100_000,
            max_pending_per_source: Self::pending_per_source(100_000),
            write_timeout: Duration::from_secs(10),
            window: Duration::from_secs(10),
        }
    }

    /// The default per-source share of unauthenticated connections for `max_sessions`: a sixteenth, at least
    /// 64 (or all of them): devices behind one NAT reconnecting together are not refused for long.
    pub fn pending_per_source(max_sessions: usize) -> usize {
        (max_sessions / 16).max(max_sessions.min(64)).max(1)
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] vouch_store::StoreError),
}

/// A rustls server configuration presenting `chain` (leaf first) with `key_pkcs8` and **requiring** a client
/// certificate that chains to one of `client_roots` (Vouch's CAs and any imported issuers).
pub fn server_config(
    chain: Vec<Vec<u8>>,
    key_pkcs8: Vec<u8>,
    client_roots: &[Vec<u8>],
) -> Result<Arc<rustls::ServerConfig>, GatewayError> {
    vouch_tls::server_config(
        chain,
        key_pkcs8,
        client_roots,
        vouch_tls::ClientAuth::Required,
    )
    .map_err(|e| GatewayError::Tls(e.to_string()))
}

/// Why connections were refused or closed, counted.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GatewayStats {
    /// Sessions open now.
    pub sessions: u64,
    /// Sessions accepted since start.
    pub accepted: u64,
    /// Connections refused and sessions ended, by reason (`no_certificate`, `certificate_revoked`,
    /// `client_closed`, …).
    pub closed: std::collections::BTreeMap<&'static str, u64>,
    /// Packets (or SUBSCRIBE filters, or deliveries) refused by policy.
    pub denied: u64,
    /// Connections opened to the broker.
    pub upstream_connects: u64,
    /// Live sessions re-decided after a change.
    pub reverified: u64,
}

pub(crate) struct Counters {
    sessions: AtomicU64,
    accepted: AtomicU64,
    closed: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Connections refused before they named a device, since the last summary line (logged together, not
    /// one line each: a flood of them would flood the log).
    anonymous: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    denied: AtomicU64,
    upstream_connects: AtomicU64,
    reverified: AtomicU64,
}

impl Counters {
    fn closed(&self, reason: CloseReason) {
        if let Ok(mut m) = self.closed.lock() {
            *m.entry(reason.as_str()).or_default() += 1;
        }
    }

    /// Counts a connection refused before it named a device, for the next summary line.
    pub(crate) fn anonymous(&self, reason: CloseReason) {
        if let Ok(mut m) = self.anonymous.lock() {
            *m.entry(reason.as_str()).or_default() += 1;
        }
    }
}

/// How often the refusals of connections that named no device are logged, as one line.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Logs the anonymous refusals every [`SUMMARY_EVERY`] (when there were any) until the gateway is dropped.
async fn summaries(inner: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(SUMMARY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let counts = match inner.counters.anonymous.lock() {
            Ok(mut m) => std::mem::take(&mut *m),
            Err(_) => continue,
        };
        if counts.is_empty() {
            continue;
        }
        // Turned away for lack of room is worth a warning; failed handshakes and timeouts are the clients'.
        let full = [CloseReason::TooManySessions, CloseReason::TooManyPending]
            .iter()
            .any(|r| counts.contains_key(r.as_str()));
        let counts = counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let sessions = inner.counters.sessions.load(Ordering::Relaxed);
        let secs = SUMMARY_EVERY.as_secs();
        if full {
            tracing::warn!(sessions, %counts, "gateway connections refused before naming a device (last {secs} s)");
        } else {
            tracing::info!(sessions, %counts, "gateway connections refused before naming a device (last {secs} s)");
        }
    }
}

/// Where a connection comes from, for the per-source cap: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6(u64),
}

impl From<std::net::IpAddr> for Source {
    fn from(ip: std::net::IpAddr) -> Self {
        match ip.to_canonical() {
            std::net::IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            std::net::IpAddr::V6(v6) => Self::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// A connection not yet authenticated, counted against its source until dropped.
pub(crate) struct Pending {
    inner: Arc<Inner>,
    source: Source,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Ok(mut m) = self.inner.pending.lock()
            && let Some(n) = m.get_mut(&self.source)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.source);
            }
        }
    }
}

impl Inner {
    /// Counts a new connection from `ip` as pending, unless its source already has its maximum.
    fn pending(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<Pending> {
        let source = Source::from(ip);
        let mut m = self.pending.lock().ok()?;
        let n = m.entry(source).or_default();
        if *n >= self.config.max_pending_per_source {
            return None;
        }
        *n += 1;
        Some(Pending {
            inner: self.clone(),
            source,
        })
    }
}

pub(crate) struct Inner {
    config: GatewayConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    decisions: Arc<DecisionPoint>,
    tls: tokio_rustls::TlsAcceptor,
    counters: Counters,
    sessions: follow::Registry,
    observer: observe::Observer,
    /// Unauthenticated connections by source.
    pending: Mutex<std::collections::HashMap<Source, usize>>,
}

/// A running gateway: accepts device connections and keeps verifying them.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl Gateway {
    /// A gateway deciding with `decisions` over `store`, terminating TLS with `tls` (see [`server_config`]).
    /// Starts following the store (revocations, device changes, policy versions) and the observation
    /// windows; needs a tokio runtime.
    pub async fn start(
        config: GatewayConfig,
        tls: Arc<rustls::ServerConfig>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        decisions: Arc<DecisionPoint>,
    ) -> Result<Self, GatewayError> {
        let head = store.audit_head().await?.map(|(seq, _)| seq);
        let feed = vouch_store::Feed::transient(store.clone(), head).with_filter(follow::matters);
        let window = config.window;
        let (observer, batches) = observe::Observer::new();
        tokio::spawn(observe::write(store.clone(), clock.clone(), batches));
        let inner = Arc::new(Inner {
            config,
            store,
            clock,
            decisions,
            tls: tokio_rustls::TlsAcceptor::from(tls),
            counters: Counters {
                sessions: AtomicU64::new(0),
                accepted: AtomicU64::new(0),
                closed: Mutex::default(),
                anonymous: Mutex::default(),
                denied: AtomicU64::new(0),
                upstream_connects: AtomicU64::new(0),
                reverified: AtomicU64::new(0),
            },
            sessions: follow::Registry::default(),
            observer,
            pending: Mutex::default(),
        });
        tokio::spawn(follow::run(Arc::downgrade(&inner), feed));
        tokio::spawn(summaries(Arc::downgrade(&inner)));
        tokio::spawn(observe::run(Arc::downgrade(&inner), window));
        Ok(Self { inner })
    }

    /// Accepts connections on `listener` until `stop` turns true.
    pub async fn serve(&self, listener: TcpListener, mut stop: tokio::sync::watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.inner.config.max_sessions));
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => {
                    if *stop.borrow() { return; }
                    continue;
                }
            };
            let (tcp, remote) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors, most likely: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                self.inner.counters.closed(CloseReason::TooManySessions);
                self.inner.counters.anonymous(CloseReason::TooManySessions);
                continue;
            };
            let Some(pending) = self.inner.pending(remote.ip()) else {
                self.inner.counters.closed(CloseReason::TooManyPending);
                self.inner.counters.anonymous(CloseReason::TooManyPending);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let inner = self.inner.clone();
            tokio::spawn(async move {
                session::run(inner, tcp, remote, pending).await;
                drop(slot);
            });
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> GatewayStats {
        let c = &self.inner.counters;
        GatewayStats {
            sessions: c.sessions.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            closed: c.closed.lock().map(|m| m.clone()).unwrap_or_default(),
            denied: c.denied.load(Ordering::Relaxed),
            upstream_connects: c.upstream_connects.load(Ordering::Relaxed),
            reverified: c.reverified.load(Ordering::Relaxed),
        }
    }

    /// Observations as they are made (one [`TrafficWindow`] per active device per window).
    pub fn observations(&self) -> broadcast::Receiver<Observation> {
        self.inner.observer.subscribe()
    }

    /// The last windows observed for `device` (oldest first; up to a minute's worth).
    pub fn recent(&self, device: DeviceId) -> Vec<TrafficWindow> {
        self.inner.observer.recent(device)
    }

    /// Closes every window now (tests, and shutdown), emitting their observations.
    pub fn close_window(&self) {
        observe::close_window(&self.inner);
    }
}
