//! The policy decision point as a service: the engine kept in step with the store, decisions that leave a
//! trace (denies and shadow "would deny"s in the event log, distinct requests in the decision log that
//! `vouch policy test` replays), and the one write path for policies, which validates before it stores.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use vouch_events::{Action, EventDraft};
use vouch_policy::{
    DEFAULTS, Decision, DeviceAction, DeviceContext, DeviceFacts, DeviceRequest, Engine,
    OperatorRequest, PolicyErrors, PolicySource, PreparedDevice, Resource, split_policies,
};
use vouch_store::{Change, PolicyOp, PolicyWrite, Store, StoreError, plan_policy_write};
use vouch_types::{Actor, Clock, PolicyMode, PolicyRecord, Timestamp};

/// How often the store's policy generation is polled when no wake-up comes: a policy written by any process
/// (the CLI, another node) is in force within this time, and usually at once through the store's wake-up.
pub const RELOAD_EVERY: Duration = Duration::from_millis(250);
/// The least time between two reloads: wake-ups come with every append, and under a stream of writes the
/// ones arriving during this pause fold into one generation check.
const RELOAD_GAP: Duration = Duration::from_millis(25);
/// The same denial is logged once per this window, with how many times it happened.
const DENY_LOG_WINDOW_MICROS: i64 = 60_000_000;
/// Bounds on the de-duplication memories: past them, they start over.
const MAX_REMEMBERED: usize = 100_000;
/// Queue between decisions and the writer: when full, traces are dropped (and counted), never waited for.
const QUEUE: usize = 16_384;
/// The decision log rolls over at this size, keeping one previous file.
const DECISION_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// Why a policy write was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyWriteError {
    /// The resulting set does not validate: nothing was stored.
    #[error("{0}")]
    Invalid(#[from] PolicyErrors),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates the set that `writes` would produce, then stores the writes in one transaction.
pub async fn write_policies(
    store: &dyn Store,
    engine: &Engine,
    writes: Vec<PolicyWrite>,
    change: Change,
) -> Result<Vec<PolicyRecord>, PolicyWriteError> {
    // The set these writes would leave, by the store's own rules (`plan_policy_write`): validated before
    // anything is written.
    let mut next: std::collections::BTreeMap<_, PolicyRecord> = store
        .policies()
        .await?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    for w in &writes {
        if let Some((version, _)) = plan_policy_write(next.get(&w.id), w, &change)? {
            if version.removed {
                next.remove(&w.id);
            } else {
                next.insert(w.id.clone(), version);
            }
        }
    }
    let next: Vec<PolicySource> = next.values().map(Into::into).collect();
    engine.check(&next)?;
    Ok(store.write_policies(writes, change).await?)
}

/// On a store that never held a policy, writes Vouch's least-privilege defaults ([`DEFAULTS`], enforced);
/// otherwise does nothing (an operator who removed them meant it).
pub async fn seed_defaults(
    store: &dyn Store,
    engine: &Engine,
    clock: &dyn Clock,
) -> Result<(), PolicyWriteError> {
    if store.policy_generation().await? != 0 {
        return Ok(());
    }
    let writes = split_policies(DEFAULTS, PolicyMode::Enforce)?
        .into_iter()
        .map(|s| PolicyWrite {
            id: s.id,
            op: PolicyOp::Put {
                text: s.text,
                mode: s.mode,
            },
            expected_version: Some(0),
        })
        .collect();
    let change = Change {
        actor: Actor::System("policy-defaults".into()),
        reason: vouch_types::Reason::try_from("first start: least-privilege defaults".to_owned())
            .ok(),
        at: clock.now(),
    };
    match write_policies(store, engine, writes, change).await {
        // Another process seeded them first.
        Ok(_) | Err(PolicyWriteError::Store(StoreError::RevisionMismatch { .. })) => Ok(()),
        Err(e) => Err(e),
    }
}

/// What the decision point reports about itself.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionStats {
    /// The policy-set version in force.
    pub version: u64,
    /// Stored policies in it.
    pub policies: usize,
    /// Topic grants they name.
    pub grants: usize,
    /// Traces dropped because the writer fell behind.
    pub dropped: u64,
}

