//! Omron FINS (udp and tcp/9600; Omron W227/W342 "FINS Commands Reference"): the command protocol of Omron
//! PLCs. A 10-byte header (ICF, reserved, gateway count, destination and source network/node/unit, service
//! id) and a two-byte command code (MRC, SRC); a response (ICF bit 6) repeats the code and adds a two-byte end
//! code. Over TCP, each frame is wrapped in a "FINS" header (length, command, error code). The controller
//! data read answer (05 01) names the CPU model and its version; RUN, STOP, memory and program area writes
//! and clock writes are commands an OT analyst flags.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink, Source};

use super::trimmed;

/// The FINS header's length, the command code not included.
const HEADER: usize = 10;
/// The FINS/TCP header: "FINS", length, command, error code.
const TCP_HEADER: usize = 16;

/// One FINS frame's response bit and command code, and what follows the code.
fn frame(p: &[u8]) -> Option<(bool, u8, u8, &[u8])> {
    let [icf, 0, gct, .., mrc, src] = *p.get(..HEADER + 2)? else {
        return None;
    };
    // ICF: bit 7 set, bits 1-5 reserved (zero); bit 6 response, bit 0 no response wanted.
    let known = icf & 0xbe == 0x80
        && gct <= 7
        && matches!(
            mrc,
            0x01..=0x07 | 0x09 | 0x0c | 0x21 | 0x22 | 0x23 | 0x26 | 0x28
        );
    let rest = p.get(HEADER + 2..)?;
    known.then_some((icf & 0x40 != 0, mrc, src, rest))
}

/// The FINS frame inside a FINS/TCP segment, if it is a frame send (command 2); `Some(None)` for the node
/// address exchange and other FINS/TCP commands.
fn tcp_frame(p: &[u8]) -> Option<Option<&[u8]>> {
    let [b'F', b'I', b'N', b'S', l0, l1, l2, l3, 0, 0, 0, cmd, ..] = *p else {
        return None;
    };
    // The length counts from the command on, so at least the command and error code.
    let len = u32::from_be_bytes([l0, l1, l2, l3]);
    if !(8..=4096).contains(&len) || cmd > 3 {
        return None;
    }
    Some((cmd == 2).then(|| {
        let end = (8 + len as usize).min(p.len());
        p.get(TCP_HEADER..end).unwrap_or_default()
    }))
}

/// Whether `payload` is a FINS frame, or a FINS/TCP segment.
pub fn looks_like(payload: &[u8]) -> bool {
    tcp_frame(payload).is_some() || frame(payload).is_some()
}

/// Which way a frame goes, from ICF's response bit (or, over TCP, the node address exchange's command).
pub fn direction(payload: &[u8]) -> Option<Dir> {
    let response = match tcp_frame(payload) {
        Some(Some(f)) => frame(f)?.0,
        Some(None) => *payload.get(11)? == 1,
        None => frame(payload)?.0,
    };
    Some(if response {
        Dir::ToClient
    } else {
        Dir::ToServer
    })
}

/// Reads one FINS frame, or one FINS/TCP segment.
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let f = match tcp_frame(payload) {
        Some(Some(f)) => f,
        Some(None) => {
            let dir = direction(payload).unwrap_or(dir);
            out.fact(dir.server(), Fact::Serves(Proto::Fins));
            out.fact(dir.client(), Fact::Uses(Proto::Fins));
            return;
        }
        None => payload,
    };
    let Some((response, mrc, src, rest)) = frame(f) else {
        return;
    };
    let dir = if response {
        Dir::ToClient
    } else {
        Dir::ToServer
    };
    out.fact(dir.server(), Fact::Serves(Proto::Fins));
    out.fact(dir.client(), Fact::Uses(Proto::Fins));
    if response {
        // The end code, then the controller data: model (20 bytes) and version (20 bytes), ASCII.
        if let (5, 1, [0, 0, data @ ..]) = (mrc, src, rest) {
            if let Some(m) = ascii(data.get(..20)) {
                out.fact(dir.server(), Fact::Model(Source::Fins, m));
                out.fact(dir.server(), Fact::Vendor(Source::Fins, "OMRON"));
            }
            if let Some(v) = ascii(data.get(20..40)) {
                out.fact(dir.server(), Fact::Firmware(Source::Fins, v));
            }
        }
    } else if let Some((kind, detail)) = command(mrc, src) {
        out.fact(
            dir.client(),
            Fact::Command {
                proto: Proto::Fins,
                kind,
                detail,
            },
        );
    }
}

/// Fixed-length ASCII text, trailing spaces and NULs trimmed.
fn ascii(b: Option<&[u8]>) -> Option<&str> {
    b.and_then(trimmed)
        .filter(|t| t.is_ascii() && !t.chars().any(char::is_control))
}

