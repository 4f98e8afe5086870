//! Each admission rule of the relay, with plain bytes: what is forwarded unchanged, what is answered by the
//! gateway itself, and what ends the session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use vouch_mqtt::{Protocol, frame, publish_v311};

use super::*;

/// Decisions from two lists, counters in cells.
#[derive(Default)]
struct Lists {
    publish: Vec<&'static str>,
    subscribe: Vec<&'static str>,
    denied: Cell<u32>,
    bytes_in: Cell<usize>,
    bytes_out: Cell<usize>,
    narrowed: RefCell<HashMap<u16, Vec<bool>>>,
}

impl Decide for Lists {
    fn publish(&self, topic: &str) -> bool {
        self.publish.contains(&topic)
    }
    fn subscribe(&self, filter: &str) -> bool {
        self.subscribe.contains(&filter)
    }
    fn denied(&self) {
        self.denied.set(self.denied.get() + 1);
    }
    fn forwarded_in(&self, bytes: usize) {
        self.bytes_in.set(self.bytes_in.get() + bytes);
    }
    fn forwarded_out(&self, bytes: usize) {
        self.bytes_out.set(self.bytes_out.get() + bytes);
    }
    fn narrowed(&self, packet_id: u16, refused: Vec<bool>) {
        self.narrowed.borrow_mut().insert(packet_id, refused);
    }
    fn take_narrowed(&self, packet_id: u16) -> Option<Vec<bool>> {
        self.narrowed.borrow_mut().remove(&packet_id)
    }
}

fn rules(protocol: Protocol, denied: DeniedPublish) -> Rules {
    Rules {
        max_packet: 1024,
        protocol,
        v311_denied_publish: denied,
    }
}

fn v311() -> Rules {
    rules(Protocol::V311, DeniedPublish::Drop)
}

fn publish(topic: &str, qos: u8, id: u16) -> Vec<u8> {
    let mut out = Vec::new();
    publish_v311(&mut out, topic, b"21.5", qos, id);
    out
}

/// A 3.1.1 SUBSCRIBE with packet id `id` and these filters at QoS 0.
fn subscribe(id: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    for f in filters {
        body.extend((f.len() as u16).to_be_bytes());
        body.extend(f.as_bytes());
        body.push(0);
    }
    frame(0x82, &body)
}

struct Up {
    consumed: usize,
    flow: Result<Flow, CloseReason>,
    out: Vec<u8>,
    answers: Vec<Vec<u8>>,
}

fn up(rules: &Rules, d: &Lists, st: &mut UpState, bytes: &[u8]) -> Up {
    let (mut out, mut answers) = (Vec::new(), Vec::new());
    let r = up_packets(rules, d, st, bytes, &mut out, &mut answers);
    let (consumed, flow) = match r {
        Ok((n, f)) => (n, Ok(f)),
        Err(e) => (0, Err(e)),
    };
    Up {
        consumed,
        flow,
        out,
        answers,
    }
}

#[test]
fn an_allowed_publish_goes_to_the_broker_byte_for_byte_and_is_counted() {
    let d = Lists {
        publish: vec!["devices/d1/telemetry"],
        ..Lists::default()
    };
    let p = publish("devices/d1/telemetry", 1, 7);
    let r = up(&v311(), &d, &mut UpState::default(), &p);
    assert_eq!((r.consumed, r.out.as_slice()), (p.len(), p.as_slice()));
    assert!(matches!(r.flow, Ok(Flow::More)) && r.answers.is_empty());
    assert_eq!((d.bytes_in.get(), d.denied.get()), (p.len(), 0));
}

#[test]
fn a_partial_packet_waits_for_the_rest() {
    let d = Lists::default();
    let p = publish("devices/d1/telemetry", 0, 0);
    let r = up(&v311(), &d, &mut UpState::default(), &p[..p.len() - 1]);
    assert_eq!(r.consumed, 0);
    assert!(r.out.is_empty() && d.denied.get() == 0);
}

#[test]
fn a_refused_qos1_publish_is_acknowledged_and_dropped_on_311_and_refused_by_code_on_5() {
    let d = Lists::default();
    let p = publish("plant/secret", 1, 9);
    let r = up(&v311(), &d, &mut UpState::default(), &p);
    assert!(r.out.is_empty(), "never reaches the broker");
    assert_eq!(
        r.answers,
        vec![vec![0x40, 2, 0, 9]],
        "a plain PUBACK on 3.1.1"
    );
    // 5.0: the PUBACK carries 0x87 (not authorized).
    let mut p5 = Vec::new();
    p5.push(0x32);
    let body: Vec<u8> = [&[0u8, 12][..], b"plant/secret", &[0, 9], &[0], b"x"].concat();
    p5.push(body.len() as u8);
    p5.extend(body);
    let r = up(
        &rules(Protocol::V5, DeniedPublish::Drop),
        &d,
        &mut UpState::default(),
        &p5,
    );
    assert!(r.out.is_empty());
    assert_eq!(r.answers, vec![vec![0x40, 3, 0, 9, 0x87]]);
    assert_eq!(d.denied.get(), 2);
}

#[test]
fn a_refused_publish_can_end_a_311_session_instead() {
    let d = Lists::default();
    let r = up(
        &rules(Protocol::V311, DeniedPublish::Disconnect),
        &d,
        &mut UpState::default(),
        &publish("plant/secret", 0, 0),
    );
    assert!(matches!(r.flow, Ok(Flow::Done(CloseReason::NotAuthorized))));
    assert!(r.out.is_empty());
}

