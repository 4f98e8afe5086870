//! Continuous verification: the gateway follows the store (its event log and the policy version) and
//! re-decides live sessions when something they depend on changes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use vouch_events::{Action, Event, EventDraft, PAYLOAD_VERSION, SessionCut};
use vouch_store::{CertStatus, Feed, StoreError};
use vouch_types::{Actor, DeviceId};

use crate::Inner;
use crate::close::CloseReason;
use crate::session::Session;

/// How often the store is read for changes: a revocation or quarantine reaches live sessions within this
/// (plus the time to re-decide them).
pub const TICK: Duration = Duration::from_millis(100);
/// Decisions may depend on the time of day: every session's memory of them is dropped this often.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// Live sessions by device.
#[derive(Default)]
pub(crate) struct Registry {
    by_device: Mutex<HashMap<DeviceId, Vec<Arc<Session>>>>,
}

impl Registry {
    pub(crate) fn add(&self, s: &Arc<Session>) {
        if let Ok(mut m) = self.by_device.lock() {
            m.entry(s.device).or_default().push(s.clone());
        }
    }

    pub(crate) fn remove(&self, s: &Arc<Session>) {
        if let Ok(mut m) = self.by_device.lock()
            && let Some(v) = m.get_mut(&s.device)
        {
            v.retain(|x| !Arc::ptr_eq(x, s));
            if v.is_empty() {
                m.remove(&s.device);
            }
        }
    }

    pub(crate) fn of(&self, device: DeviceId) -> Vec<Arc<Session>> {
        self.by_device
            .lock()
            .map(|m| m.get(&device).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        self.by_device
            .lock()
            .map(|m| m.values().flatten().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn count(&self, device: DeviceId) -> usize {
        self.by_device
            .lock()
            .map(|m| m.get(&device).map_or(0, Vec::len))
            .unwrap_or(0)
    }
}

/// Whether an event can change what a device's live sessions may do (the filter of the gateway's feed).
pub(crate) fn matters(event: &Event) -> bool {
    matches!(
        event.draft.action,
        Action::DeviceUpdated
            | Action::DeviceTransitioned
            | Action::CertificateRevoked
            | Action::CertificateReleased
    )
}

/// Follows the store until the gateway is dropped. `feed` is transient: live sessions die with the process,
/// so a restarted gateway starts at the head, and several gateways on one store need no shared cursor.
pub(crate) async fn run(inner: Weak<Inner>, mut feed: Feed) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut version = None;
    let mut last_forget = tokio::time::Instant::now();
    // Devices whose re-check failed (the store did not answer): the event is behind the cursor, so they are
    // retried every tick until it works, never forgotten.
    let mut retry: HashSet<DeviceId> = HashSet::new();
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        // Policies: the decision point reloads them; a new version re-decides every session.
        let v = inner.decisions.engine().version();
        let policies_changed = version.is_some_and(|old| old != v);
        version = Some(v);
        let forget = last_forget.elapsed() >= FORGET_EVERY;
        if forget {
            last_forget = tokio::time::Instant::now();
        }
        let mut changed = match changed_devices(&inner, &mut feed).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "reading the event log failed; sessions are re-checked on the next tick");
                continue;
            }
        };
        changed.extend(retry.drain());
        for device in &changed {
            if !reverify_device(&inner, *device).await {
                retry.insert(*device);
            }
        }
        let now = inner.clock.now();
        for s in inner.sessions.all() {
            let verdict = {
                let Ok(mut a) = s.authz.lock() else { continue };
                if a.not_after <= now {
                    Some((CloseReason::CertificateExpired, "the certificate expired"))
                } else if policies_changed && !changed.contains(&s.device) {
                    a.forget();
                    inner.counters.reverified.fetch_add(1, Ordering::Relaxed);
                    (!a.may_connect(&*inner.decisions, &inner.config.service, &*inner.clock))
                        .then_some((
                            CloseReason::AccessWithdrawn,
                            "the policies no longer allow it",
                        ))
                } else {
                    if forget {
                        a.forget();
                    }
                    None
                }
            };
            if let Some((reason, why)) = verdict {
                cut(&inner, &s, reason, why).await;
            }
        }
    }
}

