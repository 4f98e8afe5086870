//! What the gateway tests share: a real Mosquitto on an ephemeral loopback port, a Vouch store with its CA,
//! a running gateway in front of the broker, and devices holding certificates the CA issued.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    missing_docs
)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use vouch_decide::DecisionPoint;
use vouch_gateway::{Gateway, GatewayConfig, Upstream};
use vouch_identity::{IdentityService, PkiSettings};
use vouch_pki::{CaSubject, DeviceProfile, IssuingCa, KeyAlgorithm, Passphrase, init_ca};
use vouch_store::{Change, DeviceEdit, Store};
use vouch_store_sqlite::{Durability, SqliteStore};
use vouch_types::{
    Actor, Clock, DeviceId, DeviceState, ManualClock, NewDevice, Serial, SystemClock, Timestamp,
};

/// A Mosquitto broker of the test's own, killed when dropped.
pub struct Broker {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The mosquitto binary: on PATH, or where Debian puts it.
pub fn mosquitto_bin() -> String {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    "mosquitto".into()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Mosquitto on a free loopback port (plain MQTT; the gateway in front of it does TLS).
pub fn broker() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..5 {
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_keepalive 600\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (scripts/test installs it)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Broker {
                    child,
                    addr,
                    _dir: dir,
                };
            }
            if child.try_wait().unwrap().is_some() {
                break; // the port was taken meanwhile: try another
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("mosquitto did not start");
}

/// A device's credentials: its id, certificate (DER), key (PKCS#8 DER) and serial.
#[derive(Clone)]
pub struct DeviceCreds {
    pub id: DeviceId,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub serial: Serial,
}

pub struct World {
    pub store: Arc<dyn Store>,
    pub svc: Arc<IdentityService>,
    pub decisions: Arc<DecisionPoint>,
    pub gateway: Gateway,
    pub addr: SocketAddr,
    pub broker: Broker,
    pub root: Vec<u8>,
    pub issuing: Vec<u8>,
    pub ca: vouch_pki::CaMaterial,
    pub pass: Passphrase,
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

pub fn settings() -> PkiSettings {
    PkiSettings {
        profile: DeviceProfile {
            trust_domain: "gw.test".into(),
            lifetime_days: 30,
            crl_url: "http://127.0.0.1/crl".into(),
            ocsp_url: "http://127.0.0.1/ocsp".into(),
        },
        enrollment_token_ttl_hours: 1,
        crl_validity_hours: 24,
        ocsp_validity_minutes: 60,
    }
}

pub fn change() -> Change {
    Change {
        actor: Actor::System("test".into()),
        reason: None,
        at: SystemClock.now(),
    }
}

/// A store with a CA, a broker, and a gateway in front of it, configured by `tune`.
pub async fn world(tune: impl FnOnce(&mut GatewayConfig)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("v.db"), Durability::Normal).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let pass = Passphrase::new("a passphrase long enough".into()).unwrap();
    let m = init_ca(
        KeyAlgorithm::EcdsaP256,
        &CaSubject {
            // Each world its own CA name: a foreign CA is unknown, not a same-named one with a bad signature.
            organization: format!("Gateway tests {}", DeviceId::new()),
        },
        clock.now(),
        &pass,
    )
    .unwrap();
    let ca = IssuingCa::load(&m.issuing_cert_pem, &m.issuing_key_pem, &pass).unwrap();
    let root = vouch_pki::cert_der_from_pem(&m.root_cert_pem).unwrap();
    let issuing = ca.cert_der().to_vec();
    let svc = Arc::new(IdentityService::new(
        store.clone(),
        clock.clone(),
        ca,
        root.clone(),
        settings(),
    ));
    let decisions = DecisionPoint::start(store.clone(), clock.clone(), None)
        .await
        .unwrap();
    let broker = broker();
    let id = svc
        .server_identity(&["localhost".into()], "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let tls =
        vouch_gateway::server_config(id.chain, id.key_pkcs8, &[root.clone(), issuing.clone()])
            .unwrap();
    let mut config = GatewayConfig::new(Upstream {
        addr: broker.addr,
        tls: None,
    });
    tune(&mut config);
    let gateway = Gateway::start(config, tls, store.clone(), clock, decisions.clone())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let g = gateway.clone();
    tokio::spawn(async move { g.serve(listener, stop_rx).await });
    World {
        store,
        svc,
        decisions,
        gateway,
        addr,
        broker,
        root,
        issuing,
        ca: m,
        pass,
        _stop: stop,
        _dir: dir,
    }
}

/// A P-256 key and a CSR for it, as DER.
pub fn key_and_csr(device: DeviceId) -> (Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, device.to_string());
    let csr = params.serialize_request(&key).unwrap().der().to_vec();
    (key.serialize_der(), csr)
}

impl World {
    /// A new device in the registry, enrolled: active, with a certificate.
    pub async fn device(&self) -> DeviceCreds {
        let mut d = NewDevice::bare(DeviceId::new());
        d.state = DeviceState::Onboarding;
        let id = self.store.create_device(d, change()).await.unwrap().id;
        let (key, csr) = key_and_csr(id);
        let issued = self
            .svc
            .issue_for_device(id, &csr, Actor::System("test".into()), None)
            .await
            .unwrap();
        DeviceCreds {
            id,
            cert: issued.der,
            key,
            serial: issued.serial,
        }
    }

    /// A certificate for `device` that expired yesterday (issued by the same CA, recorded in the store).
    pub async fn expired(&self, device: &DeviceCreds) -> DeviceCreds {
        let past =
            Timestamp::from_unix_micros(SystemClock.now().unix_micros() - 3 * 86_400_000_000);
        let ca = IssuingCa::load(
            &self.ca.issuing_cert_pem,
            &self.ca.issuing_key_pem,
            &self.pass,
        )
        .unwrap();
        let mut s = settings();
        s.profile.lifetime_days = 1;
        let old = IdentityService::new(
            self.store.clone(),
            Arc::new(ManualClock::new(past)),
            ca,
            self.root.clone(),
            s,
        );
        let (key, csr) = key_and_csr(device.id);
        let issued = old
            .issue_for_device(device.id, &csr, Actor::System("test".into()), None)
            .await
            .unwrap();
        DeviceCreds {
            id: device.id,
            cert: issued.der,
            key,
            serial: issued.serial,
        }
    }

    pub async fn revoke(&self, serial: Serial) {
        self.svc
            .revoke(
                serial,
                vouch_types::RevocationReason::KeyCompromise,
                Actor::System("test".into()),
                None,
            )
            .await
            .unwrap();
    }

    pub async fn transition(&self, id: DeviceId, to: DeviceState) {
        self.store
            .edit_device(id, DeviceEdit::Transition(to), None, change())
            .await
            .unwrap();
    }

    /// A rustls client configuration trusting Vouch's root and authenticating as `creds`.
    pub fn client_tls(&self, creds: Option<&DeviceCreds>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(self.root.clone())).unwrap();
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        Arc::new(match creds {
            Some(c) => b
                .with_client_auth_cert(
                    vec![
                        CertificateDer::from(c.cert.clone()),
                        CertificateDer::from(self.issuing.clone()),
                    ],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key.clone())),
                )
                .unwrap(),
            None => b.with_no_client_auth(),
        })
    }

    /// A raw TLS connection to the gateway as `creds` (for hand-made packets).
    pub async fn raw(
        &self,
        creds: Option<&DeviceCreds>,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tokio_rustls::TlsConnector::from(self.client_tls(creds))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
    }

    /// rumqttc options for `creds` through the gateway (3.1.1).
    pub fn mqtt3(&self, client_id: &str, creds: &DeviceCreds) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(client_id, "127.0.0.1", self.addr.port());
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(self.client_tls(Some(creds))),
        ));
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(1 << 20, 1 << 20);
        o
    }

    /// rumqttc options for `creds` through the gateway (5.0).
    pub fn mqtt5(&self, client_id: &str, creds: &DeviceCreds) -> rumqttc::v5::MqttOptions {
        let mut o = rumqttc::v5::MqttOptions::new(client_id, "127.0.0.1", self.addr.port());
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(self.client_tls(Some(creds))),
        ));
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    /// A plain client straight on the broker (the test's view of what got through).
    pub fn direct(&self, client_id: &str) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(client_id, "127.0.0.1", self.broker.addr.port());
        o.set_max_packet_size(1 << 20, 1 << 20);
        o
    }
}

/// Subscribes to `filter` straight on the broker and forwards every message's topic and payload.
pub async fn watch_broker(
    world: &World,
    filter: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let (client, mut events) = rumqttc::AsyncClient::new(world.direct("watcher"), 100);
    client
        .subscribe(filter, rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready = Some(ready_tx);
    tokio::spawn(async move {
        let _keep = client;
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(5), ready_rx)
        .await
        .unwrap()
        .unwrap();
    rx
}
