//! ISO-on-TCP (TPKT and COTP, tcp/102) and what it carries: Siemens S7comm, with the identity a PLC reports
//! in its system status lists (SZL) and the jobs that change its state; S7comm-plus, with the order number and
//! firmware an S7-1200/1500 states when a session opens; or IEC 61850 MMS.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink, Source, Subject};

use super::format_into;

/// Whether `payload` opens with a whole TPKT holding a COTP header of a known type.
pub fn looks_like(payload: &[u8]) -> bool {
    match tpkt(payload) {
        Some((len, [cl, kind, ..])) => {
            len <= payload.len()
                && *cl >= 2
                && usize::from(*cl) < len - 4
                && matches!(kind & 0xf0, 0xe0 | 0xd0 | 0xf0 | 0x80 | 0xc0 | 0x70)
        }
        _ => false,
    }
}

/// Which way an ISO-on-TCP segment travels by its first TPDU: a COTP connection request goes to the server
/// and its confirm back; S7comm jobs go to the server and acks back, except the block-transfer jobs the PLC
/// itself sends to the PC (Download block 0x1b, Download ended 0x1c), whose acks come from the PC; userdata by
/// its type (request, or response/push); S7comm-plus requests (0x31) go to the PLC, responses (0x32) and
/// notifications (0x33) come from it.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    let (_, [cl, kind, ..]) = tpkt(payload)? else {
        return None;
    };
    let data = payload.get(5 + usize::from(*cl)..)?;
    let (to_server, to_client) = (Some(Dir::ToServer), Some(Dir::ToClient));
    match (kind & 0xf0, data) {
        (0xe0, _) => to_server,
        (0xd0, _) => to_client,
        (0xf0, [0x32, rosctr, _, _, _, _, _, _, _, _, rest @ ..]) => {
            let plc_job = |f: Option<&u8>| matches!(f, Some(0x1b | 0x1c));
            match rosctr {
                1 if plc_job(rest.first()) => to_client,
                1 => to_server,
                // Ack and ack-data add an error class and code before the parameters.
                2 | 3 if plc_job(rest.get(2)) => to_server,
                2 | 3 => to_client,
                // Userdata parameters: head 00 01 12, length, method, then type (high nibble) and group.
                7 => match rest.get(5).map(|t| t >> 4) {
                    Some(4) => to_server,
                    Some(0 | 8) => to_client,
                    _ => None,
                },
                _ => None,
            }
        }
        (0xf0, [0x72, _, _, _, 0x31, ..]) => to_server,
        (0xf0, [0x72, _, _, _, 0x32 | 0x33, ..]) => to_client,
        _ => None,
    }
}

/// Reads every TPKT in one segment; `dir` names the server, the PDUs name who sent a job or an identity.
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let mut rest = payload;
    while let Some((len, body)) = tpkt(rest) {
        cotp(body, dir, out);
        let Some(next) = rest.get(len..) else { break };
        rest = next;
    }
}

/// The TPKT length and its body (what of it the segment holds), if the header is plausible.
fn tpkt(p: &[u8]) -> Option<(usize, &[u8])> {
    let [3, 0, l0, l1, body @ ..] = p else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*l0, *l1]));
    (len >= 7).then(|| (len, body.get(..len - 4).unwrap_or(body)))
}

/// Reads one COTP TPDU and hands a data TPDU's payload to the protocol it opens like.
fn cotp(body: &[u8], dir: Dir, out: &mut dyn Sink) {
    let [cl, kind, ..] = *body else { return };
    let Some(data) = body.get(1 + usize::from(cl)..) else {
        return;
    };
    match (kind & 0xf0, data) {
        // A connection request or confirm does not say what will follow.
        (0xe0 | 0xd0, _) => serve(Proto::Cotp, dir, out),
        (0xf0, [0x32, ..]) => s7comm(data, dir, out),
        (0xf0, [0x72, ..]) => s7comm_plus(data, dir, out),
        (0xf0, [_, ..]) => serve(if mms(data) { Proto::Mms } else { Proto::Cotp }, dir, out),
        // Empty data TPDUs (some clients send one before each request), disconnects and errors say nothing.
        _ => {}
    }
}

