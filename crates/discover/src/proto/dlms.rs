//! DLMS/COSEM over IP (IEC 62056-47 wrapper, TCP/UDP 4059): electricity, gas and water meters and their head-end
//! systems. The association (AARQ/AARE) names both ends by their system titles; SET and ACTION requests change
//! a meter (clock, disconnect relay, firmware image).

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink, Source};

use super::format_into;

/// The wrapper header: version (always 1), source wPort, destination wPort, APDU length.
const WRAPPER: usize = 8;

/// Whether a payload opens with a DLMS wrapper carrying a whole APDU the dissector knows.
pub fn looks_like(payload: &[u8]) -> bool {
    let Some(([0x00, 0x01, _, _, _, _, l0, l1], apdu)) = payload.split_first_chunk::<WRAPPER>()
    else {
        return false;
    };
    let len = usize::from(u16::from_be_bytes([*l0, *l1]));
    len > 0 && len <= apdu.len() && apdu.first().is_some_and(|t| tag_direction(*t).is_some())
}

/// Which way an APDU travels by its tag: requests come from the client (head-end), responses and
/// notifications (pushed by the meter) from the server.
fn tag_direction(tag: u8) -> Option<Dir> {
    match tag {
        // AARQ, RLRQ, SN read/write, LN get/set/action, their glo-/ded- ciphered forms.
        0x60 | 0x62 | 0x05 | 0x06 | 0xc0 | 0xc1 | 0xc3 | 0xc8 | 0xc9 | 0xcb | 0xd0 | 0xd1
        | 0xd3 => Some(Dir::ToServer),
        // AARE, RLRE, SN responses, data-notification, LN responses and event notification, ciphered forms,
        // confirmed-service-error, exception-response.
        0x61 | 0x63 | 0x0c | 0x0d | 0x0f | 0xc2 | 0xc4 | 0xc5 | 0xc7 | 0xca | 0xcc | 0xcd
        | 0xcf | 0xd2 | 0xd4 | 0xd5 | 0xd7 | 0x0e | 0xd8 => Some(Dir::ToClient),
        _ => None,
    }
}

/// Which way a wrapped APDU travels, by its tag.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    match payload {
        [0x00, 0x01, _, _, _, _, _, _, tag, ..] => tag_direction(*tag),
        _ => None,
    }
}

/// Reads one wrapped APDU (a TCP segment or UDP datagram).
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let Some(([0x00, 0x01, _, _, _, _, l0, l1], rest)) = payload.split_first_chunk::<WRAPPER>()
    else {
        return;
    };
    let len = usize::from(u16::from_be_bytes([*l0, *l1]));
    let apdu = rest.get(..len).unwrap_or(rest);
    let Some(&tag) = apdu.first() else {
        return;
    };
    let dir = tag_direction(tag).unwrap_or(dir);
    out.fact(dir.server(), Fact::Serves(Proto::Dlms));
    out.fact(dir.client(), Fact::Uses(Proto::Dlms));
    match tag {
        // AARQ: calling-AP-title [6] names the client; AARE: responding-AP-title [4] names the meter.
        0x60 => association(apdu, 0xa6, dir, out),
        0x61 => association(apdu, 0xa4, dir, out),
        0xc1 | 0xc3 | 0x06 | 0xc9 | 0xcb | 0xd1 | 0xd3 => command(apdu, dir, out),
        _ => {}
    }
}

/// The components (tag, value) of a BER-encoded ACSE APDU (short and one- or two-byte long lengths).
fn components(apdu: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = ber(apdu.get(1..).unwrap_or_default())
        .map(|(v, _)| v)
        .unwrap_or_default();
    std::iter::from_fn(move || {
        let (&tag, tail) = rest.split_first()?;
        let (value, next) = ber(tail)?;
        rest = next;
        Some((tag, value))
    })
}

/// A BER length and the value it counts, with what follows.
fn ber(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    let (len, rest) = match first {
        0x00..=0x7f => (usize::from(first), rest),
        0x81 => (usize::from(*rest.first()?), rest.get(1..)?),
        0x82 => (
            usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            rest.get(2..)?,
        ),
        _ => return None,
    };
    rest.split_at_checked(len)
}

