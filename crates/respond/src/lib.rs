//! The "score → remediate" steps of Vouch's loop, running: the trust service reads what enforcement points
//! observe (gateway traffic windows), what devices report (posture) and what passive discovery saw them do
//! (sightings, queued by the merge), judges each window and sighting with
//! [`vouch_trust::TrustEngine`], records every score change with its reasons, and carries out the response
//! playbooks ([`vouch_trust::Responder`]) against the store.
//!
//! What it writes, all through the store (so every gateway follows it, and the event log tells the story):
//! - `trust.changed` events (score, band, reasons) — the device's trust history, for charts;
//! - the labels `trust/score` and `trust/band` on the device record — the policy context reads them, so a
//!   policy can say `context.trust >= 70`, and live sessions are re-decided when they change;
//! - quarantine: the `quarantine` group and the `response/quarantined-by` label (policies then allow only the
//!   update topic); release removes both;
//! - revocation (key compromise) and re-enrollment (superseded) of the device's certificates;
//! - `response.taken`, `response.released` and `finding.raised` events (shadow mode: `response.taken` with
//!   `"shadow": true`, nothing else).
//!
//! Architecture Invariant: the registry holds what matters (scores, quarantines, revocations); the service's
//! memory (baselines, counters) only makes judgements better, and a restart loses no restriction.
//!
//! Why one long file: the service's one loop (consume, judge, record, act) and the state it keeps between
//! observations are one unit; `judge`, `history`, `replay` and `snapshot` are apart already.

mod consume;
mod history;
mod judge;
mod replay;
mod settings;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::broadcast;
use vouch_events::{
    Action, EventDraft, PAYLOAD_VERSION, Payload, ResponseRecord, ResponseStep, TrustChanged,
    TrustReason, WindowSpan,
};
use vouch_store::{CertStatus, Change, DeviceEdit, Store, StoreError};
use vouch_trust::{
    DeviceState as TrustState, Directive, FirmwareState, IdentityState, ScoreReason, Step, Verdict,
    Whereabouts,
};

use crate::judge::Judge;
use vouch_types::{
    Actor, Clock, Device, DeviceId, DevicePatch, GroupName, NetworkSighting, Observation,
    PostureReport, Quarantine, Reason, RevocationReason, Timestamp, TrafficWindow, TrustScore,
};

pub use consume::{CONSUMER, QUEUE_KEEP_LAST, QUEUE_KEEP_SECS, SNAPSHOT_VERSION, SaveEvery};
pub use history::{MAX_POINTS, Point, TrustHistory, history};
pub use replay::{
    DeviceOutcome, MAX_DEVICES, MAX_LINE_BYTES, Replay, ReplayError, replay, replay_jsonl,
};
pub use settings::{SettingsError, TrustSettings};

/// The label holding a device's current trust score (read into the policy context).
pub const TRUST_LABEL: &str = vouch_types::TRUST_SCORE_LABEL;
/// The label holding a device's current trust band.
pub const BAND_LABEL: &str = vouch_types::TRUST_BAND_LABEL;
/// How long a device's record and certificates are trusted from memory before they are read again.
const REFRESH: Duration = Duration::from_secs(30);

/// Why the service could not handle an observation.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event payload could not be encoded (a bug, not an input).
    #[error("encoding an event payload: {0}")]
    Payload(#[from] serde_json::Error),
}

/// What the service did with one window or sighting, for live displays (`vouch demo`) and tests.
#[derive(Debug, Clone, Serialize)]
pub struct TrustUpdate {
    /// Whose.
    pub device: DeviceId,
    /// When the window (or the sighting) ended.
    pub at: Timestamp,
    /// The score now.
    pub score: TrustScore,
    /// The score before, if any.
    pub previous: Option<TrustScore>,
    /// Why points were taken off.
    pub reasons: Vec<ScoreReason>,
    /// The window was anomalous.
    pub anomalous: bool,
    /// Judged against its class (its own baseline still warming up).
    pub cold_start: bool,
    /// What the playbooks asked for, carried out unless shadow.
    pub directives: Vec<Directive>,
}

