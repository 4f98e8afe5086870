//! What discovery saw reaches the trust score: a shared capture merged into a real SQLite registry through
//! the merge use case (as `vouch discover --merge` and the API's upload do it), the trust service consuming
//! the queue, and the device that sent a credential in clear text losing trust with the reason named, while
//! the device it talked to keeps its score.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use vouch_events::{Action, TrustChanged};
use vouch_respond::{SaveEvery, TrustService, TrustSettings};
use vouch_store::Store;
use vouch_types::{
    DeviceClass, DeviceId, ManualClock, NewDevice, Observation, Timestamp, TrafficWindow,
};

mod common;

use common::change;

/// An enrolled IT host registered by its address, with a certificate valid for a year from `from`.
async fn enrolled(store: &Arc<dyn Store>, ip: &str, n: u8, from: Timestamp) -> DeviceId {
    let ip: IpAddr = ip.parse().unwrap();
    let mut d = NewDevice::bare(DeviceId::derived(&format!("test:{ip}")));
    d.class = DeviceClass::ItHost;
    d.identifiers.ips = vec![ip];
    d.firmware = Some("1.0".parse().unwrap());
    common::enroll_from(store, d, n, from).await
}

fn quiet_window(device: DeviceId, end: Timestamp) -> TrafficWindow {
    TrafficWindow {
        device,
        start: end.plus_micros(-10_000_000),
        end,
        connects: 1,
        disconnects: 0,
        sessions: 1,
        auth_failures: 0,
        msgs_in: 5,
        msgs_out: 0,
        bytes_in: 400,
        bytes_out: 0,
        distinct_topics: 1,
        new_topics: 0,
        remotes: Vec::new(),
    }
}

fn report(name: &str) -> vouch_discover::Report {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pcaps")
        .join(name);
    let mut run = vouch_discover::Discovery::new(vouch_discover::Limits::default());
    run.read(name, std::fs::File::open(path).unwrap()).unwrap();
    run.finish(None)
}

async fn last_trust(store: &Arc<dyn Store>, d: DeviceId) -> TrustChanged {
    let events = store.device_events(d, None, 10_000).await.unwrap();
    let last = events
        .iter()
        .rev()
        .find(|e| e.draft.action == Action::TrustChanged)
        .expect("a trust.changed event");
    last.payload::<TrustChanged>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_text_credential_seen_by_discovery_lowers_its_senders_trust() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::sqlite(&dir.path().join("v.db"));
    // The service's clock stands just after the capture, as when a capture is uploaded as it is taken.
    let mut r = report("z_snmp.pcap");
    let end: Timestamp = r.capture.last.as_deref().unwrap().parse().unwrap();
    let settings: TrustSettings = toml::from_str("").unwrap();
    let svc = TrustService::new(
        store.clone(),
        Arc::new(ManualClock::new(end.plus_micros(5_000_000))),
        settings.check().unwrap(),
    );
    // tshark: 138.68.14.240 polls the agent 138.68.10.203 with an SNMP community in clear text.
    let enrolled_at = end.plus_micros(-86_400_000_000);
    let manager = enrolled(&store, "138.68.14.240", 1, enrolled_at).await;
    let agent = enrolled(&store, "138.68.10.203", 2, enrolled_at).await;
    for d in [manager, agent] {
        let u = svc
            .handle(Observation::Traffic(quiet_window(
                d,
                end.plus_micros(-3_600_000_000),
            )))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(u.score.get(), 100, "a healthy start: {u:?}");
    }

    let summary = vouch_control::discovery::merge_report(&*store, &mut r, change(15))
        .await
        .unwrap();
    assert_eq!(summary.sightings, 2, "the two managed devices: {summary:?}");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = svc.consume(SaveEvery::default(), stopped);
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while svc.stats().sightings < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the service did not judge the queued sightings");
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();

    let dropped = last_trust(&store, manager).await;
    assert_eq!(dropped.score.get(), 80, "{dropped:?}");
    assert_eq!(dropped.previous.map(|s| s.get()), Some(100));
    let why = &dropped.reasons[0];
    assert_eq!((why.penalty, why.component.as_str()), (20, "network"));
    assert!(
        why.why.contains("credentials in clear text over snmp"),
        "{why:?}"
    );
    let record = store.get_device(manager).await.unwrap();
    assert_eq!(
        record
            .labels
            .get(&vouch_respond::TRUST_LABEL.parse().unwrap())
            .map(|v| v.as_str()),
        Some("80")
    );
    // The agent answered and sent nothing clear: its score stands, and no new change was recorded.
    let kept = last_trust(&store, agent).await;
    assert_eq!((kept.score.get(), kept.previous), (100, None), "{kept:?}");
    assert_eq!(svc.stats().failures, 0);

    // The same report merged again is judged once only.
    let mut again = report("z_snmp.pcap");
    vouch_control::discovery::merge_report(&*store, &mut again, change(16))
        .await
        .unwrap();
    let queued = store.observations(None, 100).await.unwrap();
    for q in queued.iter().filter(|q| q.seq > queued[1].seq) {
        if let Ok(o @ Observation::Network(_)) = q.observation() {
            assert!(svc.handle(o).await.unwrap().is_none(), "judged already");
        }
    }
}
