//! The serving loop on real loopback sockets: the API and EST listeners hold their connection caps under
//! floods of idle sockets (from other addresses and from the real client's own) while `curl` still gets its
//! answer; half-sent heads, trickled bodies and clients that stop reading are closed after their timeouts;
//! what was shed and timed out is counted in the metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::routing::get;
use common::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use vouch_api::serve::{ConnectionLimits, HttpServer};

/// The cap the flood tests use, and how many idle sockets they open against it.
const CAP: usize = 64;
const FLOOD: usize = 4 * CAP;
/// How long curl may take (the bounded wait the tests prove).
const CURL_MAX_SECS: &str = "5";

/// Serves `app` on a loopback port with `limits` (and TLS if given) until the sender is dropped.
async fn start(
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<vouch_api::Metrics>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let mut server = HttpServer::bind("api", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .limits(limits)
        .metrics(metrics)
        .summary_every(Duration::from_millis(200));
    if let Some(t) = tls {
        server = server.tls(t);
    }
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(app, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// `n` connections to `addr` from the loopback address `from` that send nothing.
async fn idle(addr: SocketAddr, from: [u8; 4], n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::from((from, 0))).unwrap();
        out.push(s.connect(addr).await.unwrap());
    }
    out
}

/// How many of `socks` the server has closed (EOF or reset; a refusal's 503 is read past).
fn closed(socks: &[TcpStream]) -> usize {
    let mut buf = [0u8; 1024];
    socks
        .iter()
        .filter(|s| {
            loop {
                match s.try_read(&mut buf) {
                    Ok(0) => return true,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                    Err(_) => return true,
                }
            }
        })
        .count()
}

/// Waits (bounded) until the server has closed at least `want` of `socks`; returns how many it closed.
async fn wait_closed(socks: &[TcpStream], want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = closed(socks);
        if n >= want || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// curl with `args`: the HTTP status it printed and how long it took.
async fn curl(args: Vec<String>) -> (String, Duration) {
    tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                CURL_MAX_SECS,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(&args)
            .output()
            .expect("curl is installed (scripts/test installs it)");
        (
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            t0.elapsed(),
        )
    })
    .await
    .unwrap()
}

