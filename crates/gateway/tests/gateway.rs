//! The gateway against a real Mosquitto with real clients (rumqttc over mTLS, and hand-made packets for bad
//! input): least privilege per packet, continuous verification (revocation and quarantine cut or narrow a
//! live session, measured), and every refusal closing with its reason and nothing reaching the broker.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vouch_gateway::DeniedPublish;
use vouch_types::DeviceState;

const WAIT: Duration = Duration::from_secs(10);

/// Polls a 3.1.1 event loop until `want` says stop; panics on a connection error.
async fn until3(
    events: &mut rumqttc::EventLoop,
    mut want: impl FnMut(&Event) -> bool,
) -> Result<(), ConnectionError> {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = events.poll().await?;
            if want(&e) {
                return Ok(());
            }
        }
    })
    .await
    .expect("timed out waiting for the gateway")
}

/// A 3.1.1 client through the gateway as `d`, once its CONNACK came.
async fn connected3(w: &World, d: &DeviceCreds) -> (AsyncClient, rumqttc::EventLoop) {
    let (client, mut events) = AsyncClient::new(w.mqtt3(&d.id.to_string(), d), 100);
    until3(&mut events, |e| {
        matches!(e, Event::Incoming(Packet::ConnAck(_)))
    })
    .await
    .unwrap();
    (client, events)
}

