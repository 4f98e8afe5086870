//! Admission and authorization rules one by one, decided by a real policy engine over a device record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vouch_policy::split_policies;
use vouch_store::{CertStatus, CertificateRecord, StoreError};
use vouch_types::{
    CertFingerprint, Device, DeviceClass, DeviceId, DeviceState, Groups, Identifiers, Labels,
    ManualClock, PolicyMode, RevocationReason, Serial,
};

use super::*;

const NOW: Timestamp = Timestamp::from_unix_micros(1_800_000_000_000_000);
const DAY: i64 = 86_400_000_000;

/// The built-in policies plus: sensors connect to `mqtt` and publish their own telemetry; devices with
/// `context.trust < 50` may not publish to `alarms/#`.
fn engine() -> Engine {
    let engine = Engine::new().unwrap();
    let mut sources = split_policies(vouch_policy::DEFAULTS, PolicyMode::Enforce).unwrap();
    sources.extend(
        split_policies(
            r#"
@id("connect")
permit(principal is Vouch::Device, action == Vouch::Action::"connect", resource);
@id("telemetry")
permit(principal is Vouch::Device, action in [Vouch::Action::"publish", Vouch::Action::"subscribe"],
       resource in Vouch::TopicFilter::"telemetry/#");
@id("alarms")
permit(principal is Vouch::Device, action == Vouch::Action::"publish", resource in Vouch::TopicFilter::"alarms/#")
when { context has trust && context.trust >= 50 };
"#,
            PolicyMode::Enforce,
        )
        .unwrap(),
    );
    let compiled = engine.compile(&sources, 1).unwrap();
    engine.install(compiled);
    engine
}

fn device(state: DeviceState, labels: Labels) -> Device {
    Device {
        id: DeviceId::derived("adm-1"),
        state,
        class: DeviceClass::Sensor,
        identifiers: Identifiers::default(),
        vendor: None,
        model: None,
        firmware: None,
        zone: None,
        labels,
        groups: Groups::default(),
        created_at: NOW,
        updated_at: NOW,
        revision: 1,
    }
}

fn cert(status: CertStatus, not_after: Timestamp) -> CertificateRecord {
    CertificateRecord {
        serial: Serial::from_slice(&[1, 2, 3]).unwrap(),
        device_id: DeviceId::derived("adm-1"),
        fingerprint: CertFingerprint::from_bytes([7; 32]),
        not_before: NOW.plus_micros(-DAY),
        not_after,
        status,
        der: Vec::new(),
    }
}

fn service() -> ResourceName {
    "mqtt".parse().unwrap()
}

fn known() -> Arc<Mutex<HashSet<String>>> {
    Arc::new(Mutex::new(HashSet::new()))
}

fn admitted(d: Device, will: Option<&str>) -> Result<Authz, CloseReason> {
    let service = service();
    let request = ConnectRequest {
        will_topic: will,
        service: &service,
    };
    let c = cert(CertStatus::Good, NOW.plus_micros(30 * DAY));
    admit(
        &c,
        Ok(d),
        &request,
        &engine(),
        known(),
        &ManualClock::new(NOW),
    )
}

/// Why admission refused, failing the test if it admitted.
fn refusal(r: Result<Authz, CloseReason>) -> CloseReason {
    match r {
        Ok(_) => panic!("admitted"),
        Err(e) => e,
    }
}

#[test]
fn a_certificate_is_judged_by_its_record() {
    let good = cert(CertStatus::Good, NOW.plus_micros(DAY));
    assert!(certificate(Ok(Some(good)), NOW).is_ok());
    assert_eq!(
        certificate(Ok(None), NOW).unwrap_err(),
        CloseReason::CertificateNotOnRecord
    );
    let revoked = cert(
        CertStatus::Revoked {
            at: NOW,
            reason: RevocationReason::KeyCompromise,
        },
        NOW.plus_micros(DAY),
    );
    assert_eq!(
        certificate(Ok(Some(revoked)), NOW).unwrap_err(),
        CloseReason::CertificateRevoked
    );
    let expired = cert(CertStatus::Good, NOW.plus_micros(-1));
    assert_eq!(
        certificate(Ok(Some(expired)), NOW).unwrap_err(),
        CloseReason::CertificateExpired
    );
    let down = Err(StoreError::Backend("database locked".into()));
    assert_eq!(
        certificate(down, NOW).unwrap_err(),
        CloseReason::StoreUnavailable
    );
}

#[test]
fn the_client_id_must_be_the_certificates_device() {
    let c = cert(CertStatus::Good, NOW.plus_micros(DAY));
    assert!(client_id(&c, &c.device_id.to_string()).is_ok());
    assert_eq!(
        client_id(&c, "someone-else").unwrap_err(),
        CloseReason::ClientIdMismatch
    );
}

