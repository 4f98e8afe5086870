//! `vouch trust replay` against the live path: the simulator's windows (`vouch sim --windows-out`) scored
//! offline by the binary give every device the score and reasons the trust service gives when it judges the
//! same windows in-process (`TrustService::handle`, as `vouch serve` feeds it the gateway's observations),
//! against a real SQLite store with each device registered and holding a valid certificate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::collections::HashMap;
use std::sync::Arc;

use util::{ok, vouch};
use vouch_respond::{TrustService, TrustSettings};
use vouch_store::{CertStatus, CertificateRecord, Change, Issuance, Store};
use vouch_trust::RecordedWindow;
use vouch_types::{
    Actor, CertFingerprint, DeviceId, DeviceState, ManualClock, NewDevice, Observation, Serial,
    Timestamp,
};

/// Each device's final score and reasons (as text).
type Scores = HashMap<DeviceId, (u64, Vec<String>)>;

fn change(at: Timestamp) -> Change {
    Change {
        actor: Actor::System("test".into()),
        reason: None,
        at,
    }
}

/// The live path: register every device of `windows` with a valid certificate, then feed the windows in
/// order to the trust service, the clock at each window's end.
async fn live(windows: &[RecordedWindow]) -> Scores {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        vouch_store_sqlite::SqliteStore::open(
            dir.path().join("v.db"),
            vouch_store_sqlite::Durability::Normal,
        )
        .unwrap(),
    );
    let start = windows[0].window.start;
    let clock = Arc::new(ManualClock::new(start));
    let mut registered = HashMap::new();
    for r in windows {
        if registered.contains_key(&r.window.device) {
            continue;
        }
        let n = registered.len() as u32;
        let mut d = NewDevice::bare(r.window.device);
        d.state = DeviceState::Onboarding;
        d.class = r.class;
        d.firmware = Some("1.0.0".parse().unwrap());
        let d = store.create_device(d, change(start)).await.unwrap();
        let cert = CertificateRecord {
            serial: Serial::from_slice(&[0x22, (n >> 8) as u8, n as u8]).unwrap(),
            device_id: d.id,
            fingerprint: CertFingerprint::from_bytes([n as u8; 32]),
            not_before: start.plus_micros(-86_400_000_000),
            not_after: start.plus_micros(365 * 86_400_000_000),
            status: CertStatus::Good,
            der: vec![0x30, 0x03, 0x02, 0x01, n as u8],
        };
        store
            .record_issuance(Issuance { cert, token: None }, change(start))
            .await
            .unwrap();
        registered.insert(d.id, ());
    }
    let svc = TrustService::new(store.clone(), clock.clone(), TrustSettings::default());
    let mut now = start;
    let mut out = Scores::new();
    for r in windows {
        clock.advance_micros(r.window.end.unix_micros() - now.unix_micros());
        now = r.window.end;
        let u = svc
            .handle(Observation::Traffic(r.window.clone()))
            .await
            .unwrap()
            .expect("a registered device");
        out.insert(
            u.device,
            (
                u64::from(u.score.get()),
                u.reasons.iter().map(ToString::to_string).collect(),
            ),
        );
    }
    out
}

#[test]
fn replaying_the_simulators_windows_scores_as_the_live_path_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("windows.jsonl");
    ok(vouch(dir.path())
        .args([
            "sim",
            "--devices",
            "40",
            "--windows",
            "40",
            "--window-secs",
            "10",
            "--warmup",
            "12",
            "--attack-windows",
            "3",
            "--windows-out",
        ])
        .arg(&file)
        .output()
        .unwrap());
    let text = std::fs::read_to_string(&file).unwrap();
    let windows: Vec<RecordedWindow> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(windows.len(), 40 * 40);

    let out = ok(vouch(dir.path())
        .args(["trust", "replay", "--output", "json"])
        .arg(&file)
        .output()
        .unwrap());
    let replayed: Scores = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let device: DeviceId = v["device"].as_str().unwrap().parse().unwrap();
            let reasons = v["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    format!(
                        "−{}: {}",
                        r["penalty"].as_u64().unwrap(),
                        r["why"].as_str().unwrap()
                    )
                })
                .collect();
            (device, (v["score"].as_u64().unwrap(), reasons))
        })
        .collect();
    assert_eq!(replayed.len(), 40, "{out}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let live = runtime.block_on(live(&windows));
    assert_eq!(live.len(), 40);
    for (device, want) in &live {
        assert_eq!(replayed.get(device), Some(want), "device {device}");
    }
    // The run had something to judge: attacks left devices below full trust, some still paying for a
    // penalty remembered from an earlier window.
    assert!(live.values().any(|(s, _)| *s < 100), "{live:?}");
    assert!(
        live.values()
            .flat_map(|(_, r)| r)
            .any(|r| r.contains("decaying")),
        "{live:?}"
    );

    // For people: a table naming each device, its score and its reasons.
    let table = ok(vouch(dir.path())
        .args(["trust", "replay"])
        .arg(&file)
        .output()
        .unwrap());
    assert!(table.starts_with("DEVICE"), "{table}");
    assert_eq!(table.lines().count(), 41, "{table}");
    assert!(table.contains("decaying (half-life 10 min)"), "{table}");
}

#[test]
fn a_bad_line_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, "\n{\"device\": \"nope\"}\n").unwrap();
    let out = vouch(dir.path())
        .args(["trust", "replay"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: not a traffic window"), "{err}");
    let out = vouch(dir.path())
        .args(["trust", "replay"])
        .arg(dir.path().join("missing.jsonl"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.jsonl"));
}
