//! Device registration and edits by an operator (API or CLI). Vouch's own writers — the trust service and
//! the playbooks — write reserved labels through the store directly; an operator's request never does.

use vouch_store::{Change, DeviceEdit, Store, StoreError};
use vouch_types::{Device, DeviceId, DevicePatch, Labels, NewDevice};

use crate::ControlError;

/// How often an edit without the caller's revision is retried when a concurrent writer (a playbook setting
/// its quarantine mark, say) got in between reading the device and writing it.
const EDIT_RETRIES: usize = 5;

/// Refuses labels that set a reserved label to anything but what `current` holds.
fn refuse_reserved(labels: &Labels, current: Option<&Labels>) -> Result<(), ControlError> {
    match labels.reserved_change(current) {
        Some(key) => Err(ControlError::ReservedLabel { key: key.clone() }),
        None => Ok(()),
    }
}

/// Registers a device; its labels may not be reserved ones.
pub async fn create(
    store: &dyn Store,
    new: NewDevice,
    change: Change,
) -> Result<Device, ControlError> {
    refuse_reserved(&new.labels, None)?;
    Ok(store.create_device(new, change).await?)
}

/// Applies an operator's patch. A label list replaces the device's labels but keeps the reserved ones
/// (the trust score, a playbook's quarantine mark) and may not set or change them. With `expected_revision`
/// the edit happens only at that revision; without it, the edit is made against the revision whose labels
/// it was checked against, re-read and retried if another writer got in between, so a reserved label written
/// meanwhile is never lost.
pub async fn update(
    store: &dyn Store,
    id: DeviceId,
    patch: DevicePatch,
    expected_revision: Option<u64>,
    change: Change,
) -> Result<Device, ControlError> {
    let Some(labels) = patch.labels.clone() else {
        let edit = DeviceEdit::Patch(Box::new(patch));
        return Ok(store
            .edit_device(id, edit, expected_revision, change)
            .await?);
    };
    let mut tries = 0;
    loop {
        let current = store.get_device(id).await?;
        refuse_reserved(&labels, Some(&current.labels))?;
        let mut p = patch.clone();
        p.labels = Some(labels.keeping_reserved(&current.labels)?);
        let at = expected_revision.unwrap_or(current.revision);
        match store
            .edit_device(id, DeviceEdit::Patch(Box::new(p)), Some(at), change.clone())
            .await
        {
            Err(StoreError::RevisionMismatch { .. })
                if expected_revision.is_none() && tries < EDIT_RETRIES =>
            {
                tries += 1;
            }
            outcome => return Ok(outcome?),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use vouch_store::{Change, DeviceEdit, Store};
    use vouch_types::{
        Actor, DeviceId, DevicePatch, LabelKey, LabelValue, Labels, NewDevice,
        QUARANTINED_BY_LABEL, TRUST_SCORE_LABEL, Timestamp,
    };

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        let map: BTreeMap<LabelKey, LabelValue> = pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect();
        Labels::new(map).unwrap()
    }

    fn change(actor: &str) -> Change {
        Change {
            actor: Actor::System(actor.into()),
            reason: None,
            at: Timestamp::from_unix_micros(1_764_000_000_000_000),
        }
    }

    async fn store_with_quarantined_device()
    -> (tempfile::TempDir, vouch_store_sqlite::SqliteStore, DeviceId) {
        let dir = tempfile::tempdir().unwrap();
        let store = vouch_store_sqlite::SqliteStore::open(
            dir.path().join("v.db"),
            vouch_store_sqlite::Durability::Normal,
        )
        .unwrap();
        let id = DeviceId::new();
        store
            .create_device(NewDevice::bare(id), change("test"))
            .await
            .unwrap();
        // What the trust service and a playbook write, through the store directly.
        let patch = DevicePatch {
            labels: Some(labels(&[
                (TRUST_SCORE_LABEL, "12"),
                (QUARANTINED_BY_LABEL, "isolate-on-low-trust"),
                ("site", "plant-1"),
            ])),
            ..DevicePatch::default()
        };
        store
            .edit_device(
                id,
                DeviceEdit::Patch(Box::new(patch)),
                None,
                change("playbook"),
            )
            .await
            .unwrap();
        (dir, store, id)
    }

    #[tokio::test]
    async fn replacing_labels_keeps_the_reserved_ones() {
        let (_dir, store, id) = store_with_quarantined_device().await;
        let patch = DevicePatch {
            labels: Some(labels(&[("site", "plant-2"), ("owner", "ops")])),
            ..DevicePatch::default()
        };
        let d = update(&store, id, patch, None, change("operator"))
            .await
            .unwrap();
        let got: Vec<(String, String)> = d
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("owner", "ops"),
                ("response/quarantined-by", "isolate-on-low-trust"),
                ("site", "plant-2"),
                ("trust/score", "12"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[tokio::test]
    async fn an_operator_cannot_set_or_change_a_reserved_label_and_nothing_changes() {
        let (_dir, store, id) = store_with_quarantined_device().await;
        let before = store.get_device(id).await.unwrap();
        for attempt in [
            &[(TRUST_SCORE_LABEL, "100")][..],
            &[("trust/band", "high")][..],
            &[(QUARANTINED_BY_LABEL, "operator")][..],
        ] {
            let patch = DevicePatch {
                labels: Some(labels(attempt)),
                ..DevicePatch::default()
            };
            let e = update(&store, id, patch, None, change("operator"))
                .await
                .unwrap_err();
            assert!(matches!(e, ControlError::ReservedLabel { .. }), "{e}");
        }
        assert_eq!(store.get_device(id).await.unwrap(), before);
        // Repeating a reserved label unchanged is allowed (a client sending back what it read).
        let patch = DevicePatch {
            labels: Some(labels(&[(TRUST_SCORE_LABEL, "12"), ("site", "plant-1")])),
            ..DevicePatch::default()
        };
        update(&store, id, patch, None, change("operator"))
            .await
            .unwrap();
        let new = NewDevice {
            labels: labels(&[(TRUST_SCORE_LABEL, "99")]),
            ..NewDevice::bare(DeviceId::new())
        };
        assert!(matches!(
            create(&store, new, change("operator")).await,
            Err(ControlError::ReservedLabel { .. })
        ));
    }
}
