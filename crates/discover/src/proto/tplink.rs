//! TP-Link smart home (Kasa plugs, bulbs and switches; udp and tcp/9999): JSON "encrypted" with an XOR
//! autokey whose first key is 171 (each ciphertext byte is the key of the next), over TCP behind a 4-byte
//! big-endian length. An app asks `{"system":{"get_sysinfo":{}}}`; the device answers with its model, alias,
//! software and hardware versions, device id and MAC. Switching the relay and rebooting are commands.
//!
//! These messages are rare (a discovery sweep, an app's poll), so the plaintext is decoded into a vector.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink, Source, Subject};

/// The autokey's first key.
const KEY: u8 = 171;
/// The most ciphertext decoded from one payload.
const MAX: usize = 8192;

/// The ciphertext of a payload: after the 4-byte length over TCP (when it matches), else all of it.
fn cipher(p: &[u8]) -> &[u8] {
    match p {
        [l0, l1, l2, l3, rest @ ..]
            if u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize == rest.len()
                && !rest.is_empty() =>
        {
            rest
        }
        _ => p,
    }
}

/// Whether a payload decodes to a JSON object: `{"` first and `}` last.
pub fn looks_like(payload: &[u8]) -> bool {
    let c = cipher(payload);
    let first = matches!(c, [a, b, ..] if a ^ KEY == b'{' && b ^ a == b'"');
    let last = matches!(c, [.., a, b] if b ^ a == b'}');
    first && last
}

/// The plaintext of a payload.
fn plain(payload: &[u8]) -> Vec<u8> {
    let mut key = KEY;
    cipher(payload)
        .iter()
        .take(MAX)
        .map(|&c| {
            let p = c ^ key;
            key = c;
            p
        })
        .collect()
}

/// Which way a message goes: answers carry `err_code`; requests do not.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    if !looks_like(payload) {
        return None;
    }
    let text = plain(payload);
    Some(if contains(&text, b"\"err_code\"") {
        Dir::ToClient
    } else {
        Dir::ToServer
    })
}

/// Reads one message.
pub fn dissect(payload: &[u8], _dir: Dir, out: &mut dyn Sink) {
    let Some(dir) = direction(payload) else {
        return;
    };
    out.fact(dir.server(), Fact::Serves(Proto::TplinkSmarthome));
    out.fact(dir.client(), Fact::Uses(Proto::TplinkSmarthome));
    let text = plain(payload);
    let src = Source::TpLink;
    if dir == Dir::ToServer {
        for (needle, kind, detail) in [
            (
                &b"\"set_relay_state\""[..],
                CommandKind::Write,
                "set relay state",
            ),
            (
                b"\"set_light_state\"",
                CommandKind::Write,
                "set light state",
            ),
            (
                b"\"transition_light_state\"",
                CommandKind::Write,
                "set light state",
            ),
            (b"\"reboot\"", CommandKind::Restart, "reboot"),
            (b"\"reset\"", CommandKind::Restart, "factory reset"),
            (b"\"set_timezone\"", CommandKind::SetTime, "set time zone"),
        ] {
            if contains(&text, needle) {
                out.fact(
                    Subject::Src,
                    Fact::Command {
                        proto: Proto::TplinkSmarthome,
                        kind,
                        detail,
                    },
                );
            }
        }
        return;
    }
    let me = Subject::Src;
    if let Some(v) = string(&text, "model") {
        out.fact(me, Fact::Model(src, v));
        out.fact(me, Fact::Vendor(src, "TP-Link"));
    }
    if let Some(v) = string(&text, "alias") {
        out.fact(me, Fact::Hostname(src, v));
    }
    if let Some(v) = string(&text, "sw_ver") {
        out.fact(me, Fact::Firmware(src, v));
    }
    if let Some(v) = string(&text, "hw_ver") {
        out.fact(me, Fact::Description(src, &format!("hardware version {v}")));
    }
    if let Some(v) = string(&text, "dev_name") {
        out.fact(me, Fact::Description(src, v));
    }
    if let Some(v) = string(&text, "deviceId") {
        out.fact(me, Fact::DeviceId(src, v));
    }
    if let Some(v) = string(&text, "type").or_else(|| string(&text, "mic_type")) {
        out.fact(me, Fact::Platform(src, v));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The next JSON string in `text`: its raw content (escapes left as they are) and what follows it.
fn next_string(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let open = text.iter().position(|&b| b == b'"')?;
    let body = text.get(open + 1..)?;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return Some((body.get(..i)?, body.get(i + 1..)?)),
            _ => i += 1,
        }
    }
    None
}

