//! One device connection: TLS and the certificate, CONNECT, then the two directions of packets, each decided
//! on its way through.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use vouch_mqtt::{
    Connect, Framer, Packet, PacketKind, Protocol, ReasonCode, connack, disconnect, parse,
};
use vouch_policy::{
    DeviceAction, DeviceContext, DeviceFacts, PreparedDevice, Resource, TopicFilter, TopicName,
};
use vouch_store::{CertStatus, StoreError};
use vouch_types::{CertFingerprint, DeviceId, Timestamp};

use crate::Inner;
use crate::relay::{self, Decide, DownState, Flow, Rules, UpState, frame_reason};

/// Decisions remembered per session and kind; past this, the memory starts over.
const CACHE: usize = 4096;
/// Distinct topics remembered per device to tell new topics from known ones.
const MAX_KNOWN_TOPICS: usize = 4096;
/// Answers the gateway writes itself, queued for the other direction; a peer that lets more pile up is
/// not reading, and is closed.
const REPLIES: usize = 256;
/// Time allowed to reach the broker.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a closing session may spend on its last writes (answers queued, the goodbye, TLS close_notify),
/// whatever the peer does: a cut closes within a tick of the follower plus this.
const CLOSE_GRACE: Duration = Duration::from_millis(250);

/// Why a connection was refused or a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client sent no certificate.
    NoCertificate,
    /// The client's certificate does not chain to a trusted issuer.
    UnknownIssuer,
    /// The client's certificate has expired (or is not yet valid).
    CertificateExpired,
    /// The client's certificate was refused for another reason.
    BadCertificate,
    /// The TLS handshake failed.
    HandshakeFailed,
    /// The TLS handshake did not finish in time.
    HandshakeTimeout,
    /// The certificate chains to a trusted issuer but Vouch has no record of it.
    CertificateNotOnRecord,
    /// The certificate is revoked.
    CertificateRevoked,
    /// No complete CONNECT arrived in time.
    ConnectTimeout,
    /// A packet broke the protocol's order (no CONNECT first, a second CONNECT, a server's packet).
    ProtocolError,
    /// A packet was malformed.
    MalformedPacket,
    /// A packet was larger than allowed.
    PacketTooLarge,
    /// CONNECT's client id is not the certificate's device.
    ClientIdMismatch,
    /// Not MQTT 3.1, 3.1.1 or 5.0.
    UnsupportedProtocol,
    /// The certificate's device is not in the registry.
    UnknownDevice,
    /// The policy refused the CONNECT (or, for 3.1.1 set to disconnect, a PUBLISH).
    NotAuthorized,
    /// A live session lost its right to continue (lifecycle or policy change).
    AccessWithdrawn,
    /// The broker could not be reached.
    UpstreamUnavailable,
    /// The broker refused the CONNECT or closed the session.
    UpstreamClosed,
    /// The client ended the session (DISCONNECT, or closing the connection).
    ClientClosed,
    /// The client did not read what the gateway sent it (its answers, or deliveries for `write_timeout`).
    SlowClient,
    /// The broker did not read what the gateway forwarded for `write_timeout`.
    SlowUpstream,
    /// The store could not be read.
    StoreUnavailable,
    /// The gateway already holds its maximum of sessions.
    TooManySessions,
    /// Its source already holds its maximum of connections not yet authenticated.
    TooManyPending,
}

