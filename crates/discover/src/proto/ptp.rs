//! PTP, the Precision Time Protocol version 2 (IEEE 1588-2008/2019; udp/319 event and udp/320 general
//! messages, and EtherType 0x88F7): every message opens with a 34-byte header whose source port identity is
//! the sender's clock identity (an EUI-64) and port number. Masters send Sync, Follow_Up, Delay_Resp and
//! Announce; slaves send Delay_Req. An Announce names the grandmaster (its clock identity, class, accuracy
//! and priority) the sender follows.

use crate::facts::{Dir, Fact, Proto, Sink, Source, Subject};

use super::format_into;

/// The common header's length.
const HEADER: usize = 34;

/// The message type and the message within its length, if the header is PTPv2's.
fn header(p: &[u8]) -> Option<(u8, &[u8])> {
    let [ts_type, version, l0, l1, ..] = *p else {
        return None;
    };
    let kind = ts_type & 0x0f;
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    // The least each message type holds (1588-2008 §13): its body after the header.
    let min = match kind {
        0 | 1 | 8 => HEADER + 10,
        2 | 3 | 9 | 0x0a => HEADER + 20,
        0x0b => HEADER + 30,
        0x0c | 0x0d => HEADER + 10,
        _ => return None,
    };
    (version & 0x0f == 2 && len >= min).then_some((kind, p.get(..len)?))
}

/// Whether a payload is a PTPv2 message: version 2, a known type, and at least that type's length.
pub fn looks_like(payload: &[u8]) -> bool {
    header(payload).is_some()
}

/// Which way a message goes: a slave's Delay_Req or Pdelay_Req asks; a master's Sync, Follow_Up, Delay_Resp
/// and Announce (and peer-delay answers) come from the clock that serves time.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    match header(payload)?.0 {
        1 | 2 => Some(Dir::ToServer),
        0 | 3 | 8 | 9 | 0x0a | 0x0b => Some(Dir::ToClient),
        _ => None,
    }
}

/// Reads one PTP message, over UDP or Ethernet (where only the sender is known).
pub fn dissect(payload: &[u8], _dir: Dir, out: &mut dyn Sink) {
    let Some((kind, m)) = header(payload) else {
        return;
    };
    let Some(dir) = direction(payload) else {
        return;
    };
    out.fact(dir.server(), Fact::Serves(Proto::Ptp));
    out.fact(dir.client(), Fact::Uses(Proto::Ptp));
    let me = dir.server();
    let Some(&[c0, c1, c2, c3, c4, c5, c6, c7, p0, p1]) = m.get(20..30) else {
        return;
    };
    let own = [c0, c1, c2, c3, c4, c5, c6, c7];
    let mut buf = [0u8; 24];
    if let Some(id) = eui64(&own, &mut buf) {
        out.fact(Subject::Src, Fact::DeviceId(Source::Ptp, id));
    }
    // Announce: priority 1 (47), clock class (48), accuracy (49), variance (50-51), priority 2 (52), the
    // grandmaster's identity (53-60), steps removed (61-62), time source (63).
    if let (
        0x0b,
        Some(
            &[
                p1_gm,
                class,
                accuracy,
                _,
                _,
                _,
                g0,
                g1,
                g2,
                g3,
                g4,
                g5,
                g6,
                g7,
                s0,
                s1,
                source,
            ],
        ),
    ) = (kind, m.get(47..64))
    {
        let gm = [g0, g1, g2, g3, g4, g5, g6, g7];
        let mut gbuf = [0u8; 24];
        let Some(gm_id) = eui64(&gm, &mut gbuf) else {
            return;
        };
        let role = if gm == own {
            "grandmaster"
        } else {
            "boundary clock of grandmaster"
        };
        let mut d = [0u8; 160];
        if let Some(text) = format_into(
            &mut d,
            format_args!(
                "PTP {role} {gm_id} (clock class {class}, accuracy 0x{accuracy:02x}, priority1 {p1_gm}, \
                 steps removed {}, time source 0x{source:02x}), port {}",
                u16::from_be_bytes([s0, s1]),
                u16::from_be_bytes([p0, p1]),
            ),
        ) {
            out.fact(me, Fact::Description(Source::Ptp, text));
        }
    }
}