/// The first string value of `key` anywhere in the JSON text, if it has no escapes and is printable.
fn string<'t>(text: &'t [u8], key: &str) -> Option<&'t str> {
    let mut rest = text;
    loop {
        let (name, after) = next_string(rest)?;
        let Some(value) = after.trim_ascii_start().strip_prefix(b":") else {
            rest = after;
            continue;
        };
        let value = value.trim_ascii_start();
        if !value.starts_with(b"\"") {
            rest = value;
            continue;
        }
        let (raw, after) = next_string(value)?;
        if name == key.as_bytes() && !raw.contains(&b'\\') {
            let v = std::str::from_utf8(raw).ok()?.trim();
            if !v.is_empty() && !v.chars().any(char::is_control) {
                return Some(v);
            }
        }
        rest = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;

    fn encrypt(text: &[u8]) -> Vec<u8> {
        let mut key = KEY;
        text.iter()
            .map(|&p| {
                key ^= p;
                key
            })
            .collect()
    }

    const SYSINFO: &[u8] = br#"{"system":{"get_sysinfo":{"sw_ver":"1.5.4 Build 180815 Rel.121440","hw_ver":"2.0","type":"IOT.SMARTPLUGSWITCH","model":"HS110(EU)","mac":"50:C7:BF:01:02:03","dev_name":"Smart Wi-Fi Plug With Energy Monitoring","alias":"Kitchen plug","relay_state":1,"deviceId":"8006A1B2C3D4E5F60718293A4B5C6D7E8F901234","rssi":-61,"err_code":0}}}"#;

    #[test]
    fn sysinfo_answer_names_the_plug() {
        let udp = encrypt(SYSINFO);
        let mut tcp = (udp.len() as u32).to_be_bytes().to_vec();
        tcp.extend(&udp);
        for m in [udp, tcp] {
            assert!(looks_like(&m));
            assert_eq!(direction(&m), Some(Dir::ToClient));
            let mut c = Collect::default();
            dissect(&m, Dir::ToServer, &mut c);
            for f in [
                "Serves(TplinkSmarthome)",
                r#"Model(TpLink, "HS110(EU)")"#,
                r#"Hostname(TpLink, "Kitchen plug")"#,
                r#"Firmware(TpLink, "1.5.4 Build 180815 Rel.121440")"#,
                r#"Description(TpLink, "hardware version 2.0")"#,
                r#"DeviceId(TpLink, "8006A1B2C3D4E5F60718293A4B5C6D7E8F901234")"#,
                r#"Platform(TpLink, "IOT.SMARTPLUGSWITCH")"#,
            ] {
                assert!(c.0.contains(&(Subject::Src, f.to_owned())), "{f} in {c:?}");
            }
        }
    }

    #[test]
    fn requests_and_relay_switching() {
        let ask = encrypt(br#"{"system":{"get_sysinfo":{}}}"#);
        assert_eq!(direction(&ask), Some(Dir::ToServer));
        let mut c = Collect::default();
        dissect(&ask, Dir::ToServer, &mut c);
        assert!(c.0.contains(&(Subject::Src, "Uses(TplinkSmarthome)".to_owned())));
        assert!(!c.has("Command"));
        let off = encrypt(br#"{"system":{"set_relay_state":{"state":0}}}"#);
        let mut c = Collect::default();
        dissect(&off, Dir::ToServer, &mut c);
        assert!(
            c.has(r#"Command { proto: TplinkSmarthome, kind: Write, detail: "set relay state" }"#),
            "{c:?}"
        );
        assert!(
            !looks_like(br#"{"system":{}}"#),
            "plain JSON is not the protocol"
        );
        assert!(!looks_like(&[0xd0]));
        assert_eq!(string(br#"{"a":"x\"y","b" : "z"}"#, "a"), None);
        assert_eq!(string(br#"{"a":"x\"y","b" : "z"}"#, "b"), Some("z"));
    }

    #[test]
    fn truncation_at_every_length_is_harmless() {
        let m = encrypt(SYSINFO);
        let mut c = Collect::default();
        for cut in 0..m.len() {
            let p = &m[..cut];
            looks_like(p);
            direction(p);
            dissect(p, Dir::ToClient, &mut c);
        }
    }
}