impl CloseReason {
    /// Its name in logs and counters.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::UnknownIssuer => "unknown_issuer",
            Self::CertificateExpired => "certificate_expired",
            Self::BadCertificate => "bad_certificate",
            Self::HandshakeFailed => "handshake_failed",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::CertificateNotOnRecord => "certificate_not_on_record",
            Self::CertificateRevoked => "certificate_revoked",
            Self::ConnectTimeout => "connect_timeout",
            Self::ProtocolError => "protocol_error",
            Self::MalformedPacket => "malformed_packet",
            Self::PacketTooLarge => "packet_too_large",
            Self::ClientIdMismatch => "client_id_mismatch",
            Self::UnsupportedProtocol => "unsupported_protocol",
            Self::UnknownDevice => "unknown_device",
            Self::NotAuthorized => "not_authorized",
            Self::AccessWithdrawn => "access_withdrawn",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamClosed => "upstream_closed",
            Self::ClientClosed => "client_closed",
            Self::SlowClient => "slow_client",
            Self::SlowUpstream => "slow_upstream",
            Self::StoreUnavailable => "store_unavailable",
            Self::TooManySessions => "too_many_sessions",
            Self::TooManyPending => "too_many_pending",
        }
    }

    /// Whether the gateway ended a live session on its own (the broker is told with a DISCONNECT, so the
    /// client's will is not published, and a 5.0 client is told why).
    fn is_cut(self) -> bool {
        matches!(
            self,
            Self::CertificateRevoked
                | Self::CertificateExpired
                | Self::AccessWithdrawn
                | Self::NotAuthorized
                | Self::ProtocolError
                | Self::MalformedPacket
                | Self::PacketTooLarge
                | Self::SlowClient
                | Self::SlowUpstream
        )
    }

    /// What a 5.0 client is told when its session is cut.
    fn code(self) -> ReasonCode {
        match self {
            Self::NotAuthorized => ReasonCode::NotAuthorized,
            Self::MalformedPacket | Self::ProtocolError => ReasonCode::MalformedPacket,
            Self::PacketTooLarge => ReasonCode::PacketTooLarge,
            _ => ReasonCode::AdministrativeAction,
        }
    }

    /// What CONNACK says when the connection is refused at CONNECT.
    fn connack_code(self) -> ReasonCode {
        match self {
            Self::ClientIdMismatch => ReasonCode::ClientIdentifierNotValid,
            Self::UnsupportedProtocol => ReasonCode::UnsupportedProtocolVersion,
            Self::UpstreamUnavailable | Self::StoreUnavailable => ReasonCode::ServerUnavailable,
            _ => ReasonCode::NotAuthorized,
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Traffic counted since the last observation window closed.
#[derive(Default)]
pub(crate) struct Traffic {
    pub(crate) msgs_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) msgs_out: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) denied: AtomicU64,
}

/// What a session decides with: the device as prepared for the engine, and the decisions made so far.
pub(crate) struct Authz {
    pub(crate) facts: DeviceFacts,
    pub(crate) prepared: PreparedDevice,
    pub(crate) not_after: Timestamp,
    publish: HashMap<String, bool>,
    subscribe: HashMap<String, bool>,
    /// Topics published to in this window, and how many of them were new.
    pub(crate) topics: HashSet<String>,
    pub(crate) new_topics: u32,
    /// Topics the device published to before, shared by its sessions and kept across reconnects.
    known: std::sync::Arc<Mutex<HashSet<String>>>,
}

impl Authz {
    /// Forgets every decision (the device, its certificate or the policies changed).
    pub(crate) fn forget(&mut self) {
        self.publish.clear();
        self.subscribe.clear();
    }

    fn decide(&mut self, inner: &Inner, action: DeviceAction, topic: &str) -> bool {
        let cache = if action == DeviceAction::Publish {
            &mut self.publish
        } else {
            &mut self.subscribe
        };
        if let Some(&v) = cache.get(topic) {
            return v;
        }
        let resource = if action == DeviceAction::Publish {
            TopicName::new(topic).map(Resource::Topic)
        } else {
            TopicFilter::new(topic).map(Resource::Subscription)
        };
        let allowed = match resource {
            Ok(r) => {
                let ctx = context(inner, self.not_after, &self.facts);
                inner
                    .decisions
                    .decide_prepared(&self.facts, &self.prepared, action, &r, &ctx)
                    .allowed
            }
            // Not a topic MQTT allows (a wildcard in a topic name, say): never forwarded.
            Err(_) => false,
        };
        if cache.len() >= CACHE {
            cache.clear();
        }
        cache.insert(topic.to_owned(), allowed);
        allowed
    }

    /// Whether `connect` is still allowed.
    pub(crate) fn may_connect(&self, inner: &Inner) -> bool {
        let ctx = context(inner, self.not_after, &self.facts);
        inner
            .decisions
            .decide_prepared(
                &self.facts,
                &self.prepared,
                DeviceAction::Connect,
                &Resource::Service(inner.config.service.clone()),
                &ctx,
            )
            .allowed
    }
}

