//! The MQTT reader has no recursion: 100,000 properties in a PUBLISH, 100,000 filters in a SUBSCRIBE and
//! its narrowing and SUBACK widening, and 100,000 nested-looking bytes are read in loops on a 2 MiB stack
//! (a tokio worker's), each to an answer or a refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vouch_mqtt::{Framer, Packet, Protocol, parse, subscribe_subset, widen_suback};

fn s(v: &str) -> Vec<u8> {
    let mut out = (v.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(v.as_bytes());
    out
}

fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .expect("no panic, no overflow");
}

#[test]
fn a_publish_with_100000_properties_is_read_in_a_loop() {
    on_small_stack(|| {
        let n = 100_000;
        let mut props = Vec::new();
        for _ in 0..n {
            props.push(0x26);
            props.extend(s("k"));
            props.extend(s("v"));
        }
        props.extend([0x23, 0, 7]);
        let mut body = s("plant/x");
        body.extend(varint(props.len()));
        body.extend(&props);
        body.extend(b"payload");
        let bytes = packet(0x30, &body);
        let raw = Framer::new(1 << 24).next(&bytes).unwrap().unwrap();
        match parse(&raw, Protocol::V5).unwrap() {
            Packet::Publish(p) => assert_eq!(p.topic_alias, Some(7)),
            other => panic!("{other:?}"),
        }
        // The same properties, unknown ones among them: refused.
        let mut bad = props.clone();
        bad.extend(vec![0x7f; n]);
        let mut body = s("plant/x");
        body.extend(varint(bad.len()));
        body.extend(&bad);
        let bytes = packet(0x30, &body);
        let raw = Framer::new(1 << 24).next(&bytes).unwrap().unwrap();
        assert!(parse(&raw, Protocol::V5).is_err());
    });
}

#[test]
fn a_subscribe_with_100000_filters_is_read_narrowed_and_widened() {
    on_small_stack(|| {
        let n = 100_000;
        let mut body = vec![0, 1, 0];
        for i in 0..n {
            body.extend(s(&format!("t/{i}")));
            body.push(0);
        }
        let bytes = packet(0x82, &body);
        let raw = Framer::new(1 << 24).next(&bytes).unwrap().unwrap();
        let Packet::Subscribe(sub) = parse(&raw, Protocol::V5).unwrap() else {
            panic!("a SUBSCRIBE")
        };
        assert_eq!(sub.filters.len(), n);
        let keep: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let narrowed = subscribe_subset(&raw, Protocol::V5, &keep).unwrap();
        let narrowed = Framer::new(1 << 24).next(&narrowed).unwrap().unwrap();
        let Packet::Subscribe(sub) = parse(&narrowed, Protocol::V5).unwrap() else {
            panic!("a SUBSCRIBE")
        };
        assert_eq!(sub.filters.len(), n / 2);
        let mut suback = vec![0, 1, 0];
        suback.extend(vec![0; n / 2]);
        let suback = packet(0x90, &suback);
        let suback = Framer::new(1 << 24).next(&suback).unwrap().unwrap();
        let refused: Vec<bool> = keep.iter().map(|k| !k).collect();
        let widened = widen_suback(&suback, Protocol::V5, &refused).unwrap();
        assert!(widened.len() > n);
    });
}

#[test]
fn nested_looking_bytes_are_only_bytes() {
    on_small_stack(|| {
        for pattern in [&[0x30u8, 0x80][..], b"{[(", &[0x82, 0xff, 0xff, 0xff, 0x7f]] {
            let bytes = pattern.repeat(100_000);
            let framer = Framer::new(1 << 24);
            let mut rest = &bytes[..];
            for _ in 0..1_000 {
                match framer.next(rest) {
                    Ok(Some(raw)) => {
                        for protocol in [Protocol::V311, Protocol::V5] {
                            let _ = parse(&raw, protocol);
                        }
                        rest = &rest[raw.bytes.len()..];
                    }
                    _ => break,
                }
            }
        }
    });
}
