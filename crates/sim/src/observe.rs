//! What the gateway would observe of a plan: the [`TrafficWindow`] it closes for the device, counted as
//! `crates/gateway/src/observe.rs` and `session.rs` count (see [`observe`]).

use std::collections::HashSet;

use vouch_types::{DeviceId, Timestamp, TrafficWindow};

use crate::fleet::Fleet;
use crate::plan::WindowPlan;

/// What the gateway remembers of one device from window to window: the topics it has published to, whether
/// it has connected yet, and whether a second session was open at the end of the last window. One per device,
/// fed its windows in order.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    topics: HashSet<String>,
    connected: bool,
    second_session: bool,
}

impl Seen {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Distinct own topics seen so far.
    pub fn topics(&self) -> usize {
        self.topics.len()
    }
}

/// Bytes of an MQTT 3.1.1 QoS 0 PUBLISH: fixed header (type byte and remaining length) and the variable
/// header's two-byte topic length, topic and payload. The gateway counts whole packets.
pub fn publish_bytes(topic_len: usize, payload: u32) -> u64 {
    let remaining = 2 + topic_len as u64 + u64::from(payload);
    let varint = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + varint + remaining
}

/// What the gateway observes of `plan` for `device` over [start, end):
///
/// - own publishes reach the broker: `msgs_in`, and `bytes_in` as whole PUBLISH packets to
///   `devices/<id>/<topic>` ([`publish_bytes`]); `distinct_topics` counts their topics and `new_topics`
///   those `seen` never saw before (then remembers them);
/// - each refused publish, refused subscription filter and refused CONNECT is one `auth_failures`;
/// - `connects` are the reconnects, plus the first connect ever, plus a second session that opens;
///   `disconnects` are the reconnects, plus a second session that closed since the last window;
/// - `sessions` is 2 while a second session is open, else 1; nothing is delivered to the device and no
///   remote address is recorded.
///
/// Note: this counts new topics per device, as [`TrafficWindow::new_topics`] is documented. The gateway of
/// this revision remembers known topics per session, so after a reconnect it counts a device's usual topics
/// as new again.
pub fn observe(
    device: DeviceId,
    start: Timestamp,
    end: Timestamp,
    plan: &WindowPlan,
    seen: &mut Seen,
) -> TrafficWindow {
    let prefix = "devices/".len() + device.to_string().len() + 1;
    let (mut msgs, mut bytes, mut refused) = (0u64, 0u64, 0u64);
    let mut topics: HashSet<&str> = HashSet::new();
    let mut new_topics = 0u32;
    for p in plan.publishes.iter().filter(|p| p.count > 0) {
        if !p.own {
            refused += u64::from(p.count);
            continue;
        }
        msgs += u64::from(p.count);
        bytes += u64::from(p.count) * publish_bytes(prefix + p.topic.len(), p.payload);
        if topics.insert(&p.topic) && seen.topics.insert(p.topic.clone()) {
            new_topics += 1;
        }
    }
    refused += plan.subscribes_foreign.len() as u64 + u64::from(plan.bad_connects);
    let first = u32::from(!seen.connected);
    let clone_opens = u32::from(plan.second_session && !seen.second_session);
    let clone_closed = u32::from(!plan.second_session && seen.second_session);
    seen.connected = true;
    seen.second_session = plan.second_session;
    TrafficWindow {
        device,
        start,
        end,
        connects: plan.reconnects + first + clone_opens,
        disconnects: plan.reconnects + clone_closed,
        sessions: 1 + u32::from(plan.second_session),
        auth_failures: u32::try_from(refused).unwrap_or(u32::MAX),
        msgs_in: msgs,
        msgs_out: 0,
        bytes_in: bytes,
        bytes_out: 0,
        distinct_topics: topics.len() as u32,
        new_topics,
        remotes: Vec::new(),
    }
}

impl Fleet {
    /// The plan of (`device`, `window`) and what the gateway observes of it (see [`observe`]); a device
    /// outside the fleet gets the id of nobody and an idle plan.
    pub fn observe(
        &self,
        device: u32,
        window: u32,
        seen: &mut Seen,
    ) -> (WindowPlan, TrafficWindow) {
        let plan = self.plan(device, window);
        let id = self
            .devices
            .get(device as usize)
            .map(|d| d.id)
            .unwrap_or_else(|| DeviceId::derived("sim:none"));
        let w = observe(
            id,
            self.window_start(window),
            self.window_end(window),
            &plan,
            seen,
        );
        (plan, w)
    }
}