/// Devices with live sessions that the events `feed` has not handed out yet touched; moves the feed on.
async fn changed_devices(inner: &Inner, feed: &mut Feed) -> Result<HashSet<DeviceId>, StoreError> {
    let mut changed = HashSet::new();
    while let Some(batch) = feed.try_next_batch().await? {
        for e in &batch.events {
            if let Some(d) = e.draft.device_id
                && inner.sessions.count(d) > 0
            {
                changed.insert(d);
            }
        }
        if batch.caught_up {
            break;
        }
    }
    Ok(changed)
}

/// Re-reads `device` and its sessions' certificates and re-decides its sessions; false if the store could
/// not be read (try again).
async fn reverify_device(inner: &Inner, device: DeviceId) -> bool {
    let sessions = inner.sessions.of(device);
    if sessions.is_empty() {
        return true;
    }
    let record = match inner.store.get_device(device).await {
        Ok(d) => Some(d),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => {
            tracing::warn!(%device, error = %e, "could not re-read a device; retrying on the next tick");
            return false;
        }
    };
    let mut complete = true;
    for s in sessions {
        inner.counters.reverified.fetch_add(1, Ordering::Relaxed);
        let Some(record) = &record else {
            cut(
                inner,
                &s,
                CloseReason::UnknownDevice,
                "the device was removed",
            )
            .await;
            continue;
        };
        match inner
            .store
            .get_certificate_by_fingerprint(s.fingerprint)
            .await
        {
            Ok(Some(c)) if matches!(c.status, CertStatus::Revoked { .. }) => {
                cut(
                    inner,
                    &s,
                    CloseReason::CertificateRevoked,
                    "its certificate was revoked",
                )
                .await;
                continue;
            }
            Ok(None) => {
                cut(
                    inner,
                    &s,
                    CloseReason::CertificateNotOnRecord,
                    "its certificate is no longer on record",
                )
                .await;
                continue;
            }
            Ok(Some(_)) => {}
            Err(_) => complete = false,
        }
        let facts = vouch_policy::DeviceFacts::from(record);
        let allowed = {
            let Ok(mut a) = s.authz.lock() else { continue };
            a.prepared = inner.decisions.engine().prepare(&facts);
            a.facts = facts;
            a.forget();
            a.may_connect(&*inner.decisions, &inner.config.service, &*inner.clock)
        };
        if !allowed {
            cut(
                inner,
                &s,
                CloseReason::AccessWithdrawn,
                "the policy no longer allows it to connect",
            )
            .await;
        } else {
            tracing::info!(%device, state = %record.state, "live session re-decided");
        }
    }
    complete
}

/// Ends a live session and records why in the event log.
async fn cut(inner: &Inner, s: &Session, reason: CloseReason, why: &str) {
    if s.close.borrow().is_some() {
        return;
    }
    s.end(reason);
    tracing::warn!(device = %s.device, %reason, "live session cut: {why}");
    let detail = SessionCut {
        v: PAYLOAD_VERSION,
        reason: reason.as_str().to_owned(),
        why: why.to_owned(),
        fingerprint: s.fingerprint,
    };
    let after = match vouch_events::payload::to_after(&detail) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "could not encode a cut session's event");
            return;
        }
    };
    let draft = EventDraft {
        device_id: Some(s.device),
        actor: Actor::System("gateway".into()),
        action: Action::SessionCut,
        before: None,
        after: Some(after),
        reason: None,
    };
    if let Err(e) = inner.store.append_event(draft, inner.clock.now()).await {
        tracing::error!(error = %e, "could not log a cut session");
    }
}