enum Trace {
    Event(EventDraft),
    Record(String),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The engine, kept in step with the store, and the traces decisions leave.
pub struct DecisionPoint {
    engine: Engine,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    loaded: AtomicU64,
    traces: mpsc::Sender<Trace>,
    dropped: AtomicU64,
    denials: Mutex<HashMap<u64, (Timestamp, u64)>>,
    recorded: Mutex<std::collections::HashSet<u64>>,
    record: bool,
    hasher: std::collections::hash_map::RandomState,
}

impl DecisionPoint {
    /// Starts the decision point over `store`: on a store that never had a policy, writes Vouch's
    /// least-privilege defaults; loads the set; keeps it current; writes traces in the background, and the
    /// decision log to `decision_log` if given. Needs a tokio runtime.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        decision_log: Option<PathBuf>,
    ) -> Result<Arc<Self>, PolicyWriteError> {
        let engine = Engine::new()?;
        seed_defaults(&*store, &engine, &*clock).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let point = Arc::new(Self {
            engine,
            store: store.clone(),
            clock,
            loaded: AtomicU64::new(u64::MAX),
            traces: tx,
            dropped: AtomicU64::new(0),
            denials: Mutex::new(HashMap::new()),
            recorded: Mutex::new(std::collections::HashSet::new()),
            record: decision_log.is_some(),
            hasher: std::collections::hash_map::RandomState::new(),
        });
        point.reload().await?;
        tokio::spawn(write_traces(store, point.clock.clone(), rx, decision_log));
        let weak = Arc::downgrade(&point);
        let mut wakeup = point.store.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = wakeup.changed() => {}
                }
                let Some(point) = weak.upgrade() else { return };
                // Seen before the read: a policy written during the reload wakes the next one.
                wakeup.mark_seen();
                if let Err(e) = point.reload().await {
                    tracing::error!(error = %e, "policy reload failed; the previous set stays in force");
                }
                drop(point);
                tokio::time::sleep(RELOAD_GAP).await;
            }
        });
        Ok(point)
    }

    /// Recompiles if the store's policies changed since the last load; returns the version in force.
    pub async fn reload(&self) -> Result<u64, PolicyWriteError> {
        let generation = self.store.policy_generation().await?;
        if generation == self.loaded.load(Ordering::Acquire) {
            return Ok(generation);
        }
        let sources: Vec<PolicySource> = self
            .store
            .policies()
            .await?
            .iter()
            .map(Into::into)
            .collect();
        let compiled = self.engine.compile(&sources, generation)?;
        self.engine.install(compiled);
        self.loaded.store(generation, Ordering::Release);
        tracing::info!(
            version = generation,
            policies = sources.len(),
            "policy set in force"
        );
        Ok(generation)
    }

    /// The engine (for validation and for callers that decide without leaving traces).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What is in force.
    pub fn stats(&self) -> DecisionStats {
        let c = self.engine.current();
        DecisionStats {
            version: c.version(),
            policies: c.stored_policies(),
            grants: c.grants(),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    /// Decides a device's request and leaves its traces.
    pub fn decide_device(&self, req: &DeviceRequest) -> Decision {
        let d = self.engine.decide_device(req);
        self.trace_denial(Some(req.device.id), &d, || {
            serde_json::json!({
                "principal": { "type": "Device", "id": req.device.id },
                "action": req.action,
                "resource": req.resource,
            })
        });
        if self.record {
            self.record(req, &d);
        }
        d
    }

    /// Decides a request from a device prepared once per session (an enforcement point's path) and leaves
    /// the same traces as [`DecisionPoint::decide_device`]; `facts` are the ones `device` was prepared from.
    pub fn decide_prepared(
        &self,
        facts: &DeviceFacts,
        device: &PreparedDevice,
        action: DeviceAction,
        resource: &Resource,
        context: &DeviceContext,
    ) -> Decision {
        let d = self
            .engine
            .decide_prepared(device, action, resource, context);
        self.trace_denial(Some(facts.id), &d, || {
            serde_json::json!({
                "principal": { "type": "Device", "id": facts.id },
                "action": action,
                "resource": resource,
            })
        });
        if self.record {
            let req = DeviceRequest {
                device: facts.clone(),
                action,
                resource: resource.clone(),
                context: context.clone(),
            };
            self.record(&req, &d);
        }
        d
    }

    /// Logs the denial of a request from a device Vouch does not know.
    pub fn trace_unknown(
        &self,
        device: vouch_types::DeviceId,
        action: vouch_policy::DeviceAction,
        resource: &vouch_policy::Resource,
        d: &Decision,
    ) {
        self.trace_denial(None, d, || {
            serde_json::json!({
                "principal": { "type": "Device", "id": device, "registered": false },
                "action": action,
                "resource": resource,
            })
        });
    }

    /// Decides an operator's request and logs a denial.
    pub fn decide_operator(&self, req: &OperatorRequest) -> Decision {
        let d = self.engine.decide_operator(req);
        self.trace_denial(None, &d, || {
            serde_json::json!({
                "principal": { "type": "Operator", "id": req.token.to_string(), "role": req.role },
                "action": req.permission.action(),
                "mfa": req.mfa,
            })
        });
        d
    }

    /// Logs `d` if it is a denial or a shadow "would deny"; `subject` (built only then) says what was asked.
    fn trace_denial(
        &self,
        device: Option<vouch_types::DeviceId>,
        d: &Decision,
        subject: impl FnOnce() -> serde_json::Value,
    ) {
        let action = if !d.allowed {
            Action::AccessDenied
        } else if d.would_deny() {
            Action::AccessWouldDeny
        } else {
            return;
        };
        let subject = subject();
        let now = self.clock.now();
        let mut h = self.hasher.build_hasher();
        subject.to_string().hash(&mut h);
        action.as_str().hash(&mut h);
        // A new reason (the device was suspended meanwhile) is logged at once, not counted as a repeat.
        d.policies.hash(&mut h);
        d.errors.hash(&mut h);
        let key = h.finish();
        let repeats = {
            let Ok(mut seen) = self.denials.lock() else {
                return;
            };
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
            let entry = seen.entry(key).or_insert((Timestamp::EPOCH, 0));
            if now.unix_micros() - entry.0.unix_micros() < DENY_LOG_WINDOW_MICROS {
                entry.1 += 1;
                return;
            }
            let repeats = entry.1;
            *entry = (now, 0);
            repeats
        };
        let mut detail = subject;
        detail["decision"] = serde_json::json!({
            "allowed": d.allowed,
            "policies": d.policies,
            "errors": d.errors,
            "shadow": d.shadow,
            "version": d.version,
            "repeats_since_last_logged": repeats,
        });
        let event = EventDraft {
            device_id: device,
            actor: Actor::System("policy".into()),
            action,
            before: None,
            after: Some(detail.to_string()),
            reason: None,
        };
        self.send(Trace::Event(event));
    }

    fn record(&self, req: &DeviceRequest, d: &Decision) {
        // One line per distinct request (the time aside): replay needs the shapes, not the volume.
        let mut shape = req.clone();
        shape.context.now = Timestamp::EPOCH;
        let Ok(text) = serde_json::to_string(&shape) else {
            return;
        };
        let key = self.hasher.hash_one(&text);
        {
            let Ok(mut seen) = self.recorded.lock() else {
                return;
            };
            if seen.len() >= MAX_REMEMBERED * 10 {
                seen.clear();
            }
            if !seen.insert(key) {
                return;
            }
        }
        let line = serde_json::json!({
            "request": req,
            "allowed": d.allowed,
            "policies": d.policies,
            "version": d.version,
        });
        self.send(Trace::Record(line.to_string()));
    }

    /// Waits until every trace queued so far is written (tests, and shutdown).
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.traces.send(Trace::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    fn send(&self, t: Trace) {
        if self.traces.try_send(t).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn write_traces(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<Trace>,
    log: Option<PathBuf>,
) {
    let mut file = log.as_ref().and_then(|p| open_log(p));
    while let Some(t) = rx.recv().await {
        match t {
            Trace::Event(e) => {
                let at = clock.now();
                if let Err(e) = store.append_event(e, at).await {
                    tracing::error!(error = %e, "could not log a policy decision");
                }
            }
            Trace::Flush(done) => {
                let _ = done.send(());
            }
            Trace::Record(line) => {
                let (Some(path), Some(f)) = (&log, &mut file) else {
                    continue;
                };
                if writeln!(f, "{line}").is_err() {
                    tracing::error!(path = %path.display(), "could not write the decision log");
                    continue;
                }
                let _ = f.flush();
                if f.metadata().map(|m| m.len()).unwrap_or(0) > DECISION_LOG_BYTES {
                    let _ = std::fs::rename(path, path.with_extension("jsonl.1"));
                    file = open_log(path);
                }
            }
        }
    }
}

fn open_log(path: &std::path::Path) -> Option<std::fs::File> {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot open the decision log");
            None
        }
    }
}