#[test]
fn a_refused_qos2_publish_is_finished_by_the_gateway_on_311() {
    let d = Lists::default();
    let mut st = UpState::default();
    let r = up(&v311(), &d, &mut st, &publish("plant/secret", 2, 5));
    assert_eq!(r.answers, vec![vec![0x50, 2, 0, 5]], "PUBREC");
    // Its PUBREL is answered here: the broker never heard of packet 5.
    let r = up(&v311(), &d, &mut st, &[0x62, 2, 0, 5]);
    assert!(r.out.is_empty());
    assert_eq!(r.answers, vec![vec![0x70, 2, 0, 5]], "PUBCOMP");
    // Another PUBREL (an exchange the broker holds) goes through.
    let r = up(&v311(), &d, &mut st, &[0x62, 2, 0, 6]);
    assert_eq!(r.out, vec![0x62, 2, 0, 6]);
}

#[test]
fn a_subscribe_is_forwarded_whole_narrowed_or_refused_and_its_suback_widened_on_the_way_back() {
    let d = Lists {
        subscribe: vec!["devices/d1/commands/#"],
        ..Lists::default()
    };
    let mut st = UpState::default();
    let all = subscribe(1, &["devices/d1/commands/#"]);
    assert_eq!(up(&v311(), &d, &mut st, &all).out, all);

    let none = up(&v311(), &d, &mut st, &subscribe(2, &["#"]));
    assert!(none.out.is_empty());
    assert_eq!(
        none.answers,
        vec![vec![0x90, 3, 0, 2, 0x80]],
        "SUBACK failure"
    );

    let mixed = up(
        &v311(),
        &d,
        &mut st,
        &subscribe(3, &["#", "devices/d1/commands/#"]),
    );
    assert_eq!(mixed.out, subscribe(3, &["devices/d1/commands/#"]));
    assert_eq!(d.denied.get(), 2);
    // The broker grants the one filter it saw; the client hears of both, in its order.
    let (mut out, mut acks) = (Vec::new(), Vec::new());
    let mut down = DownState::default();
    down_packets(
        &v311(),
        &d,
        &mut down,
        &[0x90, 3, 0, 3, 0],
        &mut out,
        &mut acks,
    )
    .unwrap();
    assert_eq!(out, vec![0x90, 4, 0, 3, 0x80, 0]);
    assert!(d.narrowed.borrow().is_empty());
}

#[test]
fn topic_aliases_resolve_and_are_bounded() {
    let mut aliases = HashMap::new();
    assert_eq!(topic_of(&mut aliases, "t/1", Some(4)).unwrap(), "t/1");
    assert_eq!(topic_of(&mut aliases, "", Some(4)).unwrap(), "t/1");
    assert_eq!(
        topic_of(&mut aliases, "", Some(5)),
        Err(CloseReason::ProtocolError)
    );
    assert_eq!(
        topic_of(&mut aliases, "", None),
        Err(CloseReason::MalformedPacket)
    );
    for a in 0..MAX_ALIASES as u16 {
        topic_of(&mut aliases, "t/1", Some(a)).unwrap();
    }
    assert_eq!(
        topic_of(&mut aliases, "t/1", Some(u16::MAX)),
        Err(CloseReason::ProtocolError),
        "no alias past the bound"
    );
}

#[test]
fn a_second_connect_or_a_server_packet_from_the_client_ends_the_session() {
    let d = Lists::default();
    let connect = frame(
        0x10,
        &[0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'x'],
    );
    for bytes in [connect, vec![0x20, 2, 0, 0], vec![0xd0, 0]] {
        let r = up(&v311(), &d, &mut UpState::default(), &bytes);
        assert!(
            matches!(r.flow, Err(CloseReason::ProtocolError)),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn an_oversized_packet_is_refused_from_its_header() {
    let d = Lists::default();
    // Announces 2,000 bytes, over the 1,024 limit: refused before the body arrives.
    let r = up(&v311(), &d, &mut UpState::default(), &[0x30, 0xd0, 0x0f]);
    assert!(matches!(r.flow, Err(CloseReason::PacketTooLarge)));
}

#[test]
fn the_broker_delivers_only_what_the_device_may_receive() {
    let d = Lists {
        subscribe: vec!["devices/d1/commands/reboot"],
        ..Lists::default()
    };
    let mut st = DownState::default();
    let (mut out, mut acks) = (Vec::new(), Vec::new());
    let ok = publish("devices/d1/commands/reboot", 1, 3);
    let other = publish("devices/d2/commands/reboot", 1, 4);
    let bytes = [ok.clone(), other].concat();
    let (n, _) = down_packets(&v311(), &d, &mut st, &bytes, &mut out, &mut acks).unwrap();
    assert_eq!((n, out), (bytes.len(), ok.clone()));
    assert_eq!(
        acks,
        vec![vec![0x40, 2, 0, 4]],
        "the broker's QoS 1 delivery is finished here"
    );
    assert_eq!(d.bytes_out.get(), ok.len());
    // A second CONNACK from the broker is not MQTT.
    let mut out = Vec::new();
    down_packets(&v311(), &d, &mut st, &[0x20, 2, 0, 0], &mut out, &mut acks).unwrap();
    assert_eq!(
        down_packets(&v311(), &d, &mut st, &[0x20, 2, 0, 0], &mut out, &mut acks).err(),
        Some(CloseReason::UpstreamClosed)
    );
}