/// Counters since start.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TrustStats {
    /// Windows judged.
    pub windows: u64,
    /// Posture reports taken in.
    pub postures: u64,
    /// Discovery sightings taken in.
    pub sightings: u64,
    /// Score changes recorded.
    pub changes: u64,
    /// Directives carried out (shadow ones included).
    pub directives: u64,
    /// Observations that could not be handled (store errors, unknown devices).
    pub failures: u64,
    /// Times its cursor and models were saved (see [`TrustService::consume`]).
    pub saves: u64,
}

#[derive(Default)]
struct Counters {
    windows: AtomicU64,
    postures: AtomicU64,
    sightings: AtomicU64,
    changes: AtomicU64,
    directives: AtomicU64,
    failures: AtomicU64,
    saves: AtomicU64,
}

/// What the service remembers of a device between windows.
struct Known {
    record: Device,
    identity: IdentityState,
    fetched: Instant,
}

struct Models {
    judge: Judge,
    known: HashMap<DeviceId, Known>,
    attestation: HashMap<DeviceId, bool>,
}

/// The trust service: one per control plane (it holds the models); cheap to clone.
#[derive(Clone)]
pub struct TrustService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: TrustSettings,
    models: Mutex<Models>,
    /// Devices being handled: a device's windows are handled one at a time, in order.
    updates: broadcast::Sender<TrustUpdate>,
    counters: Counters,
}

fn actor() -> Actor {
    Actor::System("trust".into())
}

