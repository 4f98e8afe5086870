//! MQTT over plain TCP: the client id, and a user name or password sent in clear text. Framing and parsing
//! are `vouch-mqtt`'s, the codec the gateway uses.

use vouch_mqtt::{Framer, Packet, PacketKind, Protocol, parse};

use crate::facts::{Dir, Fact, Proto, Sink, Source};

/// Whether `payload` starts like an MQTT CONNECT ("MQTT" or "MQIsdp" protocol name).
pub fn looks_like(payload: &[u8]) -> bool {
    match payload {
        [0x10, rest @ ..] => {
            // Skip the remaining-length varint (at most 4 bytes), then expect the protocol name.
            let n = rest
                .iter()
                .take(4)
                .position(|b| b & 0x80 == 0)
                .map_or(0, |i| i + 1);
            rest.get(n..)
                .is_some_and(|r| r.starts_with(b"\x00\x04MQTT") || r.starts_with(b"\x00\x06MQIsdp"))
        }
        _ => false,
    }
}

/// Reads the start of the client's side of an MQTT stream; `true` once CONNECT has been read.
pub fn dissect(stream: &[u8], dir: Dir, out: &mut dyn Sink) -> bool {
    if dir != Dir::ToServer {
        return true;
    }
    let raw = match Framer::new(1 << 16).next(stream) {
        Ok(Some(raw)) => raw,
        Ok(None) => return false,
        Err(_) => return true,
    };
    if raw.kind != PacketKind::Connect {
        return true;
    }
    let Ok(Packet::Connect(c)) = parse(&raw, Protocol::V311) else {
        return true;
    };
    out.fact(dir.server(), Fact::Serves(Proto::Mqtt));
    out.fact(dir.client(), Fact::Uses(Proto::Mqtt));
    if !c.client_id.is_empty() {
        out.fact(dir.client(), Fact::MqttClientId(c.client_id));
    }
    if c.username.is_some() || c.has_password {
        out.fact(
            dir.client(),
            Fact::CleartextCredential {
                proto: Proto::Mqtt,
                user: c.username,
            },
        );
    }
    let _ = Source::Mqtt;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::segments;

    #[test]
    fn client_ids_as_tshark_shows() {
        // tshark: mqtt.clientid "paho/34AAE54A75D839566E" and "paho/DDE4DDAF4108D3E363" from 10.0.1.4.
        let mut c = Collect::default();
        for s in segments("z_mqtt.pcap").iter().filter(|s| s.dport == 1883) {
            if looks_like(&s.payload) {
                assert!(dissect(&s.payload, Dir::ToServer, &mut c));
            }
        }
        assert!(c.has(r#"MqttClientId("paho/34AAE54A75D839566E")"#), "{c:?}");
        assert!(c.has(r#"MqttClientId("paho/DDE4DDAF4108D3E363")"#), "{c:?}");
    }

    #[test]
    fn credentials_and_truncations() {
        let connect = b"\x10\x1c\x00\x04MQTT\x04\xc2\x00\x3c\x00\x02d1\x00\x05admin\x00\x05s3cr3";
        let mut c = Collect::default();
        assert!(looks_like(connect));
        for cut in 0..connect.len() {
            dissect(&connect[..cut], Dir::ToServer, &mut c);
        }
    }
}
