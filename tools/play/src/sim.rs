//! `vouch sim`: a simulated fleet played over the real thing. Each virtual device (from `vouch-sim`'s
//! behaviour model) is registered, enrolls over EST (HTTPS, a one-time token, its own key and CSR), connects
//! through the gateway (mTLS, MQTT 3.1.1) from its zone's loopback address to the broker behind it, and
//! publishes its telemetry window by window; attackers play their scenarios (scans, exfiltration, topic
//! enumeration, credential stuffing, a firmware downgrade reported as posture, a cloned identity, a wrong
//! zone). Meanwhile the event log is followed: trust changes, playbook actions, releases and cut sessions are
//! shown as they happen, and the run ends with a summary against the ground truth.
//!
//! `vouch demo` starts a server with its gateway and a Mosquitto of its own, then runs this.
//!
//! Why one long file: enrolling, connecting, publishing, attacking and following the log are one player
//! over one fleet; the behaviour model itself is `vouch-sim`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio_rustls::client::TlsStream;
use vouch_events::{Action, ResponseRecord, SessionCut, TrustChanged};
use vouch_sim::{Fleet, FleetConfig, Scenario, SimDevice};
use vouch_store::{Change, Store};
use vouch_types::{Actor, Clock, DeviceId, DeviceState, NewDevice, SystemClock};

/// Options of `vouch sim` (and of `vouch demo`'s fleet).
#[derive(Args, Clone)]
pub struct SimArgs {
    /// Virtual devices.
    #[arg(long, default_value_t = 200)]
    pub devices: u32,
    /// Windows to play.
    #[arg(long, default_value_t = 48)]
    pub windows: u32,
    /// Seconds per window: the gateway's `window_secs` by default (`vouch demo`: 5), so that the fleet's
    /// windows and the gateway's observations line up.
    #[arg(long)]
    pub window_secs: Option<u32>,
    /// Attack-free windows first, while the models learn.
    #[arg(long, default_value_t = 12)]
    pub warmup: u32,
    /// Windows each attack lasts.
    #[arg(long, default_value_t = 4)]
    pub attack_windows: u32,
    /// Seed of the fleet and its attacks.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Scenarios to play (default: all), comma-separated: scan, exfiltration, topic-enumeration,
    /// credential-stuffing, firmware-downgrade, clone, location.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Do not print events as they happen.
    #[arg(long)]
    pub quiet: bool,
    /// Play nothing: write the fleet's windows (what the gateway would observe of each device, with its
    /// class) to FILE as JSON Lines for `vouch trust replay`, and exit. Needs no deployment.
    #[arg(long, value_name = "FILE")]
    pub windows_out: Option<std::path::PathBuf>,
}

/// Seconds per window when neither the command line nor the configuration says.
pub const DEFAULT_WINDOW_SECS: u32 = 5;

impl SimArgs {
    /// The fleet these options describe (its model, size, seed and attacks).
    pub fn fleet(&self) -> Result<Fleet> {
        if self.devices == 0 || self.devices > 5_000 {
            bail!("--devices must be between 1 and 5000");
        }
        let window_secs = self.window_secs.unwrap_or(DEFAULT_WINDOW_SECS);
        if window_secs == 0 || window_secs > 600 {
            bail!("--window-secs must be between 1 and 600");
        }
        if self.windows <= self.warmup + self.attack_windows {
            bail!("--windows must leave room after the warm-up for the attacks and the recovery");
        }
        Ok(Fleet::new(FleetConfig {
            devices: self.devices,
            seed: self.seed,
            window_secs,
            windows: self.windows,
            warmup: self.warmup,
            attacks_per_scenario: 1,
            attack_windows: self.attack_windows,
            scenarios: if self.scenarios.is_empty() {
                Scenario::ALL.to_vec()
            } else {
                self.scenarios.clone()
            },
        }))
    }
}