/// Calls `send(0)`, `send(1)`, … every 10 ms until one returns false (the connection is gone).
fn every_10ms<F, Fut>(mut send: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut(u32) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        for i in 0u32.. {
            if !send(i).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

async fn next_message(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    within: Duration,
) -> Option<(String, Vec<u8>)> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_traffic_flows_and_everything_else_is_refused_per_packet() {
    let w = world(|_| {}).await;
    let a = w.device().await;
    let b = w.device().await;
    let mut seen = watch_broker(&w, "#").await;

    // 3.1.1: own telemetry reaches the broker; another device's topic does not (dropped, acknowledged).
    let (client, mut events) = connected3(&w, &a).await;
    let own = format!("devices/{}/telemetry", a.id);
    let other = format!("devices/{}/telemetry", b.id);
    client
        .publish(&other, QoS::AtLeastOnce, false, "stolen")
        .await
        .unwrap();
    client
        .publish(&own, QoS::AtLeastOnce, false, "21.5")
        .await
        .unwrap();
    let mut acks = 0;
    until3(&mut events, |e| {
        acks += usize::from(matches!(e, Event::Incoming(Packet::PubAck(_))));
        acks == 2
    })
    .await
    .unwrap();
    let (topic, payload) = next_message(&mut seen, WAIT).await.unwrap();
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        (own.as_str(), &b"21.5"[..])
    );

    // SUBSCRIBE: one filter allowed, two refused in the same packet: SUBACK says which.
    client
        .subscribe_many([
            rumqttc::SubscribeFilter::new(format!("devices/{}/#", b.id), QoS::AtLeastOnce),
            rumqttc::SubscribeFilter::new(format!("devices/{}/cmd/#", a.id), QoS::AtLeastOnce),
            rumqttc::SubscribeFilter::new("#".into(), QoS::AtMostOnce),
        ])
        .await
        .unwrap();
    let mut codes = None;
    until3(&mut events, |e| {
        if let Event::Incoming(Packet::SubAck(s)) = e {
            codes = Some(s.return_codes.clone());
            true
        } else {
            false
        }
    })
    .await
    .unwrap();
    use rumqttc::SubscribeReasonCode as R;
    assert_eq!(
        codes.unwrap(),
        vec![R::Failure, R::Success(QoS::AtLeastOnce), R::Failure]
    );
    // The allowed subscription works through the broker.
    let direct = AsyncClient::new(w.direct("operator"), 10);
    direct
        .0
        .publish(
            format!("devices/{}/cmd/reboot", a.id),
            QoS::AtLeastOnce,
            false,
            "now",
        )
        .await
        .unwrap();
    let mut direct_events = direct.1;
    tokio::spawn(async move { while direct_events.poll().await.is_ok() {} });
    let mut got = None;
    until3(&mut events, |e| {
        if let Event::Incoming(Packet::Publish(p)) = e {
            got = Some(p.topic.clone());
            true
        } else {
            false
        }
    })
    .await
    .unwrap();
    assert_eq!(got.unwrap(), format!("devices/{}/cmd/reboot", a.id));

    // 5.0: a refused PUBLISH is answered "not authorized" (0x87), the session stays.
    let (c5, mut e5) = rumqttc::v5::AsyncClient::new(w.mqtt5(&b.id.to_string(), &b), 100);
    c5.publish(
        format!("devices/{}/telemetry", a.id),
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        false,
        "spoof",
    )
    .await
    .unwrap();
    c5.publish(
        format!("devices/{}/telemetry", b.id),
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        false,
        "ok",
    )
    .await
    .unwrap();
    let mut reasons = Vec::new();
    tokio::time::timeout(WAIT, async {
        while reasons.len() < 2 {
            if let rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubAck(p)) =
                e5.poll().await.unwrap()
            {
                reasons.push(p.reason);
            }
        }
    })
    .await
    .unwrap();
    use rumqttc::v5::mqttbytes::v5::PubAckReason;
    assert_eq!(
        reasons,
        vec![PubAckReason::NotAuthorized, PubAckReason::Success]
    );
    let reboot = format!("devices/{}/cmd/reboot", a.id);
    let (mut topic, _) = next_message(&mut seen, WAIT).await.unwrap();
    if topic == reboot {
        topic = next_message(&mut seen, WAIT).await.unwrap().0;
    }
    assert_eq!(topic, format!("devices/{}/telemetry", b.id));
    // Nothing else reached the broker: the refused messages were never forwarded.
    let extra = next_message(&mut seen, Duration::from_millis(300)).await;
    assert!(
        extra
            .as_ref()
            .is_none_or(|(t, _)| t == &format!("devices/{}/cmd/reboot", a.id)),
        "{extra:?}"
    );
    let stats = w.gateway.stats();
    assert!(stats.denied >= 4, "{stats:?}");
    assert_eq!(stats.sessions, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_cuts_a_live_session_within_a_second_and_reconnecting_is_refused() {
    let w = world(|_| {}).await;
    let d = w.device().await;
    let mut seen = watch_broker(&w, "#").await;
    let (client, mut events) = connected3(&w, &d).await;
    let topic = format!("devices/{}/telemetry", d.id);
    let publisher = {
        let (client, topic) = (client.clone(), topic.clone());
        every_10ms(move |i| {
            let (client, topic) = (client.clone(), topic.clone());
            async move {
                client
                    .publish(topic, QoS::AtLeastOnce, false, i.to_string())
                    .await
                    .is_ok()
            }
        })
    };
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        loop {
            if let Err(e) = events.poll().await {
                let _ = closed_tx.send((Instant::now(), e.to_string()));
                return;
            }
        }
    });
    // Publishing: messages arrive.
    assert!(next_message(&mut seen, WAIT).await.is_some());
    let t0 = Instant::now();
    w.revoke(d.serial).await;
    let (closed_at, why) = tokio::time::timeout(WAIT, closed_rx)
        .await
        .unwrap()
        .unwrap();
    let latency = closed_at.duration_since(t0);
    println!("revocation → session closed in {latency:?} ({why})");
    assert!(latency < Duration::from_secs(1), "took {latency:?}");
    publisher.abort();
    // After the cut nothing more arrives from it.
    while next_message(&mut seen, Duration::from_millis(300))
        .await
        .is_some()
    {}
    assert!(
        next_message(&mut seen, Duration::from_millis(500))
            .await
            .is_none()
    );

    // Reconnecting with the revoked certificate is refused at CONNECT.
    let (_c, mut again) = AsyncClient::new(w.mqtt3(&d.id.to_string(), &d), 10);
    let refused = tokio::time::timeout(WAIT, again.poll()).await.unwrap();
    assert!(
        matches!(
            refused,
            Err(ConnectionError::ConnectionRefused(
                ConnectReturnCode::NotAuthorized
            ))
        ),
        "{refused:?}"
    );
    // The live cut and the refused reconnection (counted as its task ends, just after the CONNACK).
    for _ in 0..100 {
        if w.gateway.stats().closed.get("certificate_revoked") == Some(&2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = w.gateway.stats();
    assert_eq!(
        stats.closed.get("certificate_revoked"),
        Some(&2),
        "{stats:?}"
    );
    // The cut is in the device's history.
    let events = w.store.device_events(d.id, None, 100).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.draft.action == vouch_events::Action::SessionCut),
        "no session.cut event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_narrows_a_live_session_within_a_second() {
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::mqttbytes::v5::{Packet as P5, PubAckReason};
    use rumqttc::v5::{AsyncClient as Client5, Event as E5};
    let w = world(|_| {}).await;
    let d = w.device().await;
    let mut seen = watch_broker(&w, "#").await;
    let (client, mut events) = Client5::new(w.mqtt5(&d.id.to_string(), &d), 100);
    let telemetry = format!("devices/{}/telemetry", d.id);
    let update = format!("devices/{}/update/status", d.id);
    let publisher = {
        let (client, topic) = (client.clone(), telemetry.clone());
        every_10ms(move |i| {
            let (client, topic) = (client.clone(), topic.clone());
            async move {
                client
                    .publish(topic, Q5::AtLeastOnce, false, i.to_string())
                    .await
                    .is_ok()
            }
        })
    };
    let (refused_tx, mut refused_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(E5::Incoming(P5::PubAck(p))) if p.reason == PubAckReason::NotAuthorized => {
                    let _ = refused_tx.send(Instant::now());
                }
                Ok(E5::Incoming(P5::Disconnect(_))) | Err(_) => return,
                _ => {}
            }
        }
    });
    assert!(next_message(&mut seen, WAIT).await.is_some());
    let t0 = Instant::now();
    w.transition(d.id, DeviceState::Restricted).await;
    let first_refusal = tokio::time::timeout(WAIT, refused_rx.recv())
        .await
        .unwrap()
        .unwrap();
    let latency = first_refusal.duration_since(t0);
    println!("quarantine → telemetry refused in {latency:?}");
    assert!(latency < Duration::from_secs(1), "took {latency:?}");
    publisher.abort();
    // Narrowed, not cut: the update topic still works over the same session.
    while next_message(&mut seen, Duration::from_millis(300))
        .await
        .is_some()
    {}
    client
        .publish(&update, Q5::AtLeastOnce, false, "fw 1.2.4 requested")
        .await
        .unwrap();
    let (topic, _) = next_message(&mut seen, WAIT).await.unwrap();
    assert_eq!(topic, update);
    assert_eq!(w.gateway.stats().sessions, 1);
    // Released: telemetry flows again on the same session.
    w.transition(d.id, DeviceState::Active).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    client
        .publish(&telemetry, Q5::AtLeastOnce, false, "back")
        .await
        .unwrap();
    let (topic, payload) = next_message(&mut seen, WAIT).await.unwrap();
    assert_eq!((topic, payload), (telemetry, b"back".to_vec()));
}

