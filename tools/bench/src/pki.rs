//! `vouch bench pki`: issuance, EST, OCSP and CRL speed, each beside its bound or peer where one exists.
//!
//! - issuance: verify the request, sign, persist (SQLite, durable, group commit), concurrently, against the bound
//!   OpenSSL gives on this machine in the same run: `openssl speed ecdsap256`, 1 / (1/sign + 1/verify);
//! - EST: enrollments per second over a new TLS connection each, from an in-repo load generator;
//! - OCSP: answers per second, with a nonce (signed fresh) and without (served pre-signed);
//! - CRL: time and size to sign a CRL of N revoked certificates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use vouch_identity::{IdentityService, PkiSettings};
use vouch_pki::{
    CaSubject, DeviceProfile, IssuingCa, KeyAlgorithm, Passphrase, init_ca, new_request,
};
use vouch_store::{Change, Store};
use vouch_types::{
    Actor, Clock, DeviceId, DeviceState, NewDevice, RevocationReason, Serial, SystemClock,
};

/// Arguments of `bench pki`.
#[derive(Args)]
pub struct PkiArgs {
    /// Certificates to issue in-process.
    #[arg(long, default_value_t = 5_000)]
    issue: u32,
    /// Concurrent issuers (they share commits: group commit).
    #[arg(long, default_value_t = 32)]
    issuers: u32,
    /// EST enrollments over new TLS connections.
    #[arg(long, default_value_t = 2_000)]
    est: u32,
    /// Concurrent EST clients.
    #[arg(long, default_value_t = 16)]
    est_clients: u32,
    /// OCSP requests to answer (each way).
    #[arg(long, default_value_t = 20_000)]
    ocsp: u32,
    /// Revoked certificates in the CRL.
    #[arg(long, default_value_t = 1_000_000)]
    crl: u32,
}

/// `openssl speed ecdsap256`: (signs/s, verifies/s) on this machine now.
fn openssl_speed() -> Result<(f64, f64)> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "2", "ecdsap256"])
        .output()
        .context("running `openssl speed` (is openssl installed?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("nistp256"))
        .context("no nistp256 line in `openssl speed`")?;
    let nums: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums.as_slice() {
        [.., sign, verify] => Ok((*sign, *verify)),
        _ => bail!("cannot read `openssl speed` output: {line}"),
    }
}

fn settings() -> PkiSettings {
    PkiSettings {
        profile: DeviceProfile {
            trust_domain: "bench.local".into(),
            lifetime_days: 7,
            crl_url: "http://127.0.0.1/pki/crl".into(),
            ocsp_url: "http://127.0.0.1/pki/ocsp".into(),
        },
        enrollment_token_ttl_hours: 24,
        crl_validity_hours: 24,
        ocsp_validity_minutes: 60,
    }
}