/// Reports the system title carried in component `title_tag` of an AARQ or AARE, and an AARQ's password.
fn association(apdu: &[u8], title_tag: u8, dir: Dir, out: &mut dyn Sink) {
    let sender = dir.client();
    let sender = if title_tag == 0xa4 {
        dir.server()
    } else {
        sender
    };
    let mut low_level = false;
    let mut password = false;
    for (tag, value) in components(apdu) {
        match (tag, value) {
            // AP-title form 2: an OCTET STRING, the 8-byte system title.
            (t, [0x04, 0x08, title @ ..]) if t == title_tag => system_title(title, sender, out),
            // mechanism-name 2.16.756.5.8.2.1: low level security, a password in clear.
            (0x8b, [0x60, 0x85, 0x74, 0x05, 0x08, 0x02, 0x01]) => low_level = true,
            (0xac, [0x80, ..]) => password = true,
            _ => {}
        }
    }
    if low_level && password {
        out.fact(
            sender,
            Fact::CleartextCredential {
                proto: Proto::Dlms,
                user: None,
            },
        );
    }
}

/// A system title: three FLAG manufacturer letters, then five bytes of manufacturer-specific serial number.
fn system_title(title: &[u8], who: crate::facts::Subject, out: &mut dyn Sink) {
    let Some((flag, serial)) = title.split_first_chunk::<3>() else {
        return;
    };
    let Some(serial) = serial.get(..5) else {
        return;
    };
    if let Ok(flag) = std::str::from_utf8(flag) {
        if flag.bytes().all(|b| b.is_ascii_uppercase()) {
            out.fact(who, Fact::Vendor(Source::Dlms, flag));
        }
    }
    let mut buf = [0u8; 10];
    if let Some(s) = format_into(
        &mut buf,
        format_args!(
            "{:02x}{:02x}{:02x}{:02x}{:02x}",
            serial[0], serial[1], serial[2], serial[3], serial[4]
        ),
    ) {
        out.fact(who, Fact::Serial(Source::Dlms, s));
    }
}

