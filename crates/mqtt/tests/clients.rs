//! The codec against a third-party client: `mosquitto_pub` and `mosquitto_sub` (3.1.1 and 5.0) connect to
//! a listener on an ephemeral loopback port; their packets are framed and read here, and the answers built
//! here are the ones they accept.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vouch_mqtt::{Framer, Packet, Protocol, ReasonCode, connack, parse, puback, suback};

/// Reads the next whole packet from `s` into `buf`; returns its bytes.
fn next_packet(s: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<u8> {
    let framer = Framer::new(1 << 16);
    loop {
        if let Some(raw) = framer.next(buf).unwrap() {
            let bytes = raw.bytes.to_vec();
            buf.drain(..bytes.len());
            return bytes;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "the client closed early");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn client(program: &str, args: &[&str]) -> (Child, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let child = Command::new(program)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is installed (scripts/test installs it): {e}"));
    let (s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (child, s)
}

#[test]
fn mosquitto_pub_in_both_versions() {
    for (version, protocol) in [("mqttv311", Protocol::V311), ("mqttv5", Protocol::V5)] {
        let (mut child, mut s) = client(
            "mosquitto_pub",
            &[
                "-V",
                version,
                "-i",
                "dev-1",
                "-t",
                "devices/dev-1/t",
                "-m",
                "hello",
                "-q",
                "1",
            ],
        );
        let mut buf = Vec::new();
        let bytes = next_packet(&mut s, &mut buf);
        let raw = Framer::new(1 << 16).next(&bytes).unwrap().unwrap();
        let Packet::Connect(c) = parse(&raw, protocol).unwrap() else {
            panic!("CONNECT first")
        };
        assert_eq!((c.protocol, c.client_id), (protocol, "dev-1"), "{version}");
        s.write_all(&connack(protocol, false, ReasonCode::Success))
            .unwrap();
        let bytes = next_packet(&mut s, &mut buf);
        let raw = Framer::new(1 << 16).next(&bytes).unwrap().unwrap();
        let Packet::Publish(p) = parse(&raw, protocol).unwrap() else {
            panic!("then PUBLISH")
        };
        assert_eq!(
            (p.topic, p.qos, p.payload),
            ("devices/dev-1/t", 1, &b"hello"[..])
        );
        s.write_all(&puback(protocol, p.packet_id.unwrap(), ReasonCode::Success))
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "{version}: mosquitto_pub accepted our CONNACK and PUBACK"
        );
    }
}

#[test]
fn mosquitto_sub_is_refused_in_its_versions_words() {
    for (version, protocol) in [("mqttv311", Protocol::V311), ("mqttv5", Protocol::V5)] {
        let (child, mut s) = client(
            "mosquitto_sub",
            &[
                "-V",
                version,
                "-i",
                "dev-2",
                "-t",
                "devices/+/t",
                "-t",
                "$SYS/#",
                "-C",
                "1",
            ],
        );
        let mut buf = Vec::new();
        next_packet(&mut s, &mut buf);
        s.write_all(&connack(protocol, false, ReasonCode::Success))
            .unwrap();
        let bytes = next_packet(&mut s, &mut buf);
        let raw = Framer::new(1 << 16).next(&bytes).unwrap().unwrap();
        let Packet::Subscribe(sub) = parse(&raw, protocol).unwrap() else {
            panic!("SUBSCRIBE after CONNECT")
        };
        let filters: Vec<&str> = sub.filters.iter().map(|(f, _)| *f).collect();
        assert_eq!(filters, ["devices/+/t", "$SYS/#"], "{version}");
        let refused = vec![Err(ReasonCode::NotAuthorized); sub.filters.len()];
        s.write_all(&suback(protocol, sub.packet_id, &refused))
            .unwrap();
        // mosquitto_sub reads the SUBACK as a refusal of every filter and gives up, saying so.
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.to_lowercase().contains("denied"), "{version}: {said}");
        drop(s);
    }
}
