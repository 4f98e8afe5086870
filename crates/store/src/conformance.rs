//! The behaviour every backend must show, written once and run against each real engine.
//!
//! A backend's test file calls [`conformance_suite!`](crate::conformance_suite) with an async expression that
//! yields a fresh, empty store; each case below becomes one `#[tokio::test]`.
//!
//! Why one long file: each case is one store rule, run by both backends through the `conformance_suite!` macro
//! at its end, which must name every case; the feed cases, which need a reopenable database, are in
//! `conformance/feed.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod documents;
pub mod feed;
pub mod observe;

pub use documents::documents_are_kept_replaced_and_logged;

use std::collections::BTreeSet;
use std::sync::Arc;

use vouch_events::{Action, EventSeq};
use vouch_types::{
    Actor, DeviceClass, DeviceId, DevicePatch, DeviceState, Identifiers, NewDevice, OperatorName,
    Role, Timestamp, TokenId,
};

use crate::{
    CertStatus, CertificateRecord, Change, DeviceEdit, DeviceQuery, EnrollmentTokenRecord,
    Issuance, MfaRecord, PolicyOp, PolicyWrite, Refusal, Store, StoreError, TokenRecord,
    verify_audit,
};
use vouch_types::{
    CertFingerprint, Device, PolicyId, PolicyMode, PolicyRecord, RevocationReason, Serial,
};

/// Generates one test per conformance case; `$make` is an async expression giving an `Arc<dyn Store>` that is
/// new and empty for every test.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@cases $make;
            create_then_get_round_trips_every_field,
            create_twice_is_already_exists,
            missing_device_is_not_found,
            list_filters_and_cursor_pagination,
            patch_bumps_revision_and_logs_before_after,
            unchanged_patch_logs_nothing,
            stale_revision_is_refused_and_changes_nothing,
            transitions_follow_the_lifecycle,
            import_is_idempotent,
            events_chain_and_page,
            tokens_are_stored_hashed_and_revocable,
            counts_by_state,
            concurrent_edits_serialize,
            standalone_events_join_the_chain,
            enrollment_consumes_the_token_and_activates_the_device,
            enrollment_refusals_change_nothing,
            revocation_suspends_and_a_released_hold_reactivates,
            expiring_certificates_soonest_first,
            one_token_enrolls_once_under_concurrency,
            policy_writes_version_and_log,
            a_failed_policy_batch_writes_nothing,
            mfa_is_stored_and_steps_are_used_once,
            mfa_tries_are_counted_before_the_check_and_lock,
            tokens_and_policies_replay_to_the_tables,
            a_checkpoint_matches_the_log_it_was_taken_of,
            documents_are_kept_replaced_and_logged,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: ::std::sync::Arc<dyn $crate::Store> = $make.await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

fn change(at: i64) -> Change {
    Change {
        actor: Actor::System("conformance".into()),
        reason: Some("testing".parse().unwrap()),
        at: Timestamp::from_unix_micros(1_700_000_000_000_000 + at),
    }
}

/// A device with every field set, derived from `n`.
pub fn sample_device(n: u32) -> NewDevice {
    let mut d = NewDevice::bare(DeviceId::derived(&format!("serial:SN{n:07}")));
    d.class = DeviceClass::ALL[(n as usize) % DeviceClass::ALL.len()];
    d.identifiers = Identifiers {
        mac: Some(
            format!(
                "02:00:00:{:02x}:{:02x}:{:02x}",
                (n >> 16) & 0xff,
                (n >> 8) & 0xff,
                n & 0xff
            )
            .parse()
            .unwrap(),
        ),
        ips: vec![
            format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
                .parse()
                .unwrap(),
            "fd00::1".parse().unwrap(),
        ],
        serial: Some(format!("SN{n:07}").parse().unwrap()),
        cert_fingerprint: Some(format!("{:064x}", n).parse().unwrap()),
    };
    d.vendor = Some(
        if n.is_multiple_of(2) {
            "Siemens"
        } else {
            "Rockwell Automation"
        }
        .parse()
        .unwrap(),
    );
    d.model = Some("S7-1200".parse().unwrap());
    d.firmware = Some("4.2.1".parse().unwrap());
    d.zone = Some(format!("plant-{}/line-{}", n % 3, n % 5).parse().unwrap());
    d.labels = format!("site=berlin;tier={}", n % 4).parse().unwrap();
    d.groups = if n.is_multiple_of(2) {
        "evens;sensors"
    } else {
        "odds"
    }
    .parse()
    .unwrap();
    d
}

pub async fn create_then_get_round_trips_every_field(s: Arc<dyn Store>) {
    let new = sample_device(7);
    let created = s.create_device(new.clone(), change(1)).await.unwrap();
    assert_eq!(created.revision, 1);
    assert_eq!(created.created_at, change(1).at);
    let got = s.get_device(new.id).await.unwrap();
    assert_eq!(got, created);
    assert_eq!(got.identifiers, new.identifiers);
    assert_eq!(got.labels, new.labels);
    assert_eq!(got.groups, new.groups);
    assert!(!got.is_managed());
    let events = s.device_events(new.id, None, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.draft.action, Action::DeviceCreated);
    assert_eq!(e.draft.before, None);
    assert_eq!(e.draft.actor, Actor::System("conformance".into()));
    assert_eq!(e.draft.reason.as_ref().map(|r| r.as_str()), Some("testing"));
    let after: vouch_types::Device =
        serde_json::from_str(e.draft.after.as_deref().unwrap()).unwrap();
    assert_eq!(after, created);
}

pub async fn create_twice_is_already_exists(s: Arc<dyn Store>) {
    s.create_device(sample_device(1), change(1)).await.unwrap();
    let err = s
        .create_device(sample_device(1), change(2))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { what: "device", .. }),
        "{err:?}"
    );
    assert_eq!(
        s.events(None, 100).await.unwrap().len(),
        1,
        "a refused create logs nothing"
    );
}

