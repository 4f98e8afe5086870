//! DNS-family name announcements: multicast DNS (host names and services a device announces for itself),
//! NetBIOS name registrations, and plain DNS only as a protocol (its answers name other hosts).
//!
//! Written by hand: names are decompressed into a stack buffer so that nothing is allocated per packet, and
//! only the few record types discovery reads are looked at.

use crate::facts::{Dir, Fact, Proto, Sink, Source, Subject};

/// The longest name DNS allows, in presentation form.
const MAX_NAME: usize = 255;

/// Reads a DNS message on port 53 (a protocol fact only: answers describe other hosts).
pub fn dissect_dns(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    if payload.len() >= 12 {
        out.fact(dir.server(), Fact::Serves(Proto::Dns));
        out.fact(dir.client(), Fact::Uses(Proto::Dns));
    }
}

/// Reads an mDNS message (UDP 5353): in responses, the host names (A/AAAA owners) and service instances (SRV
/// owners) are the sender's own.
pub fn dissect_mdns(payload: &[u8], out: &mut dyn Sink) {
    let Some(header) = payload.get(..12) else {
        return;
    };
    out.fact(Subject::Src, Fact::Serves(Proto::Mdns));
    if header[2] & 0x80 == 0 {
        return; // a query: its known answers belong to others
    }
    let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let (qd, records) = (count(4), count(6) + count(8) + count(10));
    let mut pos = 12;
    let mut buf = [0u8; MAX_NAME];
    for _ in 0..qd.min(64) {
        let Some((_, next)) = name(payload, pos, &mut buf) else {
            return;
        };
        pos = next + 4;
    }
    for _ in 0..records.min(256) {
        let Some((len, next)) = name(payload, pos, &mut buf) else {
            return;
        };
        let Some(fixed) = payload.get(next..next + 10) else {
            return;
        };
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let Ok(owner) = std::str::from_utf8(&buf[..len]) else {
            return;
        };
        match rtype {
            // A, AAAA: the host's own name.
            1 | 28 if owner.ends_with(".local") => out.fact(
                Subject::Src,
                Fact::Hostname(Source::Mdns, owner.trim_end_matches(".local")),
            ),
            // SRV: "instance._service._proto.local".
            33 => {
                if let Some(service) = service_of(owner) {
                    out.fact(Subject::Src, Fact::Service(Source::Mdns, service));
                }
            }
            _ => {}
        }
        pos = next + 10 + rdlen;
    }
}

/// The `_service._proto.local` part of an SRV owner name.
fn service_of(owner: &str) -> Option<&str> {
    let at = owner.find("._")?;
    owner.get(at + 1..).map(|s| s.trim_end_matches(".local"))
}

/// Decompresses the name at `pos` into `buf`; returns its length and the position after it in the message.
fn name(msg: &[u8], mut pos: usize, buf: &mut [u8; MAX_NAME]) -> Option<(usize, usize)> {
    let mut len = 0;
    let mut after = None;
    // Each pointer must go backwards, so a loop of pointers ends; the hop count is a second guard.
    for _ in 0..128 {
        let l = *msg.get(pos)?;
        match l {
            0 => return Some((len, after.unwrap_or(pos + 1))),
            1..=63 => {
                let label = msg.get(pos + 1..pos + 1 + usize::from(l))?;
                let need = usize::from(len > 0) + label.len();
                if len + need > MAX_NAME {
                    return None;
                }
                if len > 0 {
                    buf[len] = b'.';
                    len += 1;
                }
                buf[len..len + label.len()].copy_from_slice(label);
                len += label.len();
                pos += 1 + usize::from(l);
            }
            0xc0..=0xff => {
                let target = usize::from(u16::from_be_bytes([l, *msg.get(pos + 1)?]) & 0x3fff);
                if target >= pos {
                    return None;
                }
                after.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return None,
        }
    }
    None
}

/// Reads a NetBIOS name service message (UDP 137): a registration or a positive answer names the sender.
pub fn dissect_nbns(payload: &[u8], out: &mut dyn Sink) {
    let Some(header) = payload.get(..12) else {
        return;
    };
    out.fact(Subject::Src, Fact::Uses(Proto::Nbns));
    let opcode = (header[2] >> 3) & 0x0f;
    // Registration (5), refresh (8, 9) or a response carrying an answer: the name is the sender's.
    let own = matches!(opcode, 5 | 8 | 9) || (header[2] & 0x80 != 0 && header[7] > 0);
    if !own {
        return;
    }
    // The first name: a 32-byte first-level encoding of 16 bytes (15 characters and a suffix).
    let Some(&[32, ref encoded @ ..]) = payload.get(12..45) else {
        return;
    };
    let mut raw = [0u8; 16];
    for (i, pair) in encoded.chunks_exact(2).enumerate() {
        let (a, b) = (pair[0].wrapping_sub(b'A'), pair[1].wrapping_sub(b'A'));
        if a > 15 || b > 15 {
            return;
        }
        raw[i] = (a << 4) | b;
    }
    // Suffix 0x00 is the workstation name; group names and other suffixes are not the host's.
    if raw[15] != 0 {
        return;
    }
    if let Ok(n) = std::str::from_utf8(&raw[..15]) {
        let n = n.trim_end();
        if !n.is_empty() && !n.contains('*') {
            out.fact(Subject::Src, Fact::Hostname(Source::Nbns, n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::segments;

    #[test]
    fn mdns_host_name_as_tshark_shows() {
        // tshark: responses from 10.0.2.7 carry A records for johanna-QEMU-Virtual-Machine.local.
        let mut c = Collect::default();
        for s in segments("z_mdns.pcap").iter().filter(|s| s.dport == 5353) {
            dissect_mdns(&s.payload, &mut c);
        }
        assert!(
            c.has(r#"Hostname(Mdns, "johanna-QEMU-Virtual-Machine")"#),
            "{c:?}"
        );
    }

    #[test]
    fn pointer_loops_and_truncations_end() {
        let mut msg = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
        let mut c = Collect::default();
        for cut in 0..=msg.len() {
            dissect_mdns(&msg[..cut], &mut c);
            dissect_nbns(&msg[..cut], &mut c);
        }
        let mut buf = [0u8; MAX_NAME];
        assert_eq!(name(&msg, 12, &mut buf), None);
        for s in segments("z_mdns.pcap") {
            for cut in 0..s.payload.len() {
                dissect_mdns(&s.payload[..cut], &mut c);
            }
        }
    }
}