/// Where the fleet goes: the deployment's store (to register devices and follow the log), its EST server and
/// its gateway, and the CA certificates that sign both servers' certificates.
pub struct Target {
    /// The deployment's store.
    pub store: Arc<dyn Store>,
    /// The EST listener (HTTPS).
    pub est: SocketAddr,
    /// The MQTT gateway (mTLS).
    pub gateway: SocketAddr,
    /// Vouch's root CA, DER.
    pub root: Vec<u8>,
    /// Vouch's issuing CA, DER (sent after each device certificate).
    pub issuing: Vec<u8>,
    /// Hours an enrollment token lives.
    pub token_ttl_hours: u32,
}

/// Writes the fleet's recorded windows to `path`, one JSON object a line.
pub fn write_windows(fleet: &Fleet, path: &std::path::Path) -> Result<()> {
    use std::io::Write;
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    for r in fleet.recorded() {
        serde_json::to_writer(&mut w, &r)?;
        writeln!(w)?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A device's credentials once enrolled.
struct Creds {
    tls: Arc<rustls::ClientConfig>,
}

/// Registers and enrolls every device, then plays the fleet and follows the log; returns the summary.
pub async fn play(args: &SimArgs, target: &Target) -> Result<Summary> {
    let fleet = Arc::new(args.fleet()?);
    let started = Instant::now();
    let say = |line: String| {
        if !args.quiet {
            println!("{line}");
        }
    };
    say(format!(
        "enrolling {} devices over EST at https://{} ...",
        fleet.devices.len(),
        target.est
    ));
    let cursor = target.store.audit_head().await?.map(|(s, _)| s);
    let mut creds = Vec::with_capacity(fleet.devices.len());
    for chunk in fleet.devices.chunks(32) {
        let pending: Vec<_> = chunk
            .iter()
            .map(|d| tokio::spawn(enroll(target, d)))
            .collect();
        // In order: the credentials line up with the fleet's devices.
        for p in pending {
            creds.push(Arc::new(p.await.context("an enrollment task failed")??));
        }
    }
    say(format!(
        "{} devices enrolled in {:.1} s; playing {} windows of {} s ({} attacks)",
        creds.len(),
        started.elapsed().as_secs_f64(),
        fleet.config.windows,
        fleet.config.window_secs,
        fleet.attacks.len()
    ));
    for a in &fleet.attacks {
        say(format!(
            "  scheduled: {:<20} on device {:>4} ({}) windows {}-{}",
            a.scenario.as_str(),
            a.device,
            fleet.devices[a.device as usize].class,
            a.start,
            a.start + a.windows - 1
        ));
    }
    let t0 = tokio::time::Instant::now() + Duration::from_millis(500);
    let window = Duration::from_secs(u64::from(fleet.config.window_secs));
    let stats = Arc::new(DriverStats::default());
    let mut tasks = Vec::new();
    for (d, c) in fleet.devices.iter().zip(&creds) {
        tasks.push(tokio::spawn(device_task(
            fleet.clone(),
            d.index,
            c.clone(),
            target.gateway,
            target.est,
            t0,
            window,
            stats.clone(),
        )));
    }
    // Follow the log while the fleet plays, then two windows more for the last verdicts.
    let end = t0 + window * (fleet.config.windows + 2);
    let names: HashMap<DeviceId, u32> = fleet.devices.iter().map(|d| (d.id, d.index)).collect();
    let mut tally = Tally::new(&fleet);
    let mut feed = vouch_store::Feed::transient(target.store.clone(), cursor);
    loop {
        let now = tokio::time::Instant::now();
        while let Some(batch) = feed.try_next_batch().await? {
            for e in &batch.events {
                let Some(dev) = e.draft.device_id.and_then(|d| names.get(&d).copied()) else {
                    continue;
                };
                let w = now.saturating_duration_since(t0).as_secs_f64() / window.as_secs_f64();
                if let Some(line) = tally.record(&fleet, dev, w, e) {
                    say(line);
                }
            }
            if batch.caught_up {
                break;
            }
        }
        if now >= end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for t in tasks {
        t.abort();
    }
    Ok(tally.summary(&fleet, &stats, started.elapsed()))
}

fn actor() -> Actor {
    Actor::System("sim".into())
}

/// Registers `d` (idempotent: its id is derived from the seed) and enrolls it over EST with a fresh token.
fn enroll(
    target: &Target,
    d: &SimDevice,
) -> impl std::future::Future<Output = Result<Creds>> + Send + 'static {
    let store = target.store.clone();
    let est = target.est;
    let root = target.root.clone();
    let issuing = target.issuing.clone();
    let ttl = target.token_ttl_hours;
    let d = d.clone();
    async move {
        let now = SystemClock.now();
        let change = Change {
            actor: actor(),
            reason: None,
            at: now,
        };
        let mut n = NewDevice::bare(d.id);
        n.state = DeviceState::Onboarding;
        n.class = d.class;
        n.model = Some(d.model.parse()?);
        n.vendor = Some(d.vendor.parse()?);
        n.firmware = Some(d.firmware.parse()?);
        n.zone = Some(d.zone.parse()?);
        match store.create_device(n, change).await {
            Ok(_) | Err(vouch_store::StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e).context("registering a simulated device"),
        }
        let (_, secret) =
            vouch_identity::issue_enrollment_token(&*store, now, d.id, ttl, actor(), None).await?;
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, d.id.to_string());
        let csr = params.serialize_request(&key)?.der().to_vec();
        let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &csr);
        let anon = client_tls(&root, None)?;
        let auth = format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("device:{}", secret.expose())
            )
        );
        let (status, answer) = https(
            est,
            &anon,
            "POST",
            "/.well-known/est/simpleenroll",
            &[
                ("content-type", "application/pkcs10"),
                ("authorization", &auth),
            ],
            body.into_bytes(),
        )
        .await?;
        if status != 200 {
            bail!(
                "EST enrollment of {} refused ({status}): {}",
                d.id,
                String::from_utf8_lossy(&answer)
            );
        }
        // The certificate EST returned is the one on record (the store commits before EST answers).
        let cert = store
            .device_certificates(d.id)
            .await?
            .into_iter()
            .max_by_key(|c| c.not_before)
            .context("no certificate on record after enrollment")?;
        let tls = client_tls(&root, Some((vec![cert.der, issuing], key.serialize_der())))?;
        Ok(Creds { tls })
    }
}

