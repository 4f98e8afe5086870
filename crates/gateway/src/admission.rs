//! Who may open a session and what it may do, without sockets: the certificate's standing on record, the
//! CONNECT admission (client id, device, the `connect` decision, the will) and each session's cached
//! decisions with the topic novelty the trust service reads. `session.rs` feeds it what it read from the
//! store and the wire; the unit tests (`admission/tests.rs`) decide with a real policy engine.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use vouch_decide::DecisionPoint;
use vouch_policy::{
    DeviceAction, DeviceContext, DeviceFacts, Engine, PreparedDevice, Resource, ResourceName,
    TopicFilter, TopicName,
};
use vouch_store::{CertStatus, CertificateRecord, StoreError};
use vouch_types::{Clock, Device, Timestamp};

use crate::close::CloseReason;

#[cfg(test)]
mod tests;

/// Decisions remembered per session and kind; past this, the memory starts over.
const CACHE: usize = 4096;
/// Distinct topics remembered per device to tell new topics from known ones.
const MAX_KNOWN_TOPICS: usize = 4096;

/// What decides for the gateway: the server's decision point (which also traces denials and records
/// decisions), or a bare engine in tests.
pub(crate) trait Decider {
    /// The device as the engine decides it, built once per session (again when its record changes).
    fn prepare(&self, facts: &DeviceFacts) -> PreparedDevice;
    /// Whether the prepared device may do `action` on `resource`.
    fn allowed(
        &self,
        facts: &DeviceFacts,
        prepared: &PreparedDevice,
        action: DeviceAction,
        resource: &Resource,
        context: &DeviceContext,
    ) -> bool;
}

impl Decider for DecisionPoint {
    fn prepare(&self, facts: &DeviceFacts) -> PreparedDevice {
        self.engine().prepare(facts)
    }

    fn allowed(
        &self,
        facts: &DeviceFacts,
        prepared: &PreparedDevice,
        action: DeviceAction,
        resource: &Resource,
        context: &DeviceContext,
    ) -> bool {
        self.decide_prepared(facts, prepared, action, resource, context)
            .allowed
    }
}

impl Decider for Engine {
    fn prepare(&self, facts: &DeviceFacts) -> PreparedDevice {
        Engine::prepare(self, facts)
    }

    fn allowed(
        &self,
        _facts: &DeviceFacts,
        prepared: &PreparedDevice,
        action: DeviceAction,
        resource: &Resource,
        context: &DeviceContext,
    ) -> bool {
        self.decide_prepared(prepared, action, resource, context)
            .allowed
    }
}

/// The certificate a client presented, by Vouch's record of it (not by names parsed out of it: an imported
/// or renewed certificate maps the same way, and revocation is the store's live state, not a CRL's age).
pub(crate) fn certificate(
    looked_up: Result<Option<CertificateRecord>, StoreError>,
    now: Timestamp,
) -> Result<CertificateRecord, CloseReason> {
    match looked_up {
        Err(_) => Err(CloseReason::StoreUnavailable),
        Ok(None) => Err(CloseReason::CertificateNotOnRecord),
        Ok(Some(c)) if matches!(c.status, CertStatus::Revoked { .. }) => {
            Err(CloseReason::CertificateRevoked)
        }
        Ok(Some(c)) if !c.is_valid_at(now) => Err(CloseReason::CertificateExpired),
        Ok(Some(c)) => Ok(c),
    }
}

/// What a CONNECT asks for, as admission reads it.
pub(crate) struct ConnectRequest<'a> {
    /// The will's topic, a message the broker will publish for the client later.
    pub(crate) will_topic: Option<&'a str>,
    /// The service the session connects to (the gateway's configured one).
    pub(crate) service: &'a ResourceName,
}

/// Refuses a CONNECT whose client id is not the certificate's device id (checked before the store is asked
/// for the device: one identity, one session name, so the broker's session takeover cannot be aimed at
/// another device).
pub(crate) fn client_id(cert: &CertificateRecord, client_id: &str) -> Result<(), CloseReason> {
    if client_id == cert.device_id.to_string() {
        Ok(())
    } else {
        Err(CloseReason::ClientIdMismatch)
    }
}