#[test]
fn an_unknown_or_unreadable_device_is_refused() {
    let service = service();
    let request = ConnectRequest {
        will_topic: None,
        service: &service,
    };
    let c = cert(CertStatus::Good, NOW.plus_micros(DAY));
    let missing = Err(StoreError::NotFound {
        what: "device",
        id: c.device_id.to_string(),
    });
    let e = engine();
    assert_eq!(
        refusal(admit(
            &c,
            missing,
            &request,
            &e,
            known(),
            &ManualClock::new(NOW)
        )),
        CloseReason::UnknownDevice
    );
    let down = Err(StoreError::Backend("gone".into()));
    assert_eq!(
        refusal(admit(
            &c,
            down,
            &request,
            &e,
            known(),
            &ManualClock::new(NOW)
        )),
        CloseReason::StoreUnavailable
    );
}

#[test]
fn a_device_that_may_not_connect_is_refused() {
    // Retired devices are not live: the built-in policies refuse them everything.
    let d = device(DeviceState::Retired, Labels::default());
    assert_eq!(refusal(admitted(d, None)), CloseReason::NotAuthorized);
    assert!(admitted(device(DeviceState::Active, Labels::default()), None).is_ok());
}

#[test]
fn the_will_must_be_a_message_the_device_may_publish_now() {
    let d = || device(DeviceState::Active, Labels::default());
    assert!(admitted(d(), Some("telemetry/last-words")).is_ok());
    assert_eq!(
        refusal(admitted(d(), Some("plant/valves/open"))),
        CloseReason::NotAuthorized
    );
    // A wildcard is not a topic name: never publishable.
    assert_eq!(
        refusal(admitted(d(), Some("telemetry/#"))),
        CloseReason::NotAuthorized
    );
}

#[test]
fn the_trust_score_on_the_record_reaches_the_decision() {
    let e = engine();
    let low = Labels::default().with_trust("30".parse().unwrap()).unwrap();
    let high = Labels::default().with_trust("80".parse().unwrap()).unwrap();
    let mut a = admitted(device(DeviceState::Active, low), None).unwrap();
    assert!(!a.publish(&e, "alarms/fire", &ManualClock::new(NOW)));
    let mut b = admitted(device(DeviceState::Active, high), None).unwrap();
    assert!(b.publish(&e, "alarms/fire", &ManualClock::new(NOW)));
}

#[test]
fn decisions_are_cached_until_forgotten() {
    let e = engine();
    let mut a = admitted(device(DeviceState::Active, Labels::default()), None).unwrap();
    assert!(a.publish(&e, "telemetry/t", &ManualClock::new(NOW)));
    assert!(a.subscribe(&e, "telemetry/+", &ManualClock::new(NOW)));
    // A stricter engine would refuse now, but the session decides from its cache until told to forget.
    let strict = Engine::new().unwrap();
    assert!(a.publish(&strict, "telemetry/t", &ManualClock::new(NOW)));
    assert!(a.subscribe(&strict, "telemetry/+", &ManualClock::new(NOW)));
    a.forget();
    assert!(!a.publish(&strict, "telemetry/t", &ManualClock::new(NOW)));
    assert!(!a.subscribe(&strict, "telemetry/+", &ManualClock::new(NOW)));
}

#[test]
fn new_topics_count_once_per_device_across_sessions() {
    let e = engine();
    let shared = known();
    let service = service();
    let request = ConnectRequest {
        will_topic: None,
        service: &service,
    };
    let c = cert(CertStatus::Good, NOW.plus_micros(DAY));
    let d = || Ok(device(DeviceState::Active, Labels::default()));
    let mut first = admit(
        &c,
        d(),
        &request,
        &e,
        shared.clone(),
        &ManualClock::new(NOW),
    )
    .unwrap();
    assert!(first.publish(&e, "telemetry/a", &ManualClock::new(NOW)));
    assert!(first.publish(&e, "telemetry/a", &ManualClock::new(NOW)));
    assert!(first.publish(&e, "telemetry/b", &ManualClock::new(NOW)));
    // Refused topics are neither counted nor remembered.
    assert!(!first.publish(&e, "secrets/x", &ManualClock::new(NOW)));
    assert_eq!((first.topics.len(), first.new_topics), (2, 2));
    // A second session (a reconnect) of the same device: its topics are not new any more.
    let mut second = admit(&c, d(), &request, &e, shared, &ManualClock::new(NOW)).unwrap();
    assert!(second.publish(&e, "telemetry/a", &ManualClock::new(NOW)));
    assert!(second.publish(&e, "telemetry/c", &ManualClock::new(NOW)));
    assert_eq!((second.topics.len(), second.new_topics), (2, 1));
}