fn client_tls(
    root: &[u8],
    identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root.to_vec()))?;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(
            chain.into_iter().map(CertificateDer::from).collect(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// One HTTPS request (HTTP/1.1 through hyper's client connection); returns the status and the body.
async fn https(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body)))?)
        .await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes.to_vec()))
}

/// What the driver did, counted.
#[derive(Default)]
struct DriverStats {
    connects: std::sync::atomic::AtomicU64,
    refused: std::sync::atomic::AtomicU64,
    messages: std::sync::atomic::AtomicU64,
    postures: std::sync::atomic::AtomicU64,
}

/// A live MQTT session through the gateway (writes only: what the broker sends is read and dropped).
struct Session {
    from: IpAddr,
    out: WriteHalf<TlsStream<tokio::net::TcpStream>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Session {
    /// Leaves as a device that moves does: DISCONNECT, then wait (at most 2 s) until the gateway has closed
    /// its side, so that the next session, from another address, is not seen overlapping this one (which is
    /// what a cloned identity looks like).
    async fn close(mut self) {
        let _ = self.out.write_all(&[0xe0, 0]).await;
        let _ = self.out.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.reader).await;
    }
}

/// Opens a session from `from` with `client_id`; `Err` if the gateway refuses it.
async fn connect(
    gateway: SocketAddr,
    creds: &Creds,
    from: Ipv4Addr,
    client_id: &str,
) -> Result<Session> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // The zone's loopback address: the gateway sees where the device is.
    socket
        .bind(SocketAddr::new(IpAddr::V4(from), 0))
        .with_context(|| format!("binding {from}"))?;
    let tcp = socket.connect(gateway).await?;
    tcp.set_nodelay(true)?;
    let mut tls = tokio_rustls::TlsConnector::from(creds.tls.clone())
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0b10, 0, 60];
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let packet = vouch_mqtt::frame(0x10, &body);
    tls.write_all(&packet).await?;
    tls.flush().await?;
    let mut ack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut ack))
        .await
        .context("no CONNACK")??;
    if ack[0] != 0x20 || ack[3] != 0 {
        bail!("refused (CONNACK {})", ack[3]);
    }
    let (mut rd, out) = tokio::io::split(tls);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    Ok(Session {
        from: IpAddr::V4(from),
        out,
        reader,
    })
}

