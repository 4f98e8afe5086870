//! The discovery merge and onboarding over a real SQLite store and a real capture: what the upload route and
//! `vouch discover --merge` / `vouch devices onboard` both call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use vouch_control::ControlError;
use vouch_control::discovery::{MergeSummary, merge_report, onboard};
use vouch_discover::{Discovery, Limits, Report};
use vouch_store::{Store, StoreError};
use vouch_types::{DeviceId, DeviceState, NetworkRisk, NewDevice, Observation};

fn report(name: &str) -> Report {
    let mut run = Discovery::new(Limits::default());
    run.read(name, std::fs::File::open(common::pcap(name)).unwrap())
        .unwrap();
    run.finish(None)
}

#[tokio::test]
async fn merging_creates_unmanaged_devices_once_and_links_the_report() {
    let (_dir, store) = common::store();
    let mut first = report("iti_enip_test.pcap");
    let summary = merge_report(&store, &mut first, common::change("discovery"))
        .await
        .unwrap();
    assert!(summary.created > 0, "{summary:?}");
    assert_eq!(summary.matched, 0);
    for d in &first.devices {
        let link = d
            .registry
            .as_ref()
            .expect("every reported device is linked");
        let stored = store.get_device(link.device_id).await.unwrap();
        assert_eq!(stored.state, DeviceState::Discovered);
        assert!(!link.managed && link.matched_by.is_none());
    }
    // The same capture again: every device is matched, none created, nothing new seen.
    let mut again = report("iti_enip_test.pcap");
    let second = merge_report(&store, &mut again, common::change("discovery"))
        .await
        .unwrap();
    assert_eq!(
        second,
        MergeSummary {
            created: 0,
            matched: summary.created,
            changed: 0,
            sightings: 0,
        }
    );
    assert!(
        again
            .devices
            .iter()
            .all(|d| d.registry.as_ref().is_some_and(|l| l.matched_by.is_some()))
    );
}

#[tokio::test]
async fn onboarding_moves_a_discovered_device_once_and_refuses_the_rest() {
    let (_dir, store) = common::store();
    let id = DeviceId::new();
    store
        .create_device(NewDevice::bare(id), common::change("discovery"))
        .await
        .unwrap();
    let d = onboard(&store, id, common::change("operator"))
        .await
        .unwrap();
    assert_eq!(d.state, DeviceState::Onboarding);
    // Onboarding it again is not an error and writes nothing.
    let again = onboard(&store, id, common::change("operator"))
        .await
        .unwrap();
    assert_eq!(again.revision, d.revision);

    let unknown = onboard(&store, DeviceId::new(), common::change("operator")).await;
    assert!(
        matches!(
            unknown,
            Err(ControlError::Store(StoreError::NotFound { .. }))
        ),
        "{unknown:?}"
    );

    let retired = DeviceId::new();
    store
        .create_device(NewDevice::bare(retired), common::change("discovery"))
        .await
        .unwrap();
    common::retire(&store, retired).await;
    let before = store.get_device(retired).await.unwrap();
    let refused = onboard(&store, retired, common::change("operator")).await;
    assert!(
        matches!(
            refused,
            Err(ControlError::Store(StoreError::IllegalTransition(_)))
        ),
        "{refused:?}"
    );
    assert_eq!(store.get_device(retired).await.unwrap(), before);
}

#[tokio::test]
async fn the_merge_queues_what_managed_devices_were_seen_doing_in_one_batch() {
    let (_dir, store) = common::store();
    let mut d = NewDevice::bare(DeviceId::derived("snmp manager"));
    d.state = DeviceState::Onboarding;
    d.identifiers.ips = vec!["138.68.14.240".parse().unwrap()];
    let id = store
        .create_device(d, common::change("operator"))
        .await
        .unwrap()
        .id;
    store
        .edit_device(
            id,
            vouch_store::DeviceEdit::Transition(DeviceState::Active),
            None,
            common::change("operator"),
        )
        .await
        .unwrap();
    let mut r = report("z_snmp.pcap");
    let summary = merge_report(&store, &mut r, common::change("discovery"))
        .await
        .unwrap();
    // The other hosts of the capture were created unmanaged: nothing of theirs is queued.
    assert!(summary.created > 0, "{summary:?}");
    assert_eq!(summary.sightings, 1, "{summary:?}");
    let queued = store.observations(None, 100).await.unwrap();
    assert_eq!(queued.len(), 1);
    let Observation::Network(s) = queued[0].observation().unwrap() else {
        panic!("not a sighting: {queued:?}");
    };
    assert_eq!(s.device, id);
    assert!(
        s.risks.iter().any(|r| matches!(
            r,
            NetworkRisk::CleartextCredential { protocol, .. } if protocol.as_str() == "snmp"
        )),
        "{s:?}"
    );
}