/// The state change a command makes, for the commands that make one.
fn command(mrc: u8, src: u8) -> Option<(CommandKind, &'static str)> {
    use CommandKind::{Program, Restart, SetTime, Stop, Write};
    Some(match (mrc, src) {
        (0x01, 0x02) => (Write, "memory area write (01 02)"),
        (0x01, 0x03) => (Write, "memory area fill (01 03)"),
        (0x01, 0x05) => (Write, "memory area transfer (01 05)"),
        (0x02, 0x02) => (Write, "parameter area write (02 02)"),
        (0x03, 0x07) => (Program, "program area write (03 07)"),
        (0x03, 0x08) => (Program, "program area clear (03 08)"),
        (0x04, 0x01) => (Restart, "run (04 01)"),
        (0x04, 0x02) => (Stop, "stop (04 02)"),
        (0x07, 0x02) => (SetTime, "clock write (07 02)"),
        (0x23, 0x01) => (Write, "forced set/reset (23 01)"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Collect, Subject};

    /// A FINS frame from node 10 to node 1 with this ICF and command, then `rest`.
    fn fins(icf: u8, mrc: u8, src: u8, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![icf, 0, 2, 0, 1, 0, 0, 10, 0, 0x2a, mrc, src];
        f.extend_from_slice(rest);
        f
    }

    fn controller_data() -> Vec<u8> {
        let mut d = vec![0, 0];
        let mut model = b"CJ2M-CPU31".to_vec();
        model.resize(20, b' ');
        let mut version = b"02.01".to_vec();
        version.resize(20, b' ');
        d.extend(model);
        d.extend(version);
        d.extend([0; 40]);
        d
    }

    #[test]
    fn controller_data_read_names_the_cpu() {
        let req = fins(0x80, 5, 1, &[0]);
        let rsp = fins(0xc0, 5, 1, &controller_data());
        assert!(looks_like(&req) && looks_like(&rsp));
        assert_eq!(direction(&req), Some(Dir::ToServer));
        assert_eq!(direction(&rsp), Some(Dir::ToClient));
        let mut c = Collect::default();
        dissect(&rsp, Dir::ToServer, &mut c);
        for f in [
            "Serves(Fins)",
            r#"Model(Fins, "CJ2M-CPU31")"#,
            r#"Firmware(Fins, "02.01")"#,
        ] {
            assert!(c.0.contains(&(Subject::Src, f.to_owned())), "{f} in {c:?}");
        }
    }

    #[test]
    fn run_stop_and_writes_are_commands() {
        for (mrc, src, kind) in [
            (4, 1, "Restart"),
            (4, 2, "Stop"),
            (1, 2, "Write"),
            (3, 7, "Program"),
        ] {
            let mut c = Collect::default();
            dissect(&fins(0x80, mrc, src, &[0xff, 0xff]), Dir::ToClient, &mut c);
            assert!(
                c.0.iter()
                    .any(|(w, f)| *w == Subject::Src && f.contains(&format!("kind: {kind}"))),
                "{mrc:02x} {src:02x}: {c:?}"
            );
            assert!(c.0.contains(&(Subject::Dst, "Serves(Fins)".to_owned())));
        }
        // The answer to a write is not a command.
        let mut c = Collect::default();
        dissect(&fins(0xc0, 1, 2, &[0, 0]), Dir::ToClient, &mut c);
        assert!(!c.has("Command"), "{c:?}");
    }

    #[test]
    fn fins_over_tcp() {
        let f = fins(0x80, 4, 2, &[0xff, 0xff]);
        let mut seg = b"FINS".to_vec();
        seg.extend(((8 + f.len()) as u32).to_be_bytes());
        seg.extend([0, 0, 0, 2, 0, 0, 0, 0]);
        seg.extend(&f);
        assert!(looks_like(&seg));
        assert_eq!(direction(&seg), Some(Dir::ToServer));
        let mut c = Collect::default();
        dissect(&seg, Dir::ToServer, &mut c);
        assert!(c.has("kind: Stop"), "{c:?}");
        // The node address answer comes from the server.
        let answer = [
            b'F', b'I', b'N', b'S', 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 1,
        ];
        assert_eq!(direction(&answer), Some(Dir::ToClient));
        assert!(!looks_like(b"FINS\0\0\0\x02"));
        assert!(!looks_like(&[0x80, 1, 2, 0, 1, 0, 0, 10, 0, 0x2a, 5, 1]));
        assert!(!looks_like(&[0x80, 0, 2, 0, 1, 0, 0, 10, 0, 0x2a, 0x99, 1]));
    }

    #[test]
    fn truncation_at_every_length_is_harmless() {
        let rsp = fins(0xc0, 5, 1, &controller_data());
        let mut seg = b"FINS".to_vec();
        seg.extend(((8 + rsp.len()) as u32).to_be_bytes());
        seg.extend([0, 0, 0, 2, 0, 0, 0, 0]);
        seg.extend(&rsp);
        let mut c = Collect::default();
        for m in [rsp, seg] {
            for cut in 0..m.len() {
                let p = &m[..cut];
                looks_like(p);
                direction(p);
                dissect(p, Dir::ToClient, &mut c);
            }
        }
    }
}
