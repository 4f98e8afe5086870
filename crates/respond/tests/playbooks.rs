//! The trust service against a real SQLite store: scores recorded with reasons, playbooks carried out once,
//! quarantines lifted after healthy time, clones revoked, shadow mode that only logs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use vouch_events::Action;
use vouch_respond::{TrustService, TrustSettings};
use vouch_store::{CertStatus, Store};
use vouch_trust::{Mode, ResponseConfig};
use vouch_types::{
    DeviceClass, DeviceId, DeviceState, ManualClock, NewDevice, Observation, PostureReport,
    TrafficWindow,
};

mod common;

use common::{at, change};

struct World {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    svc: TrustService,
}

fn settings(mode: Mode) -> TrustSettings {
    let text = r#"
        [firmware."SIM-TH-100"]
        minimum = "2.0"
        vulnerable = ["1.4.2"]
        [zones]
        plant-a = ["127.0.10.0/24"]
        plant-b = ["127.0.11.0/24"]
    "#;
    let mut s: TrustSettings = toml::from_str(text).unwrap();
    s.response = ResponseConfig {
        mode,
        release_after_secs: 60,
        ..ResponseConfig::default()
    };
    s.check().unwrap()
}

async fn world(mode: Mode) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = common::sqlite(&dir.path().join("v.db"));
    let clock = Arc::new(ManualClock::new(at(0)));
    let svc = TrustService::new(store.clone(), clock, settings(mode));
    World {
        _dir: dir,
        store,
        svc,
    }
}

/// An enrolled sensor in plant-a with a certificate valid for a year.
async fn sensor(store: &Arc<dyn Store>, n: u8) -> DeviceId {
    let mut d = NewDevice::bare(DeviceId::derived(&format!("test:{n}")));
    d.class = DeviceClass::Sensor;
    d.model = Some("SIM-TH-100".parse().unwrap());
    d.firmware = Some("2.1.0".parse().unwrap());
    d.zone = Some("plant-a".parse().unwrap());
    common::enroll(store, d, n).await
}

fn window(device: DeviceId, i: i64, msgs: u64, new_topics: u32, sessions: u32) -> TrafficWindow {
    let jitter = (i * 7919 % 5) as u64;
    TrafficWindow {
        device,
        start: at(i * 10),
        end: at(i * 10 + 10),
        connects: u32::from(i == 0),
        disconnects: 0,
        sessions,
        auth_failures: 0,
        msgs_in: msgs + jitter,
        msgs_out: 0,
        bytes_in: (msgs + jitter) * 80,
        bytes_out: 0,
        distinct_topics: 1 + new_topics,
        new_topics,
        remotes: vec!["127.0.10.5".parse().unwrap()],
    }
}

async fn feed(w: &World, tw: TrafficWindow) -> vouch_respond::TrustUpdate {
    w.svc
        .handle(Observation::Traffic(tw))
        .await
        .unwrap()
        .expect("a known device")
}

async fn actions(store: &Arc<dyn Store>, d: DeviceId) -> Vec<(Action, String)> {
    store
        .device_events(d, None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.draft.action, e.draft.after.unwrap_or_default()))
        .collect()
}

