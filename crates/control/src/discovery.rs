//! Onboarding and the merge of a discovery report into the registry: the API's upload and onboard routes and
//! the CLI's `vouch discover --merge` and `vouch devices onboard` call these, so the two cannot disagree on
//! what a discovered device becomes, nor on what the trust service hears of it: the merge queues what each
//! managed device was seen doing ([`vouch_discover::sightings`]) as one batch of observations.

use serde::Serialize;
use vouch_discover::Report;
use vouch_discover::merge::{self, RegistryLink, Step};
use vouch_store::{Change, DeviceEdit, DeviceQuery, Store, StoreError};
use vouch_types::{Device, DeviceId, DeviceState};

use crate::ControlError;

/// How a merge went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MergeSummary {
    /// Discovered devices new to the registry, created unmanaged.
    pub created: u32,
    /// Registry devices that were seen (and updated where something changed).
    pub matched: u32,
    /// Of those, the ones where discovery saw something new (address, firmware, …).
    pub changed: u32,
    /// Sightings of managed devices queued for the trust service.
    pub sightings: u32,
}

/// Every device in the registry, page by page.
pub(crate) async fn all_devices(store: &dyn Store) -> Result<Vec<Device>, StoreError> {
    let mut out = Vec::new();
    let mut q = DeviceQuery {
        limit: vouch_store::MAX_PAGE,
        ..DeviceQuery::default()
    };
    loop {
        let page = store.list_devices(&q).await?;
        out.extend(page.devices);
        match page.next {
            Some(n) => q.after = Some(n),
            None => return Ok(out),
        }
    }
}

/// Writes what `report` discovered into the registry: unknown devices are created unmanaged (`discovered`),
/// known ones get what changed and their last-seen time. Each device records how it was matched
/// (`registry` in the report). Re-merging the same report changes nothing but last-seen (its sightings are
/// queued again; the trust engine judges a device's sighting only if it ends after the last one it judged).
///
/// After the merge, the managed devices' sightings go to the observation queue in one batch. A queue that
/// fails fails the call, after the registry was written: merging again is safe, and nothing was queued.
pub async fn merge_report(
    store: &dyn Store,
    report: &mut Report,
    change: Change,
) -> Result<MergeSummary, ControlError> {
    let registry = all_devices(store).await?;
    let steps = merge::plan(report, &registry, change.at);
    let mut summary = MergeSummary::default();
    for (key, step) in steps {
        let link = match step {
            Step::Create(new) => {
                let created = match store.create_device(*new.clone(), change.clone()).await {
                    Ok(d) => d,
                    // Created by an earlier merge whose device has since lost the address it was matched by.
                    Err(StoreError::AlreadyExists { .. }) => store.get_device(new.id).await?,
                    Err(e) => return Err(e.into()),
                };
                summary.created += 1;
                RegistryLink {
                    device_id: created.id,
                    state: created.state,
                    managed: created.is_managed(),
                    matched_by: None,
                    changes: Vec::new(),
                }
            }
            Step::Update {
                id,
                by,
                patch,
                changes,
            } => {
                summary.matched += 1;
                if !changes.is_empty() {
                    summary.changed += 1;
                }
                let device = store
                    .edit_device(id, DeviceEdit::Patch(patch), None, change.clone())
                    .await?;
                RegistryLink {
                    device_id: device.id,
                    state: device.state,
                    managed: device.is_managed(),
                    matched_by: Some(by),
                    changes,
                }
            }
        };
        if let Some(d) = report.devices.iter_mut().find(|d| d.key == key) {
            d.registry = Some(link);
        }
    }
    let sightings = vouch_discover::sightings(report);
    if !sightings.is_empty() {
        summary.sightings = u32::try_from(sightings.len()).unwrap_or(u32::MAX);
        store.append_observations(sightings, change.at).await?;
    }
    Ok(summary)
}

/// Moves a discovered device to `onboarding` (a device already there stays), so that it may enroll; the
/// caller then issues its enrollment token. Refused for a device that is managed, retired or unknown.
pub async fn onboard(
    store: &dyn Store,
    id: DeviceId,
    change: Change,
) -> Result<Device, ControlError> {
    let device = store.get_device(id).await?;
    if device.state == DeviceState::Onboarding {
        return Ok(device);
    }
    // The lifecycle refuses anything but a discovered device (managed ones hold an identity already).
    Ok(store
        .edit_device(
            id,
            DeviceEdit::Transition(DeviceState::Onboarding),
            Some(device.revision),
            change,
        )
        .await?)
}
