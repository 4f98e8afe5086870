//! Certificate import over a real SQLite store with certificates from a real second CA (an "existing PKI"):
//! what `vouch cert import` and `POST /api/v1/devices/{id}/certificates/import` both call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use vouch_control::ControlError;
use vouch_control::certs::{ImportRefused, import};
use vouch_pki::{
    CaSubject, CheckedCsr, DeviceProfile, IssuingCa, KeyAlgorithm, Passphrase, init_ca,
    new_request, pem_encode,
};
use vouch_store::{Store, StoreError};
use vouch_types::{DeviceId, DeviceState, NewDevice, Timestamp};

/// A CA of its own (root and issuing), as an enterprise PKI would hold.
fn ca(org: &str) -> (IssuingCa, Vec<u8>) {
    let pass = Passphrase::new("a passphrase long enough".into()).unwrap();
    let now = Timestamp::from_unix_micros(common::NOW_MICROS);
    let m = init_ca(
        KeyAlgorithm::EcdsaP256,
        &CaSubject {
            organization: org.into(),
        },
        now,
        &pass,
    )
    .unwrap();
    let ca = IssuingCa::load(&m.issuing_cert_pem, &m.issuing_key_pem, &pass).unwrap();
    let der = ca.cert_der().to_vec();
    (ca, der)
}

/// A device certificate (PEM) from `ca`, valid for 30 days from the tests' time.
fn device_cert(ca: &IssuingCa, device: DeviceId) -> String {
    let csr = CheckedCsr::from_der(&new_request("dev").unwrap()).unwrap();
    let profile = DeviceProfile {
        trust_domain: "import.test".into(),
        lifetime_days: 30,
        crl_url: "http://127.0.0.1/crl".into(),
        ocsp_url: "http://127.0.0.1/ocsp".into(),
    };
    let now = Timestamp::from_unix_micros(common::NOW_MICROS);
    let issued = ca.issue_device(&csr, device, &profile, now).unwrap();
    pem_encode("CERTIFICATE", &issued.der)
}

async fn onboarding_device(store: &dyn Store) -> DeviceId {
    let id = DeviceId::new();
    let new = NewDevice {
        state: DeviceState::Onboarding,
        ..NewDevice::bare(id)
    };
    store
        .create_device(new, common::change("test"))
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_certificate_from_a_trusted_ca_is_imported_once_and_the_device_becomes_active() {
    let (_dir, store) = common::store();
    let (enterprise, enterprise_der) = ca("Enterprise");
    let id = onboarding_device(&store).await;
    let pem = device_cert(&enterprise, id);
    let issuers = vec![enterprise_der];
    let record = import(&store, &pem, id, &issuers, common::change("operator"))
        .await
        .unwrap();
    assert_eq!(record.device_id, id);
    let device = store.get_device(id).await.unwrap();
    assert_eq!(device.state, DeviceState::Active);
    assert_eq!(
        device.identifiers.cert_fingerprint,
        Some(record.fingerprint)
    );
    assert_eq!(store.device_certificates(id).await.unwrap().len(), 1);

    // The same certificate again, for this device or another: a conflict, nothing written.
    let other = onboarding_device(&store).await;
    for target in [id, other] {
        let e = import(&store, &pem, target, &issuers, common::change("operator"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ControlError::Import(ImportRefused::DuplicateSerial(_))),
            "{e}"
        );
    }
    assert!(store.device_certificates(other).await.unwrap().is_empty());
    assert_eq!(
        store.get_device(other).await.unwrap().state,
        DeviceState::Onboarding
    );
}

#[tokio::test]
async fn untrusted_expired_malformed_or_misdirected_certificates_are_refused_and_nothing_changes() {
    let (_dir, store) = common::store();
    let (enterprise, enterprise_der) = ca("Enterprise");
    let (_, stranger_der) = ca("Stranger");
    let id = onboarding_device(&store).await;
    let pem = device_cert(&enterprise, id);
    let before = store.get_device(id).await.unwrap();

    // Signed by a CA the server does not trust for devices.
    let e = import(
        &store,
        &pem,
        id,
        &[stranger_der],
        common::change("operator"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, ControlError::Import(ImportRefused::Untrusted(_))),
        "{e}"
    );

    // Expired by the time it is imported (31 days on).
    let mut late = common::change("operator");
    late.at = late.at.plus_micros(31 * 86_400_000_000);
    let issuers = vec![enterprise_der];
    let e = import(&store, &pem, id, &issuers, late).await.unwrap_err();
    assert!(
        matches!(e, ControlError::Import(ImportRefused::Untrusted(_))),
        "{e}"
    );

    // Not a certificate at all, or far too large to be one.
    for text in [
        "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n".to_owned(),
        "x".repeat(1 << 20),
    ] {
        let e = import(&store, &text, id, &issuers, common::change("operator"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                ControlError::Import(ImportRefused::Malformed(_) | ImportRefused::TooLarge)
            ),
            "{e}"
        );
    }

    // For a device that does not exist, or one that cannot hold an identity.
    let e = import(
        &store,
        &pem,
        DeviceId::new(),
        &issuers,
        common::change("operator"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, ControlError::Store(StoreError::NotFound { .. })),
        "{e}"
    );
    let retired = onboarding_device(&store).await;
    common::retire(&store, retired).await;
    let e = import(&store, &pem, retired, &issuers, common::change("operator"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ControlError::Store(StoreError::Refused(_))),
        "{e}"
    );

    assert_eq!(store.get_device(id).await.unwrap(), before);
    assert!(store.device_certificates(id).await.unwrap().is_empty());
    assert!(store.device_certificates(retired).await.unwrap().is_empty());
}