/// Reports a SET, ACTION or write request as the command it is.
fn command(apdu: &[u8], dir: Dir, out: &mut dyn Sink) {
    // Normal LN requests: tag, request type 1, invoke-id-and-priority, class id, OBIS instance (6), attribute
    // or method id.
    let (kind, detail) = match apdu {
        [0xc1, 0x01, _, 0x00, 0x08, _, _, _, _, _, _, 0x02, ..] => {
            (CommandKind::SetTime, "SET clock time (class 8)")
        }
        [0xc3, 0x01, _, 0x00, 0x46, _, _, _, _, _, _, 0x01, ..] => {
            (CommandKind::Stop, "ACTION remote disconnect (class 70)")
        }
        [0xc3, 0x01, _, 0x00, 0x46, _, _, _, _, _, _, 0x02, ..] => {
            (CommandKind::Restart, "ACTION remote reconnect (class 70)")
        }
        [0xc3, 0x01, _, 0x00, 0x12, ..] => {
            (CommandKind::Program, "ACTION image transfer (class 18)")
        }
        [0xc3, 0x01, _, 0x00, 0x08, ..] => (CommandKind::SetTime, "ACTION clock adjust (class 8)"),
        [0xc1, ..] => (CommandKind::Write, "SET-request"),
        [0xc3, ..] => (CommandKind::Program, "ACTION-request"),
        [0x06, ..] => (CommandKind::Write, "writeRequest (SN)"),
        [0xc9 | 0xd1, ..] => (CommandKind::Write, "ciphered SET-request"),
        _ => (CommandKind::Program, "ciphered ACTION-request"),
    };
    out.fact(
        dir.client(),
        Fact::Command {
            proto: Proto::Dlms,
            kind,
            detail,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Collect, Subject};

    /// Wraps an APDU: version 1, client wPort 0x10 (public client), server wPort 1 (management logical device).
    fn wrap(apdu: &[u8]) -> Vec<u8> {
        let mut v = vec![0x00, 0x01, 0x00, 0x10, 0x00, 0x01];
        v.extend_from_slice(&(apdu.len() as u16).to_be_bytes());
        v.extend_from_slice(apdu);
        v
    }

    /// An AARQ as the Green Book's examples build it: LN referencing with ciphering context, calling-AP-title
    /// "LGZ" + 12 34 56 78 9A, low level security with password "s3cretpw", and an xDLMS InitiateRequest.
    pub(crate) fn aarq() -> Vec<u8> {
        let body: &[u8] = &[
            0xa1, 0x09, 0x06, 0x07, 0x60, 0x85, 0x74, 0x05, 0x08, 0x01,
            0x01, // application-context-name
            0xa6, 0x0a, 0x04, 0x08, b'L', b'G', b'Z', 0x12, 0x34, 0x56, 0x78,
            0x9a, // calling-AP-title
            0x8a, 0x02, 0x07, 0x80, // sender-acse-requirements: authentication
            0x8b, 0x07, 0x60, 0x85, 0x74, 0x05, 0x08, 0x02,
            0x01, // mechanism-name: low level security
            0xac, 0x0a, 0x80, 0x08, b's', b'3', b'c', b'r', b'e', b't', b'p',
            b'w', // password
            0xbe, 0x10, 0x04, 0x0e, 0x01, 0x00, 0x00, 0x00, 0x06, 0x5f, 0x1f, 0x04, 0x00, 0x00,
            0x7e, 0x1f, 0x04, 0xb0, // user-information: InitiateRequest
        ];
        let mut a = vec![0x60, body.len() as u8];
        a.extend_from_slice(body);
        a
    }

    /// The meter's AARE: accepted, responding-AP-title "ISK" + 00 01 E2 40 0F.
    pub(crate) fn aare() -> Vec<u8> {
        let body: &[u8] = &[
            0xa1, 0x09, 0x06, 0x07, 0x60, 0x85, 0x74, 0x05, 0x08, 0x01,
            0x01, // application-context-name
            0xa2, 0x03, 0x02, 0x01, 0x00, // result: accepted
            0xa3, 0x05, 0xa1, 0x03, 0x02, 0x01, 0x00, // result-source-diagnostic: null
            0xa4, 0x0a, 0x04, 0x08, b'I', b'S', b'K', 0x00, 0x01, 0xe2, 0x40,
            0x0f, // responding-AP-title
            0xbe, 0x10, 0x04, 0x0e, 0x08, 0x00, 0x06, 0x5f, 0x1f, 0x04, 0x00, 0x00, 0x50, 0x1f,
            0x01, 0xf4, 0x00, 0x07, // user-information: InitiateResponse
        ];
        let mut a = vec![0x61, body.len() as u8];
        a.extend_from_slice(body);
        a
    }

    /// GET-request-normal of the clock's time (class 8, 0.0.1.0.0.255, attribute 2).
    pub(crate) const GET_CLOCK: &[u8] = &[
        0xc0, 0x01, 0xc1, 0x00, 0x08, 0x00, 0x00, 0x01, 0x00, 0x00, 0xff, 0x02, 0x00,
    ];
    /// SET-request-normal of the clock's time with a date-time octet string.
    pub(crate) const SET_CLOCK: &[u8] = &[
        0xc1, 0x01, 0xc1, 0x00, 0x08, 0x00, 0x00, 0x01, 0x00, 0x00, 0xff, 0x02, 0x00, 0x09, 0x0c,
        0x07, 0xea, 0x0c, 0x02, 0x03, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    /// ACTION-request-normal: disconnect control (class 70, 0.0.96.3.10.255) method 1, remote_disconnect.
    pub(crate) const DISCONNECT: &[u8] = &[
        0xc3, 0x01, 0xc1, 0x00, 0x46, 0x00, 0x00, 0x60, 0x03, 0x0a, 0xff, 0x01, 0x01, 0x0f, 0x00,
    ];
    /// GET-response-normal: success, an octet string.
    const GET_RESPONSE: &[u8] = &[0xc4, 0x01, 0xc1, 0x00, 0x09, 0x02, 0x07, 0xea];

    fn run(payload: &[u8], dir: Dir) -> Collect {
        let mut c = Collect::default();
        dissect(payload, dir, &mut c);
        c
    }

    #[test]
    fn association_names_both_ends_by_system_title() {
        let c = run(&wrap(&aarq()), Dir::ToServer);
        assert!(c.0.contains(&(Subject::Src, r#"Vendor(Dlms, "LGZ")"#.into())));
        assert!(c.0.contains(&(Subject::Src, r#"Serial(Dlms, "123456789a")"#.into())));
        assert!(c.0.contains(&(Subject::Src, "Uses(Dlms)".into())));
        assert!(c.has("CleartextCredential { proto: Dlms, user: None }"));
        assert!(!c.has("s3cret"), "the password is never kept");
        let c = run(&wrap(&aare()), Dir::ToClient);
        assert!(c.0.contains(&(Subject::Src, r#"Vendor(Dlms, "ISK")"#.into())));
        assert!(c.0.contains(&(Subject::Src, r#"Serial(Dlms, "0001e2400f")"#.into())));
        assert!(c.0.contains(&(Subject::Src, "Serves(Dlms)".into())));
    }

    #[test]
    fn the_tag_decides_the_direction_whatever_the_ports_say() {
        assert_eq!(direction(&wrap(&aarq())), Some(Dir::ToServer));
        assert_eq!(direction(&wrap(GET_CLOCK)), Some(Dir::ToServer));
        assert_eq!(direction(&wrap(&aare())), Some(Dir::ToClient));
        assert_eq!(direction(&wrap(GET_RESPONSE)), Some(Dir::ToClient));
        // A response handed over as if it went to the server still names the meter as the server.
        let c = run(&wrap(GET_RESPONSE), Dir::ToServer);
        assert!(c.0.contains(&(Subject::Src, "Serves(Dlms)".into())));
        assert!(c.0.contains(&(Subject::Dst, "Uses(Dlms)".into())));
    }

    #[test]
    fn set_and_action_are_commands_get_is_not() {
        assert!(!run(&wrap(GET_CLOCK), Dir::ToServer).has("Command"));
        let c = run(&wrap(SET_CLOCK), Dir::ToServer);
        assert!(c.0.contains(&(
            Subject::Src,
            r#"Command { proto: Dlms, kind: SetTime, detail: "SET clock time (class 8)" }"#.into()
        )));
        let c = run(&wrap(DISCONNECT), Dir::ToServer);
        assert!(c.has(r#"kind: Stop, detail: "ACTION remote disconnect (class 70)""#));
        let set_other = [
            0xc1, 0x01, 0xc1, 0x00, 0x03, 1, 0, 1, 8, 0, 255, 0x03, 0x00, 0x11, 0x01,
        ];
        assert!(run(&wrap(&set_other), Dir::ToServer).has(r#"kind: Write, detail: "SET-request""#));
        assert!(run(&wrap(&[0xcb, 0x10, 0x30]), Dir::ToServer).has("ciphered ACTION-request"));
    }

    #[test]
    fn recognition_is_strict() {
        assert!(looks_like(&wrap(&aarq())));
        assert!(looks_like(&wrap(GET_CLOCK)));
        // Wrong version, unknown tag, length beyond the data, empty APDU.
        let mut v = wrap(GET_CLOCK);
        v[1] = 2;
        assert!(!looks_like(&v));
        assert!(!looks_like(&wrap(&[0x42, 0, 0])));
        let mut v = wrap(GET_CLOCK);
        v[7] += 1;
        assert!(!looks_like(&v));
        assert!(!looks_like(&wrap(&[])));
        assert!(!looks_like(b"GET / HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn survives_truncation_and_hostile_lengths() {
        let mut all = vec![
            wrap(&aarq()),
            wrap(&aare()),
            wrap(GET_CLOCK),
            wrap(SET_CLOCK),
            wrap(DISCONNECT),
        ];
        let mut bad = wrap(&aarq());
        bad[9] = 0x82; // the AARQ's length says two more bytes
        all.push(bad);
        let mut bad = wrap(&aare());
        bad[36] = 0x7f; // a component longer than the APDU
        all.push(bad);
        // The wrapper length too may lie.
        let lying: Vec<Vec<u8>> = all
            .iter()
            .map(|p| {
                let mut q = p.clone();
                q[6] = 0xff;
                q
            })
            .collect();
        all.extend(lying);
        crate::testutil::every_prefix(&all, dissect, looks_like, direction);
    }
}
