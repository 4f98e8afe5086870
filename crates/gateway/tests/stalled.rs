//! Clients that stop reading, and hosts that open connections without authenticating: a subscriber that stops
//! reading while the broker floods it is cut within a second of its certificate's revocation (the write towards
//! it is abandoned, not awaited), or dropped after the write timeout; unauthenticated connections are capped
//! per source while a real device still connects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

/// A CONNECT packet (3.1.1, clean session, 30 s keep-alive) with `client_id`.
fn connect(client_id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0b10, 0, 30];
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    p
}

/// A SUBSCRIBE (3.1.1, packet id 1, QoS 0) to `filter`.
fn subscribe(filter: &str) -> Vec<u8> {
    let mut body = vec![0, 1];
    body.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    body.extend_from_slice(filter.as_bytes());
    body.push(0);
    let mut p = vec![0x82, body.len() as u8];
    p.extend(body);
    p
}

/// `d` connected through the gateway with a small receive buffer, subscribed to its own topics; from here
/// on it reads nothing.
async fn stalled_subscriber(w: &World, d: &DeviceCreds) -> TlsStream<TcpStream> {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(16 * 1024).unwrap();
    let tcp = sock.connect(w.addr).await.unwrap();
    let mut s = tokio_rustls::TlsConnector::from(w.client_tls(Some(d)))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    s.write_all(&connect(&d.id.to_string())).await.unwrap();
    s.flush().await.unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    s.write_all(&subscribe(&format!("devices/{}/#", d.id)))
        .await
        .unwrap();
    s.flush().await.unwrap();
    let mut suback = [0u8; 5];
    s.read_exact(&mut suback).await.unwrap();
    assert_eq!(suback, [0x90, 3, 0, 1, 0], "the subscription is granted");
    s
}

/// Publishes 64 KiB messages to `topic` straight on the broker as fast as it takes them; the broker
/// connection's task, the publishing task and the bytes sent.
fn flood(
    w: &World,
    topic: String,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::task::JoinHandle<()>,
    Arc<AtomicU64>,
) {
    let (client, mut events) = AsyncClient::new(w.direct("flood"), 10);
    let sent = Arc::new(AtomicU64::new(0));
    let poll = tokio::spawn(async move {
        loop {
            if let Err(_) | Ok(Event::Incoming(Packet::Disconnect)) = events.poll().await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let counted = sent.clone();
    let publish = tokio::spawn(async move {
        let payload = vec![b'x'; 64 * 1024];
        while client
            .publish(&topic, QoS::AtMostOnce, false, payload.clone())
            .await
            .is_ok()
        {
            counted.fetch_add(payload.len() as u64, Ordering::Relaxed);
        }
    });
    (poll, publish, sent)
}

/// Waits (bounded) until the flood has pushed `bytes`: far more than the sockets' buffers hold, so the
/// gateway's write towards the subscriber is blocked (and stays so: the subscriber never reads).
async fn flooded(sent: &AtomicU64, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sent.load(Ordering::Relaxed) < bytes {
        assert!(Instant::now() < deadline, "the flood did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads whatever the gateway had sent until the connection ends (bounded); true if it ended.
async fn ends(s: &mut TlsStream<TcpStream>) -> bool {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_under_a_flood_is_cut_within_a_second_of_its_revocation() {
    // The write timeout is far away: only the cut can end this session quickly.
    let w = world(|c| c.write_timeout = Duration::from_secs(60)).await;
    let d = w.device().await;
    let mut s = stalled_subscriber(&w, &d).await;
    let (poll, publish, sent) = flood(&w, format!("devices/{}/video", d.id));
    flooded(&sent, 32 << 20).await;
    publish.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        w.gateway.stats().sessions,
        1,
        "still open while it does not read"
    );
    let t0 = Instant::now();
    w.revoke(d.serial).await;
    let committed = t0.elapsed();
    while w.gateway.stats().sessions > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "never cut");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let latency = t0.elapsed();
    println!(
        "revocation (committed in {committed:?}) → stalled session gone in {latency:?}, {} MiB flooded",
        sent.load(Ordering::Relaxed) >> 20
    );
    assert!(latency < Duration::from_secs(1), "took {latency:?}");
    poll.abort();
    assert_eq!(
        w.gateway.stats().closed.get("certificate_revoked"),
        Some(&1),
        "{:?}",
        w.gateway.stats()
    );
    // The device's connection is closed: what was buffered drains, then it ends.
    assert!(ends(&mut s).await, "the device's connection stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_under_a_flood_is_dropped_after_the_write_timeout() {
    let w = world(|c| c.write_timeout = Duration::from_secs(1)).await;
    let d = w.device().await;
    let mut s = stalled_subscriber(&w, &d).await;
    let (poll, publish, sent) = flood(&w, format!("devices/{}/video", d.id));
    let t0 = Instant::now();
    flooded(&sent, 32 << 20).await;
    publish.abort();
    while w.gateway.stats().sessions > 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "never dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "stalled subscriber dropped {:?} after the flood began ({} MiB flooded)",
        t0.elapsed(),
        sent.load(Ordering::Relaxed) >> 20
    );
    poll.abort();
    assert_eq!(
        w.gateway.stats().closed.get("slow_client"),
        Some(&1),
        "{:?}",
        w.gateway.stats()
    );
    assert!(ends(&mut s).await, "the device's connection stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_are_capped_per_source_while_a_device_connects() {
    let w = world(|c| c.max_pending_per_source = 4).await;
    let d = w.device().await;
    // Ten silent connections from another address: four are held (until the handshake timeout), six closed.
    let mut silent = Vec::new();
    for _ in 0..10 {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        silent.push(sock.connect(w.addr).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let refused = w
            .gateway
            .stats()
            .closed
            .get("too_many_pending")
            .copied()
            .unwrap_or(0);
        if refused == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", w.gateway.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A real device from its own address is not affected, and once authenticated no longer counts.
    let (client, mut events) = AsyncClient::new(w.mqtt3(&d.id.to_string(), &d), 10);
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(Packet::ConnAck(_)) = events.poll().await.unwrap() {
                return;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(w.gateway.stats().sessions, 1);
    drop(client);
    // The held ones are still open; the six others were closed at once.
    let mut buf = [0u8; 16];
    let open = silent
        .iter()
        .filter(|s| {
            matches!(s.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    assert_eq!(open, 4);
}