fn subscribe(out: &mut Vec<u8>, id: u16, filter: &str) {
    let mut body = id.to_be_bytes().to_vec();
    body.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    body.extend_from_slice(filter.as_bytes());
    body.push(0);
    out.extend(vouch_mqtt::frame(0x82, &body));
}

/// Plays device `index` window by window until aborted.
#[allow(clippy::too_many_arguments, reason = "one task's whole context")]
async fn device_task(
    fleet: Arc<Fleet>,
    index: u32,
    creds: Arc<Creds>,
    gateway: SocketAddr,
    est: SocketAddr,
    t0: tokio::time::Instant,
    window: Duration,
    stats: Arc<DriverStats>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let me = &fleet.devices[index as usize];
    let id = me.id.to_string();
    let mut main: Option<Session> = None;
    let mut second: Option<Session> = None;
    let mut firmware = me.firmware.clone();
    let mut packet_id: u16 = 1;
    // Spread each window's messages over a few bursts, devices out of step with each other.
    const TICKS: u32 = 5;
    let offset = window.mul_f64(f64::from(index % 97) / 97.0 / f64::from(TICKS));
    for w in 0..fleet.config.windows {
        tokio::time::sleep_until(t0 + window * w + offset).await;
        let plan = fleet.plan(index, w);
        if plan.firmware != firmware {
            let body = serde_json::json!({ "firmware": plan.firmware }).to_string();
            let path = format!("/api/v1/devices/{id}/posture");
            if let Ok((status, _)) = https(
                est,
                &creds.tls,
                "POST",
                &path,
                &[("content-type", "application/json")],
                body.into_bytes(),
            )
            .await
                && status < 300
            {
                stats.postures.fetch_add(1, Relaxed);
                firmware = plan.firmware.clone();
            }
        }
        let Some(from) = vouch_sim::device_addr(&plan.zone, index) else {
            continue;
        };
        if main.as_ref().is_some_and(|s| s.from != IpAddr::V4(from))
            && let Some(moved) = main.take()
        {
            moved.close().await;
        }
        for _ in 0..plan.reconnects {
            main = None;
            if let Ok(s) = connect(gateway, &creds, from, &id).await {
                stats.connects.fetch_add(1, Relaxed);
                main = Some(s);
            }
        }
        if main.is_none() {
            match connect(gateway, &creds, from, &id).await {
                Ok(s) => {
                    stats.connects.fetch_add(1, Relaxed);
                    main = Some(s);
                }
                Err(_) => {
                    stats.refused.fetch_add(1, Relaxed);
                }
            }
        }
        for k in 0..plan.bad_connects {
            // A valid certificate, a client id that is not its own: refused at CONNECT.
            let _ = connect(gateway, &creds, from, &format!("admin-{k}")).await;
        }
        if plan.second_session {
            if second.is_none() {
                // The same identity from elsewhere in its zone, at the same time.
                let other = vouch_sim::device_addr(&plan.zone, index + 125).unwrap_or(from);
                second = connect(gateway, &creds, other, &id).await.ok();
            }
        } else {
            second = None;
        }
        let Some(session) = main.as_mut() else {
            continue;
        };
        let mut out = Vec::new();
        for f in &plan.subscribes_foreign {
            packet_id = packet_id.wrapping_add(1).max(1);
            subscribe(&mut out, packet_id, f);
        }
        if !out.is_empty() && session.out.write_all(&out).await.is_err() {
            main = None;
            continue;
        }
        for tick in 0..TICKS {
            let mut out = Vec::new();
            for p in &plan.publishes {
                let n = p.count / TICKS + u32::from(tick < p.count % TICKS);
                let topic = if p.own {
                    format!("devices/{id}/{}", p.topic)
                } else {
                    p.topic.clone()
                };
                let payload = vec![b'x'; p.payload as usize];
                for _ in 0..n {
                    vouch_mqtt::publish_v311(&mut out, &topic, &payload, 0, 0);
                }
                stats.messages.fetch_add(u64::from(n), Relaxed);
            }
            let Some(s) = main.as_mut() else { break };
            if !out.is_empty()
                && (s.out.write_all(&out).await.is_err() || s.out.flush().await.is_err())
            {
                // Cut by the gateway (revoked, quarantined and disconnected): reconnect next window.
                main = None;
                break;
            }
            tokio::time::sleep(window / (TICKS + 1)).await;
        }
    }
    drop((main, second));
}

