//! Tuya local protocol (smart plugs, bulbs, cameras sold under many brands): devices broadcast a frame every
//! few seconds, in clear JSON on udp/6666 (protocol 3.1) or AES-128-ECB-encrypted on udp/6667 (3.3) under
//! a key every open-source client publishes (the MD5 of `yGAdlopoPVldABfn`), naming the device id (`gwId`),
//! product key and protocol version. Local control goes over tcp/6668, encrypted with each device's own key:
//! recognised, not read. Protocol 3.5 broadcasts (udp/7000, AES-GCM) are not read.
//!
//! Frames: prefix `00 00 55 AA`, sequence, command, length (from the return code to the suffix), return
//! code, payload, CRC-32, suffix `00 00 AA 55`.

use aes::cipher::{BlockDecrypt as _, KeyInit as _};
use md5::Digest as _;

use crate::facts::{Dir, Fact, Proto, Sink, Source, Subject};

const PREFIX: [u8; 4] = [0x00, 0x00, 0x55, 0xaa];
const SUFFIX: [u8; 4] = [0x00, 0x00, 0xaa, 0x55];
/// The published key's seed: the broadcast key is its MD5.
const UDP_KEY_SEED: &[u8] = b"yGAdlopoPVldABfn";
/// The most payload decrypted from one broadcast.
const MAX: usize = 2048;

/// The command and the payload (return code, CRC and suffix removed) of a whole frame.
fn frame(p: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = p.split_first_chunk::<16>()?;
    let [p0, p1, p2, p3, _, _, _, _, c0, c1, c2, c3, l0, l1, l2, l3] = *head;
    if [p0, p1, p2, p3] != PREFIX {
        return None;
    }
    let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
    // The length covers the return code (4), payload, CRC (4) and suffix (4).
    if len != rest.len() || len < 12 || rest.get(len - 4..)? != SUFFIX {
        return None;
    }
    Some((u32::from_be_bytes([c0, c1, c2, c3]), rest.get(4..len - 8)?))
}

/// Whether a payload is one whole Tuya frame: prefix, a length that reaches exactly the suffix.
pub fn looks_like(payload: &[u8]) -> bool {
    frame(payload).is_some()
}

/// Which way a frame goes: a discovery broadcast (commands 0x00, 0x12, 0x13) comes from the device.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    matches!(frame(payload)?.0, 0x00 | 0x12 | 0x13).then_some(Dir::ToClient)
}

/// Reads one frame: a broadcast's JSON, in clear or under the published key.
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let Some((command, body)) = frame(payload) else {
        return;
    };
    if !matches!(command, 0x00 | 0x12 | 0x13) {
        // Local control, under the device's own key: only the roles.
        out.fact(dir.server(), Fact::Serves(Proto::Tuya));
        out.fact(dir.client(), Fact::Uses(Proto::Tuya));
        return;
    }
    out.fact(Subject::Src, Fact::Serves(Proto::Tuya));
    let clear;
    let json: &[u8] = if body.first() == Some(&b'{') {
        body
    } else {
        clear = decrypt(body);
        &clear
    };
    if json.first() != Some(&b'{') {
        return;
    }
    let src = Source::Tuya;
    let me = Subject::Src;
    let mut named = false;
    if let Some(v) = value(json, b"gwId") {
        out.fact(me, Fact::DeviceId(src, v));
        named = true;
    }
    if let Some(v) = value(json, b"productKey") {
        out.fact(me, Fact::Platform(src, v));
        named = true;
    }
    if let Some(v) = value(json, b"version") {
        out.fact(me, Fact::Description(src, &format!("Tuya protocol {v}")));
    }
    if named {
        out.fact(me, Fact::Vendor(src, "Tuya"));
    }
}

/// AES-128-ECB under the published broadcast key, PKCS#7 padding removed; empty if it does not decrypt.
fn decrypt(body: &[u8]) -> Vec<u8> {
    if body.is_empty() || body.len() % 16 != 0 || body.len() > MAX {
        return Vec::new();
    }
    let key: [u8; 16] = md5::Md5::digest(UDP_KEY_SEED).into();
    let cipher = aes::Aes128::new(&key.into());
    let mut out = body.to_vec();
    for block in out.chunks_exact_mut(16) {
        cipher.decrypt_block(aes::cipher::generic_array::GenericArray::from_mut_slice(
            block,
        ));
    }
    let pad = usize::from(*out.last().unwrap_or(&0));
    if !(1..=16).contains(&pad) || out.len() < pad {
        return Vec::new();
    }
    out.truncate(out.len() - pad);
    out
}