/// Reports the two ends of a packet as server and client of `proto`.
fn serve(proto: Proto, dir: Dir, out: &mut dyn Sink) {
    out.fact(dir.server(), Fact::Serves(proto));
    out.fact(dir.client(), Fact::Uses(proto));
}

/// Whether COTP data is an ISO session carrying MMS (ISO 9506).
fn mms(data: &[u8]) -> bool {
    match data {
        // Give-tokens and data-transfer SPDUs, then presentation user data: an association's traffic.
        [0x01, 0x00, 0x01, 0x00, 0x61, ..] => true,
        // Session connect or accept naming MMS (1.0.9506.2.x) as abstract syntax or application context.
        [0x0d | 0x0e, ..] => data.windows(4).any(|w| w == [0x28, 0xca, 0x22, 0x02]),
        _ => false,
    }
}

/// Reads an S7comm PDU: header, then a job's function or a userdata response's status list.
fn s7comm(p: &[u8], dir: Dir, out: &mut dyn Sink) {
    let [0x32, rosctr, _, _, _, _, p0, p1, d0, d1, ..] = *p else {
        return;
    };
    // Ack and ack-data headers add an error class and code.
    let head = match rosctr {
        1 | 7 => 10,
        2 | 3 => 12,
        _ => return,
    };
    serve(Proto::S7comm, dir, out);
    let param = within(p, head, u16::from_be_bytes([p0, p1]));
    let data = within(p, head + param.len(), u16::from_be_bytes([d0, d1]));
    match (rosctr, param) {
        // Block transfers (0x1a-0x1f) are one transaction of the session's initiator, the engineering
        // station, though the PLC itself sends the Download block and Download ended jobs: they are the
        // client's commands to the server. Any other job is a request whichever way the connection was
        // opened, so its sender is the one commanding.
        (1, [function @ 0x1a..=0x1f, ..]) => {
            if let Some(command) = job(*function, param) {
                commanded(out, dir.client(), command);
            }
        }
        (1, [function, ..]) => {
            if let Some(command) = job(*function, param) {
                commanded(out, Subject::Src, command);
            }
        }
        // Userdata parameters: head 00 01 12, length, method, type (high nibble) and group, subfunction.
        (7, [0x00, 0x01, 0x12, _, _, type_group, subfunction, ..]) => {
            match (type_group >> 4, type_group & 0x0f, subfunction) {
                (4, 7, 2 | 4) => {
                    commanded(out, Subject::Src, (CommandKind::SetTime, "set clock (7/2)"));
                }
                (8, 4, 1) => szl(data, out),
                _ => {}
            }
        }
        _ => {}
    }
}