/// An EUI-64 as eight colon-separated hex pairs.
fn eui64<'b>(id: &[u8; 8], buf: &'b mut [u8; 24]) -> Option<&'b str> {
    let [a, b, c, d, e, f, g, h] = *id;
    format_into(
        buf,
        format_args!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}:{g:02x}:{h:02x}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;

    /// A PTPv2 message of `kind` from clock 00:1b:19:ff:fe:00:00:01 port 1, with `body` after the header.
    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind, 2];
        m.extend(((HEADER + body.len()) as u16).to_be_bytes());
        m.extend([0, 0, 0x02, 0x00]);
        m.extend([0; 8]);
        m.extend([0; 4]);
        m.extend([0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, 0x01, 0, 1]);
        m.extend([0, 7, 5, 1]);
        m.extend_from_slice(body);
        m
    }

    fn announce(gm: [u8; 8]) -> Vec<u8> {
        let mut b = vec![0; 10];
        b.extend([0, 37, 0, 128, 6, 0x21, 0x4e, 0x5d, 128]);
        b.extend(gm);
        b.extend([0, 0, 0x20]);
        message(0x0b, &b)
    }

    #[test]
    fn announce_names_the_grandmaster() {
        let a = announce([0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, 0x01]);
        assert_eq!(a.len(), 64);
        assert!(looks_like(&a));
        assert_eq!(direction(&a), Some(Dir::ToClient));
        let mut c = Collect::default();
        dissect(&a, Dir::ToClient, &mut c);
        assert!(
            c.0.contains(&(Subject::Src, "Serves(Ptp)".to_owned())),
            "{c:?}"
        );
        assert!(c.0.contains(&(
            Subject::Src,
            r#"DeviceId(Ptp, "00:1b:19:ff:fe:00:00:01")"#.to_owned()
        )));
        assert!(
            c.has("PTP grandmaster 00:1b:19:ff:fe:00:00:01 (clock class 6, accuracy 0x21, priority1 128, steps removed 0, time source 0x20), port 1"),
            "{c:?}"
        );
        let b = announce([0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, 0x99]);
        let mut c = Collect::default();
        dissect(&b, Dir::ToClient, &mut c);
        assert!(
            c.has("boundary clock of grandmaster 00:1b:19:ff:fe:00:00:99"),
            "{c:?}"
        );
    }

    #[test]
    fn slaves_ask_masters_answer() {
        let req = message(1, &[0; 10]);
        assert_eq!(direction(&req), Some(Dir::ToServer));
        let mut c = Collect::default();
        dissect(&req, Dir::ToClient, &mut c);
        assert!(
            c.0.contains(&(Subject::Src, "Uses(Ptp)".to_owned())),
            "{c:?}"
        );
        assert!(
            !c.0.contains(&(Subject::Src, "Serves(Ptp)".to_owned())),
            "{c:?}"
        );
        for sync in [message(0, &[0; 10]), message(8, &[0; 10])] {
            assert_eq!(direction(&sync), Some(Dir::ToClient));
        }
        // Version 1, a short length, an unknown type: not PTPv2.
        let mut v1 = message(0, &[0; 10]);
        v1[1] = 1;
        assert!(!looks_like(&v1));
        assert!(!looks_like(&message(0, &[0; 4])));
        assert!(!looks_like(&message(5, &[0; 10])));
    }

    #[test]
    fn truncation_at_every_length_is_harmless() {
        let a = announce([1; 8]);
        let mut c = Collect::default();
        for cut in 0..a.len() {
            let mut p = a[..cut].to_vec();
            looks_like(&p);
            direction(&p);
            dissect(&p, Dir::ToClient, &mut c);
            if p.len() >= 4 {
                let n = (p.len() as u16).to_be_bytes();
                p[2] = n[0];
                p[3] = n[1];
                dissect(&p, Dir::ToClient, &mut c);
            }
        }
    }
}
