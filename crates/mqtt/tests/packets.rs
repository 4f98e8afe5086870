//! MQTT packets as clients send them (3.1.1 and 5.0), malformed ones refused with a reason, the gateway's
//! refusals in each version's words, and arbitrary bytes never panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use vouch_mqtt::{
    Connect, FrameError, Framer, Packet, PacketKind, ParseError, Protocol, Publish, ReasonCode,
    connack, disconnect, parse, puback, publish_v311, suback,
};

fn s(v: &str) -> Vec<u8> {
    let mut out = (v.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(v.as_bytes());
    out
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn read(bytes: &[u8], protocol: Protocol) -> Result<Packet<'_>, ParseError> {
    let raw = Framer::new(1 << 20).next(bytes).unwrap().unwrap();
    assert_eq!(raw.bytes.len(), bytes.len(), "one whole packet");
    parse(&raw, protocol)
}

fn connect_v311(client: &str, flags: u8, tail: &[u8]) -> Vec<u8> {
    let mut body = s("MQTT");
    body.extend([4, flags, 0, 60]);
    body.extend(s(client));
    body.extend_from_slice(tail);
    packet(0x10, &body)
}

#[test]
fn connect_in_each_version() {
    // What mosquitto_pub -i dev-1 sends: MQTT 3.1.1, clean session, keep-alive 60.
    let p = connect_v311("dev-1", 0b10, &[]);
    assert_eq!(
        read(&p, Protocol::V311).unwrap(),
        Packet::Connect(Connect {
            protocol: Protocol::V311,
            client_id: "dev-1",
            clean_start: true,
            keep_alive: 60,
            will_topic: None,
            will_qos: 0,
            will_retain: false,
            username: None,
            has_password: false,
        })
    );
    // 5.0 with properties (session expiry), a will with properties, user name and password.
    let mut body = s("MQTT");
    body.extend([5, 0b1100_1110, 0, 30]);
    body.extend([5, 0x11, 0, 0, 0, 10]); // properties: session expiry interval 10
    body.extend(s("0190f5a2-7c1e-7000-8000-000000000001"));
    body.extend([0]); // will properties: none
    body.extend(s("devices/x/status"));
    body.extend(s("offline"));
    body.extend(s("user"));
    body.extend(s("secret"));
    let bytes = packet(0x10, &body);
    let Packet::Connect(c) = read(&bytes, Protocol::V311).unwrap() else {
        panic!("a CONNECT")
    };
    assert_eq!(c.protocol, Protocol::V5);
    assert_eq!(c.client_id, "0190f5a2-7c1e-7000-8000-000000000001");
    assert_eq!(
        (c.will_topic, c.will_qos, c.username, c.has_password),
        (Some("devices/x/status"), 1, Some("user"), true)
    );
    // MQTT 3.1.
    let mut body = s("MQIsdp");
    body.extend([3, 0b10, 0, 10]);
    body.extend(s("old"));
    let bytes = packet(0x10, &body);
    let Packet::Connect(c) = read(&bytes, Protocol::V311).unwrap() else {
        panic!("a CONNECT")
    };
    assert_eq!(c.protocol, Protocol::V31);
}

#[test]
fn malformed_connects_are_named() {
    let bad = |p: Vec<u8>| read(&p, Protocol::V311).unwrap_err();
    assert!(
        matches!(bad(connect_v311("d", 0b1, &[])), ParseError::BadFlags(_)),
        "reserved bit"
    );
    assert!(
        matches!(
            bad(connect_v311("d", 0b0100_0000, &s("pw"))),
            ParseError::BadFlags(_)
        ),
        "3.1.1: a password needs a user name"
    );
    assert!(
        matches!(
            bad(connect_v311("d", 0b0001_0000, &[])),
            ParseError::BadFlags(_)
        ),
        "will QoS without a will"
    );
    assert!(matches!(
        bad(connect_v311("d", 0, &[1])),
        ParseError::Trailing(_)
    ));
    assert!(matches!(
        bad(connect_v311("d\0x", 0, &[])),
        ParseError::BadString(_)
    ));
    let mut body = s("MQTT");
    body.extend([6, 0, 0, 0]);
    body.extend(s("d"));
    assert!(matches!(
        bad(packet(0x10, &body)),
        ParseError::UnsupportedProtocol { level: 6, .. }
    ));
    let mut body = s("MQTT");
    body.extend([4, 0, 0, 0, 0, 9, 0xff, 0xfe]);
    assert!(matches!(bad(packet(0x10, &body)), ParseError::Truncated(_)));
    let mut body = s("MQTT");
    body.extend([4, 0, 0, 0, 0, 2, 0xc3, 0x28]);
    assert!(
        matches!(bad(packet(0x10, &body)), ParseError::BadString(_)),
        "invalid UTF-8"
    );
}

#[test]
fn publish_in_each_version() {
    let mut body = s("devices/d1/telemetry");
    body.extend(b"21.5");
    assert_eq!(
        read(&packet(0x31, &body), Protocol::V311).unwrap(),
        Packet::Publish(Publish {
            topic: "devices/d1/telemetry",
            qos: 0,
            retain: true,
            dup: false,
            packet_id: None,
            topic_alias: None,
            payload: b"21.5",
        })
    );
    // 5.0, QoS 1, with a user property and a topic alias.
    let mut body = s("t");
    body.extend([0, 7]);
    let props: Vec<u8> = [vec![0x26], s("k"), s("v"), vec![0x23, 0, 3]].concat();
    body.push(props.len() as u8);
    body.extend(props);
    body.extend(b"x");
    let bytes = packet(0x32, &body);
    let Packet::Publish(p) = read(&bytes, Protocol::V5).unwrap() else {
        panic!("a PUBLISH")
    };
    assert_eq!(
        (p.qos, p.packet_id, p.topic_alias, p.payload),
        (1, Some(7), Some(3), &b"x"[..])
    );
    // Refused: QoS 1 with packet id 0, DUP on QoS 0, empty topic in 3.1.1, wildcard-free check is the
    // policy's job (the codec only reads).
    let mut body = s("t");
    body.extend([0, 0]);
    assert!(matches!(
        read(&packet(0x32, &body), Protocol::V311),
        Err(ParseError::ZeroPacketId(_))
    ));
    assert!(matches!(
        read(&packet(0x38, &s("t")), Protocol::V311),
        Err(ParseError::BadFlags(_))
    ));
    assert!(matches!(
        read(&packet(0x30, &s("")), Protocol::V311),
        Err(ParseError::BadString(_))
    ));
}

#[test]
fn subscribe_and_unsubscribe() {
    let body = [
        vec![0, 10],
        s("devices/d1/#"),
        vec![1],
        s("$SYS/#"),
        vec![0],
    ]
    .concat();
    assert_eq!(
        read(&packet(0x82, &body), Protocol::V311).unwrap(),
        Packet::Subscribe(vouch_mqtt::Subscribe {
            packet_id: 10,
            filters: vec![("devices/d1/#", 1), ("$SYS/#", 0)],
        })
    );
    // 5.0: properties, and options with No Local and Retain Handling 2.
    let body = [vec![0, 11, 0], s("a/+"), vec![0b0010_0110]].concat();
    let bytes = packet(0x82, &body);
    let Packet::Subscribe(sub) = read(&bytes, Protocol::V5).unwrap() else {
        panic!("a SUBSCRIBE")
    };
    assert_eq!(sub.filters, vec![("a/+", 2)]);
    // 3.1.1 reserves those option bits; QoS 3 is invalid in both; no filter at all is refused.
    assert!(read(&packet(0x82, &body[..]), Protocol::V311).is_err());
    let body = [vec![0, 12], s("a"), vec![3]].concat();
    assert!(matches!(
        read(&packet(0x82, &body), Protocol::V311),
        Err(ParseError::BadFlags(_))
    ));
    assert!(matches!(
        read(&packet(0x82, &[0, 13]), Protocol::V311),
        Err(ParseError::NoFilters(_))
    ));
    let body = [vec![0, 14], s("a/b"), s("c")].concat();
    assert_eq!(
        read(&packet(0xa2, &body), Protocol::V311).unwrap(),
        Packet::Unsubscribe(14, vec!["a/b", "c"])
    );
    assert_eq!(
        read(&[0xc0, 0], Protocol::V311).unwrap(),
        Packet::Other(PacketKind::Pingreq)
    );
}

#[test]
fn refusals_in_each_versions_words() {
    assert_eq!(
        connack(Protocol::V311, false, ReasonCode::NotAuthorized),
        [0x20, 2, 0, 5]
    );
    assert_eq!(
        connack(Protocol::V311, false, ReasonCode::ClientIdentifierNotValid),
        [0x20, 2, 0, 2]
    );
    assert_eq!(
        connack(Protocol::V5, false, ReasonCode::NotAuthorized),
        [0x20, 3, 0, 0x87, 0]
    );
    assert_eq!(
        suback(Protocol::V311, 10, &[Ok(1), Err(ReasonCode::NotAuthorized)]),
        [0x90, 4, 0, 10, 1, 0x80]
    );
    assert_eq!(
        suback(Protocol::V5, 10, &[Err(ReasonCode::NotAuthorized)]),
        [0x90, 4, 0, 10, 0, 0x87]
    );
    assert_eq!(
        puback(Protocol::V5, 7, ReasonCode::NotAuthorized),
        [0x40, 3, 0, 7, 0x87]
    );
    assert_eq!(
        puback(Protocol::V311, 7, ReasonCode::NotAuthorized),
        [0x40, 2, 0, 7]
    );
    assert_eq!(
        disconnect(Protocol::V5, ReasonCode::AdministrativeAction),
        Some(vec![0xe0, 1, 0x98])
    );
    assert_eq!(
        disconnect(Protocol::V311, ReasonCode::AdministrativeAction),
        None
    );
    // What the gateway sends frames as MQTT.
    for bytes in [
        connack(Protocol::V5, true, ReasonCode::Success),
        suback(Protocol::V5, 1, &[Ok(0); 200]),
    ] {
        let raw = Framer::new(1 << 16).next(&bytes).unwrap().unwrap();
        assert_eq!(raw.bytes.len(), bytes.len());
    }
}

#[test]
fn oversized_packets_are_refused_from_their_header() {
    let f = Framer::new(1024);
    let big = packet(0x30, &vec![0; 2000]);
    assert_eq!(
        f.next(&big[..4]),
        Err(FrameError::TooLarge {
            len: 2003,
            max: 1024
        })
    );
}

proptest! {
    /// Whatever arrives, the framer and the parser answer without panicking.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), v5 in any::<bool>()) {
        let protocol = if v5 { Protocol::V5 } else { Protocol::V311 };
        let framer = Framer::new(256);
        let mut rest = &bytes[..];
        while let Ok(Some(raw)) = framer.next(rest) {
            let _ = parse(&raw, protocol);
            rest = &rest[raw.bytes.len()..];
        }
    }

    /// A PUBLISH built from its parts reads back as those parts, in both versions.
    #[test]
    fn publish_round_trips(topic in "[a-z/]{1,40}", payload in prop::collection::vec(any::<u8>(), 0..200),
                           qos in 0u8..3, retain in any::<bool>(), id in 1u16.., v5 in any::<bool>()) {
        let mut body = s(&topic);
        if qos > 0 {
            body.extend(id.to_be_bytes());
        }
        if v5 {
            body.push(0);
        }
        body.extend(&payload);
        let bytes = packet(0x30 | (qos << 1) | u8::from(retain), &body);
        let protocol = if v5 { Protocol::V5 } else { Protocol::V311 };
        let Packet::Publish(p) = read(&bytes, protocol).unwrap() else { panic!("a PUBLISH") };
        prop_assert_eq!(p.topic, topic.as_str());
        prop_assert_eq!((p.qos, p.retain, p.packet_id), (qos, retain, (qos > 0).then_some(id)));
        prop_assert_eq!(p.payload, &payload[..]);
    }
}

#[test]
fn a_client_publish_reads_back_as_sent_at_each_qos_and_length() {
    // 200 bytes of payload: the remaining length takes two bytes.
    for (qos, payload) in [(0u8, &b"21.5"[..]), (1, &[7u8; 200][..])] {
        let mut out = Vec::new();
        publish_v311(&mut out, "plant/1/telemetry", payload, qos, 9);
        match read(&out, Protocol::V311).unwrap() {
            Packet::Publish(p) => {
                assert_eq!(
                    (p.topic, p.qos, p.payload),
                    ("plant/1/telemetry", qos, payload)
                );
                assert_eq!(p.packet_id, (qos > 0).then_some(9));
            }
            other => panic!("not a PUBLISH: {other:?}"),
        }
    }
}