impl TrustService {
    /// A service over `store` with `settings` (checked with [`TrustSettings::check`]).
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: TrustSettings) -> Self {
        let judge = settings.judge();
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                settings,
                models: Mutex::new(Models {
                    judge,
                    known: HashMap::new(),
                    attestation: HashMap::new(),
                }),
                updates: broadcast::channel(4096).0,
                counters: Counters::default(),
            }),
        }
    }

    /// What it did with each window, as it happens.
    pub fn updates(&self) -> broadcast::Receiver<TrustUpdate> {
        self.inner.updates.subscribe()
    }

    /// Counters since start.
    pub fn stats(&self) -> TrustStats {
        let c = &self.inner.counters;
        TrustStats {
            windows: c.windows.load(Ordering::Relaxed),
            postures: c.postures.load(Ordering::Relaxed),
            sightings: c.sightings.load(Ordering::Relaxed),
            changes: c.changes.load(Ordering::Relaxed),
            directives: c.directives.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            saves: c.saves.load(Ordering::Relaxed),
        }
    }

    /// Handles one observation.
    pub async fn handle(&self, o: Observation) -> Result<Option<TrustUpdate>, RespondError> {
        match o {
            Observation::Traffic(w) => self.window(&w).await,
            Observation::Posture(p) => {
                self.posture(&p);
                Ok(None)
            }
            Observation::Network(s) => self.sighting(&s).await,
        }
    }

    fn posture(&self, p: &PostureReport) {
        self.inner.counters.postures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.inner.models.lock() {
            if let Some(ok) = p.attestation_ok {
                m.attestation.insert(p.device, ok);
            }
            // The report may have changed the record (firmware): read it again at the next window.
            m.known.remove(&p.device);
        }
    }

    /// The record and identity state of `device`, from memory when fresh.
    async fn known(&self, device: DeviceId) -> Result<(Device, IdentityState), RespondError> {
        if let Ok(m) = self.inner.models.lock()
            && let Some(k) = m.known.get(&device)
            && k.fetched.elapsed() < REFRESH
        {
            return Ok((k.record.clone(), k.identity));
        }
        let record = self.inner.store.get_device(device).await?;
        let certs = self.inner.store.device_certificates(device).await?;
        let now = self.inner.clock.now();
        let identity = match certs
            .iter()
            .filter(|c| c.is_valid_at(now))
            .max_by_key(|c| c.not_after)
        {
            Some(c) => {
                let (from, until) = (c.not_before.unix_micros(), c.not_after.unix_micros());
                IdentityState::Valid {
                    days_left: (until - now.unix_micros()).div_euclid(86_400_000_000),
                    // Devices renew from two thirds of the lifetime on (the PKI's profile).
                    renewal_overdue: now.unix_micros() > from + (until - from) / 3 * 2,
                }
            }
            None if certs
                .iter()
                .any(|c| matches!(c.status, CertStatus::Revoked { .. })) =>
            {
                IdentityState::Revoked
            }
            None => IdentityState::Missing,
        };
        if let Ok(mut m) = self.inner.models.lock() {
            m.known.insert(
                device,
                Known {
                    record: record.clone(),
                    identity,
                    fetched: Instant::now(),
                },
            );
        }
        Ok((record, identity))
    }

    /// [`Self::known`], with a device no longer in the registry as `None`: what it did is not judged.
    async fn known_or_gone(
        &self,
        device: DeviceId,
    ) -> Result<Option<(Device, IdentityState)>, RespondError> {
        match self.known(device).await {
            Ok(k) => Ok(Some(k)),
            Err(RespondError::Store(StoreError::NotFound { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn forget(&self, device: DeviceId) {
        if let Ok(mut m) = self.inner.models.lock() {
            m.known.remove(&device);
        }
    }

    /// Where the window's sessions came from, when that is outside the device's zone.
    fn out_of_zone(&self, record: &Device, remotes: &[IpAddr]) -> Option<String> {
        let expected = record.zone.as_ref()?.as_str();
        remotes
            .iter()
            .find_map(|ip| match self.inner.settings.zone_of(*ip) {
                Some(z) if z != expected => {
                    Some(format!("seen in {z} from {ip}, expected in {expected}"))
                }
                _ => None,
            })
    }

    /// Its firmware compared with its model's rule (`[trust.firmware]`).
    fn firmware_state(&self, record: &Device) -> FirmwareState {
        match record.model.as_ref() {
            Some(m) => self
                .inner
                .settings
                .firmware
                .get(m.as_str())
                .map_or(FirmwareState::Current, |rule| {
                    rule.state(record.firmware.as_ref().map(|f| f.as_str()))
                }),
            // No model: nothing to compare with; an unknown version still says so.
            None if record.firmware.is_none() => FirmwareState::Unknown,
            None => FirmwareState::Current,
        }
    }

    /// What the engine is told of a device besides what it did.
    fn state(
        &self,
        m: &Models,
        record: &Device,
        identity: IdentityState,
        out_of_zone: Option<String>,
    ) -> TrustState {
        TrustState {
            class: record.class,
            identity,
            firmware: self.firmware_state(record),
            out_of_zone,
            failed_controls: Vec::new(),
            attestation_ok: m.attestation.get(&record.id).copied(),
            // The one reading of a quarantine: the group, or the `restricted` state the policy reads as
            // the group.
            restricted: record.quarantine().is_some(),
        }
    }

    async fn window(&self, w: &TrafficWindow) -> Result<Option<TrustUpdate>, RespondError> {
        self.inner.counters.windows.fetch_add(1, Ordering::Relaxed);
        let Some((record, identity)) = self.known_or_gone(w.device).await? else {
            return Ok(None);
        };
        let out_of_zone = self.out_of_zone(&record, &w.remotes);
        let (verdict, directives) = {
            let Ok(mut m) = self.inner.models.lock() else {
                return Ok(None);
            };
            let state = self.state(&m, &record, identity, out_of_zone);
            // A quarantine an operator imposed is theirs to lift: the responder sees only a playbook's.
            let quarantine = record.quarantine();
            let by_playbook = quarantine.as_ref().and_then(Quarantine::playbook);
            m.judge.judge(w, &state, by_playbook)
        };
        let span = WindowSpan {
            start: w.start,
            end: w.end,
        };
        self.record(&record, verdict, directives, span)
            .await
            .map(Some)
    }

    /// Judges what discovery saw a device do: scored like a window (its state, remembered penalties) plus
    /// the sighting's network penalties, peers placed in zones by `[trust.zones]`.
    async fn sighting(&self, s: &NetworkSighting) -> Result<Option<TrustUpdate>, RespondError> {
        self.inner
            .counters
            .sightings
            .fetch_add(1, Ordering::Relaxed);
        let Some((record, identity)) = self.known_or_gone(s.device).await? else {
            return Ok(None);
        };
        let judged = {
            let Ok(mut m) = self.inner.models.lock() else {
                return Ok(None);
            };
            let state = self.state(&m, &record, identity, None);
            let zone_of = |ip: IpAddr| self.inner.settings.zone_of(ip).map(str::to_owned);
            let at = Whereabouts {
                zone: record.zone.as_ref().map(|z| z.as_str()),
                zone_of: &zone_of,
            };
            let quarantine = record.quarantine();
            let by_playbook = quarantine.as_ref().and_then(Quarantine::playbook);
            m.judge
                .sight(s, &state, &at, by_playbook, self.inner.clock.now())
        };
        let Some((verdict, directives)) = judged else {
            return Ok(None);
        };
        let span = WindowSpan {
            start: s.start,
            end: s.end,
        };
        self.record(&record, verdict, directives, span)
            .await
            .map(Some)
    }

    /// Records a verdict: `trust.changed` when the score moved, the score on the record, the directives
    /// carried out, the update broadcast.
    async fn record(
        &self,
        record: &Device,
        verdict: Verdict,
        directives: Vec<Directive>,
        span: WindowSpan,
    ) -> Result<TrustUpdate, RespondError> {
        let score = verdict.assessment.score;
        if verdict.changed() {
            self.inner.counters.changes.fetch_add(1, Ordering::Relaxed);
            let detail = TrustChanged {
                v: PAYLOAD_VERSION,
                score,
                band: score.band(),
                previous: verdict.previous,
                reasons: verdict.assessment.reasons.iter().map(reason).collect(),
                cold_start: verdict.cold_start,
                class_anomaly: (verdict.class_anomaly * 1000.0).round() / 1000.0,
                window: span,
            };
            self.event(record.id, Action::TrustChanged, &detail, None)
                .await?;
            tracing::info!(device = %record.id, score = score.get(), previous = ?verdict.previous.map(TrustScore::get), "trust changed");
        }
        self.apply(record, score, &directives).await?;
        let update = TrustUpdate {
            device: record.id,
            at: verdict.at,
            score,
            previous: verdict.previous,
            anomalous: verdict.anomalous(),
            cold_start: verdict.cold_start,
            reasons: verdict.assessment.reasons,
            directives,
        };
        let _ = self.inner.updates.send(update.clone());
        Ok(update)
    }

    async fn event<P: Payload>(
        &self,
        device: DeviceId,
        action: Action,
        detail: &P,
        reason: Option<String>,
    ) -> Result<(), RespondError> {
        debug_assert!(
            P::ACTIONS.contains(&action),
            "{action} does not carry this payload"
        );
        let after = vouch_events::payload::to_after(detail)?;
        let draft = EventDraft {
            device_id: Some(device),
            actor: actor(),
            action,
            before: None,
            after: Some(after),
            reason: reason.and_then(|r| truncate_reason(&r)),
        };
        self.inner
            .store
            .append_event(draft, self.inner.clock.now())
            .await?;
        Ok(())
    }

    /// Writes the score labels and carries out the directives.
    async fn apply(
        &self,
        record: &Device,
        score: TrustScore,
        directives: &[Directive],
    ) -> Result<(), RespondError> {
        let mut quarantine: Option<(bool, String)> = None;
        for d in directives {
            self.inner
                .counters
                .directives
                .fetch_add(1, Ordering::Relaxed);
            let detail = ResponseRecord {
                v: PAYLOAD_VERSION,
                playbook: d.playbook.clone(),
                step: response_step(d.step),
                shadow: d.shadow,
                why: d.why.clone(),
                trust: score,
            };
            if d.shadow {
                tracing::info!(device = %record.id, playbook = %d.playbook, step = ?d.step, "shadow: would act");
                self.event(
                    record.id,
                    Action::ResponseTaken,
                    &detail,
                    Some(d.why.clone()),
                )
                .await?;
                continue;
            }
            let action = match d.step {
                None => {
                    quarantine = Some((false, d.playbook.clone()));
                    Action::ResponseReleased
                }
                Some(Step::Quarantine) => {
                    quarantine = Some((true, d.playbook.clone()));
                    Action::ResponseTaken
                }
                Some(step @ (Step::Revoke | Step::Reenroll)) => {
                    let reason = if step == Step::Revoke {
                        RevocationReason::KeyCompromise
                    } else {
                        RevocationReason::Superseded
                    };
                    self.revoke_all(record.id, reason, &d.why).await?;
                    Action::ResponseTaken
                }
                Some(Step::Notify) => Action::FindingRaised,
            };
            self.event(record.id, action, &detail, Some(d.why.clone()))
                .await?;
            tracing::warn!(device = %record.id, playbook = %d.playbook, step = response_step(d.step).as_str(), why = %d.why, "playbook acted");
        }
        self.write_record(record.id, score, quarantine).await
    }

    async fn revoke_all(
        &self,
        device: DeviceId,
        reason: RevocationReason,
        why: &str,
    ) -> Result<(), RespondError> {
        let now = self.inner.clock.now();
        for c in self.inner.store.device_certificates(device).await? {
            if c.status == CertStatus::Good && c.not_after > now {
                let change = Change {
                    actor: actor(),
                    reason: truncate_reason(why),
                    at: now,
                };
                match self
                    .inner
                    .store
                    .revoke_certificate(c.serial, reason, change)
                    .await
                {
                    Ok(_) | Err(StoreError::Refused(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.forget(device);
        Ok(())
    }

    /// Puts the score (and a quarantine change) on the record, retrying once if it changed meanwhile.
    async fn write_record(
        &self,
        device: DeviceId,
        score: TrustScore,
        quarantine: Option<(bool, String)>,
    ) -> Result<(), RespondError> {
        for attempt in 0..3 {
            let record = if attempt == 0 {
                self.known(device).await?.0
            } else {
                self.forget(device);
                self.known(device).await?.0
            };
            let Some(patch) = patch_for(&record, score, quarantine.as_ref()) else {
                return Ok(());
            };
            let why = match &quarantine {
                Some((true, by)) => format!("quarantined by playbook {by}"),
                Some((false, by)) => format!("quarantine by playbook {by} lifted"),
                None => format!("trust {}", score.get()),
            };
            let change = Change {
                actor: actor(),
                reason: truncate_reason(&why),
                at: self.inner.clock.now(),
            };
            match self
                .inner
                .store
                .edit_device(
                    device,
                    DeviceEdit::Patch(Box::new(patch)),
                    Some(record.revision),
                    change,
                )
                .await
            {
                Ok(updated) => {
                    if let Ok(mut m) = self.inner.models.lock()
                        && let Some(k) = m.known.get_mut(&device)
                    {
                        k.record = updated;
                    }
                    return Ok(());
                }
                Err(StoreError::RevisionMismatch { .. }) if attempt < 2 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// A score reason as events carry it.
fn reason(r: &ScoreReason) -> TrustReason {
    TrustReason {
        penalty: r.penalty,
        component: r.component.to_owned(),
        why: r.why.clone(),
        incurred: r.incurred,
    }
}

/// A playbook step as events name it (no step: the release).
fn response_step(step: Option<Step>) -> ResponseStep {
    match step {
        None => ResponseStep::Release,
        Some(Step::Quarantine) => ResponseStep::Quarantine,
        Some(Step::Revoke) => ResponseStep::Revoke,
        Some(Step::Reenroll) => ResponseStep::Reenroll,
        Some(Step::Notify) => ResponseStep::Notify,
    }
}

fn truncate_reason(s: &str) -> Option<Reason> {
    let cut: String = s.chars().take(200).collect();
    cut.parse().ok()
}

/// The patch that puts `score` (and the quarantine change) on `record`, or `None` if it already says so.
fn patch_for(
    record: &Device,
    score: TrustScore,
    quarantine: Option<&(bool, String)>,
) -> Option<DevicePatch> {
    let mut labels = record.labels.with_trust(score).ok()?;
    let mut groups: std::collections::BTreeSet<GroupName> = record.groups.iter().cloned().collect();
    if let Some((on, by)) = quarantine {
        if *on {
            groups.insert(GroupName::quarantine());
            labels = labels.with_quarantined_by(Some(by)).ok()?;
        } else {
            groups.remove(&GroupName::quarantine());
            labels = labels.with_quarantined_by(None).ok()?;
        }
    }
    let groups = vouch_types::Groups::new(groups).ok()?;
    if labels == record.labels && groups == record.groups {
        return None;
    }
    Some(DevicePatch {
        labels: Some(labels),
        groups: Some(groups),
        ..DevicePatch::default()
    })
}