/// One attack's outcome, against the ground truth.
#[derive(Debug, Clone, Serialize)]
pub struct AttackOutcome {
    /// The scenario.
    pub scenario: Scenario,
    /// The device's index and id.
    pub device: u32,
    /// Its id.
    pub device_id: DeviceId,
    /// The window it started.
    pub start: u32,
    /// Windows from its start to the first score drop attributed to it (`None`: never detected).
    pub detected_after: Option<f64>,
    /// The lowest trust score seen during or right after it.
    pub lowest_trust: Option<u8>,
    /// What the playbooks did (steps, in order).
    pub actions: Vec<String>,
    /// Windows from its start until its quarantine was lifted, if it was quarantined and released.
    pub released_after: Option<f64>,
}

/// The run's summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Devices played.
    pub devices: u32,
    /// Windows played.
    pub windows: u32,
    /// Seconds per window.
    pub window_secs: u32,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Sessions opened, refused, messages sent and posture reports accepted.
    pub driver: BTreeMap<&'static str, u64>,
    /// Every attack and what became of it.
    pub attacks: Vec<AttackOutcome>,
    /// Devices that never attacked but were acted on (false positives), with the playbooks.
    pub false_alarms: Vec<(u32, String)>,
    /// Events seen, by action.
    pub events: BTreeMap<String, u64>,
}

struct Tally {
    outcomes: Vec<AttackOutcome>,
    false_alarms: Vec<(u32, String)>,
    events: BTreeMap<String, u64>,
}

impl Tally {
    fn new(fleet: &Fleet) -> Self {
        Self {
            outcomes: fleet
                .attacks
                .iter()
                .map(|a| AttackOutcome {
                    scenario: a.scenario,
                    device: a.device,
                    device_id: fleet.devices[a.device as usize].id,
                    start: a.start,
                    detected_after: None,
                    lowest_trust: None,
                    actions: Vec::new(),
                    released_after: None,
                })
                .collect(),
            false_alarms: Vec::new(),
            events: BTreeMap::new(),
        }
    }