struct Setup {
    store: Arc<dyn Store>,
    svc: Arc<IdentityService>,
    root_der: Vec<u8>,
    _dir: TempDir,
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn setup(name: &str) -> Result<Setup> {
    let dir =
        TempDir(std::env::temp_dir().join(format!("vouch-bench-{name}-{}", std::process::id())));
    let store: Arc<dyn Store> = Arc::new(vouch_store_sqlite::SqliteStore::open(
        dir.0.join("v.db"),
        vouch_store_sqlite::Durability::Full,
    )?);
    let clock = Arc::new(SystemClock);
    let pass = Passphrase::new("benchmark passphrase".into())?;
    let m = init_ca(
        KeyAlgorithm::EcdsaP256,
        &CaSubject {
            organization: "Bench".into(),
        },
        clock.now(),
        &pass,
    )?;
    let ca = IssuingCa::load(&m.issuing_cert_pem, &m.issuing_key_pem, &pass)?;
    let root_der = vouch_pki::cert_der_from_pem(&m.root_cert_pem)?;
    let svc = Arc::new(IdentityService::new(
        store.clone(),
        clock,
        ca,
        root_der.clone(),
        settings(),
    ));
    Ok(Setup {
        store,
        svc,
        root_der,
        _dir: dir,
    })
}

/// `n` onboarding devices, created in one import.
async fn devices(store: &dyn Store, n: u32, prefix: &str) -> Result<Vec<DeviceId>> {
    let batch: Vec<NewDevice> = (0..n)
        .map(|i| {
            let mut d = NewDevice::bare(DeviceId::derived(&format!("{prefix}:{i}")));
            d.state = DeviceState::Onboarding;
            d
        })
        .collect();
    let ids = batch.iter().map(|d| d.id).collect();
    let change = Change {
        actor: Actor::System("bench".into()),
        reason: None,
        at: SystemClock.now(),
    };
    store.import_devices(batch, change).await?;
    Ok(ids)
}

async fn bench_issue(n: u32, issuers: u32) -> Result<(f64, f64, f64, f64)> {
    let s = setup("issue").await?;
    let ids = devices(&*s.store, n, "issue").await?;
    let work: Vec<(DeviceId, Vec<u8>)> = ids
        .iter()
        .map(|id| Ok((*id, new_request(&id.to_string())?)))
        .collect::<Result<_>>()?;
    let queue = Arc::new(std::sync::Mutex::new(work));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..issuers.max(1) {
        let (queue, svc) = (queue.clone(), s.svc.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue
                    .lock()
                    .map_err(|_| anyhow::anyhow!("queue poisoned"))?
                    .pop();
                let Some((id, csr)) = next else {
                    return Ok::<_, anyhow::Error>(());
                };
                svc.issue_for_device(id, &csr, Actor::System("bench".into()), None)
                    .await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let rate = f64::from(n) / start.elapsed().as_secs_f64();
    let (sign, verify) = tokio::task::spawn_blocking(openssl_speed).await??;
    let bound = 1.0 / (1.0 / sign + 1.0 / verify);
    Ok((rate, sign, verify, bound))
}

/// One EST enrollment over a fresh TLS connection: plain HTTP/1.1 written by hand, `Connection: close`.
async fn est_once(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    token: &str,
    body: &str,
) -> Result<()> {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost")?.to_owned();
    let mut tls = connector.connect(name, tcp).await?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("d:{token}"));
    let req = format!(
        "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/pkcs10\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await?;
    let mut resp = Vec::new();
    tls.read_to_end(&mut resp).await?;
    if !resp.starts_with(b"HTTP/1.1 200") {
        bail!(
            "enrollment failed: {}",
            String::from_utf8_lossy(&resp[..resp.len().min(200)])
        );
    }
    Ok(())
}

async fn bench_est(n: u32, clients: u32) -> Result<f64> {
    use vouch_api::tls::server_config;
    let s = setup("est").await?;
    let ids = devices(&*s.store, n, "est").await?;
    let mut work = Vec::with_capacity(n as usize);
    for id in &ids {
        let (_, secret) = s
            .svc
            .create_enrollment_token(*id, Actor::System("bench".into()), None)
            .await?;
        let csr = new_request(&id.to_string())?;
        work.push((
            secret.expose().to_owned(),
            vouch_pki::pkcs7::base64_lines(&csr),
        ));
    }
    let id = s
        .svc
        .server_identity(&["localhost".into()], "127.0.0.1:0".parse()?)?;
    let tls = server_config(id.chain, id.key_pkcs8, std::slice::from_ref(&s.root_der))?;
    // The listener `vouch serve` runs for EST: its caps, its TLS and libest's HTTP/1 options.
    let server = vouch_api::serve::HttpServer::bind("est", "127.0.0.1:0".parse()?)
        .await?
        .tls(tls)
        .http1_options(vouch_api::serve::Http1Options::EST);
    let addr = server.local_addr();
    let clock = Arc::new(SystemClock);
    let decisions =
        vouch_api::decide::DecisionPoint::start(s.store.clone(), clock.clone(), None).await?;
    let seal = Arc::new(vouch_api::totp::SealKey::generate()?.0);
    let state = vouch_api::AppState::new(s.store.clone(), clock, decisions, seal)
        .with_identity(s.svc.clone());
    let app = vouch_api::est::router(state);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server.serve(app, async {
        let _ = stopped.await;
    }));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from(s.root_der.clone()))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let queue = Arc::new(tokio::sync::Mutex::new(work));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (queue, connector) = (queue.clone(), connector.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some((token, body)) = queue.lock().await.pop() else {
                    return Ok::<_, anyhow::Error>(());
                };
                est_once(&connector, addr, &token, &body).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let rate = f64::from(n) / start.elapsed().as_secs_f64();
    let _ = stop.send(());
    server.await?;
    Ok(rate)
}

async fn bench_ocsp(n: u32) -> Result<(f64, f64)> {
    let s = setup("ocsp").await?;
    let ids = devices(&*s.store, 1, "ocsp").await?;
    let cert = s
        .svc
        .issue_for_device(
            ids[0],
            &new_request(&ids[0].to_string())?,
            Actor::System("b".into()),
            None,
        )
        .await?;
    // Requests as OpenSSL makes them (SHA-1 CertID), with and without a nonce.
    let issuing = pem("CERTIFICATE", s.svc.ca_cert_der());
    let dir = std::env::temp_dir().join(format!("vouch-bench-ocsp-req-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("issuing.pem"), issuing)?;
    std::fs::write(dir.join("dev.pem"), cert.pem())?;
    let mut reqs = Vec::new();
    for (file, nonce) in [("nonce.der", "-nonce"), ("plain.der", "-no_nonce")] {
        let out = std::process::Command::new("openssl")
            .current_dir(&dir)
            .args([
                "ocsp",
                "-issuer",
                "issuing.pem",
                "-cert",
                "dev.pem",
                nonce,
                "-reqout",
                file,
            ])
            .output()?;
        if !out.status.success() {
            bail!(
                "openssl ocsp -reqout failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        reqs.push(std::fs::read(dir.join(file))?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut rates = Vec::new();
    for req in &reqs {
        let start = Instant::now();
        for _ in 0..n {
            let resp = s.svc.ocsp(req).await;
            if resp.len() < 100 {
                bail!("OCSP answered with an error");
            }
        }
        rates.push(f64::from(n) / start.elapsed().as_secs_f64());
    }
    Ok((rates[0], rates[1]))
}

fn pem(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}-----END {label}-----\n",
        vouch_pki::pkcs7::base64_lines(der).replace("\r\n", "\n")
    )
}

fn bench_crl(n: u32) -> Result<(Duration, usize)> {
    let now = SystemClock.now();
    let pass = Passphrase::new("benchmark passphrase".into())?;
    let m = init_ca(
        KeyAlgorithm::EcdsaP256,
        &CaSubject {
            organization: "Bench".into(),
        },
        now,
        &pass,
    )?;
    let ca = IssuingCa::load(&m.issuing_cert_pem, &m.issuing_key_pem, &pass)?;
    let revoked: Vec<(Serial, vouch_types::Timestamp, RevocationReason)> = (0..n)
        .map(|i| {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&i.to_be_bytes());
            b[4..8].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            (Serial::from_random(b), now, RevocationReason::KeyCompromise)
        })
        .collect();
    let start = Instant::now();
    let der = ca.crl(&revoked, now, now.plus_micros(86_400_000_000), 1)?;
    Ok((start.elapsed(), der.len()))
}

/// Runs the PKI benchmarks and prints the figures.
pub async fn run(a: PkiArgs) -> Result<()> {
    eprintln!(
        "issuing {} certificates in-process, then `openssl speed ecdsap256`…",
        a.issue
    );
    let (issue, sign, verify, bound) = bench_issue(a.issue, a.issuers).await?;
    eprintln!(
        "{} EST enrollments over new TLS connections, {} clients…",
        a.est, a.est_clients
    );
    let est = bench_est(a.est, a.est_clients).await?;
    eprintln!("{} OCSP requests each way…", a.ocsp);
    let (ocsp_nonce, ocsp_cached) = bench_ocsp(a.ocsp).await?;
    eprintln!("a CRL of {} revoked certificates…", a.crl);
    let (crl_time, crl_size) = tokio::task::spawn_blocking(move || bench_crl(a.crl)).await??;
    println!(
        "issuance (verify CSR + sign + persist, durable SQLite, {} issuers): {issue:.0}/s",
        a.issuers
    );
    println!(
        "  openssl speed ecdsap256, same run: sign {sign:.0}/s, verify {verify:.0}/s -> bound {bound:.0}/s; \
         Vouch reaches {:.0}% of it",
        100.0 * issue / bound
    );
    println!(
        "EST simpleenroll, new TLS connection each, {} clients: {est:>9.0}/s",
        a.est_clients
    );
    println!("OCSP with a nonce (signed fresh):                        {ocsp_nonce:>9.0}/s");
    println!("OCSP without a nonce (pre-signed, cached):               {ocsp_cached:>9.0}/s");
    println!(
        "CRL of {} revoked: {:.2} s, {:.1} MB",
        a.crl,
        crl_time.as_secs_f64(),
        crl_size as f64 / 1e6
    );
    Ok(())
}
