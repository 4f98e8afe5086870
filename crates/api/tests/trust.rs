//! `GET /api/v1/devices/{id}/trust`: the score in force, its reasons and its history, as the trust service
//! (vouch-respond, over the same SQLite store) recorded them; a quarantine names its playbook.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use axum::http::{Method, StatusCode};
use common::{Harness, NOW};
use vouch_respond::{TrustService, TrustSettings};
use vouch_store::{CertStatus, CertificateRecord, Change, Issuance};
use vouch_types::{
    Actor, CertFingerprint, DeviceClass, DeviceId, DeviceState, NewDevice, Observation, Role,
    Serial, Timestamp, TrafficWindow,
};

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_micros(NOW + secs * 1_000_000)
}

fn window(device: DeviceId, i: i64, new_topics: u32) -> TrafficWindow {
    TrafficWindow {
        device,
        start: at(i * 10),
        end: at(i * 10 + 10),
        connects: 0,
        disconnects: 0,
        sessions: 1,
        auth_failures: 0,
        msgs_in: 10 + (i % 3) as u64,
        msgs_out: 0,
        bytes_in: 800,
        bytes_out: 0,
        distinct_topics: 1 + new_topics,
        new_topics,
        remotes: Vec::new(),
    }
}

#[tokio::test]
async fn the_trust_route_shows_the_score_its_reasons_and_history() {
    let h = Harness::new().await;
    let auditor = h.token(Role::Auditor, None).await;
    let mut d = NewDevice::bare(DeviceId::derived("trust-route:1"));
    d.state = DeviceState::Onboarding;
    d.class = DeviceClass::Sensor;
    d.firmware = Some("1.0".parse().unwrap());
    let change = Change {
        actor: Actor::System("test".into()),
        reason: None,
        at: at(0),
    };
    let d = h.store.create_device(d, change.clone()).await.unwrap();
    let cert = CertificateRecord {
        serial: Serial::from_slice(&[0x12, 1]).unwrap(),
        device_id: d.id,
        fingerprint: CertFingerprint::from_bytes([7; 32]),
        not_before: at(-10),
        not_after: at(300 * 86_400),
        status: CertStatus::Good,
        der: vec![0x30, 0x03, 0x02, 0x01, 1],
    };
    h.store
        .record_issuance(Issuance { cert, token: None }, change)
        .await
        .unwrap();
    // Before the trust service scored it: no score yet.
    let uri = format!("/api/v1/devices/{}/trust", d.id);
    let (status, body) = h.call(Method::GET, &uri, Some(&auditor), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["score"].is_null() && body["history"].as_array().unwrap().is_empty());

    let svc = TrustService::new(h.store.clone(), h.clock.clone(), TrustSettings::default());
    for i in 0..10 {
        svc.handle(Observation::Traffic(window(d.id, i, 0)))
            .await
            .unwrap();
    }
    for i in 10..11 {
        svc.handle(Observation::Traffic(window(d.id, i, 40)))
            .await
            .unwrap();
    }
    let (status, body) = h.call(Method::GET, &uri, Some(&auditor), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let history = body["history"].as_array().unwrap();
    assert!(history.len() >= 2, "{body:#}");
    assert_eq!(history[0]["score"], 100, "{body:#}");
    let score = body["score"].as_u64().unwrap();
    assert!(score < 40, "{body:#}");
    assert_eq!(body["band"], if score < 20 { "untrusted" } else { "low" });
    assert!(
        body["reasons"][0]["why"]
            .as_str()
            .unwrap()
            .contains("topics"),
        "{body:#}"
    );
    assert_eq!(body["quarantined_by"], "quarantine-low-trust", "{body:#}");
    // Only what came after a time.
    let since = format!("{uri}?since={}", at(105));
    let (_, later) = h.call(Method::GET, &since, Some(&auditor), None).await;
    assert!(later["history"].as_array().unwrap().len() < history.len());
    // Unknown device, bad parameter, no token.
    let (status, _) = h
        .call(
            Method::GET,
            &format!("/api/v1/devices/{}/trust", DeviceId::derived("nobody")),
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h
        .call(
            Method::GET,
            &format!("{uri}?colour=red"),
            Some(&auditor),
            None,
        )
        .await;
    assert!(status.is_client_error());
    let (status, _) = h.call(Method::GET, &uri, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // An operator cannot vouch for a device: the trust labels are Vouch's. Other labels still change, and
    // the reserved ones are carried over.
    let admin = h.admin.clone();
    let dev = format!("/api/v1/devices/{}", d.id);
    let (status, body) = h
        .call(
            Method::PATCH,
            &dev,
            Some(&admin),
            Some(serde_json::json!({"labels": {"trust/score": "100"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("written by Vouch"),
        "{body}"
    );
    let (status, body) = h
        .call(
            Method::PATCH,
            &dev,
            Some(&admin),
            Some(serde_json::json!({"labels": {"site": "hall-2"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["labels"]["site"], "hall-2", "{body}");
    assert_eq!(body["labels"]["trust/score"], score.to_string(), "{body}");
    assert_eq!(
        body["labels"]["response/quarantined-by"],
        "quarantine-low-trust"
    );
    let (status, _) = h
        .call(
            Method::POST,
            "/api/v1/devices",
            Some(&admin),
            Some(serde_json::json!({"class": "sensor", "labels": {"trust/band": "high"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