    /// Folds one event in; returns the line to show, if it is worth showing.
    fn record(
        &mut self,
        fleet: &Fleet,
        dev: u32,
        w: f64,
        e: &vouch_events::Event,
    ) -> Option<String> {
        *self
            .events
            .entry(e.draft.action.as_str().to_owned())
            .or_default() += 1;
        let class = fleet.devices[dev as usize].class;
        let who = format!("device {dev:>4} ({class})");
        let attack = self.outcomes.iter_mut().find(|o| o.device == dev);
        match e.draft.action {
            Action::TrustChanged => {
                let t = e.payload::<TrustChanged>().ok()?;
                let score = t.score.get();
                let prev = t.previous.map(|p| u64::from(p.get()));
                let why = t.reasons.first().map_or("", |r| r.why.as_str());
                if let Some(o) = attack
                    && w + 0.5 >= f64::from(o.start)
                    && prev.is_some_and(|p| p > u64::from(score))
                {
                    o.detected_after.get_or_insert(w - f64::from(o.start));
                    o.lowest_trust = Some(o.lowest_trust.map_or(score, |l| l.min(score)));
                }
                match prev {
                    Some(p) if p > u64::from(score) && score < 70 => {
                        Some(format!("[w{w:>5.1}] TRUST  {who}: {p} → {score}  {why}"))
                    }
                    Some(p) if p < u64::from(score) && p < 70 && score >= 70 => Some(format!(
                        "[w{w:>5.1}] TRUST  {who}: {p} → {score}  recovered"
                    )),
                    _ => None,
                }
            }
            Action::ResponseTaken | Action::ResponseReleased => {
                let r = e.payload::<ResponseRecord>().ok()?;
                let step = r.step.as_str().to_owned();
                let (playbook, shadow) = (r.playbook.as_str(), r.shadow);
                match attack {
                    Some(o) => {
                        o.actions.push(step.clone());
                        if step == "release" {
                            o.released_after.get_or_insert(w - f64::from(o.start));
                        }
                    }
                    None if step != "release" => self.false_alarms.push((dev, playbook.to_owned())),
                    None => {}
                }
                let verb = match (step.as_str(), shadow) {
                    ("release", _) => "RELEASE".to_owned(),
                    (s, true) => format!("WOULD {}", s.to_uppercase()),
                    (s, false) => s.to_uppercase(),
                };
                Some(format!(
                    "[w{w:>5.1}] {verb:<7} {who} by playbook {playbook}: {}",
                    r.why
                ))
            }
            Action::SessionCut => Some(format!(
                "[w{w:>5.1}] CUT    {who}: {}",
                e.payload::<SessionCut>().ok()?.why
            )),
            _ => None,
        }
    }

    fn summary(self, fleet: &Fleet, stats: &DriverStats, took: Duration) -> Summary {
        use std::sync::atomic::Ordering::Relaxed;
        Summary {
            devices: fleet.config.devices,
            windows: fleet.config.windows,
            window_secs: fleet.config.window_secs,
            seconds: took.as_secs_f64(),
            driver: BTreeMap::from([
                ("sessions_opened", stats.connects.load(Relaxed)),
                ("sessions_refused", stats.refused.load(Relaxed)),
                ("messages_sent", stats.messages.load(Relaxed)),
                ("posture_reports", stats.postures.load(Relaxed)),
            ]),
            attacks: self.outcomes,
            false_alarms: self.false_alarms,
            events: self.events,
        }
    }
}

/// Prints the summary as a table or JSON.
pub fn print_summary(s: &Summary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!(
        "\nsummary: {} devices, {} windows of {} s, {:.0} s; {} sessions, {} messages, {} posture reports",
        s.devices,
        s.windows,
        s.window_secs,
        s.seconds,
        s.driver["sessions_opened"],
        s.driver["messages_sent"],
        s.driver["posture_reports"]
    );
    println!(
        "{:<20} {:>6} {:>10} {:>7}  {:<34} {:>9}",
        "scenario", "device", "detected", "lowest", "actions", "released"
    );
    for a in &s.attacks {
        let fmt = |x: Option<f64>| x.map_or("no".to_owned(), |v| format!("+{v:.1} w"));
        let mut actions = a.actions.clone();
        actions.dedup();
        println!(
            "{:<20} {:>6} {:>10} {:>7}  {:<34} {:>9}",
            a.scenario.as_str(),
            a.device,
            fmt(a.detected_after),
            a.lowest_trust.map_or("-".into(), |t| t.to_string()),
            if actions.is_empty() {
                "none".into()
            } else {
                actions.join(", ")
            },
            fmt(a.released_after)
        );
    }
    println!(
        "false alarms (devices never attacked that a playbook acted on): {}",
        s.false_alarms.len()
    );
    Ok(())
}
