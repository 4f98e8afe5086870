//! Enrollment refusals that need time to pass (an expired token, an expired certificate) or a forged request,
//! with a manual clock and a real SQLite store: each refused, nothing issued, each logged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use vouch_events::Action;
use vouch_identity::{IdentityError, IdentityService, PkiSettings};
use vouch_pki::{CaSubject, DeviceProfile, IssuingCa, KeyAlgorithm, Passphrase, init_ca};
use vouch_store::{Change, Store};
use vouch_store_sqlite::{Durability, SqliteStore};
use vouch_types::{Actor, Clock, DeviceId, DeviceState, ManualClock, NewDevice, Timestamp};

const HOUR: i64 = 3_600_000_000;

struct World {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    svc: IdentityService,
    device: DeviceId,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap().keep();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.join("v.db"), Durability::Normal).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_micros(
        1_790_000_000_000_000,
    )));
    let pass = Passphrase::new("a passphrase long enough".into()).unwrap();
    let m = init_ca(
        KeyAlgorithm::EcdsaP256,
        &CaSubject {
            organization: "T".into(),
        },
        clock.now(),
        &pass,
    )
    .unwrap();
    let ca = IssuingCa::load(&m.issuing_cert_pem, &m.issuing_key_pem, &pass).unwrap();
    let settings = PkiSettings {
        profile: DeviceProfile {
            trust_domain: "t.example".into(),
            lifetime_days: 1,
            crl_url: "http://127.0.0.1/crl".into(),
            ocsp_url: "http://127.0.0.1/ocsp".into(),
        },
        enrollment_token_ttl_hours: 1,
        crl_validity_hours: 24,
        ocsp_validity_minutes: 60,
    };
    let svc = IdentityService::new(store.clone(), clock.clone(), ca, vec![], settings);
    let mut d = NewDevice::bare(DeviceId::new());
    d.state = DeviceState::Onboarding;
    let change = Change {
        actor: Actor::System("test".into()),
        reason: None,
        at: clock.now(),
    };
    let device = store.create_device(d, change).await.unwrap().id;
    World {
        store,
        clock,
        svc,
        device,
    }
}

/// A DER PKCS#10 request for a fresh P-256 key, with CN `cn`.
fn csr(cn: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.serialize_request(&key).unwrap().der().to_vec()
}

async fn refusals(w: &World) -> usize {
    w.store
        .events(None, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.draft.action == Action::EnrollmentRefused)
        .count()
}

#[tokio::test]
async fn an_expired_token_is_refused_and_logged() {
    let w = world().await;
    let (_, token) = w
        .svc
        .create_enrollment_token(w.device, Actor::System("test".into()), None)
        .await
        .unwrap();
    w.clock.advance_micros(2 * HOUR);
    let err = w
        .svc
        .enroll_with_token(token.expose(), &csr(&w.device.to_string()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IdentityError::Unauthorized(m) if m.contains("expired")),
        "{err}"
    );
    assert_eq!(refusals(&w).await, 1);
    assert!(
        w.store
            .device_certificates(w.device)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_forged_request_and_a_wrong_secret_are_refused_and_logged() {
    let w = world().await;
    let (_, token) = w
        .svc
        .create_enrollment_token(w.device, Actor::System("test".into()), None)
        .await
        .unwrap();
    let mut forged = csr(&w.device.to_string());
    let n = forged.len();
    forged[n - 5] ^= 0x5a;
    let err = w
        .svc
        .enroll_with_token(token.expose(), &forged)
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::BadRequest(_)), "{err}");
    // Change the last hex digit (to one it is not: a fixed replacement would match 1 time in 16).
    let t = token.expose();
    let last = if t.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &t[..t.len() - 1]);
    let err = w
        .svc
        .enroll_with_token(&wrong, &csr(&w.device.to_string()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IdentityError::Unauthorized(m) if m.contains("secret")),
        "{err}"
    );
    assert_eq!(refusals(&w).await, 2);
    // The token is still good for the real device.
    let cert = w
        .svc
        .enroll_with_token(token.expose(), &csr(&w.device.to_string()))
        .await
        .unwrap();
    assert_eq!(
        w.store.device_certificates(w.device).await.unwrap()[0].serial,
        cert.serial
    );
}

#[tokio::test]
async fn re_enrolling_with_an_expired_certificate_is_refused_and_logged() {
    let w = world().await;
    let (_, token) = w
        .svc
        .create_enrollment_token(w.device, Actor::System("test".into()), None)
        .await
        .unwrap();
    let cert = w
        .svc
        .enroll_with_token(token.expose(), &csr(&w.device.to_string()))
        .await
        .unwrap();
    let renewed = w
        .svc
        .reenroll(&cert.der, &csr(&w.device.to_string()))
        .await
        .unwrap();
    assert_ne!(renewed.serial, cert.serial);
    w.clock.advance_micros(25 * HOUR);
    let err = w
        .svc
        .reenroll(&renewed.der, &csr(&w.device.to_string()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IdentityError::Unauthorized(m) if m.contains("expired")),
        "{err}"
    );
    assert_eq!(refusals(&w).await, 1);
    assert_eq!(
        w.store.device_certificates(w.device).await.unwrap().len(),
        2
    );
}