/// The value of `vouch_connections_closed_total{listener=…,reason=…}` on the API's /metrics.
async fn closed_metric(h: &Harness, listener: &str, reason: &str) -> u64 {
    let (status, _, v) = h
        .call_full(
            axum::http::Method::GET,
            "/metrics",
            Some(&h.admin),
            None,
            &[],
        )
        .await;
    assert!(status.is_success(), "{status}");
    let text = v.as_str().unwrap().to_owned();
    let key =
        format!("vouch_connections_closed_total{{listener=\"{listener}\",reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |n| n.trim().parse().unwrap())
}

fn limits(cap: usize) -> ConnectionLimits {
    ConnectionLimits::new(cap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_other_addresses_do_not_keep_a_real_client_out() {
    let h = Harness::new().await;
    let mut l = limits(CAP);
    l.max_connections_per_source = 16;
    let (addr, _stop) = start(h.app.clone(), l, h.state.metrics.clone(), None).await;
    // Four attacking hosts, a cap's worth of idle sockets each: four times the cap in all.
    let mut flood = Vec::new();
    for host in 2..=5 {
        flood.extend(idle(addr, [127, 0, 0, host], CAP).await);
    }
    assert_eq!(flood.len(), FLOOD);
    let (code, took) = curl(vec![format!("http://{addr}/healthz")]).await;
    println!("curl answered {code} in {took:?} beside {FLOOD} idle sockets (cap {CAP})");
    assert_eq!(code, "200");
    // The server holds at most its cap: the rest were refused (503) or shed.
    let gone = wait_closed(&flood, FLOOD - CAP).await;
    assert!(gone >= FLOOD - CAP, "only {gone} of {FLOOD} closed");
    let refused = closed_metric(&h, "api", "refused_max_connections_per_source").await;
    let shed = closed_metric(&h, "api", "shed_idle").await;
    println!("refused per source: {refused}, shed idle: {shed}");
    assert!(refused + shed >= (FLOOD - CAP) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_the_clients_own_address_are_shed_for_it() {
    let h = Harness::new().await;
    // One source may take the whole cap (the default at this size): only the global cap and shedding stand
    // between the flood and curl.
    let l = limits(CAP);
    assert_eq!(l.max_connections_per_source, CAP);
    let (addr, _stop) = start(h.app.clone(), l, h.state.metrics.clone(), None).await;
    let flood = idle(addr, [127, 0, 0, 1], FLOOD).await;
    let (code, took) = curl(vec![format!("http://{addr}/healthz")]).await;
    println!("curl answered {code} in {took:?} beside {FLOOD} idle sockets from its own address");
    assert_eq!(code, "200");
    let gone = wait_closed(&flood, FLOOD - CAP).await;
    assert!(gone >= FLOOD - CAP, "only {gone} of {FLOOD} closed");
    assert!(closed_metric(&h, "api", "shed_idle").await >= (FLOOD - CAP) as u64);
}

/// Reads until the server closes (bounded); returns what came and how long it took.
async fn until_closed(s: &mut TcpStream) -> (Vec<u8>, Duration) {
    let t0 = Instant::now();
    let mut got = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the server kept the connection open");
    (got, t0.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_heads_idle_keep_alives_and_trickled_bodies_are_closed_after_their_timeouts() {
    let h = Harness::new().await;
    let mut l = limits(CAP);
    l.header_timeout = Duration::from_secs(1);
    l.body_timeout = Duration::from_secs(1);
    let (addr, _stop) = start(h.app.clone(), l, h.state.metrics.clone(), None).await;

    // A request head that never ends.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: vouch\r\nX-Slow: 1")
        .await
        .unwrap();
    let (_, took) = until_closed(&mut slow).await;
    println!("half-sent head closed after {took:?}");

    // A keep-alive connection left idle after its answer.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: vouch\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let (_, took) = until_closed(&mut kept).await;
    println!("idle keep-alive closed after {took:?}");

    // A body announced at 100 bytes that stops after 9.
    let mut trickle = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/devices HTTP/1.1\r\nHost: vouch\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"class\":",
        h.admin
    );
    trickle.write_all(head.as_bytes()).await.unwrap();
    let (answer, took) = until_closed(&mut trickle).await;
    let answer = String::from_utf8_lossy(&answer);
    println!("trickled body closed after {took:?}");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");

    assert!(closed_metric(&h, "api", "header_timeout").await >= 2);
    assert_eq!(closed_metric(&h, "api", "body_timeout").await, 1);
    // Nothing was created from the cut-off body.
    let (_, list) = h
        .call(
            axum::http::Method::GET,
            "/api/v1/devices",
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

/// A body of `left` zero bytes in 64 KiB pieces, produced as fast as they are taken.
struct Zeros {
    left: usize,
}

impl HttpBody for Zeros {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 * 1024);
        self.left -= n;
        Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(vec![
            0u8;
            n
        ])))))
    }
}

const BIG: usize = 256 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_large_answer_is_dropped() {
    let h = Harness::new().await;
    let mut l = limits(CAP);
    l.write_timeout = Duration::from_secs(1);
    let big = Router::new().route("/big", get(|| async { Body::new(Zeros { left: BIG }) }));
    let (addr, _stop) = start(h.app.clone().merge(big), l, h.state.metrics.clone(), None).await;
    let s = TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(16 * 1024).unwrap();
    let mut reader = s.connect(addr).await.unwrap();
    reader
        .write_all(b"GET /big HTTP/1.1\r\nHost: vouch\r\n\r\n")
        .await
        .unwrap();
    // It reads nothing: the server's writes block, and the deadline drops the connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    while closed_metric(&h, "api", "write_timeout").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled answer was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What was buffered before the drop arrives, then the end: far from the whole answer.
    let (got, _) = until_closed(&mut reader).await;
    println!("dropped after {} of {BIG} bytes", got.len());
    assert!(got.len() < BIG / 4, "{}", got.len());
    // The server is still there for others.
    let (code, _) = curl(vec![format!("http://{addr}/healthz")]).await;
    assert_eq!(code, "200");
}

/// The EST listener as `vouch serve` starts it, over a CA of its own; returns the harness (for metrics),
/// the address, the stop switch and the directory holding `root.pem`.
async fn est(
    l: ConnectionLimits,
) -> (
    Harness,
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tempfile::TempDir,
) {
    use vouch_pki::{CaSubject, DeviceProfile, IssuingCa, KeyAlgorithm, Passphrase, init_ca};
    let h = Harness::new().await;
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn vouch_types::Clock> = Arc::new(vouch_types::SystemClock);
    let pass = Passphrase::new("a passphrase long enough".into()).unwrap();
    let m = init_ca(
        KeyAlgorithm::EcdsaP256,
        &CaSubject {
            organization: "Serve tests".into(),
        },
        clock.now(),
        &pass,
    )
    .unwrap();
    std::fs::write(dir.path().join("root.pem"), &m.root_cert_pem).unwrap();
    let ca = IssuingCa::load(&m.issuing_cert_pem, &m.issuing_key_pem, &pass).unwrap();
    let root = vouch_pki::cert_der_from_pem(&m.root_cert_pem).unwrap();
    let svc = Arc::new(vouch_identity::IdentityService::new(
        h.store.clone(),
        clock,
        ca,
        root.clone(),
        vouch_identity::PkiSettings {
            profile: DeviceProfile {
                trust_domain: "serve.test".into(),
                lifetime_days: 30,
                crl_url: "http://127.0.0.1/crl".into(),
                ocsp_url: "http://127.0.0.1/ocsp".into(),
            },
            enrollment_token_ttl_hours: 1,
            crl_validity_hours: 24,
            ocsp_validity_minutes: 60,
        },
    ));
    let id = svc
        .server_identity(&["localhost".into()], "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let tls =
        vouch_api::tls::server_config(id.chain, id.key_pkcs8, &[root, svc.ca_cert_der().to_vec()])
            .unwrap();
    let state = h.state.clone().with_identity(svc);
    let app = vouch_api::est::router(state);
    let mut server = HttpServer::bind("est", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .tls(tls)
        .limits(l)
        .metrics(h.state.metrics.clone());
    server = server.summary_every(Duration::from_millis(200));
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(app, async move {
        let _ = stopped.await;
    }));
    (h, addr, stop, dir)
}

async fn cacerts(dir: &tempfile::TempDir, addr: SocketAddr) -> (String, Duration) {
    curl(vec![
        "--cacert".into(),
        dir.path().join("root.pem").display().to_string(),
        format!("https://{addr}/.well-known/est/cacerts"),
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn est_answers_cacerts_beside_idle_tcp_connections_that_never_say_hello() {
    // From other addresses, each allowed 16 connections and 4 handshakes.
    let mut l = limits(CAP);
    l.max_connections_per_source = 16;
    l.max_handshakes = 16;
    l.max_handshakes_per_source = 4;
    let (h, addr, _stop, dir) = est(l).await;
    let mut flood = Vec::new();
    for host in 2..=5 {
        flood.extend(idle(addr, [127, 0, 0, host], CAP).await);
    }
    let (code, took) = cacerts(&dir, addr).await;
    println!(
        "cacerts answered {code} in {took:?} beside {FLOOD} silent connections (other addresses)"
    );
    assert_eq!(code, "200");
    let gone = wait_closed(&flood, FLOOD - CAP).await;
    assert!(gone >= FLOOD - CAP, "only {gone} of {FLOOD} closed");
    assert!(closed_metric(&h, "est", "shed_handshake").await > 0);
    drop(flood);

    // From curl's own address, one source allowed the whole cap (the default at this size): the global caps
    // and shedding decide.
    let l = limits(CAP);
    assert_eq!(
        (
            l.max_connections_per_source,
            l.max_handshakes,
            l.max_handshakes_per_source
        ),
        (CAP, CAP, CAP)
    );
    let (h, addr, _stop, dir) = est(l).await;
    let flood = idle(addr, [127, 0, 0, 1], FLOOD).await;
    let (code, took) = cacerts(&dir, addr).await;
    println!(
        "cacerts answered {code} in {took:?} beside {FLOOD} silent connections (its own address)"
    );
    assert_eq!(code, "200");
    let gone = wait_closed(&flood, FLOOD - CAP).await;
    assert!(gone >= FLOOD - CAP, "only {gone} of {FLOOD} closed");
    assert!(closed_metric(&h, "est", "shed_handshake").await >= (FLOOD - CAP) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_handshake_times_out() {
    let mut l = limits(CAP);
    l.handshake_timeout = Duration::from_secs(1);
    let (h, addr, _stop, _dir) = est(l).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let (_, took) = until_closed(&mut silent).await;
    println!("silent TLS connection closed after {took:?}");
    assert_eq!(closed_metric(&h, "est", "handshake_timeout").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_lets_the_request_in_flight_finish() {
    let h = Harness::new().await;
    let slow = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "done"
        }),
    );
    let (addr, stop) = start(
        h.app.clone().merge(slow),
        limits(CAP),
        h.state.metrics.clone(),
        None,
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: vouch\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stop);
    let (answer, _) = until_closed(&mut c).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
        "{answer}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