fn context(inner: &Inner, not_after: Timestamp, facts: &DeviceFacts) -> DeviceContext {
    // The one builder every decision point uses (the score is read from the record, which the trust service
    // writes; a change reaches live sessions through the event log like any other change to the record).
    DeviceContext::for_device(facts, inner.clock.now(), Some(not_after))
}

/// A live session, as the gateway's other parts see it.
pub(crate) struct Session {
    pub(crate) device: DeviceId,
    /// Where the device connected from.
    pub(crate) remote: std::net::IpAddr,
    pub(crate) fingerprint: CertFingerprint,
    pub(crate) protocol: Protocol,
    pub(crate) authz: Mutex<Authz>,
    pub(crate) close: watch::Sender<Option<CloseReason>>,
    pub(crate) traffic: Traffic,
    /// SUBSCRIBEs forwarded narrowed, by packet id: which of the client's filters were kept back.
    pending_subacks: Mutex<HashMap<u16, Vec<bool>>>,
}

impl Session {
    /// Ends the session for `reason` (the first reason given wins).
    pub(crate) fn end(&self, reason: CloseReason) {
        self.close.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(reason);
                true
            } else {
                false
            }
        });
    }

    fn publish(&self, inner: &Inner, topic: &str) -> bool {
        let Ok(mut a) = self.authz.lock() else {
            return false;
        };
        let allowed = a.decide(inner, DeviceAction::Publish, topic);
        if allowed && !a.topics.contains(topic) {
            a.topics.insert(topic.to_owned());
            let known = a.known.clone();
            let Ok(mut known) = known.lock() else {
                return allowed;
            };
            if !known.contains(topic) {
                a.new_topics += 1;
                if known.len() < MAX_KNOWN_TOPICS {
                    known.insert(topic.to_owned());
                }
            }
        }
        allowed
    }

    fn subscribe(&self, inner: &Inner, filter: &str) -> bool {
        self.authz
            .lock()
            .map(|mut a| a.decide(inner, DeviceAction::Subscribe, filter))
            .unwrap_or(false)
    }

    fn denied(&self, inner: &Inner) {
        self.traffic.denied.fetch_add(1, Ordering::Relaxed);
        inner.counters.denied.fetch_add(1, Ordering::Relaxed);
    }
}

/// A live session as the relay sees it: decisions by the policy engine, counted in the session's traffic.
struct Live<'a> {
    inner: &'a Inner,
    s: &'a Session,
}

impl Decide for Live<'_> {
    fn publish(&self, topic: &str) -> bool {
        self.s.publish(self.inner, topic)
    }

    fn subscribe(&self, filter: &str) -> bool {
        self.s.subscribe(self.inner, filter)
    }

    fn denied(&self) {
        self.s.denied(self.inner);
    }

    fn forwarded_in(&self, bytes: usize) {
        self.s.traffic.msgs_in.fetch_add(1, Ordering::Relaxed);
        (self.s.traffic.bytes_in).fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn forwarded_out(&self, bytes: usize) {
        self.s.traffic.msgs_out.fetch_add(1, Ordering::Relaxed);
        (self.s.traffic.bytes_out).fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn narrowed(&self, packet_id: u16, refused: Vec<bool>) {
        if let Ok(mut p) = self.s.pending_subacks.lock() {
            p.insert(packet_id, refused);
        }
    }

    fn take_narrowed(&self, packet_id: u16) -> Option<Vec<bool>> {
        self.s
            .pending_subacks
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&packet_id))
    }
}

