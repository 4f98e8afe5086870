//! IEEE C37.118 synchrophasors (TCP 4712, UDP 4713): phasor measurement units (PMUs) stream measurements to
//! phasor data concentrators (PDCs). Configuration frames name the stations; command frames come from the PDC.

use crate::facts::{Dir, Fact, Proto, Sink, Source};

use super::{format_into, trimmed};

/// SYNC, FRAMESIZE, IDCODE, SOC, FRACSEC.
const COMMON: usize = 14;

/// The frame type (SYNC bits 6–4) and the frame's bytes (FRAMESIZE, without the check word), when the
/// header is consistent: 0xAA, a defined type (0 data, 1 header, 2 CFG-1, 3 CFG-2, 4 command, 5 CFG-3) and
/// version (1 for 2005, 2 for 2011), a size that holds the header and the check word.
fn frame(payload: &[u8]) -> Option<(u8, &[u8])> {
    let [0xaa, sync, s0, s1, ..] = payload else {
        return None;
    };
    let kind = (sync >> 4) & 0x0f;
    let version = sync & 0x0f;
    let size = usize::from(u16::from_be_bytes([*s0, *s1]));
    if kind > 5 || !(1..=2).contains(&version) || size < COMMON + 2 {
        return None;
    }
    Some((kind, payload.get(..size - 2).unwrap_or(payload)))
}

/// Whether a payload opens with a whole C37.118 frame.
pub fn looks_like(payload: &[u8]) -> bool {
    frame(payload).is_some_and(|(_, f)| {
        let [_, _, s0, s1, ..] = payload else {
            return false;
        };
        usize::from(u16::from_be_bytes([*s0, *s1])) <= payload.len() && f.len() >= COMMON
    })
}

/// Command frames go from the PDC to the PMU; data, header and configuration frames come from the PMU.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    match frame(payload)?.0 {
        4 => Some(Dir::ToServer),
        _ => Some(Dir::ToClient),
    }
}

/// Reads one frame.
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let Some((kind, f)) = frame(payload) else {
        return;
    };
    let dir = direction(payload).unwrap_or(dir);
    let pmu = dir.server();
    out.fact(pmu, Fact::Serves(Proto::Synphasor));
    out.fact(dir.client(), Fact::Uses(Proto::Synphasor));
    match kind {
        1 => {
            if let Some(text) = f.get(COMMON..).and_then(trimmed) {
                out.fact(pmu, Fact::Description(Source::Synphasor, text));
            }
        }
        2 | 3 => config(f, pmu, out),
        5 => {
            // CFG-3: CONT_IDX, TIME_BASE, NUM_PMU, then the first station name counted by one byte.
            let Some(&n) = f.get(COMMON + 8) else {
                return;
            };
            let start = COMMON + 9;
            if let Some(name) = f.get(start..start + usize::from(n)).and_then(trimmed) {
                out.fact(pmu, Fact::Hostname(Source::Synphasor, name));
            }
        }
        _ => {}
    }
}

