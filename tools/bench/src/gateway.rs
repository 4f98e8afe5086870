//! `vouch bench gateway`: the MQTT gateway's cost, beside Mosquitto itself in the same run.
//!
//! Everything runs on this machine: a Mosquitto of the bench's own (a plain listener and an mTLS one with
//! the same CA), `vouch gateway` processes in front of it (this binary, release build, on a throw-away
//! store), and an in-repo load generator speaking MQTT 3.1.1 over TCP or TLS. Three measures:
//!
//! - **held sessions**: S concurrent mTLS sessions through the gateway; the gateways' resident memory
//!   before and after, per session. Each session costs the gateway two descriptors (device and broker), so
//!   when S would pass this process's descriptor limit the sessions are spread over several gateways
//!   (stateless: any number serve one store);
//! - **throughput**: C clients each publish M messages (QoS 0: written back to back, then a PINGREQ whose
//!   answer proves the broker read them all; QoS 1: 32 in flight, until every PUBACK), straight to
//!   Mosquitto (plain TCP, and mTLS), then through the gateway (mTLS, every PUBLISH decided);
//! - **handshakes**: new mTLS connections per second (full handshake, no resumption, then CONNECT/CONNACK
//!   and DISCONNECT) to Mosquitto's TLS listener and to the gateway (which also looks the certificate up and
//!   decides CONNECT).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use vouch_identity::IdentityService;
use vouch_mqtt::publish_v311 as publish;
use vouch_store::{Change, Store};
use vouch_types::{Actor, Clock, DeviceId, DeviceState, NewDevice, SystemClock};

use crate::harness::{Killed, free_port, wait_listening};

/// Arguments of `bench gateway`.
#[derive(Args)]
pub struct GatewayArgs {
    /// Concurrent publishing clients.
    #[arg(long, default_value_t = 100)]
    clients: u32,
    /// Messages each client publishes per run.
    #[arg(long, default_value_t = 2_000)]
    messages: u32,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Concurrent sessions to hold through the gateway.
    #[arg(long, default_value_t = 10_000)]
    sessions: u32,
    /// New connections for the handshake measure (each way).
    #[arg(long, default_value_t = 2_000)]
    handshakes: u32,
    /// Throughput rounds per target (interleaved; the median is reported: the machine is shared and noisy).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

const PASS: &str = "bench passphrase, not a secret";

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A device's credentials.
struct Creds {
    id: DeviceId,
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

/// Where a client connects and how.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    /// mTLS: trust this root; `None` for plain TCP.
    root: Option<Arc<Vec<u8>>>,
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

fn fd_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1024)
}

/// Starts `vouch gateway` on `data`; returns it and its address.
fn start_gateway(
    data: &Path,
    pass_file: &Path,
    upstream: SocketAddr,
) -> Result<(Killed, SocketAddr)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["gateway", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(upstream.to_string())
        .env("VOUCH_DATA_DIR", data)
        .env("VOUCH_CA_PASSPHRASE", std::fs::read_to_string(pass_file)?)
        .env("VOUCH_LOG_LEVEL", "warn,vouch::gateway=info")
        .env("VOUCH_SQLITE_DURABILITY", "normal")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting `vouch gateway`")?;
    let err = child.stderr.take().context("gateway stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(a) = line.split("gateway_addr=").nth(1) {
                let _ = tx.send(a.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let child = Killed(child);
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .context("the gateway did not start")?
        .parse()
        .context("the gateway's address")?;
    Ok((child, addr))
}

fn client_tls(root: &[u8], creds: &Creds) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root.to_vec()))?;
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_client_auth_cert(
        creds.chain.clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(creds.key.clone())),
    )?;
    // Every connection a full handshake: what a fleet reconnecting after an outage costs.
    c.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(c))
}

