//! Device posture reports end to end: operators on the main API (in-process, as the other API tests), devices
//! on the real EST listener over mutual TLS with certificates the CA issued (curl as the third-party client,
//! OpenSSL-made keys), over a real SQLite store. Accepted reports are logged, move the registry's firmware
//! and reach in-process subscribers; refused ones say why and change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::TryRecvError;
use tower::ServiceExt;
use vouch_api::tls::server_config;
use vouch_api::{AppState, Limits, auth, router};
use vouch_identity::{IdentityService, PkiSettings};
use vouch_pki::{CaSubject, DeviceProfile, IssuingCa, KeyAlgorithm, Passphrase, init_ca};
use vouch_store::{Change, DeviceEdit, Store};
use vouch_store_sqlite::{Durability, SqliteStore};
use vouch_types::{
    Actor, Clock, DeviceId, DeviceState, FirmwareVersion, NewDevice, Observation, Role, Serial,
    SystemClock,
};

/// A store with a CA, the main API in-process and the EST listener on a loopback port.
struct World {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    svc: Arc<IdentityService>,
    state: AppState,
    app: Router,
    est: SocketAddr,
    admin: String,
    dir: tempfile::TempDir,
}

/// An enrolled device: its id, the serial of its certificate, and the PEM files curl presents.
struct Dev {
    id: DeviceId,
    serial: Serial,
    cert: String,
    key: String,
}