pub async fn missing_device_is_not_found(s: Arc<dyn Store>) {
    let id = DeviceId::new();
    let err = s.get_device(id).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "device", .. }),
        "{err:?}"
    );
    let err = s
        .edit_device(
            id,
            DeviceEdit::Transition(DeviceState::Onboarding),
            None,
            change(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(s.device_events(id, None, 10).await.unwrap().is_empty());
}

pub async fn list_filters_and_cursor_pagination(s: Arc<dyn Store>) {
    let batch: Vec<NewDevice> = (0..60).map(sample_device).collect();
    s.import_devices(batch.clone(), change(1)).await.unwrap();
    // Move a few devices into managed states.
    for d in &batch[..5] {
        s.edit_device(
            d.id,
            DeviceEdit::Transition(DeviceState::Onboarding),
            None,
            change(2),
        )
        .await
        .unwrap();
        s.edit_device(
            d.id,
            DeviceEdit::Transition(DeviceState::Active),
            None,
            change(3),
        )
        .await
        .unwrap();
    }

    // Every device exactly once, in id order, across pages.
    let mut seen = Vec::new();
    let mut q = DeviceQuery {
        limit: 7,
        ..DeviceQuery::default()
    };
    loop {
        let page = s.list_devices(&q).await.unwrap();
        assert!(page.devices.len() <= 7);
        seen.extend(page.devices.iter().map(|d| d.id));
        match page.next {
            Some(n) => q.after = Some(n),
            None => break,
        }
    }
    let mut expected: Vec<DeviceId> = batch.iter().map(|d| d.id).collect();
    expected.sort();
    assert_eq!(seen, expected);

    let count = |q: DeviceQuery| {
        let s = s.clone();
        async move {
            s.list_devices(&DeviceQuery { limit: 1000, ..q })
                .await
                .unwrap()
                .devices
        }
    };
    let active = count(DeviceQuery {
        state: Some(DeviceState::Active),
        ..DeviceQuery::default()
    })
    .await;
    assert_eq!(active.len(), 5);
    assert!(active.iter().all(|d| d.is_managed()));
    assert_eq!(
        count(DeviceQuery {
            managed: Some(true),
            ..DeviceQuery::default()
        })
        .await
        .len(),
        5
    );
    assert_eq!(
        count(DeviceQuery {
            managed: Some(false),
            ..DeviceQuery::default()
        })
        .await
        .len(),
        55
    );
    assert_eq!(
        count(DeviceQuery {
            state: Some(DeviceState::Active),
            managed: Some(false),
            ..DeviceQuery::default()
        })
        .await
        .len(),
        0
    );
    let plcs = count(DeviceQuery {
        class: Some(DeviceClass::Plc),
        ..DeviceQuery::default()
    })
    .await;
    assert_eq!(
        plcs.len(),
        batch.iter().filter(|d| d.class == DeviceClass::Plc).count()
    );
    let zone = "plant-1/line-1".parse().unwrap();
    let in_zone = count(DeviceQuery {
        zone: Some(zone),
        ..DeviceQuery::default()
    })
    .await;
    assert_eq!(
        in_zone.len(),
        (0..60).filter(|n| n % 3 == 1 && n % 5 == 1).count()
    );
    let by_serial = count(DeviceQuery {
        serial: Some("SN0000042".parse().unwrap()),
        ..DeviceQuery::default()
    })
    .await;
    assert_eq!(
        by_serial.iter().map(|d| d.id).collect::<Vec<_>>(),
        [sample_device(42).id]
    );
    let siemens = count(DeviceQuery {
        vendor: Some("Siemens".parse().unwrap()),
        ..DeviceQuery::default()
    })
    .await;
    assert_eq!(siemens.len(), 30);
    let evens = count(DeviceQuery {
        group: Some("evens".parse().unwrap()),
        ..DeviceQuery::default()
    })
    .await;
    assert_eq!(evens.len(), 30);
    assert!(
        count(DeviceQuery {
            group: Some("even".parse().unwrap()),
            ..DeviceQuery::default()
        })
        .await
        .is_empty()
    );
    let tier2 = count(DeviceQuery {
        label: Some(("tier".parse().unwrap(), "2".parse().unwrap())),
        ..DeviceQuery::default()
    })
    .await;
    assert_eq!(tier2.len(), 15);
    let combined = count(DeviceQuery {
        group: Some("evens".parse().unwrap()),
        label: Some(("tier".parse().unwrap(), "2".parse().unwrap())),
        managed: Some(false),
        ..DeviceQuery::default()
    })
    .await;
    assert_eq!(
        combined.len(),
        (5..60).filter(|n| n % 2 == 0 && n % 4 == 2).count()
    );
}

pub async fn patch_bumps_revision_and_logs_before_after(s: Arc<dyn Store>) {
    let d = s.create_device(sample_device(3), change(1)).await.unwrap();
    let patch: DevicePatch =
        serde_json::from_str(r#"{"firmware": "4.3.0", "zone": null, "groups": ["patched"]}"#)
            .unwrap();
    let n = s
        .edit_device(d.id, DeviceEdit::Patch(Box::new(patch)), Some(1), change(2))
        .await
        .unwrap();
    assert_eq!(n.revision, 2);
    assert_eq!(n.firmware.as_ref().map(|f| f.as_str()), Some("4.3.0"));
    assert_eq!(n.zone, None);
    assert_eq!(n.updated_at, change(2).at);
    assert_eq!(s.get_device(d.id).await.unwrap(), n);
    let events = s.device_events(d.id, None, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    let e = &events[1];
    assert_eq!(e.draft.action, Action::DeviceUpdated);
    let before: vouch_types::Device =
        serde_json::from_str(e.draft.before.as_deref().unwrap()).unwrap();
    let after: vouch_types::Device =
        serde_json::from_str(e.draft.after.as_deref().unwrap()).unwrap();
    assert_eq!((before, after), (d, n));
}

pub async fn unchanged_patch_logs_nothing(s: Arc<dyn Store>) {
    let d = s.create_device(sample_device(4), change(1)).await.unwrap();
    let same = DevicePatch {
        firmware: Some(d.firmware.clone()),
        ..DevicePatch::default()
    };
    let n = s
        .edit_device(d.id, DeviceEdit::Patch(Box::new(same)), None, change(2))
        .await
        .unwrap();
    assert_eq!(n, d);
    assert_eq!(s.device_events(d.id, None, 10).await.unwrap().len(), 1);
}

pub async fn stale_revision_is_refused_and_changes_nothing(s: Arc<dyn Store>) {
    let d = s.create_device(sample_device(5), change(1)).await.unwrap();
    let patch = DevicePatch {
        vendor: Some(None),
        ..DevicePatch::default()
    };
    let err = s
        .edit_device(d.id, DeviceEdit::Patch(Box::new(patch)), Some(9), change(2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::RevisionMismatch {
                expected: 9,
                actual: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(s.get_device(d.id).await.unwrap(), d);
    assert_eq!(s.events(None, 100).await.unwrap().len(), 1);
}

pub async fn transitions_follow_the_lifecycle(s: Arc<dyn Store>) {
    let d = s.create_device(sample_device(6), change(1)).await.unwrap();
    let err = s
        .edit_device(
            d.id,
            DeviceEdit::Transition(DeviceState::Active),
            None,
            change(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition(_)), "{err:?}");
    assert_eq!(
        s.get_device(d.id).await.unwrap(),
        d,
        "an illegal transition changes nothing"
    );
    assert_eq!(
        s.events(None, 100).await.unwrap().len(),
        1,
        "and logs nothing"
    );
    let path = [
        DeviceState::Onboarding,
        DeviceState::Active,
        DeviceState::Restricted,
        DeviceState::Active,
        DeviceState::Suspended,
        DeviceState::Retired,
    ];
    for (i, to) in path.into_iter().enumerate() {
        let n = s
            .edit_device(
                d.id,
                DeviceEdit::Transition(to),
                None,
                change(10 + i as i64),
            )
            .await
            .unwrap();
        assert_eq!(n.state, to);
    }
    let got = s.get_device(d.id).await.unwrap();
    assert_eq!((got.state, got.revision), (DeviceState::Retired, 7));
    let err = s
        .edit_device(
            d.id,
            DeviceEdit::Transition(DeviceState::Active),
            None,
            change(99),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition(_)), "{err:?}");
    let events = s.device_events(d.id, None, 100).await.unwrap();
    assert_eq!(events.len(), 7);
    assert!(
        events[1..]
            .iter()
            .all(|e| e.draft.action == Action::DeviceTransitioned)
    );
}

pub async fn import_is_idempotent(s: Arc<dyn Store>) {
    let batch: Vec<NewDevice> = (0..250).map(sample_device).collect();
    let first = s
        .import_devices(batch[..100].to_vec(), change(1))
        .await
        .unwrap();
    assert_eq!((first.created, first.existing), (100, 0));
    // A re-run after a crash: the first 100 exist, the rest are new; a duplicate inside the batch counts once.
    let mut again = batch.clone();
    again.push(batch[200].clone());
    let second = s.import_devices(again, change(2)).await.unwrap();
    assert_eq!((second.created, second.existing), (150, 101));
    let all = s
        .list_devices(&DeviceQuery {
            limit: 1000,
            ..DeviceQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.devices.len(), 250);
    let events = s.events(None, 1000).await.unwrap();
    assert_eq!(
        events.len(),
        250,
        "one event per created device, none for skipped ones"
    );
    assert!(
        events
            .iter()
            .all(|e| e.draft.action == Action::DeviceImported)
    );
    let report = verify_audit(&*s).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.verified, 250);
    // An invalid record refuses the whole batch and writes nothing.
    let mut bad = sample_device(999);
    bad.state = DeviceState::Active;
    let err = s
        .import_devices(vec![sample_device(998), bad], change(3))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(matches!(
        s.get_device(sample_device(998).id).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn events_chain_and_page(s: Arc<dyn Store>) {
    assert_eq!(s.audit_head().await.unwrap(), None);
    assert!(verify_audit(&*s).await.unwrap().is_intact());
    let a = s.create_device(sample_device(1), change(1)).await.unwrap();
    let b = s.create_device(sample_device(2), change(2)).await.unwrap();
    for i in 0..3 {
        let p = DevicePatch {
            firmware: Some(Some(format!("1.0.{i}").parse().unwrap())),
            ..DevicePatch::default()
        };
        s.edit_device(a.id, DeviceEdit::Patch(Box::new(p)), None, change(3 + i))
            .await
            .unwrap();
    }
    let all = s.events(None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(all.iter().all(|e| e.hash_matches()));
    assert!(all.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    assert_eq!(
        s.audit_head().await.unwrap(),
        Some((EventSeq(5), all[4].hash))
    );
    let page = s.events(Some(EventSeq(2)), 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq.0).collect::<Vec<_>>(), [3, 4]);
    let of_a = s.device_events(a.id, Some(EventSeq(1)), 2).await.unwrap();
    assert_eq!(of_a.iter().map(|e| e.seq.0).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(s.device_events(b.id, None, 10).await.unwrap().len(), 1);
    let report = verify_audit(&*s).await.unwrap();
    assert_eq!((report.verified, report.first_break), (5, None));
}

pub async fn tokens_are_stored_hashed_and_revocable(s: Arc<dyn Store>) {
    let t = TokenRecord {
        id: TokenId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8]),
        operator: OperatorName::try_from("Ada Lovelace".to_owned()).unwrap(),
        role: Role::Auditor,
        secret_hash: [7; 32],
        created_at: change(1).at,
        expires_at: Some(change(1000).at),
        revoked_at: None,
    };
    assert_eq!(s.get_token(t.id).await.unwrap(), None);
    s.create_token(t.clone(), change(1)).await.unwrap();
    assert!(matches!(
        s.create_token(t.clone(), change(2)).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(s.get_token(t.id).await.unwrap(), Some(t.clone()));
    assert_eq!(s.list_tokens().await.unwrap(), vec![t.clone()]);
    let revoked = s.revoke_token(t.id, change(5)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(change(5).at));
    assert!(!revoked.is_usable(change(6).at));
    let again = s.revoke_token(t.id, change(7)).await.unwrap();
    assert_eq!(
        again.revoked_at,
        Some(change(5).at),
        "revoking twice keeps the first revocation"
    );
    let actions: Vec<Action> = s
        .events(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.draft.action)
        .collect();
    assert_eq!(actions, [Action::TokenCreated, Action::TokenRevoked]);
    let logged = s.events(None, 10).await.unwrap();
    assert!(
        logged
            .iter()
            .all(|e| !e.draft.after.as_deref().unwrap_or("").contains("secret"))
    );
    let missing = TokenId::from_bytes([9; 8]);
    assert!(matches!(
        s.revoke_token(missing, change(8)).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn counts_by_state(s: Arc<dyn Store>) {
    assert!(s.count_devices_by_state().await.unwrap().is_empty());
    let batch: Vec<NewDevice> = (0..10).map(sample_device).collect();
    s.import_devices(batch.clone(), change(1)).await.unwrap();
    s.edit_device(
        batch[0].id,
        DeviceEdit::Transition(DeviceState::Onboarding),
        None,
        change(2),
    )
    .await
    .unwrap();
    let counts = s.count_devices_by_state().await.unwrap();
    assert_eq!(counts.get(&DeviceState::Discovered), Some(&9));
    assert_eq!(counts.get(&DeviceState::Onboarding), Some(&1));
    assert_eq!(counts.len(), 2);
}

pub async fn concurrent_edits_serialize(s: Arc<dyn Store>) {
    let d = s.create_device(sample_device(1), change(0)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..24u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut labels = String::from("writer=");
            labels.push_str(&i.to_string());
            let p = DevicePatch {
                labels: Some(labels.parse().unwrap()),
                ..DevicePatch::default()
            };
            s.edit_device(
                d.id,
                DeviceEdit::Patch(Box::new(p)),
                None,
                change(i64::from(i) + 1),
            )
            .await
            .unwrap();
            // Other devices in parallel too, so that the chain sees interleaved writers.
            s.create_device(sample_device(100 + i), change(i64::from(i) + 1))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = s.get_device(d.id).await.unwrap();
    assert!(got.revision >= 2 && got.revision <= 25);
    let revisions: BTreeSet<u64> = s
        .device_events(d.id, None, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::from_str::<vouch_types::Device>(e.draft.after.as_deref().unwrap())
                .unwrap()
                .revision
        })
        .collect();
    assert_eq!(
        revisions,
        (1..=got.revision).collect(),
        "every revision logged exactly once"
    );
    let report = verify_audit(&*s).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.verified, 1 + 24 + u64::from(got.revision as u32 - 1));
}

/// Runs raw SQL against a store's database behind Vouch's back: how the tamper cases edit the log.
pub type RawSql =
    Arc<dyn Fn(String) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Generates one test per tamper case; `$make` is an async expression giving a new, empty
/// `(Arc<dyn Store>, RawSql)` for the same database. The SQL is plain enough for every engine.
#[macro_export]
macro_rules! tamper_suite {
    ($make:expr) => {
        $crate::tamper_suite!(@cases $make;
            editing_an_event_is_named,
            deleting_an_event_is_named,
            deleting_and_renumbering_is_named,
            swapping_two_events_is_named,
            removing_the_newest_events_is_named,
            removing_the_head_is_named,
            raising_a_token_role_is_named,
            undoing_a_revocation_is_named,
            swapping_a_secret_hash_is_named,
            a_token_row_without_event_is_named,
            a_role_changed_before_a_revocation_is_named,
            widening_a_policy_is_named,
            a_policy_version_without_event_is_named,
            a_removed_tail_with_a_rewritten_head_is_named_by_a_checkpoint,
            a_recomputed_chain_is_named_by_a_checkpoint,
            events_past_a_lowered_head_are_checked,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, sql): (::std::sync::Arc<dyn $crate::Store>, $crate::conformance::RawSql) = $make.await;
                $crate::conformance::$case(store, sql).await;
            }
        )*
    };
}

async fn logged(s: &Arc<dyn Store>, n: u32) {
    let batch = (0..n).map(sample_device).collect();
    s.import_devices(batch, change(1)).await.unwrap();
    assert!(verify_audit(&**s).await.unwrap().is_intact());
}

async fn first_break(s: &Arc<dyn Store>) -> Option<vouch_events::ChainBreak> {
    verify_audit(&**s).await.unwrap().first_break
}

pub async fn editing_an_event_is_named(s: Arc<dyn Store>, sql: RawSql) {
    use vouch_events::ChainBreak::Altered;
    logged(&s, 10).await;
    sql("UPDATE events SET reason = 'nothing to see' WHERE seq = 4".into()).await;
    let r = verify_audit(&*s).await.unwrap();
    assert_eq!(
        (r.first_break, r.verified),
        (Some(Altered { seq: EventSeq(4) }), 3)
    );
}

pub async fn deleting_an_event_is_named(s: Arc<dyn Store>, sql: RawSql) {
    logged(&s, 10).await;
    sql("DELETE FROM events WHERE seq = 6".into()).await;
    let expected = vouch_events::ChainBreak::Missing {
        expected: EventSeq(6),
        found: EventSeq(7),
    };
    assert_eq!(first_break(&s).await, Some(expected));
}

pub async fn deleting_and_renumbering_is_named(s: Arc<dyn Store>, sql: RawSql) {
    logged(&s, 10).await;
    sql("DELETE FROM events WHERE seq = 6".into()).await;
    sql("UPDATE events SET seq = -seq WHERE seq > 6".into()).await;
    sql("UPDATE events SET seq = -seq - 1 WHERE seq < 0".into()).await;
    let expected = vouch_events::ChainBreak::Altered { seq: EventSeq(6) };
    assert_eq!(first_break(&s).await, Some(expected));
}

pub async fn swapping_two_events_is_named(s: Arc<dyn Store>, sql: RawSql) {
    logged(&s, 10).await;
    sql("UPDATE events SET seq = -3 WHERE seq = 3".into()).await;
    sql("UPDATE events SET seq = 3 WHERE seq = 8".into()).await;
    sql("UPDATE events SET seq = 8 WHERE seq = -3".into()).await;
    let expected = vouch_events::ChainBreak::Altered { seq: EventSeq(3) };
    assert_eq!(first_break(&s).await, Some(expected));
}

pub async fn removing_the_newest_events_is_named(s: Arc<dyn Store>, sql: RawSql) {
    logged(&s, 10).await;
    sql("DELETE FROM events WHERE seq > 7".into()).await;
    let expected = vouch_events::ChainBreak::Truncated {
        last: EventSeq(7),
        head: EventSeq(10),
    };
    assert_eq!(first_break(&s).await, Some(expected));
}

pub async fn removing_the_head_is_named(s: Arc<dyn Store>, sql: RawSql) {
    logged(&s, 3).await;
    sql("DELETE FROM audit_head".into()).await;
    let found = verify_audit(&*s).await;
    // A backend may report the missing head row as a break or as a corrupt table; it must not pass.
    assert!(!matches!(found, Ok(ref r) if r.is_intact()), "{found:?}");
}

pub async fn standalone_events_join_the_chain(s: Arc<dyn Store>) {
    s.create_device(sample_device(1), change(1)).await.unwrap();
    let draft = vouch_events::EventDraft {
        device_id: None,
        actor: Actor::Cli("ops".into()),
        action: Action::CaInitialized,
        before: None,
        after: Some(r#"{"root":"ab"}"#.into()),
        reason: None,
    };
    let e = s.append_event(draft.clone(), change(2).at).await.unwrap();
    assert_eq!((e.seq, e.at, &e.draft), (EventSeq(2), change(2).at, &draft));
    let stored = s.events(Some(EventSeq(1)), 10).await.unwrap();
    assert_eq!(stored, vec![e]);
    // An event about a device joins that device's history.
    let d = sample_device(1).id;
    let about = vouch_events::EventDraft {
        device_id: Some(d),
        action: Action::EnrollmentRefused,
        ..draft
    };
    let e = s.append_event(about, change(3).at).await.unwrap();
    assert_eq!(s.device_events(d, None, 10).await.unwrap().last(), Some(&e));
    let missing = vouch_events::EventDraft {
        device_id: Some(DeviceId::new()),
        ..e.draft.clone()
    };
    assert!(matches!(
        s.append_event(missing, change(4).at).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(verify_audit(&*s).await.unwrap().is_intact());
}

/// A certificate record for `device`; the store never parses the DER, so any bytes do.
fn cert(device: DeviceId, n: u8, not_after: i64) -> CertificateRecord {
    CertificateRecord {
        serial: Serial::from_slice(&[0x10, n]).unwrap(),
        device_id: device,
        fingerprint: CertFingerprint::from_bytes([n; 32]),
        not_before: change(0).at,
        not_after: change(not_after).at,
        status: CertStatus::Good,
        der: vec![0x30, 0x03, 0x02, 0x01, n],
    }
}

fn enrollment_token(device: DeviceId, n: u8, expires: i64) -> EnrollmentTokenRecord {
    EnrollmentTokenRecord {
        id: TokenId::from_bytes([n; 8]),
        device_id: device,
        secret_hash: [n; 32],
        created_at: change(0).at,
        expires_at: change(expires).at,
        used_at: None,
    }
}

/// A device in onboarding with an enrollment token `n` valid until change(1000).
async fn onboarding(s: &Arc<dyn Store>, n: u32) -> (Device, EnrollmentTokenRecord) {
    let mut d = sample_device(n);
    d.state = DeviceState::Onboarding;
    let d = s.create_device(d, change(1)).await.unwrap();
    let t = enrollment_token(d.id, n as u8, 1000);
    s.create_enrollment_token(t.clone(), change(2))
        .await
        .unwrap();
    (d, t)
}

pub async fn enrollment_consumes_the_token_and_activates_the_device(s: Arc<dyn Store>) {
    let (d, t) = onboarding(&s, 1).await;
    assert_eq!(s.get_enrollment_token(t.id).await.unwrap(), Some(t.clone()));
    let c = cert(d.id, 1, 10_000);
    let device = s
        .record_issuance(
            Issuance {
                cert: c.clone(),
                token: Some(t.id),
            },
            change(10),
        )
        .await
        .unwrap();
    assert_eq!(device.state, DeviceState::Active);
    assert_eq!(device.identifiers.cert_fingerprint, Some(c.fingerprint));
    assert_eq!(s.get_device(d.id).await.unwrap(), device);
    assert_eq!(
        s.get_enrollment_token(t.id).await.unwrap().unwrap().used_at,
        Some(change(10).at)
    );
    assert_eq!(s.get_certificate(c.serial).await.unwrap(), Some(c.clone()));
    assert_eq!(
        s.get_certificate_by_fingerprint(c.fingerprint)
            .await
            .unwrap(),
        Some(c.clone())
    );
    assert_eq!(s.device_certificates(d.id).await.unwrap(), vec![c.clone()]);
    // Re-enrollment (no token): a second certificate, the device stays active and points at the new one.
    let c2 = cert(d.id, 2, 20_000);
    let device = s
        .record_issuance(
            Issuance {
                cert: c2.clone(),
                token: None,
            },
            change(20),
        )
        .await
        .unwrap();
    assert_eq!(
        (device.state, device.identifiers.cert_fingerprint),
        (DeviceState::Active, Some(c2.fingerprint))
    );
    let actions: Vec<Action> = s
        .device_events(d.id, None, 20)
        .await
        .unwrap()
        .iter()
        .map(|e| e.draft.action)
        .collect();
    assert_eq!(
        actions,
        [
            Action::DeviceCreated,
            Action::EnrollmentTokenCreated,
            Action::CertificateIssued,
            Action::DeviceTransitioned,
            Action::CertificateIssued,
            Action::DeviceUpdated
        ]
    );
    let logged = s.events(None, 20).await.unwrap();
    assert!(
        logged.iter().all(|e| !e
            .draft
            .after
            .as_deref()
            .unwrap_or("")
            .contains(&"0a".repeat(32))),
        "no secret hash in the log"
    );
    assert!(verify_audit(&*s).await.unwrap().is_intact());
}

pub async fn enrollment_refusals_change_nothing(s: Arc<dyn Store>) {
    let (d, t) = onboarding(&s, 1).await;
    let (other, other_token) = onboarding(&s, 2).await;
    s.record_issuance(
        Issuance {
            cert: cert(other.id, 9, 10_000),
            token: Some(other_token.id),
        },
        change(5),
    )
    .await
    .unwrap();
    let expired = enrollment_token(d.id, 3, 50);
    s.create_enrollment_token(expired.clone(), change(3))
        .await
        .unwrap();
    let fresh_other = enrollment_token(other.id, 4, 1000);
    s.create_enrollment_token(fresh_other.clone(), change(4))
        .await
        .unwrap();
    let footprint = || {
        let s = s.clone();
        async move {
            (
                s.events(None, 100).await.unwrap().len(),
                s.get_device(d.id).await.unwrap(),
            )
        }
    };
    let before = footprint().await;
    let refused = |r: Result<Device, StoreError>| match r {
        Err(StoreError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let try_with = |token: Option<TokenId>, c: CertificateRecord, at: i64| {
        let s = s.clone();
        async move {
            s.record_issuance(Issuance { cert: c, token }, change(at))
                .await
        }
    };
    assert_eq!(
        refused(
            try_with(
                Some(TokenId::from_bytes([77; 8])),
                cert(d.id, 10, 9_000),
                10
            )
            .await
        ),
        Refusal::TokenUnknown
    );
    assert_eq!(
        refused(try_with(Some(other_token.id), cert(d.id, 11, 9_000), 10).await),
        Refusal::TokenUsed
    );
    assert_eq!(
        refused(try_with(Some(expired.id), cert(d.id, 12, 9_000), 60).await),
        Refusal::TokenExpired
    );
    assert_eq!(
        refused(try_with(Some(fresh_other.id), cert(d.id, 13, 9_000), 10).await),
        Refusal::TokenForAnotherDevice
    );
    // A serial the store has seen already is never recorded twice.
    let dup = CertificateRecord {
        device_id: d.id,
        ..cert(other.id, 9, 10_000)
    };
    assert!(matches!(
        try_with(Some(t.id), dup, 10).await,
        Err(StoreError::AlreadyExists {
            what: "certificate",
            ..
        })
    ));
    assert_eq!(
        footprint().await,
        before,
        "refusals change nothing and log nothing"
    );
    assert_eq!(
        s.get_enrollment_token(t.id).await.unwrap().unwrap().used_at,
        None,
        "the token is still unused"
    );
    assert_eq!(
        s.get_certificate(Serial::from_slice(&[0x10, 10]).unwrap())
            .await
            .unwrap(),
        None
    );
    // A retired device cannot enroll.
    s.edit_device(
        d.id,
        DeviceEdit::Transition(DeviceState::Retired),
        None,
        change(70),
    )
    .await
    .unwrap();
    assert_eq!(
        refused(try_with(Some(t.id), cert(d.id, 14, 9_000), 80).await),
        Refusal::DeviceNotEnrollable(DeviceState::Retired)
    );
}

pub async fn revocation_suspends_and_a_released_hold_reactivates(s: Arc<dyn Store>) {
    let (d, t) = onboarding(&s, 1).await;
    let c = cert(d.id, 1, 10_000);
    s.record_issuance(
        Issuance {
            cert: c.clone(),
            token: Some(t.id),
        },
        change(10),
    )
    .await
    .unwrap();
    let held = s
        .revoke_certificate(c.serial, RevocationReason::CertificateHold, change(20))
        .await
        .unwrap();
    assert_eq!(
        held.status,
        CertStatus::Revoked {
            reason: RevocationReason::CertificateHold,
            at: change(20).at
        }
    );
    assert_eq!(
        s.get_device(d.id).await.unwrap().state,
        DeviceState::Suspended
    );
    assert_eq!(
        s.revoked_certificates().await.unwrap(),
        vec![(c.serial, change(20).at, RevocationReason::CertificateHold)]
    );
    let g1 = s.revocation_generation().await.unwrap();
    let released = s.release_certificate(c.serial, change(30)).await.unwrap();
    assert!(
        s.revocation_generation().await.unwrap() > g1,
        "so does a release"
    );
    assert_eq!(released.status, CertStatus::Good);
    assert_eq!(s.get_device(d.id).await.unwrap().state, DeviceState::Active);
    assert!(s.revoked_certificates().await.unwrap().is_empty());
    assert!(matches!(
        s.release_certificate(c.serial, change(31)).await,
        Err(StoreError::Refused(Refusal::NotOnHold(_)))
    ));

    let revoked = s
        .revoke_certificate(c.serial, RevocationReason::KeyCompromise, change(40))
        .await
        .unwrap();
    assert_eq!(
        s.get_certificate(c.serial).await.unwrap(),
        Some(revoked.clone())
    );
    assert_eq!(
        s.get_device(d.id).await.unwrap().state,
        DeviceState::Suspended
    );
    let events = s.events(None, 100).await.unwrap().len();
    let again = s
        .revoke_certificate(c.serial, RevocationReason::KeyCompromise, change(50))
        .await
        .unwrap();
    assert_eq!(
        again, revoked,
        "revoking again for the same reason is a no-op"
    );
    assert_eq!(s.events(None, 100).await.unwrap().len(), events);
    assert!(matches!(
        s.revoke_certificate(c.serial, RevocationReason::CertificateHold, change(60))
            .await,
        Err(StoreError::Refused(Refusal::AlreadyRevoked(_)))
    ));
    let missing = Serial::from_slice(&[0x7f, 0x7f]).unwrap();
    assert!(matches!(
        s.revoke_certificate(missing, RevocationReason::Unspecified, change(70))
            .await,
        Err(StoreError::NotFound {
            what: "certificate",
            ..
        })
    ));
    assert!(verify_audit(&*s).await.unwrap().is_intact());
}

pub async fn expiring_certificates_soonest_first(s: Arc<dyn Store>) {
    let (d, t) = onboarding(&s, 1).await;
    s.record_issuance(
        Issuance {
            cert: cert(d.id, 1, 3_000),
            token: Some(t.id),
        },
        change(10),
    )
    .await
    .unwrap();
    for (n, exp) in [(2u8, 1_000i64), (3, 2_000), (4, 9_000)] {
        s.record_issuance(
            Issuance {
                cert: cert(d.id, n, exp),
                token: None,
            },
            change(10 + i64::from(n)),
        )
        .await
        .unwrap();
    }
    s.revoke_certificate(
        cert(d.id, 3, 0).serial,
        RevocationReason::Superseded,
        change(20),
    )
    .await
    .unwrap();
    let soon = s.expiring_certificates(change(5_000).at, 10).await.unwrap();
    let serials: Vec<u8> = soon.iter().map(|c| c.serial.as_bytes()[1]).collect();
    assert_eq!(
        serials,
        [2, 1],
        "unrevoked, expiring before the bound, soonest first"
    );
    assert_eq!(
        s.expiring_certificates(change(5_000).at, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn one_token_enrolls_once_under_concurrency(s: Arc<dyn Store>) {
    let (d, t) = onboarding(&s, 1).await;
    let mut tasks = Vec::new();
    for n in 0..8u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.record_issuance(
                Issuance {
                    cert: cert(d.id, 100 + n, 10_000),
                    token: Some(t.id),
                },
                change(10),
            )
            .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Refused(Refusal::TokenUsed)) => {}
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!(ok, 1, "a one-time token enrolls exactly once");
    assert_eq!(s.device_certificates(d.id).await.unwrap().len(), 1);
    assert!(verify_audit(&*s).await.unwrap().is_intact());
}

fn policy_id(s: &str) -> PolicyId {
    s.parse().unwrap()
}

fn put_policy(id: &str, text: &str, mode: PolicyMode) -> PolicyWrite {
    PolicyWrite {
        id: policy_id(id),
        op: PolicyOp::Put {
            text: text.into(),
            mode,
        },
        expected_version: None,
    }
}

fn policy_op(id: &str, op: PolicyOp) -> PolicyWrite {
    PolicyWrite {
        id: policy_id(id),
        op,
        expected_version: None,
    }
}

const PERMIT: &str = "permit (principal, action, resource);";
const FORBID: &str = "forbid (principal, action, resource) when { context.trust < 20 };";

pub async fn policy_writes_version_and_log(s: Arc<dyn Store>) {
    let p = policy_id("own-topics");
    assert!(s.policies().await.unwrap().is_empty());
    assert!(s.policy_history(&p).await.unwrap().is_empty());
    let g0 = s.policy_generation().await.unwrap();
    let last_action = || {
        let s = s.clone();
        async move {
            let events = s.events(None, 1000).await.unwrap();
            let e = events.last().unwrap().clone();
            (events.len(), e)
        }
    };

    let w1 = s
        .write_policies(
            vec![put_policy("own-topics", PERMIT, PolicyMode::Shadow)],
            change(1),
        )
        .await
        .unwrap();
    let v1 = PolicyRecord {
        id: p.clone(),
        version: 1,
        text: PERMIT.into(),
        mode: PolicyMode::Shadow,
        removed: false,
        author: change(1).actor,
        at: change(1).at,
    };
    assert_eq!(w1, vec![v1.clone()]);
    let (n1, e) = last_action().await;
    assert_eq!(n1, 1);
    assert_eq!(e.draft.action, Action::PolicyAdded);
    assert_eq!(e.draft.device_id, None);
    assert_eq!(e.draft.before, None);
    assert!(e.draft.after.as_deref().unwrap().contains("own-topics"));
    assert_eq!(e.draft.reason.as_ref().map(|r| r.as_str()), Some("testing"));
    let g1 = s.policy_generation().await.unwrap();
    assert!(g1 > g0, "a write bumps the generation");

    // Writing what is there writes nothing, logs nothing and leaves the generation alone.
    let same = s
        .write_policies(
            vec![put_policy("own-topics", PERMIT, PolicyMode::Shadow)],
            change(2),
        )
        .await
        .unwrap();
    assert!(same.is_empty());
    assert_eq!(last_action().await.0, n1);
    assert_eq!(s.policy_generation().await.unwrap(), g1);

    let v2 = s
        .write_policies(
            vec![put_policy("own-topics", PERMIT, PolicyMode::Enforce)],
            change(3),
        )
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (v2.version, v2.mode, v2.text.as_str()),
        (2, PolicyMode::Enforce, PERMIT)
    );
    assert_eq!(
        last_action().await.1.draft.action,
        Action::PolicyModeChanged
    );
    let g2 = s.policy_generation().await.unwrap();
    assert!(g2 > g1);

    let v3 = s
        .write_policies(
            vec![put_policy("own-topics", FORBID, PolicyMode::Enforce)],
            change(4),
        )
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((v3.version, v3.text.as_str()), (3, FORBID));
    assert_eq!(last_action().await.1.draft.action, Action::PolicyUpdated);
    let g3 = s.policy_generation().await.unwrap();
    assert!(g3 > g2);
    assert_eq!(s.policies().await.unwrap(), vec![v3.clone()]);

    let v4 = s
        .write_policies(vec![policy_op("own-topics", PolicyOp::Remove)], change(5))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (v4.version, v4.removed, v4.text.as_str(), v4.mode),
        (4, true, FORBID, PolicyMode::Enforce)
    );
    let (n4, e) = last_action().await;
    assert_eq!((n4, e.draft.action), (4, Action::PolicyRemoved));
    assert!(e.draft.before.is_some());
    let g4 = s.policy_generation().await.unwrap();
    assert!(g4 > g3);
    assert!(
        s.policies().await.unwrap().is_empty(),
        "removed policies are not active"
    );
    assert_eq!(
        s.policy_history(&p).await.unwrap(),
        vec![v1, v2, v3, v4],
        "every version, oldest first"
    );

    // Writes in one batch build on each other, and the active set is ordered by id (byte-wise).
    let batch = vec![
        put_policy("zone-b", PERMIT, PolicyMode::Shadow),
        policy_op("zone-b", PolicyOp::SetMode(PolicyMode::Enforce)),
        put_policy("ab", PERMIT, PolicyMode::Shadow),
        put_policy("a.b", PERMIT, PolicyMode::Shadow),
        put_policy("a-c", PERMIT, PolicyMode::Shadow),
        put_policy("own-topics", PERMIT, PolicyMode::Shadow),
    ];
    let written = s.write_policies(batch, change(6)).await.unwrap();
    let versions: Vec<(&str, u32)> = written.iter().map(|r| (r.id.as_str(), r.version)).collect();
    assert_eq!(
        versions,
        [
            ("zone-b", 1),
            ("zone-b", 2),
            ("ab", 1),
            ("a.b", 1),
            ("a-c", 1),
            ("own-topics", 5)
        ]
    );
    assert_eq!(written[1].mode, PolicyMode::Enforce);
    assert_eq!(last_action().await.0, n4 + 6);
    assert!(s.policy_generation().await.unwrap() > g4);
    let active = s.policies().await.unwrap();
    let ids: Vec<&str> = active.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a-c", "a.b", "ab", "own-topics", "zone-b"]);
    assert_eq!(active[4], written[1], "the latest version of each");
    assert_eq!(s.policy_history(&p).await.unwrap().len(), 5);
    let actions: Vec<Action> = s
        .events(Some(EventSeq(n4 as u64)), 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.draft.action)
        .collect();
    assert_eq!(
        actions,
        [
            Action::PolicyAdded,
            Action::PolicyModeChanged,
            Action::PolicyAdded,
            Action::PolicyAdded,
            Action::PolicyAdded,
            Action::PolicyAdded
        ]
    );
    assert!(verify_audit(&*s).await.unwrap().is_intact());
}

pub async fn a_failed_policy_batch_writes_nothing(s: Arc<dyn Store>) {
    s.write_policies(
        vec![put_policy("base", PERMIT, PolicyMode::Shadow)],
        change(1),
    )
    .await
    .unwrap();
    let footprint = || {
        let s = s.clone();
        async move {
            (
                s.events(None, 1000).await.unwrap(),
                s.policy_generation().await.unwrap(),
                s.policies().await.unwrap(),
                s.policy_history(&policy_id("base")).await.unwrap(),
                s.policy_history(&policy_id("fresh")).await.unwrap(),
            )
        }
    };
    let before = footprint().await;

    let err = s
        .write_policies(
            vec![
                put_policy("fresh", PERMIT, PolicyMode::Shadow),
                put_policy("base", FORBID, PolicyMode::Enforce),
                policy_op("missing", PolicyOp::SetMode(PolicyMode::Enforce)),
            ],
            change(2),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "policy", .. }),
        "{err:?}"
    );
    assert_eq!(footprint().await, before, "nothing of the batch landed");

    let err = s
        .write_policies(
            vec![
                put_policy("fresh", PERMIT, PolicyMode::Shadow),
                PolicyWrite {
                    expected_version: Some(7),
                    ..put_policy("base", FORBID, PolicyMode::Shadow)
                },
            ],
            change(3),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::RevisionMismatch {
                expected: 7,
                actual: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(footprint().await, before);

    // `Some(0)`: must be new; a batch that creates then expects its own version sees it.
    let err = s
        .write_policies(
            vec![PolicyWrite {
                expected_version: Some(0),
                ..put_policy("base", FORBID, PolicyMode::Shadow)
            }],
            change(4),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RevisionMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(footprint().await, before);
    let ok = s
        .write_policies(
            vec![
                PolicyWrite {
                    expected_version: Some(0),
                    ..put_policy("fresh", PERMIT, PolicyMode::Shadow)
                },
                PolicyWrite {
                    expected_version: Some(1),
                    ..put_policy("fresh", FORBID, PolicyMode::Shadow)
                },
                PolicyWrite {
                    expected_version: Some(1),
                    ..put_policy("base", FORBID, PolicyMode::Enforce)
                },
            ],
            change(5),
        )
        .await
        .unwrap();
    assert_eq!(
        ok.iter()
            .map(|r| (r.id.as_str(), r.version))
            .collect::<Vec<_>>(),
        [("fresh", 1), ("fresh", 2), ("base", 2)]
    );
    assert_eq!(
        s.events(None, 1000).await.unwrap().len(),
        before.0.len() + 3
    );
    assert!(verify_audit(&*s).await.unwrap().is_intact());
}

pub async fn mfa_is_stored_and_steps_are_used_once(s: Arc<dyn Store>) {
    let mfa = MfaRecord {
        token: TokenId::from_bytes([3; 8]),
        sealed_secret: b"sealed-totp-secret".to_vec(),
        confirmed: false,
        last_step: 0,
        failures: 0,
        retry_at: None,
        enroll_until: None,
    };
    let err = s.put_mfa(mfa.clone(), change(1)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "token", .. }),
        "{err:?}"
    );
    assert!(
        s.events(None, 10).await.unwrap().is_empty(),
        "and logs nothing"
    );
    assert_eq!(s.get_mfa(mfa.token).await.unwrap(), None);

    let token = TokenRecord {
        id: mfa.token,
        operator: OperatorName::try_from("Grace Hopper".to_owned()).unwrap(),
        role: Role::Admin,
        secret_hash: [9; 32],
        created_at: change(1).at,
        expires_at: None,
        revoked_at: None,
    };
    s.create_token(token, change(1)).await.unwrap();
    s.put_mfa(mfa.clone(), change(2)).await.unwrap();
    assert_eq!(s.get_mfa(mfa.token).await.unwrap(), Some(mfa.clone()));
    let confirmed = MfaRecord {
        confirmed: true,
        last_step: 3,
        ..mfa.clone()
    };
    s.put_mfa(confirmed.clone(), change(3)).await.unwrap();
    assert_eq!(
        s.get_mfa(mfa.token).await.unwrap(),
        Some(confirmed.clone()),
        "a put replaces"
    );

    assert!(s.use_mfa_step(mfa.token, 5).await.unwrap());
    assert!(!s.use_mfa_step(mfa.token, 5).await.unwrap(), "a replay");
    assert!(
        !s.use_mfa_step(mfa.token, 4).await.unwrap(),
        "an older code"
    );
    assert!(s.use_mfa_step(mfa.token, 6).await.unwrap());
    assert_eq!(s.get_mfa(mfa.token).await.unwrap().unwrap().last_step, 6);
    let unknown = TokenId::from_bytes([4; 8]);
    assert!(!s.use_mfa_step(unknown, 100).await.unwrap());
    assert_eq!(s.get_mfa(unknown).await.unwrap(), None);

    // Concurrent uses of one code: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(
            async move { s.use_mfa_step(mfa.token, 100).await },
        ));
    }
    let mut accepted = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1, "a code is accepted once");

    let events = s.events(None, 10).await.unwrap();
    let actions: Vec<Action> = events.iter().map(|e| e.draft.action).collect();
    assert_eq!(
        actions,
        [
            Action::TokenCreated,
            Action::MfaEnrolled,
            Action::MfaConfirmed
        ],
        "using a step is not an event"
    );
    assert!(events.iter().all(|e| e.draft.device_id.is_none()));
    assert!(
        events
            .iter()
            .all(|e| !e.draft.after.as_deref().unwrap_or("").contains("sealed")),
        "the secret stays out of the log"
    );
    assert!(verify_audit(&*s).await.unwrap().is_intact());
}

pub async fn mfa_tries_are_counted_before_the_check_and_lock(s: Arc<dyn Store>) {
    use crate::{MFA_MAX_FAILURES, MfaAttempt};
    let token = TokenId::from_bytes([5; 8]);
    let at = |secs: i64| Timestamp::from_unix_micros(1_700_000_000_000_000 + secs * 1_000_000);
    let wrong = |secs: i64| Change {
        actor: Actor::Operator(token),
        reason: None,
        at: at(secs),
    };
    // No token, no record: nothing to try; a code sent anyway is still a failed code, on record.
    assert_eq!(
        s.take_mfa_attempt(token, at(0)).await.unwrap(),
        MfaAttempt::NoFactor
    );
    s.create_token(
        TokenRecord {
            id: token,
            operator: OperatorName::try_from("Ada".to_owned()).unwrap(),
            role: Role::Operator,
            secret_hash: [8; 32],
            created_at: at(0),
            expires_at: None,
            revoked_at: None,
        },
        change(1),
    )
    .await
    .unwrap();
    s.record_mfa_failure(token, wrong(0), Some("127.0.0.9".into()))
        .await
        .unwrap();
    assert_eq!(s.get_mfa(token).await.unwrap(), None, "no record is made");
    let err = s
        .reset_mfa(TokenId::from_bytes([6; 8]), at(1), change(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { what: "token", .. }));

    // An administrator's reset allows enrolling, without a factor yet.
    s.reset_mfa(token, at(86_400), change(1)).await.unwrap();
    let permit = s.get_mfa(token).await.unwrap().unwrap();
    assert_eq!(permit.enroll_until, Some(at(86_400)));
    assert!(!permit.has_secret());
    assert_eq!(
        s.take_mfa_attempt(token, at(0)).await.unwrap(),
        MfaAttempt::NoFactor
    );
    s.put_mfa(
        MfaRecord {
            sealed_secret: b"sealed".to_vec(),
            confirmed: true,
            enroll_until: None,
            ..permit
        },
        change(2),
    )
    .await
    .unwrap();

    // Concurrent tries at one instant: each is counted before any is checked, so a burst gets no more
    // tries than the limit, however many servers send it.
    let mut tasks = Vec::new();
    for _ in 0..(MFA_MAX_FAILURES + 6) {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.take_mfa_attempt(token, at(10)).await
        }));
    }
    let mut granted = 0;
    for t in tasks {
        if matches!(t.await.unwrap().unwrap(), MfaAttempt::Granted(_)) {
            granted += 1;
        }
    }
    assert_eq!(granted, MFA_MAX_FAILURES);
    s.record_mfa_failure(token, wrong(10), None).await.unwrap();
    assert_eq!(
        s.take_mfa_attempt(token, at(100_000)).await.unwrap(),
        MfaAttempt::Locked { retry_at: None },
        "locked until reset, however long one waits"
    );

    // Reset: unlocked, and an accepted code forgives the tries before it.
    s.reset_mfa(token, at(200_000), change(3)).await.unwrap();
    let MfaAttempt::Granted(rec) = s.take_mfa_attempt(token, at(100_001)).await.unwrap() else {
        panic!("a reset unlocks")
    };
    assert_eq!(rec.failures, 1);
    assert!(s.use_mfa_step(token, 50).await.unwrap());
    let rec = s.get_mfa(token).await.unwrap().unwrap();
    assert_eq!((rec.failures, rec.retry_at), (0, None));

    // Backoff: from the fourth wrong code in a row, no try before its time.
    for i in 0..4 {
        assert!(matches!(
            s.take_mfa_attempt(token, at(100_010 + i)).await.unwrap(),
            MfaAttempt::Granted(_)
        ));
        s.record_mfa_failure(token, wrong(100_010 + i), None)
            .await
            .unwrap();
    }
    let rec = s.get_mfa(token).await.unwrap().unwrap();
    assert_eq!(rec.failures, 4);
    assert_eq!(rec.retry_at, Some(at(100_013 + 2)));
    assert_eq!(
        s.take_mfa_attempt(token, at(100_014)).await.unwrap(),
        MfaAttempt::Locked {
            retry_at: Some(at(100_015))
        }
    );

    let events = s.events(None, 100).await.unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.draft.action == Action::MfaFailed)
        .collect();
    assert_eq!(failed.len(), 6, "every wrong code is an event");
    assert!(
        failed[0]
            .draft
            .after
            .as_deref()
            .unwrap()
            .contains("127.0.0.9")
    );
    assert!(
        failed[1]
            .draft
            .reason
            .as_ref()
            .unwrap()
            .as_str()
            .contains("locked")
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.draft.action == Action::MfaReset)
            .count(),
        2
    );
    assert!(verify_audit(&*s).await.unwrap().is_intact());
}

// Tokens and policies against the log, and checkpoints.

fn token(n: u8, role: Role) -> TokenRecord {
    TokenRecord {
        id: TokenId::from_bytes([n; 8]),
        operator: OperatorName::try_from(format!("operator {n}")).unwrap(),
        role,
        secret_hash: [n; 32],
        created_at: change(i64::from(n)).at,
        expires_at: Some(change(1_000_000).at),
        revoked_at: None,
    }
}

/// Two tokens (one revoked) and a policy with three versions: what the token and policy cases start from.
async fn tokens_and_policies(s: &Arc<dyn Store>) {
    s.create_token(token(1, Role::Auditor), change(1))
        .await
        .unwrap();
    s.create_token(token(2, Role::Operator), change(2))
        .await
        .unwrap();
    s.revoke_token(TokenId::from_bytes([2; 8]), change(3))
        .await
        .unwrap();
    s.write_policies(
        vec![put_policy("scoped", FORBID, PolicyMode::Shadow)],
        change(4),
    )
    .await
    .unwrap();
    s.write_policies(
        vec![put_policy("scoped", FORBID, PolicyMode::Enforce)],
        change(5),
    )
    .await
    .unwrap();
    s.write_policies(
        vec![put_policy("gone", PERMIT, PolicyMode::Shadow)],
        change(6),
    )
    .await
    .unwrap();
    s.write_policies(vec![policy_op("gone", PolicyOp::Remove)], change(7))
        .await
        .unwrap();
}

async fn state_findings(s: &Arc<dyn Store>) -> Vec<crate::StateFinding> {
    let a = crate::verify_audit_full(&**s, &[]).await.unwrap();
    assert!(a.chain.is_intact(), "{a:?}");
    a.state
        .expect("the state is compared on an intact chain")
        .findings
}

/// A checkpoint of the log as it is now.
async fn checkpoint_now(s: &Arc<dyn Store>) -> vouch_events::Checkpoint {
    let mut walk = crate::AuditWalk::new();
    walk.advance(&**s, None).await.unwrap();
    walk.checkpoint(change(100).at).unwrap()
}

/// `bytes` as a literal of the store's engine.
fn blob(s: &Arc<dyn Store>, bytes: &[u8]) -> String {
    match s.backend() {
        crate::Backend::Sqlite => format!("X'{}'", hex::encode(bytes)),
        crate::Backend::Postgres => format!("'\\x{}'::bytea", hex::encode(bytes)),
    }
}

pub async fn tokens_and_policies_replay_to_the_tables(s: Arc<dyn Store>) {
    tokens_and_policies(&s).await;
    let a = crate::verify_audit_full(&*s, &[]).await.unwrap();
    assert!(a.is_clean(), "{a:?}");
    let state = a.state.unwrap();
    assert_eq!((state.tokens, state.policies), (2, 2));
    assert!(state.not_checkable.is_empty(), "{state:?}");
    // The token events record a digest of the secret hash, never the hash.
    let events = s.events(None, 100).await.unwrap();
    let created = events[0].draft.after.as_deref().unwrap();
    let digest = crate::credential_digest(&[1; 32]).to_string();
    assert!(created.contains(&digest), "{created}");
    assert!(!created.contains(&hex::encode([1u8; 32])), "{created}");
}

pub async fn a_checkpoint_matches_the_log_it_was_taken_of(s: Arc<dyn Store>) {
    use crate::CheckpointOutcome;
    tokens_and_policies(&s).await;
    let c = checkpoint_now(&s).await;
    assert_eq!(c.seq, EventSeq(7));
    // The log grows after the checkpoint: it still holds what was signed.
    logged(&s, 3).await;
    let again = checkpoint_now(&s).await;
    assert_ne!(again.hash, c.hash);
    assert_eq!(
        (again.tokens, again.policies),
        (c.tokens, c.policies),
        "device events leave the token and policy state alone"
    );
    let a = crate::verify_audit_full(&*s, &[c, again]).await.unwrap();
    assert!(a.is_clean(), "{a:?}");
    assert!(
        a.checkpoints
            .iter()
            .all(|x| x.outcome == CheckpointOutcome::Matches)
    );
    s.create_token(token(3, Role::Admin), change(9))
        .await
        .unwrap();
    assert_ne!(checkpoint_now(&s).await.tokens, c.tokens);
    // One walk kept across appends, as the server's checkpoint writer keeps it: the head it signed stays
    // checked as the log grows.
    let mut walk = crate::AuditWalk::new();
    walk.advance(&*s, None).await.unwrap();
    let head = walk.checkpoint(change(101).at).unwrap();
    walk.watch(head.seq);
    s.create_device(sample_device(50), change(10))
        .await
        .unwrap();
    walk.advance(&*s, None).await.unwrap();
    assert_eq!(walk.check(&head), CheckpointOutcome::Matches);
    assert_eq!(walk.head().unwrap().0, EventSeq(head.seq.0 + 1));
}

pub async fn raising_a_token_role_is_named(s: Arc<dyn Store>, sql: RawSql) {
    tokens_and_policies(&s).await;
    sql("UPDATE tokens SET role = 'admin' WHERE operator = 'operator 1'".into()).await;
    let f = state_findings(&s).await;
    assert_eq!(
        f,
        vec![crate::StateFinding::TokenDiffers {
            id: TokenId::from_bytes([1; 8]),
            field: crate::TokenField::Role,
            database: "admin".into(),
            log: "auditor".into(),
            seq: EventSeq(1),
        }]
    );
    assert_eq!(
        f[0].to_string(),
        "token 0101010101010101: role is admin in the database, auditor in the log (event 1)"
    );
    // The chain alone does not see it.
    assert!(verify_audit(&*s).await.unwrap().is_intact());
}

pub async fn undoing_a_revocation_is_named(s: Arc<dyn Store>, sql: RawSql) {
    tokens_and_policies(&s).await;
    sql("UPDATE tokens SET revoked_at = NULL".into()).await;
    let f = state_findings(&s).await;
    assert_eq!(f.len(), 1, "{f:?}");
    let text = f[0].to_string();
    assert!(
        text.starts_with("token 0202020202020202: revoked in the log")
            && text.contains("event 3")
            && text.ends_with("not revoked in the database: it works again"),
        "{text}"
    );
}

pub async fn swapping_a_secret_hash_is_named(s: Arc<dyn Store>, sql: RawSql) {
    tokens_and_policies(&s).await;
    // The revoked operator token's secret hash, now the auditor's: whoever holds that secret is the auditor.
    sql("UPDATE tokens SET secret_hash = (SELECT secret_hash FROM tokens WHERE operator = 'operator 2') \
         WHERE operator = 'operator 1'"
        .into())
    .await;
    assert_eq!(
        state_findings(&s).await,
        vec![crate::StateFinding::CredentialDiffers {
            id: TokenId::from_bytes([1; 8]),
            seq: EventSeq(1)
        }]
    );
}

pub async fn a_token_row_without_event_is_named(s: Arc<dyn Store>, sql: RawSql) {
    tokens_and_policies(&s).await;
    let (id, hash) = (blob(&s, &[9; 8]), blob(&s, &[9; 32]));
    sql(format!(
        "INSERT INTO tokens (id, operator, role, secret_hash, created_at) VALUES ({id}, 'mallory', 'admin', {hash}, 1)"
    ))
    .await;
    sql("DELETE FROM tokens WHERE operator = 'operator 2'".into()).await;
    let f = state_findings(&s).await;
    assert_eq!(
        f,
        vec![
            crate::StateFinding::TokenWithoutEvent {
                id: TokenId::from_bytes([9; 8]),
                role: Role::Admin
            },
            crate::StateFinding::TokenMissing {
                id: TokenId::from_bytes([2; 8]),
                seq: EventSeq(3)
            },
        ]
    );
    assert!(
        f[0].to_string().contains("no token.created event"),
        "{}",
        f[0]
    );
}

pub async fn a_role_changed_before_a_revocation_is_named(s: Arc<dyn Store>, sql: RawSql) {
    tokens_and_policies(&s).await;
    sql("UPDATE tokens SET role = 'admin' WHERE operator = 'operator 1'".into()).await;
    // Revoked later by Vouch: the revocation records the row as it found it, and the tables then agree with
    // that last event; the log itself shows the change before it.
    s.revoke_token(TokenId::from_bytes([1; 8]), change(20))
        .await
        .unwrap();
    let f = state_findings(&s).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        f[0].to_string(),
        "token 0101010101010101 was changed outside Vouch before event 8, which found role admin where the \
         log had auditor"
    );
}

pub async fn widening_a_policy_is_named(s: Arc<dyn Store>, sql: RawSql) {
    tokens_and_policies(&s).await;
    sql(format!(
        "UPDATE policy_versions SET text = '{PERMIT}' WHERE id = 'scoped' AND version = 2"
    ))
    .await;
    let f = state_findings(&s).await;
    assert_eq!(f.len(), 1, "{f:?}");
    let crate::StateFinding::PolicyDiffers {
        id,
        version,
        field,
        seq,
        ..
    } = &f[0]
    else {
        panic!("{f:?}")
    };
    assert_eq!(
        (id.as_str(), *version, *field, *seq),
        ("scoped", 2, crate::PolicyField::Text, EventSeq(5))
    );
    let text = f[0].to_string();
    assert!(
        text.starts_with(
            "policy scoped version 2: its text in the database is not the text in the log (event 5)"
        ),
        "{text}"
    );
    sql("UPDATE policy_versions SET mode = 'shadow' WHERE id = 'scoped' AND version = 2".into())
        .await;
    let f = state_findings(&s).await;
    assert!(
        f.iter().any(|x| x.to_string()
            == "policy scoped version 2: mode is shadow in the database, enforce in the log (event 5)"),
        "{f:?}"
    );
}

pub async fn a_policy_version_without_event_is_named(s: Arc<dyn Store>, sql: RawSql) {
    tokens_and_policies(&s).await;
    sql(format!(
        "INSERT INTO policy_versions (id, version, text, mode, removed, author, at) \
         VALUES ('scoped', 3, '{PERMIT}', 'enforce', false, 'system:conformance', 1)"
    ))
    .await;
    sql("INSERT INTO policy_versions (id, version, text, mode, removed, author, at) \
         VALUES ('sneaky', 1, 'permit (principal, action, resource);', 'enforce', false, 'system:x', 1)"
        .into())
    .await;
    let f = state_findings(&s).await;
    assert_eq!(
        f,
        vec![
            crate::StateFinding::PolicyWithoutEvent {
                id: policy_id("scoped"),
                version: 3
            },
            crate::StateFinding::PolicyWithoutEvent {
                id: policy_id("sneaky"),
                version: 1
            },
        ]
    );
}

pub async fn a_removed_tail_with_a_rewritten_head_is_named_by_a_checkpoint(
    s: Arc<dyn Store>,
    sql: RawSql,
) {
    logged(&s, 10).await;
    let c = checkpoint_now(&s).await;
    sql("DELETE FROM events WHERE seq > 7".into()).await;
    sql("UPDATE audit_head SET seq = 7, hash = (SELECT hash FROM events WHERE seq = 7)".into())
        .await;
    // The chain and its head agree again: only the checkpoint remembers.
    assert!(verify_audit(&*s).await.unwrap().is_intact());
    let a = crate::verify_audit_full(&*s, &[c]).await.unwrap();
    assert!(a.chain.is_intact() && !a.is_clean(), "{a:?}");
    assert_eq!(
        a.checkpoints[0].outcome,
        crate::CheckpointOutcome::Truncated { last: EventSeq(7) }
    );
    let text = a.checkpoints[0].to_string();
    assert!(
        text.starts_with("log truncated: the checkpoint of ")
            && text.ends_with(
                "signed event 10, but the log ends at event 7: events 8 to 10 were removed"
            ),
        "{text}"
    );
}

pub async fn a_recomputed_chain_is_named_by_a_checkpoint(s: Arc<dyn Store>, sql: RawSql) {
    logged(&s, 4).await;
    let early = checkpoint_now(&s).await;
    s.import_devices((10..16).map(sample_device).collect(), change(2))
        .await
        .unwrap();
    let c = checkpoint_now(&s).await;
    assert_eq!((early.seq, c.seq), (EventSeq(4), EventSeq(10)));
    // Edit event 6 and reseal it and every later event, as someone who knows the chain's rules would.
    let mut prev = s.events(Some(EventSeq(3)), 1).await.unwrap()[0].hash;
    for e in s.events(Some(EventSeq(4)), 100).await.unwrap() {
        let mut draft = e.draft.clone();
        if e.seq == EventSeq(6) {
            draft.reason = Some("nothing happened".parse().unwrap());
        }
        let sealed = draft.seal(e.seq, e.at, prev);
        prev = sealed.hash;
        let reason = sealed
            .draft
            .reason
            .as_ref()
            .map_or("NULL".to_owned(), |r| format!("'{}'", r.as_str()));
        sql(format!(
            "UPDATE events SET reason = {reason}, prev_hash = {}, hash = {} WHERE seq = {}",
            blob(&s, &sealed.prev_hash.0),
            blob(&s, &sealed.hash.0),
            e.seq
        ))
        .await;
    }
    sql(format!(
        "UPDATE audit_head SET hash = {}",
        blob(&s, &prev.0)
    ))
    .await;
    assert!(
        verify_audit(&*s).await.unwrap().is_intact(),
        "the chain alone is fooled"
    );
    let a = crate::verify_audit_full(&*s, &[early, c]).await.unwrap();
    assert!(a.chain.is_intact());
    assert_eq!(a.checkpoints[0].outcome, crate::CheckpointOutcome::Matches);
    assert_eq!(
        a.checkpoints[1].outcome,
        crate::CheckpointOutcome::Rewritten {
            found: prev,
            since: Some(EventSeq(4))
        }
    );
    let text = a.checkpoints[1].to_string();
    assert!(
        text.starts_with("log rewritten: the checkpoint of ")
            && text.contains("signed event 10 with hash")
            && text.ends_with("(after event 4, which an earlier checkpoint still matches)"),
        "{text}"
    );
}

pub async fn events_past_a_lowered_head_are_checked(s: Arc<dyn Store>, sql: RawSql) {
    logged(&s, 10).await;
    // Lower the head, then edit an event past it: a walk that stops at the head sees neither.
    sql("UPDATE audit_head SET seq = 7, hash = (SELECT hash FROM events WHERE seq = 7)".into())
        .await;
    sql("UPDATE events SET reason = 'nothing to see' WHERE seq = 9".into()).await;
    assert!(verify_audit(&*s).await.unwrap().is_intact());
    let a = crate::verify_audit_full(&*s, &[]).await.unwrap();
    assert_eq!(
        (a.chain.first_break.clone(), a.chain.verified),
        (
            Some(vouch_events::ChainBreak::Altered { seq: EventSeq(9) }),
            8
        )
    );
    assert!(a.state.is_none() && a.state_skipped.is_some(), "{a:?}");
    sql("UPDATE events SET reason = 'testing' WHERE seq = 9".into()).await;
    let a = crate::verify_audit_full(&*s, &[]).await.unwrap();
    assert_eq!(
        a.chain.first_break,
        Some(vouch_events::ChainBreak::HeadMismatch { head: EventSeq(7) })
    );
}