/// CFG-1 and CFG-2: per PMU its station name and IDCODE, and the data rate after the last.
fn config(f: &[u8], who: crate::facts::Subject, out: &mut dyn Sink) {
    let u16_at = |i: usize| Some(u16::from_be_bytes([*f.get(i)?, *f.get(i + 1)?]));
    let Some(count) = u16_at(COMMON + 4) else {
        return;
    };
    let mut at = COMMON + 6;
    let mut first_id = None;
    for _ in 0..count {
        let Some(stn) = f.get(at..at + 16) else {
            return;
        };
        let (Some(id), Some(ph), Some(an), Some(dg)) = (
            u16_at(at + 16),
            u16_at(at + 20),
            u16_at(at + 22),
            u16_at(at + 24),
        ) else {
            return;
        };
        if let Some(name) = trimmed(stn) {
            out.fact(who, Fact::Hostname(Source::Synphasor, name));
        }
        first_id.get_or_insert(id);
        let (ph, an, dg) = (usize::from(ph), usize::from(an), usize::from(dg));
        // Channel names (16 bytes each, 16 per digital word), units (4 bytes each), FNOM, CFGCNT.
        at += 26 + 16 * (ph + an + 16 * dg) + 4 * (ph + an + dg) + 4;
    }
    let (Some(id), Some(rate)) = (first_id, u16_at(at)) else {
        return;
    };
    let rate = rate as i16;
    let mut buf = [0u8; 48];
    let text = if rate >= 0 {
        format_into(&mut buf, format_args!("PMU IDCODE {id}, {rate} frames/s"))
    } else {
        format_into(
            &mut buf,
            format_args!("PMU IDCODE {id}, 1 frame per {} s", -i32::from(rate)),
        )
    };
    if let Some(text) = text {
        out.fact(who, Fact::Description(Source::Synphasor, text));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::facts::{Collect, Subject};

    /// CRC-CCITT (initial 0xFFFF, polynomial 0x1021), the CHK of every frame.
    fn crc(bytes: &[u8]) -> u16 {
        let mut c: u16 = 0xffff;
        for &b in bytes {
            c ^= u16::from(b) << 8;
            for _ in 0..8 {
                c = if c & 0x8000 != 0 {
                    (c << 1) ^ 0x1021
                } else {
                    c << 1
                };
            }
        }
        c
    }

    /// A frame of type `kind` (version 1) from IDCODE `id` with `body` after the common header.
    pub(crate) fn frame_of(kind: u8, id: u16, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0xaa, (kind << 4) | 1];
        v.extend_from_slice(&((COMMON + body.len() + 2) as u16).to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&1_796_212_800u32.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(body);
        let c = crc(&v);
        v.extend_from_slice(&c.to_be_bytes());
        v
    }

    /// A CFG-2 body for one PMU `stn` (IDCODE `id`): two phasors, one analog, no digital, 60 Hz, `rate`.
    pub(crate) fn cfg2_body(stn: &str, id: u16, rate: i16) -> Vec<u8> {
        let mut b = 1_000_000u32.to_be_bytes().to_vec();
        b.extend_from_slice(&1u16.to_be_bytes());
        let mut name = stn.as_bytes().to_vec();
        name.resize(16, b' ');
        b.extend_from_slice(&name);
        b.extend_from_slice(&id.to_be_bytes());
        b.extend_from_slice(&[0x00, 0x0f, 0, 2, 0, 1, 0, 0]);
        for ch in ["VA", "VB", "FREQ"] {
            let mut n = ch.as_bytes().to_vec();
            n.resize(16, b' ');
            b.extend_from_slice(&n);
        }
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        b.extend_from_slice(&[0, 0, 0, 0]); // FNOM 60 Hz, CFGCNT
        b.extend_from_slice(&rate.to_be_bytes());
        b
    }

    fn run(p: &[u8], dir: Dir) -> Collect {
        let mut c = Collect::default();
        dissect(p, dir, &mut c);
        c
    }

    #[test]
    fn configuration_names_the_station() {
        let p = frame_of(3, 7734, &cfg2_body("SUB A PMU1", 7734, 30));
        assert!(looks_like(&p));
        assert_eq!(direction(&p), Some(Dir::ToClient));
        let c = run(&p, Dir::ToServer);
        assert!(c.0.contains(&(Subject::Src, "Serves(Synphasor)".into())));
        assert!(c.0.contains(&(Subject::Src, r#"Hostname(Synphasor, "SUB A PMU1")"#.into())));
        assert!(c.0.contains(&(
            Subject::Src,
            r#"Description(Synphasor, "PMU IDCODE 7734, 30 frames/s")"#.into()
        )));
        let c = run(&frame_of(2, 7, &cfg2_body("X", 7, -5)), Dir::ToClient);
        assert!(c.has("1 frame per 5 s"));
        let c = run(
            &frame_of(1, 7, b"Feeder 12 PMU, firmware 3.2\0"),
            Dir::ToClient,
        );
        assert!(c.has(r#"Description(Synphasor, "Feeder 12 PMU, firmware 3.2")"#));
    }

    #[test]
    fn commands_come_from_the_pdc() {
        let p = frame_of(4, 7734, &[0x00, 0x05]);
        assert_eq!(direction(&p), Some(Dir::ToServer));
        let c = run(&p, Dir::ToClient);
        assert!(c.0.contains(&(Subject::Src, "Uses(Synphasor)".into())));
        assert!(c.0.contains(&(Subject::Dst, "Serves(Synphasor)".into())));
        assert_eq!(direction(&frame_of(0, 7734, &[0; 20])), Some(Dir::ToClient));
    }

    #[test]
    fn cfg3_first_station() {
        let mut body = vec![0, 0, 0, 0x0f, 0x42, 0x40, 0, 1, 9];
        body.extend_from_slice(b"PMU-NORTH");
        body.extend_from_slice(&[0; 30]);
        assert!(
            run(&frame_of(5, 9, &body), Dir::ToClient).has(r#"Hostname(Synphasor, "PMU-NORTH")"#)
        );
    }

    #[test]
    fn recognition_is_strict() {
        let p = frame_of(4, 1, &[0, 2]);
        assert!(looks_like(&p));
        for (i, v) in [(1, 0x61), (1, 0x13), (1, 0x10), (3, 0x05), (0, 0xab)] {
            let mut q = p.clone();
            q[i] = v;
            assert!(!looks_like(&q), "{q:02x?}");
        }
        assert!(!looks_like(&p[..p.len() - 1]));
    }

    #[test]
    fn survives_truncation_and_hostile_counts() {
        let mut all = vec![
            frame_of(3, 7734, &cfg2_body("SUB A PMU1", 7734, 30)),
            frame_of(1, 7, b"header"),
            frame_of(5, 9, &[0, 0, 0, 0, 0, 0, 0, 1, 200, b'x']),
        ];
        let mut bad = all[0].clone();
        bad[COMMON + 5] = 0xff; // NUM_PMU beyond the frame
        all.push(bad);
        let mut bad = all[0].clone();
        bad[COMMON + 6 + 20] = 0xff; // PHNMR beyond the frame
        all.push(bad);
        crate::testutil::every_prefix(&all, dissect, looks_like, direction);
    }
}