async fn connect(
    target: &Target,
    creds: &Creds,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Box<dyn Io>> {
    let tcp = tokio::net::TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    let mut io: Box<dyn Io> = match (&target.root, tls) {
        (None, _) => Box::new(tcp),
        (Some(_), Some(cfg)) => Box::new(
            tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(ServerName::try_from("127.0.0.1")?, tcp)
                .await?,
        ),
        (Some(root), None) => Box::new(
            tokio_rustls::TlsConnector::from(client_tls(root, creds)?)
                .connect(ServerName::try_from("127.0.0.1")?, tcp)
                .await?,
        ),
    };
    let id = creds.id.to_string();
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0b10, 0x02, 0x58];
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    io.write_all(&packet).await?;
    io.flush().await?;
    let mut ack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(30), io.read_exact(&mut ack))
        .await
        .context("no CONNACK within 30 s")??;
    if ack[0] != 0x20 || ack[3] != 0 {
        bail!("CONNACK refused: {ack:?}");
    }
    Ok(io)
}

/// Counts complete packets of `kind` (first byte, high nibble) in `buf`, consuming them.
fn count_packets(buf: &mut Vec<u8>, nibble: u8) -> u32 {
    let framer = vouch_mqtt::Framer::new(1 << 20);
    let mut at = 0;
    let mut n = 0;
    while let Ok(Some(raw)) = framer.next(&buf[at..]) {
        if raw.bytes[0] >> 4 == nibble {
            n += 1;
        }
        at += raw.bytes.len();
    }
    buf.drain(..at);
    n
}

/// One client's run: publishes `m` messages at `qos` and waits until the broker has them all.
async fn publisher(
    mut io: Box<dyn Io>,
    id: DeviceId,
    m: u32,
    qos: u8,
    payload: Arc<Vec<u8>>,
) -> Result<()> {
    let topic = format!("devices/{id}/telemetry");
    let mut out = Vec::with_capacity(64 * (payload.len() + topic.len() + 8));
    let mut buf = Vec::with_capacity(4096);
    if qos == 0 {
        let mut sent = 0;
        while sent < m {
            out.clear();
            for _ in 0..64.min(m - sent) {
                publish(&mut out, &topic, &payload, 0, 0);
                sent += 1;
            }
            io.write_all(&out).await?;
        }
        io.write_all(&[0xc0, 0]).await?;
        io.flush().await?;
        while count_packets(&mut buf, 0xd) == 0 {
            if io.read_buf(&mut buf).await? == 0 {
                bail!("closed before PINGRESP");
            }
        }
    } else {
        const WINDOW: u32 = 32;
        let (mut sent, mut acked) = (0u32, 0u32);
        while acked < m {
            out.clear();
            while sent < m && sent - acked < WINDOW {
                publish(&mut out, &topic, &payload, 1, (sent % 65_535 + 1) as u16);
                sent += 1;
            }
            if !out.is_empty() {
                io.write_all(&out).await?;
                io.flush().await?;
            }
            if io.read_buf(&mut buf).await? == 0 {
                bail!("closed after {acked} PUBACKs");
            }
            acked += count_packets(&mut buf, 0x4);
        }
    }
    io.write_all(&[0xe0, 0]).await?;
    io.flush().await?;
    Ok(())
}

async fn throughput(target: &Target, devices: &[Creds], a: &GatewayArgs, qos: u8) -> Result<f64> {
    let payload = Arc::new(vec![b'x'; a.payload]);
    let mut conns = Vec::new();
    for d in devices.iter().take(a.clients as usize) {
        conns.push((d.id, connect(target, d, None).await?));
    }
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(id, io)| tokio::spawn(publisher(io, id, a.messages, qos, payload.clone())))
        .collect();
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(f64::from(a.clients) * f64::from(a.messages) / secs)
}