fn change() -> Change {
    Change {
        actor: Actor::System("test".into()),
        reason: None,
        at: SystemClock.now(),
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl World {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("v.db"), Durability::Normal).unwrap());
        // The real clock: the TLS stack checks certificates' validity against it too.
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let admin = auth::bootstrap_admin(&*store, &*clock)
            .await
            .unwrap()
            .unwrap();
        let pass = Passphrase::new("a passphrase long enough".into()).unwrap();
        let m = init_ca(
            KeyAlgorithm::EcdsaP256,
            &CaSubject {
                organization: "Posture tests".into(),
            },
            clock.now(),
            &pass,
        )
        .unwrap();
        std::fs::write(dir.path().join("root.pem"), &m.root_cert_pem).unwrap();
        let ca = IssuingCa::load(&m.issuing_cert_pem, &m.issuing_key_pem, &pass).unwrap();
        let root = vouch_pki::cert_der_from_pem(&m.root_cert_pem).unwrap();
        let svc = Arc::new(IdentityService::new(
            store.clone(),
            clock.clone(),
            ca,
            root.clone(),
            PkiSettings {
                profile: DeviceProfile {
                    trust_domain: "posture.test".into(),
                    lifetime_days: 30,
                    crl_url: "http://127.0.0.1/crl".into(),
                    ocsp_url: "http://127.0.0.1/ocsp".into(),
                },
                enrollment_token_ttl_hours: 1,
                crl_validity_hours: 24,
                ocsp_validity_minutes: 60,
            },
        ));
        let decisions = vouch_api::decide::DecisionPoint::start(store.clone(), clock.clone(), None)
            .await
            .unwrap();
        let seal = Arc::new(vouch_api::totp::SealKey::generate().unwrap().0);
        let state =
            AppState::new(store.clone(), clock.clone(), decisions, seal).with_identity(svc.clone());
        let app = router(state.clone(), Limits::default());

        // The EST listener as `vouch serve` starts it: client certificates optional, checked against Vouch's CAs.
        let id = svc
            .server_identity(&["localhost".into()], "127.0.0.1:0".parse().unwrap())
            .unwrap();
        let tls =
            server_config(id.chain, id.key_pkcs8, &[root, svc.ca_cert_der().to_vec()]).unwrap();
        let server = vouch_api::serve::HttpServer::bind("est", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
            .tls(tls);
        let est = server.local_addr();
        let est_app = vouch_api::est::router(state.clone());
        tokio::spawn(server.serve(est_app, std::future::pending()));
        Self {
            store,
            clock,
            svc,
            state,
            app,
            est,
            admin: admin.expose().to_owned(),
            dir,
        }
    }

    /// A device registered with firmware 1.0.0 and enrolled (active) with a certificate for an OpenSSL-made
    /// key; `name` names its PEM files.
    async fn device(&self, name: &str) -> Dev {
        let mut d = NewDevice::bare(DeviceId::new());
        d.state = DeviceState::Onboarding;
        d.firmware = Some("1.0.0".parse().unwrap());
        let id = self.store.create_device(d, change()).await.unwrap().id;
        let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
        openssl(
            self.dir.path(),
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-subj",
                &format!("/CN={id}"),
                "-outform",
                "DER",
                "-out",
                &csr,
            ],
        );
        let csr_der = std::fs::read(self.dir.path().join(&csr)).unwrap();
        let issued = self
            .svc
            .issue_for_device(id, &csr_der, Actor::System("test".into()), None)
            .await
            .unwrap();
        let cert = format!("{name}.pem");
        std::fs::write(
            self.dir.path().join(&cert),
            vouch_pki::pem_encode("CERTIFICATE", &issued.der),
        )
        .unwrap();
        assert_eq!(
            self.store.get_device(id).await.unwrap().state,
            DeviceState::Active
        );
        Dev {
            id,
            serial: issued.serial,
            cert,
            key,
        }
    }

    /// A device that never enrolled, in `state`.
    async fn bare(&self, state: DeviceState) -> DeviceId {
        let mut d = NewDevice::bare(DeviceId::new());
        d.state = if state == DeviceState::Retired {
            DeviceState::Discovered
        } else {
            state
        };
        let id = self.store.create_device(d, change()).await.unwrap().id;
        if state == DeviceState::Retired {
            self.store
                .edit_device(id, DeviceEdit::Transition(state), None, change())
                .await
                .unwrap();
        }
        id
    }

    async fn token(&self, role: Role) -> String {
        common::operator_token(&*self.store, &*self.clock, role, None).await
    }

    /// A request to the main API: status, content type and the parsed answer.
    async fn api(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, String, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, ctype, v)
    }

    /// An operator's report for `id`.
    async fn report(&self, token: &str, id: DeviceId, body: &str) -> (StatusCode, String, Value) {
        self.api(
            Method::POST,
            &format!("/api/v1/devices/{id}/posture"),
            Some(token),
            Some(body.to_owned()),
        )
        .await
    }

    /// A device's report for `id` on the EST listener with curl, presenting `dev`'s certificate if given:
    /// status, content type and the parsed answer.
    async fn est_report(
        &self,
        dev: Option<&Dev>,
        id: DeviceId,
        body: &str,
    ) -> (StatusCode, String, Value) {
        let mut args = vec![
            "-sS".to_owned(),
            "-o".into(),
            "-".into(),
            "-w".into(),
            "\n%{http_code} %{content_type}".into(),
            "--cacert".into(),
            "root.pem".into(),
            "-X".into(),
            "POST".into(),
            "-H".into(),
            "Content-Type: application/json".into(),
            "--data-binary".into(),
            "@-".into(),
        ];
        if let Some(d) = dev {
            args.extend([
                "--cert".into(),
                d.cert.clone(),
                "--key".into(),
                d.key.clone(),
            ]);
        }
        args.push(format!(
            "https://127.0.0.1:{}/api/v1/devices/{id}/posture",
            self.est.port()
        ));
        let (dir, body) = (self.dir.path().to_owned(), body.to_owned());
        let out = tokio::task::spawn_blocking(move || {
            let mut child = Command::new("curl")
                .current_dir(dir)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("curl is installed (scripts/test installs it)");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(body.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, tail) = text
            .rsplit_once('\n')
            .unwrap_or_else(|| panic!("curl: {text} {}", String::from_utf8_lossy(&out.stderr)));
        let (code, ctype) = tail.split_once(' ').unwrap_or((tail, ""));
        let status = StatusCode::from_u16(code.trim().parse().unwrap()).unwrap();
        let v = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
        (status, ctype.trim().to_owned(), v)
    }

    /// What "changes nothing" is checked against: every event in the log, and every device record.
    async fn footprint(&self) -> (usize, Vec<vouch_types::Device>) {
        let devices = self
            .store
            .list_devices(&vouch_store::DeviceQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .devices;
        (self.store.events(None, 1000).await.unwrap().len(), devices)
    }

    async fn events_of(&self, id: DeviceId) -> Vec<vouch_events::Event> {
        self.store.device_events(id, None, 1000).await.unwrap()
    }

    async fn metrics(&self) -> String {
        let (_, _, v) = self
            .api(Method::GET, "/metrics", Some(&self.admin), None)
            .await;
        v.as_str().unwrap().to_owned()
    }
}

fn assert_problem(what: &str, ctype: &str, v: &Value, status: StatusCode, needle: &str) {
    assert_eq!(ctype, "application/problem+json", "{what}: {v}");
    assert_eq!(v["status"], status.as_u16(), "{what}: {v}");
    assert!(
        v["type"]
            .as_str()
            .unwrap_or_default()
            .starts_with("urn:vouch:problem:"),
        "{what}: {v}"
    );
    let detail = v["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(needle),
        "{what}: `{detail}` should mention `{needle}`"
    );
}

fn hash() -> String {
    "0123456789ABCDEF".repeat(4)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operators_report_moves_the_firmware_logs_both_events_and_is_broadcast() {
    let w = World::new().await;
    let dev = w.device("d").await;
    let op = w.token(Role::Operator).await;
    let mut rx = w.state.observations();
    let before = w.events_of(dev.id).await.len();

    let body = json!({
        "firmware": "2.1.0",
        "config_hash": hash(),
        "open_ports": [1883, 22, 443],
        "attestation": {"verified": true},
        "device": dev.id,
    });
    let (status, _, v) = w.report(&op, dev.id, &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["device"], dev.id.to_string());
    assert_eq!(v["firmware"], "2.1.0");
    assert_eq!(v["config_hash"], hash().to_lowercase(), "normalised");
    assert_eq!(v["open_ports"], json!([22, 443, 1883]), "sorted");
    assert_eq!(v["attestation_ok"], true);

    let record = w.store.get_device(dev.id).await.unwrap();
    assert_eq!(record.firmware, Some("2.1.0".parse().unwrap()));
    let events = w.events_of(dev.id).await;
    assert_eq!(
        events.len(),
        before + 2,
        "posture.reported and device.updated"
    );
    let (posted, updated) = (&events[before].draft, &events[before + 1].draft);
    assert_eq!(posted.action.as_str(), "posture.reported");
    assert!(posted.actor.to_string().starts_with("operator:"));
    let after: Value = serde_json::from_str(posted.after.as_deref().unwrap()).unwrap();
    assert_eq!(after, v, "the event holds the report as answered");
    assert_eq!(updated.action.as_str(), "device.updated");
    assert_eq!(updated.actor, posted.actor);
    assert_eq!(
        updated.reason.as_ref().unwrap().to_string(),
        "posture report"
    );
    let old: Value = serde_json::from_str(updated.before.as_deref().unwrap()).unwrap();
    assert_eq!(old["firmware"], "1.0.0");

    let Observation::Posture(seen) = rx.try_recv().unwrap() else {
        panic!("a posture observation")
    };
    assert_eq!(serde_json::to_value(&seen).unwrap(), v);
    assert_eq!(
        seen.firmware,
        Some(FirmwareVersion::try_from("2.1.0".to_owned()).unwrap())
    );
    // And queued in the store, for the trust service of whichever process runs it.
    let queued = w.store.observations(None, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].observation().unwrap(), Observation::Posture(seen));

    // The same firmware again: the report is logged, the record is left alone.
    let (status, _, v) = w
        .report(&op, dev.id, r#"{"firmware": "2.1.0", "open_ports": []}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let events = w.events_of(dev.id).await;
    assert_eq!(events.len(), before + 3);
    assert_eq!(events[before + 2].draft.action.as_str(), "posture.reported");
    assert_eq!(
        w.store.get_device(dev.id).await.unwrap().revision,
        record.revision
    );
    assert!(matches!(rx.try_recv(), Ok(Observation::Posture(_))));

    // A downgrade is as visible as an upgrade.
    let (status, _, _) = w.report(&op, dev.id, r#"{"firmware": "1.9.9"}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        w.store.get_device(dev.id).await.unwrap().firmware,
        Some("1.9.9".parse().unwrap())
    );

    // Without any subscriber, a report is accepted all the same.
    drop(rx);
    let (status, _, v) = w
        .report(&op, dev.id, r#"{"attestation": {"verified": false}}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["attestation_ok"], false);

    let metrics = w.metrics().await;
    assert!(
        metrics.contains(r#"vouch_posture_reports_total{via="api",outcome="accepted"} 4"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_reports_with_its_own_certificate_on_the_est_listener() {
    let w = World::new().await;
    let dev = w.device("d").await;
    let mut rx = w.state.observations();
    let before = w.events_of(dev.id).await.len();

    let body =
        json!({"firmware": "3.0.0", "config_hash": hash(), "open_ports": [8883], "device": dev.id});
    let (status, ctype, v) = w.est_report(Some(&dev), dev.id, &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(ctype, "application/json");
    assert_eq!(v["firmware"], "3.0.0");
    assert_eq!(v["open_ports"], json!([8883]));

    let events = w.events_of(dev.id).await;
    assert_eq!(events.len(), before + 2);
    let device_actor = format!("system:device:{}", dev.id);
    assert_eq!(events[before].draft.action.as_str(), "posture.reported");
    assert_eq!(events[before].draft.actor.to_string(), device_actor);
    assert_eq!(events[before + 1].draft.action.as_str(), "device.updated");
    assert_eq!(events[before + 1].draft.actor.to_string(), device_actor);
    assert_eq!(
        w.store.get_device(dev.id).await.unwrap().firmware,
        Some("3.0.0".parse().unwrap())
    );
    let Ok(Observation::Posture(seen)) = rx.try_recv() else {
        panic!("a posture observation")
    };
    assert_eq!(seen.device, dev.id);

    // The device's own reports are checked exactly as an operator's.
    let (status, ctype, v) = w
        .est_report(Some(&dev), dev.id, r#"{"open_ports": [0]}"#)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem("port 0 over EST", &ctype, &v, status, "open_ports: 0");
    let big = format!(r#"{{"firmware": "{}"}}"#, "x".repeat(17 * 1024));
    let (status, ctype, v) = w.est_report(Some(&dev), dev.id, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_problem("oversized over EST", &ctype, &v, status, "at most 16 KiB");
    assert_eq!(w.events_of(dev.id).await.len(), before + 2);

    let metrics = w.metrics().await;
    assert!(
        metrics.contains(r#"vouch_posture_reports_total{via="est",outcome="accepted"} 1"#)
            && metrics.contains(r#"vouch_posture_reports_total{via="est",outcome="refused"} 2"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_devices_missing_or_revoked_certificate_is_refused_and_changes_nothing() {
    let w = World::new().await;
    let a = w.device("a").await;
    let b = w.device("b").await;
    let mut rx = w.state.observations();
    let body = r#"{"firmware": "6.6.6"}"#;
    let before = w.footprint().await;
    let (a_events, b_events) = (w.events_of(a.id).await.len(), w.events_of(b.id).await.len());

    let (status, ctype, v) = w.est_report(Some(&a), b.id, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_problem(
        "another device's certificate",
        &ctype,
        &v,
        status,
        "belongs to another device",
    );
    let (status, ctype, v) = w.est_report(None, b.id, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_problem("no certificate", &ctype, &v, status, "mutual TLS");
    // Authentication comes first: a bad body from a client without a certificate learns nothing more.
    let (status, _, v) = w.est_report(None, b.id, r#"{"colour": "red"}"#).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");

    assert_eq!(w.events_of(a.id).await.len(), a_events);
    assert_eq!(w.events_of(b.id).await.len(), b_events);
    assert_eq!(w.footprint().await, before);
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));

    // A revoked certificate no longer speaks for its device.
    w.svc
        .revoke(
            b.serial,
            vouch_types::RevocationReason::KeyCompromise,
            Actor::System("test".into()),
            None,
        )
        .await
        .unwrap();
    let before = w.footprint().await;
    let (status, ctype, v) = w.est_report(Some(&b), b.id, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_problem("revoked certificate", &ctype, &v, status, "revoked");
    assert_eq!(w.footprint().await, before);
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_reports_are_refused_with_a_clear_problem_and_change_nothing() {
    let w = World::new().await;
    let dev = w.device("d").await;
    let discovered = w.bare(DeviceState::Discovered).await;
    let onboarding = w.bare(DeviceState::Onboarding).await;
    let retired = w.bare(DeviceState::Retired).await;
    let op = w.token(Role::Operator).await;
    let mut rx = w.state.observations();
    let before = w.footprint().await;
    let other = DeviceId::new();
    let ports = |n: usize| json!({ "open_ports": (1..=n).collect::<Vec<_>>() }).to_string();

    let u = StatusCode::UNPROCESSABLE_ENTITY;
    let cases: Vec<(&str, DeviceId, String, StatusCode, String)> = vec![
        (
            "unknown field",
            dev.id,
            r#"{"colour": "red"}"#.into(),
            u,
            "unknown field `colour`".into(),
        ),
        (
            "unknown attestation field",
            dev.id,
            r#"{"attestation": {"verified": true, "quote": "x"}}"#.into(),
            u,
            "unknown field `quote`".into(),
        ),
        (
            "attestation without verdict",
            dev.id,
            r#"{"attestation": {}}"#.into(),
            u,
            "missing field `verified`".into(),
        ),
        (
            "port 0",
            dev.id,
            r#"{"open_ports": [22, 0]}"#.into(),
            u,
            "open_ports: 0 is not a port".into(),
        ),
        (
            "port 70000",
            dev.id,
            r#"{"open_ports": [70000]}"#.into(),
            u,
            "open_ports: 70000 is not a port".into(),
        ),
        (
            "negative port",
            dev.id,
            r#"{"open_ports": [-22]}"#.into(),
            u,
            "open_ports: -22 is not a port".into(),
        ),
        (
            "duplicate ports",
            dev.id,
            r#"{"open_ports": [1883, 22, 1883]}"#.into(),
            u,
            "port 1883 more than once".into(),
        ),
        (
            "2,000 ports",
            dev.id,
            ports(2000),
            u,
            "2000 ports; at most 1024".into(),
        ),
        (
            "not a list of ports",
            dev.id,
            r#"{"open_ports": "22"}"#.into(),
            u,
            "invalid type".into(),
        ),
        (
            "65-digit hash",
            dev.id,
            format!(r#"{{"config_hash": "{}a"}}"#, hash()),
            u,
            "exactly 64 hex digits".into(),
        ),
        (
            "63-digit hash",
            dev.id,
            format!(r#"{{"config_hash": "{}"}}"#, &hash()[1..]),
            u,
            "not 63 characters".into(),
        ),
        (
            "non-hex hash",
            dev.id,
            format!(r#"{{"config_hash": "{}"}}"#, "z".repeat(64)),
            u,
            "non-hex".into(),
        ),
        (
            "firmware with control characters",
            dev.id,
            r#"{"firmware": "2.1\u0007\n"}"#.into(),
            u,
            "firmware: invalid firmware version: must not contain control".into(),
        ),
        (
            "firmware with a bidirectional override (shown reversed in a console)",
            dev.id,
            r#"{"firmware": "2.1\u202e0.3"}"#.into(),
            u,
            "firmware: invalid firmware version: must not contain control, bidirectional".into(),
        ),
        (
            "200-character firmware",
            dev.id,
            format!(r#"{{"firmware": "{}"}}"#, "9".repeat(200)),
            u,
            "firmware: invalid firmware version: must be at most 64 bytes".into(),
        ),
        (
            "empty firmware",
            dev.id,
            r#"{"firmware": ""}"#.into(),
            u,
            "must not be empty".into(),
        ),
        (
            "empty object",
            dev.id,
            "{}".into(),
            u,
            "at least one of firmware, config_hash".into(),
        ),
        (
            "only nulls",
            dev.id,
            r#"{"firmware": null, "device": null}"#.into(),
            u,
            "at least one of".into(),
        ),
        (
            "another device named",
            dev.id,
            json!({"device": other, "firmware": "2.0"}).to_string(),
            u,
            format!("names device {other} but was sent for device {}", dev.id),
        ),
        (
            "not an object",
            dev.id,
            r#""firmware""#.into(),
            u,
            "invalid type".into(),
        ),
        (
            "malformed JSON",
            dev.id,
            r#"{"firmware": "#.into(),
            StatusCode::BAD_REQUEST,
            "EOF".into(),
        ),
        (
            "body over 16 KiB",
            dev.id,
            format!(r#"{{"firmware": "{}"}}"#, "x".repeat(16 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "a posture report is at most 16 KiB".into(),
        ),
        (
            "unknown device",
            other,
            r#"{"firmware": "2.0"}"#.into(),
            StatusCode::NOT_FOUND,
            "not found".into(),
        ),
        (
            "discovered device",
            discovered,
            r#"{"firmware": "2.0"}"#.into(),
            StatusCode::CONFLICT,
            "is discovered: only enrolled devices".into(),
        ),
        (
            "onboarding device",
            onboarding,
            r#"{"firmware": "2.0"}"#.into(),
            StatusCode::CONFLICT,
            "is onboarding".into(),
        ),
        (
            "retired device",
            retired,
            r#"{"firmware": "2.0"}"#.into(),
            StatusCode::CONFLICT,
            "is retired".into(),
        ),
    ];
    let n = cases.len();
    for (what, id, body, want, needle) in cases {
        let (status, ctype, v) = w.report(&op, id, &body).await;
        assert_eq!(status, want, "{what}: {v}");
        assert_problem(what, &ctype, &v, status, &needle);
        assert_eq!(w.footprint().await, before, "{what} changed the store");
        assert!(
            matches!(rx.try_recv(), Err(TryRecvError::Empty)),
            "{what} was published"
        );
    }

    // Not a device id in the path: refused the way every route refuses it, and counted.
    let (status, ctype, v) = w
        .api(
            Method::POST,
            "/api/v1/devices/not-a-uuid/posture",
            Some(&op),
            Some(r#"{"firmware": "2.0"}"#.into()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_problem("bad id", &ctype, &v, status, "UUID");
    assert_eq!(w.footprint().await, before);

    let metrics = w.metrics().await;
    assert!(
        metrics.contains(&format!(
            r#"vouch_posture_reports_total{{via="api",outcome="refused"}} {}"#,
            n + 1
        )),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_without_devices_write_are_refused() {
    let w = World::new().await;
    let dev = w.device("d").await;
    let before = w.footprint().await;
    let dev_events = w.events_of(dev.id).await.len();
    let body = r#"{"firmware": "2.0"}"#;
    for role in [Role::Auditor, Role::Gateway] {
        let token = w.token(role).await;
        let (status, ctype, v) = w.report(&token, dev.id, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}: {v}");
        assert_problem("without DevicesWrite", &ctype, &v, status, "may not do");
    }
    let (status, ctype, v) = w
        .api(
            Method::POST,
            &format!("/api/v1/devices/{}/posture", dev.id),
            None,
            Some(body.into()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_problem("no token", &ctype, &v, status, "API token");
    // Operators' refusals are decided (and logged as access.denied) by the policy engine: the device's own
    // life and record are untouched.
    let (_, devices) = w.footprint().await;
    assert_eq!(devices, before.1);
    assert_eq!(w.events_of(dev.id).await.len(), dev_events);
    let (status, _, _) = w.report(&w.admin, dev.id, body).await;
    assert_eq!(status, StatusCode::OK, "admins may");
}