/// Serves one connection to its end, counting and logging why it ended. `pending` counts it against its
/// source until it is authenticated.
pub(crate) async fn run(
    inner: Arc<Inner>,
    tcp: TcpStream,
    remote: SocketAddr,
    pending: crate::Pending,
) {
    let (reason, device) = serve(&inner, tcp, remote, pending).await;
    inner.counters.closed(reason);
    match (reason, device) {
        (CloseReason::ClientClosed, Some(d)) => {
            tracing::debug!(%remote, device = %d, "session closed by the client")
        }
        (r, Some(d)) => tracing::info!(%remote, device = %d, reason = %r, "session closed"),
        // Before a device is named: counted, and logged in the gateway's summary line, not one line each.
        (r, None) => {
            inner.counters.anonymous(r);
            tracing::debug!(%remote, reason = %r, "connection refused");
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn serve(
    inner: &Arc<Inner>,
    tcp: TcpStream,
    remote: SocketAddr,
    pending: crate::Pending,
) -> (CloseReason, Option<DeviceId>) {
    let cfg = &inner.config;
    let deadline = cfg.write_timeout;
    let mut tls = match tokio::time::timeout(cfg.handshake_timeout, inner.tls.accept(tcp)).await {
        Err(_) => return (CloseReason::HandshakeTimeout, None),
        Ok(Err(e)) => return (handshake_reason(&e), None),
        Ok(Ok(s)) => s,
    };
    let Some(leaf) = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
    else {
        return (CloseReason::NoCertificate, None);
    };
    let fingerprint = CertFingerprint::from_bytes(Sha256::digest(&leaf).into());
    let now = inner.clock.now();
    // Who the certificate names, by Vouch's record of it (not by parsing names out of it): an imported or
    // renewed certificate maps the same way, and revocation is the store's live state, not a CRL's age.
    let identity = match inner
        .store
        .get_certificate_by_fingerprint(fingerprint)
        .await
    {
        Err(_) => Err(CloseReason::StoreUnavailable),
        Ok(None) => Err(CloseReason::CertificateNotOnRecord),
        Ok(Some(c)) if matches!(c.status, CertStatus::Revoked { .. }) => {
            Err(CloseReason::CertificateRevoked)
        }
        Ok(Some(c)) if !c.is_valid_at(now) => Err(CloseReason::CertificateExpired),
        Ok(Some(c)) => Ok(c),
    };
    let mut buf = Vec::with_capacity(1024);
    let framer = Framer::new(cfg.max_packet);
    let first = tokio::time::timeout(cfg.connect_timeout, async {
        loop {
            match framer.next(&buf) {
                Ok(Some(raw)) => return Ok(raw.bytes.len()),
                Ok(None) => {}
                Err(e) => return Err(frame_reason(&e)),
            }
            match tls.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Err(CloseReason::ClientClosed),
                Ok(_) => {}
            }
        }
    })
    .await;
    let device = identity.as_ref().ok().map(|c| c.device_id);
    let connect_len = match first {
        Err(_) => return (CloseReason::ConnectTimeout, device),
        Ok(Err(r)) => return (r, device),
        Ok(Ok(n)) => n,
    };
    let connect = match framer.next(&buf) {
        Ok(Some(raw)) if raw.kind == PacketKind::Connect => match parse(&raw, Protocol::V311) {
            Ok(Packet::Connect(c)) => c,
            Err(vouch_mqtt::ParseError::UnsupportedProtocol { .. }) => {
                let _ = write_within(
                    deadline,
                    &mut tls,
                    &connack(
                        Protocol::V311,
                        false,
                        ReasonCode::UnsupportedProtocolVersion,
                    ),
                )
                .await;
                return (CloseReason::UnsupportedProtocol, device);
            }
            _ => return (CloseReason::MalformedPacket, device),
        },
        _ => return (CloseReason::ProtocolError, device),
    };
    let protocol = connect.protocol;
    let admitted = admit(inner, identity, &connect).await;
    let (cert, authz) = match admitted {
        Ok(x) => x,
        Err(reason) => {
            if let Some(d) = device {
                inner.observer.refused(d, remote.ip());
            }
            let _ = write_within(
                deadline,
                &mut tls,
                &connack(protocol, false, reason.connack_code()),
            )
            .await;
            let _ = tokio::time::timeout(CLOSE_GRACE, tls.shutdown()).await;
            return (reason, device);
        }
    };
    let device = cert.device_id;
    // The same identity live from several addresses at once is what a cloned certificate looks like. It is
    // counted now, before CONNECT reaches the broker: the broker takes the older session over as soon as it
    // reads this CONNECT, and the overlap would be gone by the time this session is registered.
    let places = {
        let mut ips: Vec<std::net::IpAddr> =
            inner.sessions.of(device).iter().map(|s| s.remote).collect();
        ips.push(remote.ip());
        ips.sort_unstable();
        ips.dedup();
        u32::try_from(ips.len()).unwrap_or(u32::MAX)
    };
    let upstream = match tokio::time::timeout(UPSTREAM_TIMEOUT, open_upstream(inner)).await {
        Ok(Ok(u)) => u,
        _ => {
            let _ = write_within(
                deadline,
                &mut tls,
                &connack(protocol, false, ReasonCode::ServerUnavailable),
            )
            .await;
            return (CloseReason::UpstreamUnavailable, Some(device));
        }
    };
    inner
        .counters
        .upstream_connects
        .fetch_add(1, Ordering::Relaxed);
    let (close, close_rx) = watch::channel(None);
    let session = Arc::new(Session {
        device,
        remote: remote.ip(),
        fingerprint,
        protocol,
        // The decisions made while admitting (CONNECT, the will) are kept.
        authz: Mutex::new(authz),
        close,
        traffic: Traffic::default(),
        pending_subacks: Mutex::new(HashMap::new()),
    });
    // CONNECT goes up as the client sent it; whatever the client sent after it goes through the checks.
    let mut up_buf = buf.split_off(connect_len);
    let (mut up_rd, mut up_wr) = tokio::io::split(upstream);
    if write_within(deadline, &mut up_wr, &buf).await.is_err() {
        return (CloseReason::UpstreamUnavailable, Some(device));
    }
    up_buf.reserve(1024);
    inner.sessions.add(&session);
    // Authenticated and admitted: no longer counted against its source's unauthenticated connections.
    drop(pending);
    // A revocation between the first look-up and the registration would have found no session to cut:
    // look once more, now that the follower sees this one.
    if let Ok(Some(c)) = inner
        .store
        .get_certificate_by_fingerprint(fingerprint)
        .await
        && matches!(c.status, CertStatus::Revoked { .. })
    {
        session.end(CloseReason::CertificateRevoked);
    }
    inner.counters.accepted.fetch_add(1, Ordering::Relaxed);
    inner.counters.sessions.fetch_add(1, Ordering::Relaxed);
    inner.observer.connected(device, remote.ip(), places);
    tracing::debug!(%remote, %device, ?protocol, "session open");

    let (cl_rd, cl_wr) = tokio::io::split(tls);
    let (to_client, from_up) = mpsc::channel(REPLIES);
    let (to_broker, from_down) = mpsc::channel(REPLIES);
    let up = Pump {
        s: &session,
        rd: cl_rd,
        wr: &mut up_wr,
        buf: up_buf,
        injected: from_down,
        close: close_rx.clone(),
        write_failed: CloseReason::UpstreamClosed,
        write_stalled: CloseReason::SlowUpstream,
        read_ended: CloseReason::ClientClosed,
        write_timeout: deadline,
        clean: true,
    };
    let rules = Rules {
        max_packet: inner.config.max_packet,
        protocol: session.protocol,
        v311_denied_publish: inner.config.v311_denied_publish,
    };
    let live = Live { inner, s: &session };
    let mut up_state = UpState::default();
    let mut answers = Vec::new();
    let up = up.run(
        |buf, out| {
            let r = relay::up_packets(&rules, &live, &mut up_state, buf, out, &mut answers);
            // Answers decided before a refusal still go out (a SUBACK, then the close).
            for a in answers.drain(..) {
                reply(&to_client, a)?;
            }
            r
        },
        // Cut: an orderly DISCONNECT, so the broker drops the session's will instead of publishing it.
        |reason| reason.is_cut().then(|| vec![0xe0, 0]),
    );
    let down = Pump {
        s: &session,
        rd: &mut up_rd,
        wr: cl_wr,
        buf: Vec::with_capacity(1024),
        injected: from_up,
        close: close_rx,
        write_failed: CloseReason::ClientClosed,
        write_stalled: CloseReason::SlowClient,
        read_ended: CloseReason::UpstreamClosed,
        write_timeout: deadline,
        clean: true,
    };
    let mut down_state = DownState::default();
    let mut acks = Vec::new();
    let protocol = session.protocol;
    let down = down.run(
        |buf, out| {
            let r = relay::down_packets(&rules, &live, &mut down_state, buf, out, &mut acks);
            for a in acks.drain(..) {
                reply(&to_broker, a).map_err(|_| CloseReason::UpstreamClosed)?;
            }
            r
        },
        // A 5.0 client learns why it was cut; a 3.1.1 client's connection just closes.
        |reason| {
            reason
                .is_cut()
                .then(|| disconnect(protocol, reason.code()))
                .flatten()
        },
    );
    tokio::join!(up, down);
    let current = *session.close.borrow();
    let reason = current.unwrap_or(CloseReason::ClientClosed);
    inner.sessions.remove(&session);
    inner.counters.sessions.fetch_sub(1, Ordering::Relaxed);
    inner.observer.disconnected(&session);
    (reason, Some(device))
}

/// Checks the certificate's device, the client id and the policy before anything is sent upstream.
async fn admit(
    inner: &Inner,
    identity: Result<vouch_store::CertificateRecord, CloseReason>,
    connect: &Connect<'_>,
) -> Result<(vouch_store::CertificateRecord, Authz), CloseReason> {
    let cert = identity?;
    if connect.client_id != cert.device_id.to_string() {
        return Err(CloseReason::ClientIdMismatch);
    }
    let device = match inner.store.get_device(cert.device_id).await {
        Ok(d) => d,
        Err(StoreError::NotFound { .. }) => return Err(CloseReason::UnknownDevice),
        Err(_) => return Err(CloseReason::StoreUnavailable),
    };
    let facts = DeviceFacts::from(&device);
    let prepared = inner.decisions.engine().prepare(&facts);
    let mut authz = Authz {
        facts,
        prepared,
        not_after: cert.not_after,
        publish: HashMap::new(),
        subscribe: HashMap::new(),
        topics: HashSet::new(),
        new_topics: 0,
        known: inner.observer.known_topics(cert.device_id),
    };
    if !authz.may_connect(inner) {
        return Err(CloseReason::NotAuthorized);
    }
    // The will is a message the broker publishes for the client later: it must be one the client may
    // publish now.
    if let Some(will) = connect.will_topic
        && !authz.decide(inner, DeviceAction::Publish, will)
    {
        return Err(CloseReason::NotAuthorized);
    }
    Ok((cert, authz))
}

async fn open_upstream(inner: &Inner) -> std::io::Result<Box<dyn Io>> {
    let up = &inner.config.upstream;
    let tcp = TcpStream::connect(up.addr).await?;
    let _ = tcp.set_nodelay(true);
    match &up.tls {
        None => Ok(Box::new(tcp)),
        Some((config, name)) => {
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name.clone(), tcp)
                .await?;
            Ok(Box::new(tls))
        }
    }
}

fn handshake_reason(e: &std::io::Error) -> CloseReason {
    use rustls::{CertificateError, Error};
    match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        Some(Error::NoCertificatesPresented) => CloseReason::NoCertificate,
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            CloseReason::UnknownIssuer
        }
        Some(Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        )) => CloseReason::CertificateExpired,
        Some(Error::InvalidCertificate(_)) => CloseReason::BadCertificate,
        _ => CloseReason::HandshakeFailed,
    }
}