fn groups(d: &vouch_types::Device) -> Vec<String> {
    d.groups.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn an_anomaly_is_scored_quarantined_once_and_released_when_healthy() {
    let w = world(Mode::Enforce).await;
    let d = sensor(&w.store, 1).await;
    for i in 0..20 {
        let u = feed(&w, window(d, i, 10, 0, 1)).await;
        assert!(u.directives.is_empty(), "window {i}: {:?}", u.directives);
    }
    let rec = w.store.get_device(d).await.unwrap();
    assert_eq!(
        rec.labels
            .get(&"trust/score".parse().unwrap())
            .unwrap()
            .as_str(),
        "100"
    );
    // Topic enumeration: 40 new topics in each of two windows.
    let u1 = feed(&w, window(d, 20, 50, 40, 1)).await;
    assert!(u1.anomalous && u1.score.get() <= 40, "{u1:?}");
    assert!(u1.reasons[0].why.contains("topics"), "{:?}", u1.reasons);
    let u2 = feed(&w, window(d, 21, 50, 40, 1)).await;
    let steps: Vec<_> = u2
        .directives
        .iter()
        .map(|x| (x.playbook.as_str(), x.step))
        .collect();
    assert!(
        u1.directives
            .iter()
            .chain(&u2.directives)
            .any(|x| x.step == Some(vouch_trust::Step::Quarantine)),
        "{steps:?}"
    );
    let rec = w.store.get_device(d).await.unwrap();
    assert_eq!(groups(&rec), vec!["quarantine".to_string()]);
    // Quarantined, it publishes as before (refused by policy: counted as refusals, fewer forwarded): not
    // held against it, and nothing more happens in the same episode.
    for i in 22..27 {
        let mut tw = window(d, i, 0, 0, 1);
        tw.auth_failures = 10;
        let u = feed(&w, tw).await;
        assert!(u.directives.is_empty(), "window {i}: {:?}", u.directives);
    }
    // The penalty decays (half-life 600 s): the score climbs back a point or two a window, never jumps, and
    // once it is past quarantine-low-trust's 40 and the device has been healthy for 60 s (six windows), it
    // is released.
    let mut released = None;
    let mut scores = Vec::new();
    for i in 27..60 {
        let u = feed(&w, window(d, i, 10, 0, 1)).await;
        scores.push(u.score.get());
        if u.directives.iter().any(|x| x.is_release()) {
            released = Some(i);
            break;
        }
    }
    let released = released.expect("released");
    assert!(released <= 45, "released at window {released}: {scores:?}");
    assert!(scores.windows(2).all(|p| p[0] <= p[1]), "{scores:?}");
    let last = *scores.last().unwrap();
    assert!(
        (40..100).contains(&last),
        "released on the way back: {scores:?}"
    );
    let rec = w.store.get_device(d).await.unwrap();
    assert!(groups(&rec).is_empty());
    assert!(
        rec.labels
            .get(&"response/quarantined-by".parse().unwrap())
            .is_none()
    );
    let log = actions(&w.store, d).await;
    let count = |a: Action| log.iter().filter(|(x, _)| *x == a).count();
    assert_eq!(count(Action::ResponseReleased), 1);
    assert!(count(Action::ResponseTaken) >= 1);
    assert!(count(Action::FindingRaised) >= 1);
    assert!(count(Action::TrustChanged) >= 3);
    let change = log
        .iter()
        .find(|(a, after)| *a == Action::TrustChanged && after.contains("topics"))
        .expect("a trust change naming its reason");
    assert!(change.1.contains("\"reasons\""), "{}", change.1);
    // The history says why the score is still low after the anomaly: a remembered, decaying penalty.
    let decaying = log
        .iter()
        .find(|(a, after)| *a == Action::TrustChanged && after.contains("decaying"))
        .expect("a trust change naming the decaying penalty");
    assert!(
        decaying.1.contains("ago, decaying (half-life 10 min)") && decaying.1.contains("incurred"),
        "{}",
        decaying.1
    );
    assert!(
        vouch_store::verify_audit(&*w.store)
            .await
            .unwrap()
            .is_intact()
    );
}

#[tokio::test]
async fn a_clone_is_revoked_and_a_downgrade_or_wrong_zone_quarantines() {
    let w = world(Mode::Enforce).await;
    let d = sensor(&w.store, 2).await;
    for i in 0..10 {
        feed(&w, window(d, i, 10, 0, 1)).await;
    }
    let u = feed(&w, window(d, 10, 10, 0, 2)).await;
    assert!(
        u.directives
            .iter()
            .any(|x| x.step == Some(vouch_trust::Step::Revoke)),
        "{:?}",
        u.directives
    );
    let certs = w.store.device_certificates(d).await.unwrap();
    assert!(
        certs
            .iter()
            .all(|c| matches!(c.status, CertStatus::Revoked { .. }))
    );
    assert_eq!(
        w.store.get_device(d).await.unwrap().state,
        DeviceState::Suspended
    );

    // Firmware downgrade, reported by the device: quarantined at the next window.
    let e = sensor(&w.store, 3).await;
    for i in 0..10 {
        feed(&w, window(e, i, 10, 0, 1)).await;
    }
    let patch = vouch_types::DevicePatch {
        firmware: Some(Some("1.4.2".parse().unwrap())),
        ..Default::default()
    };
    w.store
        .edit_device(
            e,
            vouch_store::DeviceEdit::Patch(Box::new(patch)),
            None,
            change(5),
        )
        .await
        .unwrap();
    w.svc
        .handle(Observation::Posture(PostureReport {
            device: e,
            at: at(100),
            firmware: Some("1.4.2".parse().unwrap()),
            config_hash: None,
            open_ports: Vec::new(),
            attestation_ok: None,
        }))
        .await
        .unwrap();
    let u = feed(&w, window(e, 10, 10, 0, 1)).await;
    assert!(
        u.reasons.iter().any(|r| r.component == "firmware"),
        "{:?}",
        u.reasons
    );
    assert_eq!(
        u.directives[0].playbook, "quarantine-bad-firmware",
        "{:?}",
        u.directives
    );

    // From another zone's network.
    let f = sensor(&w.store, 4).await;
    for i in 0..10 {
        feed(&w, window(f, i, 10, 0, 1)).await;
    }
    let mut tw = window(f, 10, 10, 0, 1);
    tw.remotes = vec!["127.0.11.9".parse().unwrap()];
    let u = feed(&w, tw).await;
    assert!(
        u.reasons.iter().any(|r| r.why.contains("plant-b")),
        "{:?}",
        u.reasons
    );
    assert!(groups(&w.store.get_device(f).await.unwrap()).contains(&"quarantine".to_string()));
}

#[tokio::test]
async fn shadow_mode_logs_what_it_would_do_and_changes_nothing() {
    let w = world(Mode::Shadow).await;
    let d = sensor(&w.store, 5).await;
    for i in 0..10 {
        feed(&w, window(d, i, 10, 0, 1)).await;
    }
    let u = feed(&w, window(d, 10, 10, 0, 2)).await;
    assert!(!u.directives.is_empty() && u.directives.iter().all(|x| x.shadow));
    let certs = w.store.device_certificates(d).await.unwrap();
    assert!(certs.iter().all(|c| c.status == CertStatus::Good));
    let rec = w.store.get_device(d).await.unwrap();
    assert!(groups(&rec).is_empty());
    assert_eq!(rec.state, DeviceState::Active);
    let log = actions(&w.store, d).await;
    assert!(
        log.iter()
            .any(|(a, after)| *a == Action::ResponseTaken && after.contains("\"shadow\":true"))
    );
}

#[test]
fn bad_settings_are_refused_with_every_problem() {
    let text = r#"
        half_life_secs = 0
        [zones]
        plant-a = ["10.0.0.0/8"]
        plant-b = ["10.1.0.0/16"]
        [firmware."X"]
        [response]
        release_after_secs = 0
        [[response.playbook]]
        name = "p"
        when = { trust_below = 0 }
        then = ["quarantine"]
    "#;
    let s: TrustSettings = toml::from_str(text).unwrap();
    let e = s.check().unwrap_err().to_string();
    for want in [
        "overlaps",
        "minimum or vulnerable",
        "release_after_secs",
        "trust_below",
        "half_life_secs must be between 1 and 604800",
    ] {
        assert!(e.contains(want), "{want} missing from {e}");
    }
    assert!(toml::from_str::<TrustSettings>("[zones]\na = [\"not a network\"]").is_err());
    assert!(toml::from_str::<TrustSettings>("colour = 1").is_err());
    // Unsaid, the half-life is ten minutes.
    let s: TrustSettings = toml::from_str("").unwrap();
    assert_eq!(s.half_life_secs, 600);
    assert_eq!(s, TrustSettings::default());
}

/// Waits (without a deadline that matters: a minute) until the service has judged `n` windows in all.
async fn judged(svc: &TrustService, n: u64) {
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while svc.stats().windows < n {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the service did not judge the queued windows");
}

fn trust_changes(events: &[(Action, String)]) -> usize {
    events
        .iter()
        .filter(|(a, _)| *a == Action::TrustChanged)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_baselines_and_resumes_at_its_cursor_handling_nothing_twice() {
    let w = world(Mode::Enforce).await;
    let d = sensor(&w.store, 1).await;
    let path = w._dir.path().join("v.db");
    // Warm-up windows, queued as a gateway in any process would (one batch per window tick).
    for i in 0..10 {
        w.store
            .append_observations(
                vec![Observation::Traffic(window(d, i, 20, 0, 1))],
                at(i * 10 + 10),
            )
            .await
            .unwrap();
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = w.svc.consume(vouch_respond::SaveEvery::default(), stopped);
    judged(&w.svc, 10).await;
    assert!(!w.svc.cold_start(d), "warmed up on its own baseline");
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(w.svc.stats().saves, 1, "saved once, at the stop");
    let before = trust_changes(&actions(&w.store, d).await);
    assert!(before >= 1);

    // A new process on the same database: the models come back with the cursor.
    let store: Arc<dyn Store> = Arc::new(
        vouch_store_sqlite::SqliteStore::open(&path, vouch_store_sqlite::Durability::Normal)
            .unwrap(),
    );
    let svc = TrustService::new(
        store.clone(),
        Arc::new(ManualClock::new(at(200))),
        settings(Mode::Enforce),
    );
    assert!(
        svc.cold_start(d),
        "nothing learned before the snapshot is read"
    );
    let mut updates = svc.updates();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = svc.consume(vouch_respond::SaveEvery::default(), stopped);
    store
        .append_observations(
            vec![Observation::Traffic(window(d, 10, 20, 40, 1))],
            at(110),
        )
        .await
        .unwrap();
    judged(&svc, 1).await;
    let update = updates.recv().await.unwrap();
    assert_eq!(
        update.at,
        at(110),
        "the first window handled is the new one"
    );
    assert!(
        !update.cold_start,
        "judged against its own baseline, kept across the restart"
    );
    assert!(update.anomalous, "{update:?}");
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(
        svc.stats().windows,
        1,
        "none of the ten before the restart was handled again"
    );
    let after = actions(&store, d).await;
    assert_eq!(
        trust_changes(&after),
        before + 1,
        "one trust change: the new window's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_snapshot_is_ignored_and_the_service_starts_fresh() {
    let w = world(Mode::Enforce).await;
    let d = sensor(&w.store, 1).await;
    let consumer: vouch_types::ConsumerId = vouch_respond::CONSUMER.parse().unwrap();
    w.store
        .save_observation_snapshot(
            &consumer,
            vouch_store::ObservationSnapshot {
                through: vouch_store::ObservationSeq(0),
                state: b"{\"v\":99}".to_vec(),
            },
        )
        .await
        .unwrap();
    w.store
        .append_observations(vec![Observation::Traffic(window(d, 0, 20, 0, 1))], at(10))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = w.svc.consume(vouch_respond::SaveEvery::default(), stopped);
    judged(&w.svc, 1).await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert!(w.svc.cold_start(d));
    assert_eq!(trust_changes(&actions(&w.store, d).await), 1);
}