/// Reports that `who` commanded the other end of the packet.
fn commanded(out: &mut dyn Sink, who: Subject, (kind, detail): (CommandKind, &'static str)) {
    out.fact(
        who,
        Fact::Command {
            proto: Proto::S7comm,
            kind,
            detail,
        },
    );
}

/// `len` bytes of `p` from `at`, or as many as there are.
fn within(p: &[u8], at: usize, len: u16) -> &[u8] {
    let tail = p.get(at..).unwrap_or_default();
    tail.get(..usize::from(len)).unwrap_or(tail)
}

/// The state change a job function makes; `param` starts at the function.
fn job(function: u8, param: &[u8]) -> Option<(CommandKind, &'static str)> {
    use CommandKind::{Program, Restart, Stop, Write};
    /// Program-invocation services (job 0x28) by name.
    const PI: [(&[u8], CommandKind, &str); 5] = [
        (b"P_PROGRAM", Restart, "PI P_PROGRAM, start (0x28)"),
        (b"_INSE", Program, "PI _INSE, activate block (0x28)"),
        (b"_DELE", Program, "PI _DELE, delete block (0x28)"),
        (b"_GARB", Program, "PI _GARB, compress memory (0x28)"),
        (b"_MODU", Program, "PI _MODU, copy RAM to ROM (0x28)"),
    ];
    Some(match function {
        0x05 => (Write, "write variable (0x05)"),
        0x1a => (Program, "request download (0x1a)"),
        0x1b => (Program, "download block (0x1b)"),
        0x1c => (Program, "download ended (0x1c)"),
        0x1d => (Program, "start upload (0x1d)"),
        0x1e => (Program, "upload (0x1e)"),
        0x1f => (Program, "end upload (0x1f)"),
        0x29 => (Stop, "PLC stop (0x29)"),
        // The program-invocation service's name says what it does: start the PLC, or manage blocks.
        0x28 => PI
            .into_iter()
            .find(|(name, ..)| param.windows(name.len()).any(|w| w == *name))
            .map_or((Restart, "PI service (0x28)"), |(_, kind, detail)| {
                (kind, detail)
            }),
        _ => return None,
    })
}

/// Reads an SZL response's records: module identification (0x0011) and component identification (0x001c).
fn szl(data: &[u8], out: &mut dyn Sink) {
    // Return code 0xff (success), transport size, length; then the list's id, index, record size and count.
    let [0xff, _, _, _, i0, i1, _, _, r0, r1, c0, c1, records @ ..] = data else {
        return;
    };
    let id = u16::from_be_bytes([*i0, *i1]);
    let size = match id {
        0x0011 | 0x0111 => 28,
        0x001c | 0x011c => 34,
        _ => return,
    };
    // A long list comes in fragments; only the first starts with this header, and the others fail this check.
    if usize::from(u16::from_be_bytes([*r0, *r1])) != size {
        return;
    }
    let count = usize::from(u16::from_be_bytes([*c0, *c1]));
    for record in records.chunks_exact(size).take(count) {
        match (id & 0xff, record) {
            // Order number ("MLFB") of the module, then module type, hardware and firmware versions.
            (0x11, [0, 1, mlfb @ ..]) => emit(out, Fact::Model, mlfb.get(..20)),
            // The firmware record keeps "V" and three version bytes where the others keep version numbers.
            (0x11, [0, 7, .., b'V', major, minor, patch]) => {
                let mut buf = [0; 16];
                if let Some(v) = format_into(&mut buf, format_args!("V{major}.{minor}.{patch}")) {
                    out.fact(Subject::Src, Fact::Firmware(Source::S7, v));
                }
            }
            (0x1c, [0, 1, name @ ..]) => emit(out, Fact::Hostname, Some(name)),
            (0x1c, [0, 5, serial @ ..]) => emit(out, Fact::Serial, Some(serial)),
            (0x1c, [0, 7, type_name @ ..]) => emit(out, Fact::Model, Some(type_name)),
            _ => {}
        }
    }
}

/// Reports a text field of a response about its sender, if it holds text.
fn emit<'a>(out: &mut dyn Sink, fact: fn(Source, &'a str) -> Fact<'a>, field: Option<&'a [u8]>) {
    if let Some(text) = field.and_then(text) {
        out.fact(Subject::Src, fact(Source::S7, text));
    }
}

/// A NUL-padded field's text without surrounding spaces, if it is non-empty printable ASCII.
fn text(field: &[u8]) -> Option<&str> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let text = std::str::from_utf8(field.get(..end)?).ok()?.trim();
    let printable = text.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    (printable && !text.is_empty()).then_some(text)
}

