//! Bulk-import records over a real SQLite store: ids derived from natural keys (so a re-run is idempotent),
//! per-record errors, and the reserved-label rule an import may not bypass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use vouch_control::import::{JsonRecord, RecordError};
use vouch_store::Store;
use vouch_types::{DeviceId, DeviceState, NewDevice};

fn record(json: &str) -> Result<NewDevice, RecordError> {
    serde_json::from_str::<JsonRecord>(json).unwrap().into_new()
}

#[tokio::test]
async fn records_get_derived_ids_and_importing_them_twice_creates_them_once() {
    let (_dir, store) = common::store();
    let by_serial = record(r#"{"serial": "PLC-7", "labels": {"site": "plant-1"}}"#).unwrap();
    let by_mac = record(r#"{"mac": "00:1b:44:11:3a:b7", "state": "discovered"}"#).unwrap();
    assert_eq!(by_serial.id, DeviceId::derived("serial:PLC-7"));
    assert_eq!(
        by_serial.state,
        DeviceState::Onboarding,
        "the default state"
    );
    assert_eq!(by_mac.state, DeviceState::Discovered);
    let batch = vec![by_serial.clone(), by_mac];
    let first = store
        .import_devices(batch.clone(), common::change("import"))
        .await
        .unwrap();
    assert_eq!((first.created, first.existing), (2, 0));
    let again = store
        .import_devices(batch, common::change("import"))
        .await
        .unwrap();
    assert_eq!((again.created, again.existing), (0, 2));
    let stored = store.get_device(by_serial.id).await.unwrap();
    assert_eq!(stored.labels, by_serial.labels);
}

#[test]
fn invalid_records_say_why_and_reserved_labels_are_refused() {
    assert!(matches!(
        record(r#"{"vendor": "Acme"}"#),
        Err(RecordError::NoNaturalKey)
    ));
    for labels in [
        r#"{"trust/score": "100"}"#,
        r#"{"response/quarantined-by": "me"}"#,
    ] {
        let e = record(&format!(r#"{{"serial": "S-1", "labels": {labels}}}"#)).unwrap_err();
        assert!(matches!(e, RecordError::ReservedLabel(_)), "{e}");
    }
}