/// Writes and flushes: a TLS stream may keep the tail of a write buffered until flushed.
async fn write<W: AsyncWrite + Unpin>(wr: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    wr.write_all(bytes).await?;
    wr.flush().await
}

/// [`write`], failing once it has taken `deadline` (the peer does not read).
async fn write_within<W: AsyncWrite + Unpin>(
    deadline: Duration,
    wr: &mut W,
    bytes: &[u8],
) -> std::io::Result<()> {
    tokio::time::timeout(deadline, write(wr, bytes))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

fn reply(tx: &mpsc::Sender<Vec<u8>>, bytes: Vec<u8>) -> Result<(), CloseReason> {
    tx.try_send(bytes).map_err(|_| CloseReason::SlowClient)
}

/// How a write of a pump ended.
enum Sent {
    Done,
    /// The peer closed or the write failed.
    Failed,
    /// Blocked for `write_timeout`: the peer does not read.
    Stalled,
    /// The session ended while the write was blocked; `clean` if no packet was left half-written.
    Abandoned {
        clean: bool,
    },
}

/// Writes `bytes` unless the session ends first or the write stays blocked for `deadline`: a write never
/// keeps a closing session open, whatever the peer does.
async fn send<W: AsyncWrite + Unpin>(
    wr: &mut W,
    bytes: &[u8],
    deadline: Duration,
    close: &mut watch::Receiver<Option<CloseReason>>,
) -> Sent {
    let mut written = 0;
    let outcome = {
        let writing = async {
            while written < bytes.len() {
                match wr.write(&bytes[written..]).await {
                    Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
                    Ok(n) => written += n,
                    Err(e) => return Err(e),
                }
            }
            wr.flush().await
        };
        tokio::select! {
            biased;
            _ = close.wait_for(Option::is_some) => None,
            r = tokio::time::timeout(deadline, writing) => Some(r),
        }
    };
    match outcome {
        None => Sent::Abandoned {
            clean: written == 0 || written == bytes.len(),
        },
        Some(Ok(Ok(()))) => Sent::Done,
        Some(Ok(Err(_))) => Sent::Failed,
        Some(Err(_)) => Sent::Stalled,
    }
}

/// One direction of a session: reads from `rd`, lets `step` decide the complete packets (forwarded bytes
/// into its output), writes them to `wr` together with the answers the other direction queued in
/// `injected`, until the session ends; then writes the queued answers and `goodbye` (within
/// [`CLOSE_GRACE`], and only if no packet was left half-written), and closes `wr`. Every write is bounded
/// by `write_timeout` and abandoned as soon as the session ends.
struct Pump<'a, R, W> {
    s: &'a Session,
    rd: R,
    wr: W,
    buf: Vec<u8>,
    injected: mpsc::Receiver<Vec<u8>>,
    close: watch::Receiver<Option<CloseReason>>,
    /// Why the session ends when `wr` fails, when it stays blocked, and when `rd` ends.
    write_failed: CloseReason,
    write_stalled: CloseReason,
    read_ended: CloseReason,
    write_timeout: Duration,
    /// No write was abandoned or failed half-way: the stream is still at a packet boundary.
    clean: bool,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Pump<'_, R, W> {
    /// Writes `bytes` towards this direction's peer (see [`send`]), ending the session if it fails.
    async fn forward(&mut self, bytes: &[u8]) {
        match send(&mut self.wr, bytes, self.write_timeout, &mut self.close).await {
            Sent::Done => {}
            Sent::Failed => {
                self.clean = false;
                self.s.end(self.write_failed);
            }
            Sent::Stalled => {
                self.clean = false;
                self.s.end(self.write_stalled);
            }
            Sent::Abandoned { clean } => self.clean &= clean,
        }
    }

    async fn run(
        mut self,
        mut step: impl FnMut(&[u8], &mut Vec<u8>) -> Result<(usize, Flow), CloseReason>,
        goodbye: impl FnOnce(CloseReason) -> Option<Vec<u8>>,
    ) {
        let s = self.s;
        let mut out = Vec::new();
        loop {
            out.clear();
            let (consumed, flow) = step(&self.buf, &mut out).unwrap_or_else(|r| (0, Flow::Done(r)));
            self.buf.drain(..consumed);
            if !out.is_empty() {
                self.forward(&out).await;
            }
            if let Flow::Done(reason) = flow {
                s.end(reason);
            }
            let current = *self.close.borrow_and_update();
            if let Some(reason) = current {
                if self.clean {
                    // Answers already queued (a refusal's SUBACK) go out before the goodbye.
                    let last = async {
                        while let Ok(bytes) = self.injected.try_recv() {
                            write(&mut self.wr, &bytes).await?;
                        }
                        if let Some(bye) = goodbye(reason) {
                            write(&mut self.wr, &bye).await?;
                        }
                        self.wr.shutdown().await
                    };
                    let _ = tokio::time::timeout(CLOSE_GRACE, last).await;
                }
                return;
            }
            if self.buf.capacity() > 64 * 1024 && self.buf.len() < 1024 {
                self.buf.shrink_to(4096);
            }
            let injected = tokio::select! {
                _ = self.close.changed() => None,
                Some(bytes) = self.injected.recv() => Some(bytes),
                n = self.rd.read_buf(&mut self.buf) => {
                    if matches!(n, Ok(0) | Err(_)) {
                        s.end(self.read_ended);
                    }
                    None
                }
            };
            if let Some(bytes) = injected {
                self.forward(&bytes).await;
            }
        }
    }
}