/// The string value of a top-level-looking `"key":"value"` pair (no escapes), printable.
fn value<'t>(json: &'t [u8], key: &[u8]) -> Option<&'t str> {
    let mut needle = Vec::with_capacity(key.len() + 4);
    needle.push(b'"');
    needle.extend_from_slice(key);
    needle.extend_from_slice(b"\":\"");
    let at = json
        .windows(needle.len())
        .position(|w| w == needle.as_slice())?;
    let rest = json.get(at + needle.len()..)?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest.get(end) != Some(&b'"') {
        return None;
    }
    let v = std::str::from_utf8(rest.get(..end)?).ok()?.trim();
    (!v.is_empty() && !v.chars().any(char::is_control)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use aes::cipher::BlockEncrypt as _;

    const JSON: &[u8] = br#"{"ip":"192.168.1.60","gwId":"bf3a5c7e9d1f2b4a6c8e0d","active":2,"ability":0,"mode":0,"encrypt":true,"productKey":"keyj3w8cmutjwgsw","version":"3.3"}"#;

    fn wrap(command: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = PREFIX.to_vec();
        f.extend(7u32.to_be_bytes());
        f.extend(command.to_be_bytes());
        f.extend(((4 + payload.len() + 8) as u32).to_be_bytes());
        f.extend([0; 4]);
        f.extend_from_slice(payload);
        f.extend([0xde, 0xad, 0xbe, 0xef]);
        f.extend(SUFFIX);
        f
    }

    fn encrypt(text: &[u8]) -> Vec<u8> {
        let key: [u8; 16] = md5::Md5::digest(UDP_KEY_SEED).into();
        let cipher = aes::Aes128::new(&key.into());
        let pad = 16 - text.len() % 16;
        let mut b = text.to_vec();
        b.resize(text.len() + pad, pad as u8);
        for block in b.chunks_exact_mut(16) {
            cipher.encrypt_block(aes::cipher::generic_array::GenericArray::from_mut_slice(
                block,
            ));
        }
        b
    }

    #[test]
    fn clear_and_encrypted_broadcasts_name_the_device() {
        for f in [wrap(0x00, JSON), wrap(0x13, &encrypt(JSON))] {
            assert!(looks_like(&f));
            assert_eq!(direction(&f), Some(Dir::ToClient));
            let mut c = Collect::default();
            dissect(&f, Dir::ToClient, &mut c);
            for fact in [
                "Serves(Tuya)",
                r#"DeviceId(Tuya, "bf3a5c7e9d1f2b4a6c8e0d")"#,
                r#"Platform(Tuya, "keyj3w8cmutjwgsw")"#,
                r#"Description(Tuya, "Tuya protocol 3.3")"#,
                r#"Vendor(Tuya, "Tuya")"#,
            ] {
                assert!(
                    c.0.contains(&(Subject::Src, fact.to_owned())),
                    "{fact} in {c:?}"
                );
            }
        }
    }

    #[test]
    fn control_frames_and_other_bytes() {
        // A status query (command 10) under a device key: roles only.
        let q = wrap(0x0a, &[0x55; 32]);
        assert!(looks_like(&q));
        assert_eq!(direction(&q), None);
        let mut c = Collect::default();
        dissect(&q, Dir::ToServer, &mut c);
        assert!(
            c.0.contains(&(Subject::Dst, "Serves(Tuya)".to_owned())),
            "{c:?}"
        );
        let mut bad = wrap(0x00, JSON);
        let n = bad.len();
        bad[n - 1] = 0;
        assert!(!looks_like(&bad));
        assert!(!looks_like(&PREFIX));
        // Ciphertext under another key decrypts to nothing readable.
        let mut c = Collect::default();
        dissect(&wrap(0x13, &[0x42; 48]), Dir::ToClient, &mut c);
        assert!(!c.has("DeviceId"), "{c:?}");
    }

    #[test]
    fn truncation_at_every_length_is_harmless() {
        let f = wrap(0x13, &encrypt(JSON));
        let mut c = Collect::default();
        for cut in 0..f.len() {
            let p = &f[..cut];
            looks_like(p);
            direction(p);
            dissect(p, Dir::ToClient, &mut c);
        }
    }
}