/// A CONNECT packet (3.1.1) with `client_id`.
fn connect(client_id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0b10, 0, 30];
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    p
}

/// Reads until the gateway closes the connection; returns what it sent.
async fn drain<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut got)).await;
    got
}

async fn closed_for(w: &World, reason: &str) {
    // The reason is counted as the session task ends, just after the socket closes.
    for _ in 0..100 {
        if w.gateway.stats().closed.contains_key(reason) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not closed for {reason}: {:?}", w.gateway.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_the_connection_with_its_reason_and_reaches_nothing() {
    let w = world(|c| {
        c.connect_timeout = Duration::from_millis(500);
        c.max_packet = 4096;
    })
    .await;
    let d = w.device().await;
    let other = w.device().await;
    let mut seen = watch_broker(&w, "#").await;

    // Malformed: a CONNECT whose client id runs past the packet.
    let mut s = w.raw(Some(&d)).await.unwrap();
    s.write_all(&[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 30, 0, 40])
        .await
        .unwrap();
    drain(&mut s).await;
    closed_for(&w, "malformed_packet").await;

    // Oversized: a header announcing 1 MiB is refused before its body is read.
    let mut s = w.raw(Some(&d)).await.unwrap();
    s.write_all(&[0x10, 0x80, 0x80, 0x40]).await.unwrap();
    drain(&mut s).await;
    closed_for(&w, "packet_too_large").await;

    // A CONNECT that never completes.
    let mut s = w.raw(Some(&d)).await.unwrap();
    s.write_all(&[0x10, 30, 0, 4]).await.unwrap();
    drain(&mut s).await;
    closed_for(&w, "connect_timeout").await;

    // A client id that is not the certificate's device: CONNACK "identifier rejected" (2).
    let mut s = w.raw(Some(&d)).await.unwrap();
    s.write_all(&connect(&other.id.to_string())).await.unwrap();
    assert_eq!(drain(&mut s).await, vec![0x20, 2, 0, 2]);
    closed_for(&w, "client_id_mismatch").await;

    // First packet not a CONNECT.
    let mut s = w.raw(Some(&d)).await.unwrap();
    s.write_all(&[0xc0, 0]).await.unwrap();
    drain(&mut s).await;
    closed_for(&w, "protocol_error").await;

    // An expired certificate: refused in the handshake.
    let expired = w.expired(&d).await;
    let r = w.raw(Some(&expired)).await;
    if let Ok(mut s) = r {
        // TLS 1.3: the client learns of the refusal on its first read.
        let _ = s.write_all(&connect(&d.id.to_string())).await;
        drain(&mut s).await;
    }
    closed_for(&w, "certificate_expired").await;

    // A certificate from another CA.
    let foreign = world(|_| {}).await;
    let stranger = foreign.device().await;
    let mut f = stranger.clone();
    f.id = d.id;
    let tls = {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from(w.root.clone()))
            .unwrap();
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![
                rustls_pki_types::CertificateDer::from(stranger.cert.clone()),
                rustls_pki_types::CertificateDer::from(foreign.issuing.clone()),
            ],
            rustls_pki_types::PrivateKeyDer::Pkcs8(stranger.key.clone().into()),
        )
        .unwrap()
    };
    let tcp = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    if let Ok(mut s) = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(
            rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
    {
        let _ = s.write_all(&connect(&stranger.id.to_string())).await;
        drain(&mut s).await;
    }
    closed_for(&w, "unknown_issuer").await;

    // No certificate at all.
    if let Ok(mut s) = w.raw(None).await {
        let _ = s.write_all(&connect(&d.id.to_string())).await;
        drain(&mut s).await;
    }
    closed_for(&w, "no_certificate").await;

    // A garbage TLS stream.
    let mut tcp = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    drain(&mut tcp).await;
    closed_for(&w, "handshake_failed").await;

    // A 3.1.1 device set to be disconnected on a refused PUBLISH.
    let strict = world(|c| c.v311_denied_publish = DeniedPublish::Disconnect).await;
    let s_dev = strict.device().await;
    let (c, mut e) = connected3(&strict, &s_dev).await;
    c.publish("devices/someone-else/x", QoS::AtMostOnce, false, "x")
        .await
        .unwrap();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            if let Err(e) = e.poll().await {
                return e;
            }
        }
    })
    .await
    .unwrap();
    println!("3.1.1 refused publish with disconnect: {end}");
    closed_for(&strict, "not_authorized").await;

    // Nothing of it reached the broker: no session was ever opened upstream.
    let stats = w.gateway.stats();
    assert_eq!(stats.upstream_connects, 0, "{stats:?}");
    assert_eq!(stats.accepted, 0);
    assert!(
        next_message(&mut seen, Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_is_observed_per_device() {
    let w = world(|c| c.window = Duration::from_secs(3600)).await;
    let d = w.device().await;
    let mut obs = w.gateway.observations();
    let (client, mut events) = connected3(&w, &d).await;
    for t in ["a", "b", "a", "c"] {
        client
            .publish(
                format!("devices/{}/{t}", d.id),
                QoS::AtLeastOnce,
                false,
                "12345",
            )
            .await
            .unwrap();
    }
    client
        .publish("elsewhere", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    let mut acks = 0;
    until3(&mut events, |e| {
        acks += usize::from(matches!(e, Event::Incoming(Packet::PubAck(_))));
        acks == 5
    })
    .await
    .unwrap();
    w.gateway.close_window();
    let vouch_types::Observation::Traffic(t) = obs.recv().await.unwrap() else {
        panic!("a traffic window")
    };
    assert_eq!(t.device, d.id);
    assert_eq!(t.remotes, vec![std::net::IpAddr::from([127, 0, 0, 1])]);
    assert_eq!((t.msgs_in, t.distinct_topics, t.new_topics), (4, 3, 3));
    assert_eq!((t.auth_failures, t.connects, t.sessions), (1, 1, 1));
    assert!(t.bytes_in > 4 * 5);
    // The same topics again in the next window are not new.
    client
        .publish(format!("devices/{}/a", d.id), QoS::AtLeastOnce, false, "1")
        .await
        .unwrap();
    until3(&mut events, |e| {
        matches!(e, Event::Incoming(Packet::PubAck(_)))
    })
    .await
    .unwrap();
    w.gateway.close_window();
    let vouch_types::Observation::Traffic(t) = obs.recv().await.unwrap() else {
        panic!("a traffic window")
    };
    assert_eq!((t.msgs_in, t.distinct_topics, t.new_topics), (1, 1, 0));
    assert_eq!(w.gateway.recent(d.id).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_pass_whole_both_ways() {
    // Larger than a TLS record and than a socket buffer's worth at once: every byte must be flushed through.
    let w = world(|_| {}).await;
    let d = w.device().await;
    let mut seen = watch_broker(&w, "#").await;
    let (client, mut events) = connected3(&w, &d).await;
    client
        .subscribe(format!("devices/{}/cmd/#", d.id), QoS::AtLeastOnce)
        .await
        .unwrap();
    until3(&mut events, |e| {
        matches!(e, Event::Incoming(Packet::SubAck(_)))
    })
    .await
    .unwrap();
    let up: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    client
        .publish(
            format!("devices/{}/blob", d.id),
            QoS::AtLeastOnce,
            false,
            up.clone(),
        )
        .await
        .unwrap();
    until3(&mut events, |e| {
        matches!(e, Event::Incoming(Packet::PubAck(_)))
    })
    .await
    .unwrap();
    let (_, payload) = next_message(&mut seen, WAIT).await.unwrap();
    assert_eq!(payload, up);
    let down: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let (operator, mut op_events) = AsyncClient::new(w.direct("operator"), 10);
    operator
        .publish(
            format!("devices/{}/cmd/firmware", d.id),
            QoS::AtLeastOnce,
            false,
            down.clone(),
        )
        .await
        .unwrap();
    tokio::spawn(async move { while op_events.poll().await.is_ok() {} });
    let mut got = None;
    until3(&mut events, |e| {
        if let Event::Incoming(Packet::Publish(p)) = e {
            got = Some(p.payload.to_vec());
            true
        } else {
            false
        }
    })
    .await
    .unwrap();
    assert_eq!(got.unwrap(), down);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_qos2_message_completes_its_flow_and_a_malformed_packet_mid_session_closes_it() {
    let w = world(|_| {}).await;
    let d = w.device().await;
    let mut seen = watch_broker(&w, "#").await;
    let mut s = w.raw(Some(&d)).await.unwrap();
    s.write_all(&connect(&d.id.to_string())).await.unwrap();
    s.flush().await.unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    // QoS 2 to another device's topic (3.1.1, drop): PUBREC, then PUBREL is answered by the gateway.
    let topic = b"devices/other/x";
    let mut publish = vec![0x34, (2 + topic.len() + 2 + 1) as u8, 0, topic.len() as u8];
    publish.extend_from_slice(topic);
    publish.extend_from_slice(&[0, 9, b'!']);
    s.write_all(&publish).await.unwrap();
    s.flush().await.unwrap();
    let mut rec = [0u8; 4];
    s.read_exact(&mut rec).await.unwrap();
    assert_eq!(rec, [0x50, 2, 0, 9]);
    s.write_all(&[0x62, 2, 0, 9]).await.unwrap();
    s.flush().await.unwrap();
    let mut comp = [0u8; 4];
    s.read_exact(&mut comp).await.unwrap();
    assert_eq!(comp, [0x70, 2, 0, 9]);
    // A SUBSCRIBE without a filter: the session ends.
    s.write_all(&[0x82, 2, 0, 5]).await.unwrap();
    s.flush().await.unwrap();
    drain(&mut s).await;
    closed_for(&w, "malformed_packet").await;
    assert!(
        next_message(&mut seen, Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trust_score_on_the_record_is_in_the_policy_context_of_live_sessions() {
    use vouch_store::{DeviceEdit, PolicyOp, PolicyWrite};
    let w = world(|_| {}).await;
    let d = w.device().await;
    // Telemetry only while trusted: the trust service keeps the score on the record (`trust/score`).
    let policy = r#"@id("telemetry-needs-trust")
forbid(principal, action == Vouch::Action::"publish", resource)
unless { context has trust && context.trust >= 70 }
unless { resource in Vouch::TopicFilter::"devices/${device.id}/update/#" };"#;
    vouch_decide::write_policies(
        &*w.store,
        w.decisions.engine(),
        vec![PolicyWrite {
            id: "telemetry-needs-trust".parse().unwrap(),
            op: PolicyOp::Put {
                text: policy.into(),
                mode: vouch_types::PolicyMode::Enforce,
            },
            expected_version: None,
        }],
        change(),
    )
    .await
    .unwrap();
    let set_trust = |score: &'static str| {
        let store = w.store.clone();
        async move {
            let patch = vouch_types::DevicePatch {
                labels: Some(format!("trust/score={score}").parse().unwrap()),
                ..Default::default()
            };
            store
                .edit_device(d.id, DeviceEdit::Patch(Box::new(patch)), None, change())
                .await
                .unwrap();
        }
    };
    set_trust("90").await;
    tokio::time::sleep(Duration::from_millis(600)).await; // the engine loads the new policy version
    let mut seen = watch_broker(&w, "#").await;
    let (client, mut events) = AsyncClient::new(w.mqtt3(&d.id.to_string(), &d), 100);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let telemetry = format!("devices/{}/telemetry", d.id);
    client
        .publish(&telemetry, QoS::AtMostOnce, false, "trusted")
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut seen, WAIT).await.unwrap(),
        (telemetry.clone(), b"trusted".to_vec())
    );
    // The score drops: the live session is re-decided, telemetry refused, the update topic still open.
    set_trust("35").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    client
        .publish(&telemetry, QoS::AtMostOnce, false, "distrusted")
        .await
        .unwrap();
    let update = format!("devices/{}/update/status", d.id);
    client
        .publish(&update, QoS::AtMostOnce, false, "asking for firmware")
        .await
        .unwrap();
    assert_eq!(next_message(&mut seen, WAIT).await.unwrap().0, update);
    // Trusted again: telemetry flows on the same session.
    set_trust("95").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    client
        .publish(&telemetry, QoS::AtMostOnce, false, "again")
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut seen, WAIT).await.unwrap(),
        (telemetry, b"again".to_vec())
    );
    assert_eq!(w.gateway.stats().sessions, 1);
}
