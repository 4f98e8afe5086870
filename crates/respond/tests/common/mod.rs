//! What the trust service's tests share: their time line, and enrolling a device with a certificate.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use vouch_store::{CertStatus, CertificateRecord, Change, Issuance, Store};
use vouch_types::{Actor, CertFingerprint, DeviceId, DeviceState, NewDevice, Serial, Timestamp};

/// The tests' time zero (early 2027).
pub const T0: i64 = 1_800_000_000_000_000;

/// `secs` seconds after [`T0`].
pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_micros(T0 + secs * 1_000_000)
}

/// A change by the system actor `test` at `at(secs)`.
pub fn change(secs: i64) -> Change {
    Change {
        actor: Actor::System("test".into()),
        reason: None,
        at: at(secs),
    }
}

/// The SQLite store at `path` (created if new).
pub fn sqlite(path: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(
        vouch_store_sqlite::SqliteStore::open(path, vouch_store_sqlite::Durability::Normal)
            .unwrap(),
    )
}

/// Registers `d` as onboarding and records a certificate valid for a year (serial and fingerprint made from
/// `n`), which makes it active.
pub async fn enroll(store: &Arc<dyn Store>, d: NewDevice, n: u8) -> DeviceId {
    enroll_from(store, d, n, at(-10)).await
}

/// [`enroll`] with a certificate valid for a year from `from`.
pub async fn enroll_from(
    store: &Arc<dyn Store>,
    mut d: NewDevice,
    n: u8,
    from: Timestamp,
) -> DeviceId {
    d.state = DeviceState::Onboarding;
    let d = store.create_device(d, change(0)).await.unwrap();
    let cert = CertificateRecord {
        serial: Serial::from_slice(&[0x11, n]).unwrap(),
        device_id: d.id,
        fingerprint: CertFingerprint::from_bytes([n; 32]),
        not_before: from,
        not_after: from.plus_micros(365 * 86_400 * 1_000_000),
        status: CertStatus::Good,
        der: vec![0x30, 0x03, 0x02, 0x01, n],
    };
    store
        .record_issuance(Issuance { cert, token: None }, change(1))
        .await
        .unwrap();
    d.id
}