/// Admits a CONNECT from the holder of `cert` (whose client id [`client_id`] accepted) whose device record
/// was read as `device`: the policy must allow `connect`, and the will must be a message it may publish
/// now. The decisions made while admitting are kept in the returned [`Authz`].
pub(crate) fn admit(
    cert: &CertificateRecord,
    device: Result<Device, StoreError>,
    request: &ConnectRequest<'_>,
    decider: &dyn Decider,
    known_topics: Arc<Mutex<HashSet<String>>>,
    clock: &dyn Clock,
) -> Result<Authz, CloseReason> {
    let device = match device {
        Ok(d) => d,
        Err(StoreError::NotFound { .. }) => return Err(CloseReason::UnknownDevice),
        Err(_) => return Err(CloseReason::StoreUnavailable),
    };
    let facts = DeviceFacts::from(&device);
    let prepared = decider.prepare(&facts);
    let mut authz = Authz {
        facts,
        prepared,
        not_after: cert.not_after,
        publish: HashMap::new(),
        subscribe: HashMap::new(),
        topics: HashSet::new(),
        new_topics: 0,
        known: known_topics,
    };
    if !authz.may_connect(decider, request.service, clock) {
        return Err(CloseReason::NotAuthorized);
    }
    if let Some(will) = request.will_topic
        && !authz.decide(decider, DeviceAction::Publish, will, clock)
    {
        return Err(CloseReason::NotAuthorized);
    }
    Ok(authz)
}

/// What a session decides with: the device as prepared for the engine, and the decisions made so far.
pub(crate) struct Authz {
    pub(crate) facts: DeviceFacts,
    pub(crate) prepared: PreparedDevice,
    pub(crate) not_after: Timestamp,
    publish: HashMap<String, bool>,
    subscribe: HashMap<String, bool>,
    /// Topics published to in this window, and how many of them were new.
    pub(crate) topics: HashSet<String>,
    pub(crate) new_topics: u32,
    /// Topics the device published to before, shared by its sessions and kept across reconnects.
    known: Arc<Mutex<HashSet<String>>>,
}

impl Authz {
    /// Forgets every decision (the device, its certificate or the policies changed).
    pub(crate) fn forget(&mut self) {
        self.publish.clear();
        self.subscribe.clear();
    }

    /// The context of a decision made `now` (read from the clock only when a decision is made, not on every
    /// cached packet): the one builder every decision point uses (the score is read
    /// from the record, which the trust service writes; a change reaches live sessions through the event log
    /// like any other change to the record).
    fn context(&self, now: Timestamp) -> DeviceContext {
        DeviceContext::for_device(&self.facts, now, Some(self.not_after))
    }

    /// Whether the device may still `connect` to `service`.
    pub(crate) fn may_connect(
        &self,
        decider: &dyn Decider,
        service: &ResourceName,
        clock: &dyn Clock,
    ) -> bool {
        decider.allowed(
            &self.facts,
            &self.prepared,
            DeviceAction::Connect,
            &Resource::Service(service.clone()),
            &self.context(clock.now()),
        )
    }

    /// Whether the device may publish to `topic`; an allowed topic counts towards the window's topics, and as
    /// new if none of the device's sessions published to it before.
    pub(crate) fn publish(
        &mut self,
        decider: &dyn Decider,
        topic: &str,
        clock: &dyn Clock,
    ) -> bool {
        let allowed = self.decide(decider, DeviceAction::Publish, topic, clock);
        if allowed && !self.topics.contains(topic) {
            self.topics.insert(topic.to_owned());
            if let Ok(mut known) = self.known.lock()
                && !known.contains(topic)
            {
                self.new_topics += 1;
                if known.len() < MAX_KNOWN_TOPICS {
                    known.insert(topic.to_owned());
                }
            }
        }
        allowed
    }

    /// Whether the device may subscribe to `filter`.
    pub(crate) fn subscribe(
        &mut self,
        decider: &dyn Decider,
        filter: &str,
        clock: &dyn Clock,
    ) -> bool {
        self.decide(decider, DeviceAction::Subscribe, filter, clock)
    }

    fn decide(
        &mut self,
        decider: &dyn Decider,
        action: DeviceAction,
        topic: &str,
        clock: &dyn Clock,
    ) -> bool {
        let cached = if action == DeviceAction::Publish {
            self.publish.get(topic)
        } else {
            self.subscribe.get(topic)
        };
        if let Some(&v) = cached {
            return v;
        }
        let resource = if action == DeviceAction::Publish {
            TopicName::new(topic).map(Resource::Topic)
        } else {
            TopicFilter::new(topic).map(Resource::Subscription)
        };
        let allowed = match resource {
            Ok(r) => decider.allowed(
                &self.facts,
                &self.prepared,
                action,
                &r,
                &self.context(clock.now()),
            ),
            // Not a topic MQTT allows (a wildcard in a topic name, say): never forwarded.
            Err(_) => false,
        };
        let cache = if action == DeviceAction::Publish {
            &mut self.publish
        } else {
            &mut self.subscribe
        };
        if cache.len() >= CACHE {
            cache.clear();
        }
        cache.insert(topic.to_owned(), allowed);
        allowed
    }
}