async fn handshakes(target: &Target, devices: &[Creds], n: u32) -> Result<f64> {
    let root = target.root.clone().context("handshakes need TLS")?;
    let configs: Vec<Arc<rustls::ClientConfig>> = devices
        .iter()
        .take(32)
        .map(|d| client_tls(&root, d))
        .collect::<Result<_>>()?;
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, cfg) in configs.iter().enumerate() {
        let (target, cfg, next) = (target.clone(), cfg.clone(), next.clone());
        let creds = Creds {
            id: devices[i].id,
            chain: devices[i].chain.clone(),
            key: devices[i].key.clone(),
        };
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let mut io = connect(&target, &creds, Some(&cfg)).await?;
                io.write_all(&[0xe0, 0]).await?;
                io.flush().await?;
                let _ = io.shutdown().await;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(f64::from(n) / start.elapsed().as_secs_f64())
}

/// Runs the benchmark.
pub async fn run(a: GatewayArgs, host: &dyn crate::Host) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let pass_file = dir.path().join("pass");
    std::fs::write(&pass_file, PASS)?;
    let exe = std::env::current_exe()?;
    let out = Command::new(&exe)
        .args(["ca", "init"])
        .env("VOUCH_DATA_DIR", &data)
        .env("VOUCH_CA_PASSPHRASE", PASS)
        .output()?;
    if !out.status.success() {
        bail!(
            "`vouch ca init` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let store: Arc<dyn Store> = Arc::new(vouch_store_sqlite::SqliteStore::open(
        data.join("vouch.db"),
        vouch_store_sqlite::Durability::Normal,
    )?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (ca, root) = host.load_issuing(&data, &pass_file)?;
    let issuing = ca.cert_der().to_vec();
    let (srv_cert, srv_key) = ca.issue_server(
        &["localhost".into()],
        &["127.0.0.1".parse()?],
        30,
        clock.now(),
    )?;
    let svc = Arc::new(IdentityService::new(
        store.clone(),
        clock.clone(),
        ca,
        root.clone(),
        vouch_identity::PkiSettings {
            profile: vouch_pki::DeviceProfile {
                trust_domain: "bench.local".into(),
                lifetime_days: 7,
                crl_url: "http://127.0.0.1/crl".into(),
                ocsp_url: "http://127.0.0.1/ocsp".into(),
            },
            enrollment_token_ttl_hours: 1,
            crl_validity_hours: 24,
            ocsp_validity_minutes: 60,
        },
    ));

    // Devices, each with its own key and certificate.
    let n = a.sessions.max(a.clients).max(32);
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new(u64::from(n)).with_message("enrolling devices");
    let mut devices = Vec::with_capacity(n as usize);
    let mut pending = Vec::new();
    for i in 0..n {
        let (store, svc) = (store.clone(), svc.clone());
        pending.push(tokio::spawn(async move {
            let mut d = NewDevice::bare(DeviceId::new());
            d.state = DeviceState::Onboarding;
            let change = Change {
                actor: Actor::System("bench".into()),
                reason: None,
                at: SystemClock.now(),
            };
            let id = store.create_device(d, change).await?.id;
            let key = rcgen::KeyPair::generate()?;
            let mut params = rcgen::CertificateParams::default();
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, id.to_string());
            let csr = params.serialize_request(&key)?.der().to_vec();
            let issued = svc
                .issue_for_device(id, &csr, Actor::System("bench".into()), None)
                .await?;
            anyhow::Ok((id, issued.der, key.serialize_der()))
        }));
        if pending.len() == 64 || i + 1 == n {
            for p in pending.drain(..) {
                let (id, der, key) = p.await??;
                devices.push(Creds {
                    id,
                    chain: vec![
                        CertificateDer::from(der),
                        CertificateDer::from(issuing.clone()),
                    ],
                    key,
                });
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "{n} devices enrolled in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Mosquitto: plain and mTLS listeners, the same CA as the gateway.
    let (plain, tls_port) = (free_port()?, free_port()?);
    let mdir = dir.path();
    std::fs::write(
        mdir.join("clientca.pem"),
        vouch_pki::pem_encode("CERTIFICATE", &root)
            + &vouch_pki::pem_encode("CERTIFICATE", &issuing),
    )?;
    std::fs::write(
        mdir.join("broker.pem"),
        vouch_pki::pem_encode("CERTIFICATE", &srv_cert)
            + &vouch_pki::pem_encode("CERTIFICATE", &issuing),
    )?;
    std::fs::write(
        mdir.join("broker.key"),
        vouch_pki::pem_encode("PRIVATE KEY", &srv_key),
    )?;
    std::fs::write(
        mdir.join("mosquitto.conf"),
        format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\nmax_keepalive 65535\nuser root\n\
             listener {plain} 127.0.0.1\nlistener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
             require_certificate true\n",
            ca = mdir.join("clientca.pem").display(),
            cert = mdir.join("broker.pem").display(),
            key = mdir.join("broker.key").display(),
        ),
    )?;
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("mosquitto");
    let mosquitto = Killed(
        Command::new(bin)
            .arg("-c")
            .arg(mdir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mosquitto (Debian package `mosquitto`)")?,
    );
    let plain_addr: SocketAddr = format!("127.0.0.1:{plain}").parse()?;
    let tls_addr: SocketAddr = format!("127.0.0.1:{tls_port}").parse()?;
    wait_listening(plain_addr).await?;
    wait_listening(tls_addr).await?;

    // Held sessions, spread over as many gateways as the descriptor limit needs.
    let limit = fd_limit();
    // As many as each gateway's cap needs: it derives the cap from the same limit (and the default store).
    let per_gateway = host.gateway_sessions(limit) as u64;
    let gateways = u64::from(a.sessions).div_ceil(per_gateway.max(1)).max(1);
    let mut gws: Vec<(Killed, SocketAddr)> = Vec::new();
    for _ in 0..gateways {
        gws.push(start_gateway(&data, &pass_file, plain_addr)?);
    }
    let root_arc = Arc::new(root.clone());
    let targets: Vec<Target> = gws
        .iter()
        .map(|(_, addr)| Target {
            addr: *addr,
            root: Some(root_arc.clone()),
        })
        .collect();
    // A few sessions first, so that the baseline includes what every gateway holds once it works.
    for (i, t) in targets.iter().enumerate() {
        let mut io = connect(t, &devices[i], None).await?;
        io.write_all(&[0xe0, 0]).await?;
        io.flush().await?;
    }
    eprintln!(
        "{} gateway(s) up; opening {} sessions",
        targets.len(),
        a.sessions
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: u64 = gws
        .iter()
        .map(|(c, _)| rss_kib(c.0.id()))
        .sum::<Result<u64>>()?;
    let mosq_before = rss_kib(mosquitto.0.id())?;
    let bar = indicatif::ProgressBar::new(u64::from(a.sessions)).with_message("opening sessions");
    let mut held = Vec::with_capacity(a.sessions as usize);
    let open_start = Instant::now();
    for chunk in devices[..a.sessions as usize].chunks(64) {
        let mut opening = Vec::new();
        for (j, d) in chunk.iter().enumerate() {
            let t = targets[(held.len() + j) % targets.len()].clone();
            let creds = Creds {
                id: d.id,
                chain: d.chain.clone(),
                key: d.key.clone(),
            };
            opening.push(tokio::spawn(async move { connect(&t, &creds, None).await }));
        }
        for o in opening {
            held.push(o.await??);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let open_secs = open_start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Every session is alive: a PINGREQ each, answered through the gateway by the broker.
    eprintln!("{} sessions open; pinging each", held.len());
    for io in &mut held {
        io.write_all(&[0xc0, 0]).await?;
        io.flush().await?;
    }
    for io in &mut held {
        let mut b = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(30), io.read_exact(&mut b))
            .await
            .context("a held session did not answer its ping within 30 s")??;
        if b != [0xd0, 0] {
            bail!("a held session did not answer its ping");
        }
    }
    let after: u64 = gws
        .iter()
        .map(|(c, _)| rss_kib(c.0.id()))
        .sum::<Result<u64>>()?;
    let mosq_after = rss_kib(mosquitto.0.id())?;
    let per_session = (after.saturating_sub(before)) as f64 / f64::from(a.sessions);
    let mosq_per_session = (mosq_after.saturating_sub(mosq_before)) as f64 / f64::from(a.sessions);
    for mut io in held.drain(..) {
        let _ = io.write_all(&[0xe0, 0]).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let direct = Target {
        addr: plain_addr,
        root: None,
    };
    let direct_tls = Target {
        addr: tls_addr,
        root: Some(root_arc.clone()),
    };
    let gateway = targets[0].clone();
    let mut rows = Vec::new();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for qos in [0u8, 1] {
        let (mut d, mut t, mut g) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..a.rounds.max(1) {
            d.push(throughput(&direct, &devices, &a, qos).await?);
            t.push(throughput(&direct_tls, &devices, &a, qos).await?);
            g.push(throughput(&gateway, &devices, &a, qos).await?);
        }
        eprintln!(
            "QoS {qos} rounds (msgs/s): mosquitto {d:.0?}, mosquitto mTLS {t:.0?}, gateway {g:.0?}"
        );
        rows.push((qos, median(d), median(t), median(g)));
    }
    let hs_mosq = handshakes(&direct_tls, &devices, a.handshakes).await?;
    let hs_gw = handshakes(&gateway, &devices, a.handshakes).await?;
    drop(gws);
    drop(mosquitto);

    let report = serde_json::json!({
        "sessions": {
            "held": a.sessions, "gateways": gateways, "fd_limit": limit,
            "opened_per_s": f64::from(a.sessions) / open_secs,
            "gateway_rss_kib_before": before, "gateway_rss_kib_after": after,
            "gateway_kib_per_session": per_session,
            "mosquitto_kib_per_session": mosq_per_session,
        },
        "throughput": rows.iter().map(|(q, d, t, g)| serde_json::json!({
            "qos": q, "clients": a.clients, "messages": a.clients * a.messages, "payload": a.payload,
            "mosquitto_plain_msgs_per_s": d, "mosquitto_tls_msgs_per_s": t, "gateway_msgs_per_s": g,
            "loss_vs_plain": 1.0 - g / d, "loss_vs_tls": 1.0 - g / t,
        })).collect::<Vec<_>>(),
        "handshakes_per_s": { "mosquitto_tls": hs_mosq, "gateway": hs_gw },
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "\nHeld sessions: {} mTLS sessions over {gateways} gateway process(es) (descriptor limit {limit}: two per session)",
        a.sessions
    );
    println!(
        "  opened at {:.0}/s; every one answered a ping through the broker",
        f64::from(a.sessions) / open_secs
    );
    println!(
        "  gateway resident memory {before} KiB → {after} KiB: {per_session:.1} KiB per session (Mosquitto: {mosq_per_session:.1} KiB per connection)"
    );
    println!(
        "\nThroughput ({} clients × {} messages, {} B payload; median of {} rounds)",
        a.clients,
        a.messages,
        a.payload,
        a.rounds.max(1)
    );
    println!(
        "  {:<4} {:>18} {:>18} {:>18} {:>12} {:>12}",
        "QoS", "Mosquitto TCP/s", "Mosquitto mTLS/s", "via gateway/s", "vs TCP", "vs mTLS"
    );
    for (q, d, t, g) in &rows {
        println!(
            "  {q:<4} {d:>18.0} {t:>18.0} {g:>18.0} {:>11.1}% {:>11.1}%",
            (g / d - 1.0) * 100.0,
            (g / t - 1.0) * 100.0
        );
    }
    println!("\nHandshakes (full mTLS + CONNECT/CONNACK, 32 concurrent, no resumption)");
    println!(
        "  Mosquitto mTLS: {hs_mosq:.0}/s   gateway: {hs_gw:.0}/s   ratio {:.2}",
        hs_gw / hs_mosq
    );
    Ok(())
}
