//! One device connection, its I/O: TLS and the certificate, CONNECT, then the two directions of packets
//! pumped between sockets. What is decided — admission and each packet's fate — is sans-I/O, in
//! `admission.rs` and `relay.rs`, with their unit tests; this file reads the store and the wire for them.

use std::collections::HashMap;
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
use vouch_store::CertStatus;
use vouch_types::{CertFingerprint, DeviceId};

use crate::Inner;
use crate::admission::{self, Authz, ConnectRequest};
use crate::close::CloseReason;
use crate::pump::{Pump, reply, write_within};
use crate::relay::{self, Decide, DownState, Rules, UpState, frame_reason};

/// Answers the gateway writes itself, queued for the other direction; a peer that lets more pile up is
/// not reading, and is closed.
const REPLIES: usize = 256;
/// Time allowed to reach the broker.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a closing session may spend on its last writes (answers queued, the goodbye, TLS close_notify),
/// whatever the peer does: a cut closes within a tick of the follower plus this.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_millis(250);

/// Traffic counted since the last observation window closed.
#[derive(Default)]
pub(crate) struct Traffic {
    pub(crate) msgs_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) msgs_out: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) denied: AtomicU64,
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
        self.authz
            .lock()
            .map(|mut a| a.publish(&*inner.decisions, topic, &*inner.clock))
            .unwrap_or(false)
    }

    fn subscribe(&self, inner: &Inner, filter: &str) -> bool {
        self.authz
            .lock()
            .map(|mut a| a.subscribe(&*inner.decisions, filter, &*inner.clock))
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
    let identity = admission::certificate(
        inner
            .store
            .get_certificate_by_fingerprint(fingerprint)
            .await,
        now,
    );
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

/// Reads the certificate's device and admits the CONNECT ([`admission::admit`]) before anything is sent
/// upstream.
async fn admit(
    inner: &Inner,
    identity: Result<vouch_store::CertificateRecord, CloseReason>,
    connect: &Connect<'_>,
) -> Result<(vouch_store::CertificateRecord, Authz), CloseReason> {
    let cert = identity?;
    let request = ConnectRequest {
        will_topic: connect.will_topic,
        service: &inner.config.service,
    };
    admission::client_id(&cert, connect.client_id)?;
    let device = inner.store.get_device(cert.device_id).await;
    let authz = admission::admit(
        &cert,
        device,
        &request,
        &*inner.decisions,
        inner.observer.known_topics(cert.device_id),
        &*inner.clock,
    )?;
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