/// Reads an S7comm-plus PDU: version, length, opcode; a response may hold the PLC's identity string.
fn s7comm_plus(p: &[u8], dir: Dir, out: &mut dyn Sink) {
    let [0x72, 0x01 | 0x02 | 0x03 | 0xfe, _, _, opcode, body @ ..] = p else {
        return;
    };
    serve(Proto::S7commPlus, dir, out);
    // 0x32 is a response: the PLC's answer to CreateObject carries "1;6ES7 214-1HE30-0XB0 ;V2.2" as a
    // WString (type 0x15, then its length); the client echoes it later in a request, which is not read.
    if *opcode != 0x32 {
        return;
    }
    let mut rest = body;
    while let Some(at) = rest.iter().position(|&b| b == 0x15) {
        rest = rest.get(at + 1..).unwrap_or_default();
        let [len, string @ ..] = rest else { return };
        if let Some((model, firmware)) = string.get(..usize::from(*len)).and_then(identity) {
            out.fact(Subject::Src, Fact::Model(Source::S7, model));
            out.fact(Subject::Src, Fact::Firmware(Source::S7, firmware));
            return;
        }
    }
}

/// The order number and firmware of an "n;order number;Vx.y" identity string.
fn identity(string: &[u8]) -> Option<(&str, &str)> {
    let string = std::str::from_utf8(string).ok()?;
    if !string.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return None;
    }
    let mut parts = string.split(';');
    let (Some(_), Some(model), Some(firmware), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let (model, firmware) = (model.trim(), firmware.trim());
    (!model.is_empty() && firmware.starts_with('V')).then_some((model, firmware))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::segments;

    fn run(name: &str) -> Collect {
        crate::testutil::dissect_port(name, 102, dissect)
    }

    fn about(c: &Collect, who: Subject, fact: &str) -> bool {
        c.0.iter().any(|(w, f)| *w == who && f == fact)
    }

    fn one(payload: &[u8]) -> Collect {
        let mut c = Collect::default();
        dissect(payload, Dir::ToServer, &mut c);
        c
    }

    #[test]
    fn iti_s7_status_as_tshark_shows() {
        // tshark -V: the PLC 192.168.1.40 answers SZL 0x0111/0x0011 with MlfB "6ES7 151-8AB01-0AB0 " (index 1)
        // and, for index 7 (basic firmware), Ausbg 22019 and Ausbe 518, i.e. bytes 'V' 3 2 6; SZL 0x001c
        // with the PLC name "IM151-8-CPU" (index 1), serial "S C-C6TW74882012" (5) and module type name
        // "IM151-8 PN/DP CPU" (7). Only userdata and setup communication: no job changes anything.
        let c = run("iti_s7_status.pcap");
        for fact in [
            r#"Model(S7, "6ES7 151-8AB01-0AB0")"#,
            r#"Firmware(S7, "V3.2.6")"#,
            r#"Hostname(S7, "IM151-8-CPU")"#,
            r#"Serial(S7, "S C-C6TW74882012")"#,
            r#"Model(S7, "IM151-8 PN/DP CPU")"#,
            "Serves(S7comm)",
            "Serves(Cotp)",
        ] {
            assert!(about(&c, Subject::Src, fact), "{fact}: {c:?}");
        }
        assert!(
            about(&c, Subject::Dst, "Serves(S7comm)") && about(&c, Subject::Src, "Uses(S7comm)")
        );
        assert!(!c.has("Command") && !c.has("S7commPlus") && !c.has("Mms"));
        // The second fragment of SZL 0x001c (frame 72) holds the memory card's serial, which is not read.
        assert!(!c.has("MMC 2900FC1A"));
    }

    #[test]
    fn s7_1200_identity_from_session_setup() {
        // tshark 4.0 does not dissect S7comm-plus; its hex shows COTP CR/CC with TSAP "SIMATIC-ROOT-ES", then
        // protocol 0x72, and the PLC's CreateObject response (frame 8) holding the WString
        // "1;6ES7 214-1HE30-0XB0 ;V2.2". The client's SetMultiVariables (frame 10) echoes it without the space.
        let c = run("iti_s7_1200.pcap");
        assert!(
            about(&c, Subject::Src, r#"Model(S7, "6ES7 214-1HE30-0XB0")"#),
            "{c:?}"
        );
        assert!(about(&c, Subject::Src, r#"Firmware(S7, "V2.2")"#));
        assert_eq!(
            c.0.iter().filter(|(_, f)| f.starts_with("Model")).count(),
            1
        );
        assert!(
            about(&c, Subject::Dst, "Serves(S7commPlus)")
                && about(&c, Subject::Src, "Uses(S7commPlus)")
        );
        assert!(c.has("Serves(Cotp)") && !c.has("Serves(S7comm)"));
    }

    #[test]
    fn s7comm_plus_and_mms_elsewhere() {
        // tshark -z conv,tcp: z_modbusBig also holds two tcp/102 conversations, COTP DT opening with 0x72.
        let c = run("z_modbusBig.pcap");
        assert!(
            about(&c, Subject::Src, "Serves(S7commPlus)")
                && about(&c, Subject::Dst, "Serves(S7commPlus)")
        );
        assert!(!c.has("Serves(S7comm)") && !c.has("Model"));
        // tshark: MMS (with session and presentation) between 102 and 1069/1072/1083/1345, COTP CR/CC from 1345.
        let c = run("iti_mms_goose.pcap");
        assert!(about(&c, Subject::Src, "Serves(Mms)") && about(&c, Subject::Dst, "Serves(Mms)"));
        assert!(c.has("Serves(Cotp)") && !c.has("S7comm"));
        // tshark: only COTP CR and CC to tcp/102 in the Profinet capture.
        let c = run("iti_pn_failed.pcap");
        assert!(about(&c, Subject::Dst, "Serves(Cotp)") && about(&c, Subject::Src, "Serves(Cotp)"));
        assert!(c.0.iter().all(|(_, f)| f.ends_with("(Cotp)")));
    }

    #[test]
    fn jobs_that_change_the_plc() {
        // TPKT + COTP DT, then an S7comm job header with the given parameter.
        fn job_pdu(param: &[u8]) -> Vec<u8> {
            let mut s7 = vec![0x32, 1, 0, 0, 0, 1, 0, param.len() as u8, 0, 0];
            s7.extend(param);
            let len = (s7.len() + 7) as u16;
            [&[3, 0][..], &len.to_be_bytes(), &[2, 0xf0, 0x80], &s7].concat()
        }
        let write = job_pdu(&[0x05, 1, 0x12, 0x0a, 0x10, 2, 0, 1, 0, 1, 0x84, 0, 0, 0]);
        assert!(looks_like(&write));
        let c = one(&write);
        assert!(about(
            &c,
            Subject::Src,
            r#"Command { proto: S7comm, kind: Write, detail: "write variable (0x05)" }"#
        ));
        let stop = job_pdu(&[
            0x29, 0, 0, 0, 0, 0, 9, b'P', b'_', b'P', b'R', b'O', b'G', b'R', b'A', b'M',
        ]);
        assert!(one(&stop).has("kind: Stop"));
        let start = job_pdu(&[
            0x28, 0, 0, 0, 0, 0, 0, 0xfd, 0, 0, 9, b'P', b'_', b'P', b'R', b'O', b'G', b'R', b'A',
            b'M',
        ]);
        assert!(one(&start).has(r#"kind: Restart, detail: "PI P_PROGRAM, start (0x28)""#));
        let insert = job_pdu(&[
            0x28, 0, 0, 0, 0, 0, 0, 0xfd, 0, 4, b'0', b'8', b'0', b'1', 5, b'_', b'I', b'N', b'S',
            b'E',
        ]);
        assert!(one(&insert).has("kind: Program"));
        assert!(one(&job_pdu(&[0x1a, 0, 1, 0, 0, 0, 0, 0, 9])).has("request download (0x1a)"));
        assert!(
            !one(&job_pdu(&[
                0x04, 1, 0x12, 0x0a, 0x10, 2, 0, 1, 0, 1, 0x84, 0, 0, 0
            ]))
            .has("Command")
        );
        // Set clock: userdata request, group 7 (time), subfunction 2.
        let mut clock = vec![
            3, 0, 0, 0x1d, 2, 0xf0, 0x80, 0x32, 7, 0, 0, 0, 1, 0, 8, 0, 0,
        ];
        clock.extend([0x00, 0x01, 0x12, 0x04, 0x11, 0x47, 0x02, 0x00]);
        assert!(one(&clock).has("SetTime"));
        // Two PDUs in one segment: both read.
        assert_eq!(
            one(&[write.as_slice(), &stop].concat())
                .0
                .iter()
                .filter(|(_, f)| f.starts_with("Command"))
                .count(),
            2
        );
    }

    #[test]
    fn looks_like_iso_on_tcp_only() {
        for name in [
            "iti_s7_status.pcap",
            "iti_s7_1200.pcap",
            "iti_mms_goose.pcap",
            "iti_pn_failed.pcap",
        ] {
            for s in segments(name) {
                let iso = (s.dport == 102 || s.sport == 102) && s.payload.starts_with(&[3, 0]);
                assert_eq!(looks_like(&s.payload), iso, "{name}: {:02x?}", s.payload);
            }
        }
        for name in [
            "iti_modbus1.pcap",
            "iti_dnp3_1.pcap",
            "iti_enip_test.pcap",
            "iti_iec104.pcap",
            "iti_opcua.pcap",
            "z_http_get.pcap",
            "z_tls_chrome.pcap",
        ] {
            assert!(
                segments(name).iter().all(|s| !looks_like(&s.payload)),
                "{name}"
            );
        }
    }

    #[test]
    fn survives_truncation_and_hostile_input() {
        for name in [
            "iti_s7_status.pcap",
            "iti_s7_1200.pcap",
            "iti_mms_goose.pcap",
        ] {
            for s in segments(name) {
                for n in 0..=s.payload.len() {
                    looks_like(&s.payload[..n]);
                    dissect(&s.payload[..n], Dir::ToClient, &mut Collect::default());
                }
            }
        }
        let szl_header = [
            3, 0, 0, 0x29, 2, 0xf0, 0x80, 0x32, 7, 0, 0, 0, 1, 0, 0x0c, 0xff, 0xff,
        ];
        let param = [0x00, 0x01, 0x12, 0x08, 0x12, 0x84, 0x01, 0x01, 0, 0, 0, 0];
        // An SZL claiming 65535 records of 28 bytes, with half a record.
        let data = [
            0xff, 0x09, 0xff, 0xff, 0x00, 0x11, 0, 0, 0, 28, 0xff, 0xff, 0, 1, b'6', b'E', b'S',
        ];
        let huge = [&szl_header[..], &param, &data].concat();
        assert!(!one(&huge).has("Model"));
        for bad in [
            &[3, 0, 0, 0][..],
            &[3, 0, 0, 7, 0xff, 0xf0, 0x80],
            &[
                3, 0, 0xff, 0xff, 2, 0xf0, 0x80, 0x32, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x29,
            ],
            &[
                3, 0, 0, 11, 2, 0xf0, 0x80, 0x72, 0x01, 0, 0, 0x32, 0x15, 0xff, b'1', b';',
            ],
            &[3, 0, 0, 7, 2, 0xf0, 0x80, 3, 0, 0, 7, 2, 0xf0, 0x80],
            &huge[..huge.len() - 1],
        ] {
            one(bad);
        }
        assert!(
            one(&[
                3, 0, 0xff, 0xff, 2, 0xf0, 0x80, 0x32, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0x29
            ])
            .has("Stop")
        );
    }
}
