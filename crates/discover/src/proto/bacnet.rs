//! BACnet/IP (udp/47808): building controllers announce themselves with I-Am and answer ReadProperty with
//! their name, vendor, model and firmware; operator workstations send writes and device-control commands.
//!
//! Both sides use port 47808, so who serves is read from the message itself (a request, an answer, an
//! announcement), not from the direction the caller guessed from ports.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink, Source, Subject};

use super::trimmed as text;

/// The device object type; only its properties describe the host itself.
const DEVICE: u32 = 8;

/// Whether a UDP payload starts like a BACnet/IP (BVLC) message.
pub fn looks_like(payload: &[u8]) -> bool {
    let [0x81, function @ 0..=0x0c, l0, l1, rest @ ..] = payload else {
        return false;
    };
    // The BVLC length covers the whole datagram; an NPDU, where one follows, starts with version 1.
    usize::from(u16::from_be_bytes([*l0, *l1])) == payload.len()
        && match function {
            0x04 => rest.get(6) == Some(&1),
            0x09..=0x0b => rest.first() == Some(&1),
            _ => true,
        }
}

/// Which way a datagram travels by its own header: BVLC results and table answers come from the BBMD (the
/// server) and the other control messages go to it; a confirmed request and the unconfirmed Who-Is, Who-Has,
/// time synchronisations and WriteGroup come from the client; Simple-, Complex-ACK, Error, Reject, and the
/// unconfirmed I-Am, I-Have and notifications from the device (the server); Segment-ACK and Abort say in their
/// lowest bit whether the server sent them. Network-layer, routed and forwarded messages say nothing of the
/// sender itself.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    let (to_server, to_client) = (Some(Dir::ToServer), Some(Dir::ToClient));
    let [0x81, function, _, _, npdu @ ..] = payload else {
        return None;
    };
    match function {
        0x00 | 0x03 | 0x07 => return to_client,
        0x01 | 0x02 | 0x05 | 0x06 | 0x08 => return to_server,
        0x09..=0x0b => {}
        _ => return None,
    }
    let [1, control, rest @ ..] = npdu else {
        return None;
    };
    let (apdu, routed) = skip_addresses(*control, rest)?;
    if control & 0x80 != 0 || routed {
        return None;
    }
    let first = *apdu.first()?;
    match first >> 4 {
        0 => to_server,
        1 => match apdu.get(1)? {
            0..=3 => to_client,
            6..=10 => to_server,
            _ => None,
        },
        2 | 3 | 5 | 6 => to_client,
        4 | 7 if first & 1 != 0 => to_client,
        4 | 7 => to_server,
        _ => None,
    }
}

/// Reads one BACnet/IP datagram and reports who serves, the device's identity and any commands sent.
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let [0x81, function, l0, l1, rest @ ..] = payload else {
        return;
    };
    let Some(body) = usize::from(u16::from_be_bytes([*l0, *l1]))
        .checked_sub(4)
        .and_then(|n| rest.get(..n))
    else {
        return;
    };
    let roles = |out: &mut dyn Sink, server: Subject, client: Subject| {
        out.fact(server, Fact::Serves(Proto::Bacnet));
        out.fact(client, Fact::Uses(Proto::Bacnet));
    };
    // A BBMD forwards other devices' broadcasts, with the originator's address in front.
    let (npdu, forwarded) = match function {
        0x04 => (body.get(6..).unwrap_or_default(), true),
        0x09..=0x0b => (body, false),
        // BVLC-Result and table reads' answers come from the BBMD; the other control messages go to it.
        0x00 | 0x03 | 0x07 => return roles(out, Subject::Src, Subject::Dst),
        0x01 | 0x02 | 0x05 | 0x06 | 0x08 => return roles(out, Subject::Dst, Subject::Src),
        0x0c => return roles(out, dir.server(), dir.client()),
        _ => return,
    };
    let [1, control, rest @ ..] = npdu else {
        return;
    };
    let Some((apdu, routed)) = skip_addresses(*control, rest) else {
        return;
    };
    // Identity and commands of a routed or forwarded message belong to a device behind the sender.
    let remote = forwarded || routed;
    if control & 0x80 != 0 || remote {
        // Network-layer messages come from routers; a router or BBMD passing others' traffic serves BACnet.
        return out.fact(Subject::Src, Fact::Serves(Proto::Bacnet));
    }
    let Some(&first) = apdu.first() else { return };
    match first >> 4 {
        // Confirmed request: type/flags, max segments/APDU, invoke id, (sequence, window), service.
        0 => {
            roles(out, Subject::Dst, Subject::Src);
            let header = if first & 0x08 != 0 { 5 } else { 3 };
            if let Some((&service, params)) = apdu.get(header..).and_then(<[u8]>::split_first) {
                confirmed(service, params, out);
            }
        }
        1 => match apdu.get(1..) {
            Some([0, params @ ..]) => {
                out.fact(Subject::Src, Fact::Serves(Proto::Bacnet));
                i_am(params, out);
            }
            // I-Have, COV and event notifications are sent by the device holding the objects.
            Some([1..=3, ..]) => out.fact(Subject::Src, Fact::Serves(Proto::Bacnet)),
            // Who-Has, Who-Is.
            Some([7 | 8, ..]) => out.fact(Subject::Src, Fact::Uses(Proto::Bacnet)),
            Some([service @ (6 | 9 | 10), ..]) => {
                out.fact(Subject::Src, Fact::Uses(Proto::Bacnet));
                let (kind, detail) = match service {
                    6 => (CommandKind::SetTime, "TimeSynchronization (6)"),
                    9 => (CommandKind::SetTime, "UTCTimeSynchronization (9)"),
                    _ => (CommandKind::Write, "WriteGroup (10)"),
                };
                out.fact(
                    Subject::Src,
                    Fact::Command {
                        proto: Proto::Bacnet,
                        kind,
                        detail,
                    },
                );
            }
            Some([_, ..]) => roles(out, dir.server(), dir.client()),
            _ => {}
        },
        // Simple-ACK, Complex-ACK, Error, Reject answer a request.
        2 | 3 | 5 | 6 => {
            roles(out, Subject::Src, Subject::Dst);
            // An unsegmented Complex-ACK: type/flags, invoke id, service.
            if let [0x30, _, 12, params @ ..] = apdu {
                read_property_ack(params, out);
            }
        }
        // Segment-ACK and Abort say in their lowest bit whether the server sent them.
        4 | 7 if first & 1 != 0 => roles(out, Subject::Src, Subject::Dst),
        4 | 7 => roles(out, Subject::Dst, Subject::Src),
        _ => {}
    }
}

/// Skips the NPDU's destination and source addresses and hop count; returns the rest and whether a source
/// network is named (the message was routed from another BACnet network).
fn skip_addresses(control: u8, mut rest: &[u8]) -> Option<(&[u8], bool)> {
    // DNET and SNET are each a 2-byte network number, an address length and the address.
    for bit in [0x20, 0x08] {
        if control & bit != 0 {
            let [_, _, len, tail @ ..] = rest else {
                return None;
            };
            rest = tail.get(usize::from(*len)..)?;
        }
    }
    if control & 0x20 != 0 {
        rest = rest.get(1..)?;
    }
    Some((rest, control & 0x08 != 0))
}

/// Reports a confirmed service that changes the device it is sent to.
fn confirmed(service: u8, params: &[u8], out: &mut dyn Sink) {
    let (kind, detail) = match service {
        7 => (CommandKind::Program, "AtomicWriteFile (7)"),
        8 => (CommandKind::Write, "AddListElement (8)"),
        9 => (CommandKind::Write, "RemoveListElement (9)"),
        10 => (CommandKind::Program, "CreateObject (10)"),
        11 => (CommandKind::Program, "DeleteObject (11)"),
        15 => (CommandKind::Write, "WriteProperty (15)"),
        16 => (CommandKind::Write, "WritePropertyMultiple (16)"),
        17 => {
            // An optional duration [0], then enable-disable [1]: 0 enables, 1 and 2 silence the device.
            let after_duration = match params {
                [0x09, rest @ ..] => rest.get(1..),
                [0x0a, rest @ ..] => rest.get(2..),
                other => Some(other),
            };
            match after_duration {
                Some([0x19, 0, ..]) => (
                    CommandKind::Restart,
                    "DeviceCommunicationControl enable (17)",
                ),
                _ => (CommandKind::Stop, "DeviceCommunicationControl (17)"),
            }
        }
        20 => (CommandKind::Restart, "ReinitializeDevice (20)"),
        _ => return,
    };
    out.fact(
        Subject::Src,
        Fact::Command {
            proto: Proto::Bacnet,
            kind,
            detail,
        },
    );
}

/// Reads an I-Am: device object identifier, max APDU, segmentation, vendor id (all application-tagged).
fn i_am(params: &[u8], out: &mut dyn Sink) {
    let [0xc4, o0, o1, o2, o3, rest @ ..] = params else {
        return;
    };
    let object = u32::from_be_bytes([*o0, *o1, *o2, *o3]);
    if object >> 22 != DEVICE {
        return;
    }
    out.fact(Subject::Src, Fact::BacnetInstance(object & 0x3f_ffff));
    // Max APDU length accepted (unsigned), segmentation supported (enumerated, one byte), vendor id.
    let Some(rest) = unsigned(rest).map(|(_, r)| r) else {
        return;
    };
    let [0x91, _, rest @ ..] = rest else { return };
    if let Some((vendor, _)) = unsigned(rest) {
        out.fact(Subject::Src, Fact::VendorId(Source::Bacnet, vendor));
    }
}

/// Reads a ReadProperty-ACK of a device object: object id [0], property id [1], optional index [2], value [3].
fn read_property_ack(params: &[u8], out: &mut dyn Sink) {
    let [0x0c, o0, o1, o2, o3, rest @ ..] = params else {
        return;
    };
    if u32::from_be_bytes([*o0, *o1, *o2, *o3]) >> 22 != DEVICE {
        return;
    }
    let (property, rest) = match rest {
        [0x19, p, rest @ ..] => (u16::from(*p), rest),
        [0x1a, p0, p1, rest @ ..] => (u16::from_be_bytes([*p0, *p1]), rest),
        _ => return,
    };
    let rest = match rest {
        [0x29, _, rest @ ..] => rest,
        [0x2a, _, _, rest @ ..] => rest,
        _ => rest,
    };
    let [0x3e, value @ ..] = rest else { return };
    match (property, value) {
        // object-identifier: the instance, even when the request asked for the wildcard 4194303.
        (75, [0xc4, o0, o1, o2, o3, ..]) => {
            let object = u32::from_be_bytes([*o0, *o1, *o2, *o3]);
            if object >> 22 == DEVICE {
                out.fact(Subject::Src, Fact::BacnetInstance(object & 0x3f_ffff));
            }
        }
        (120, _) => {
            if let Some((vendor, _)) = unsigned(value) {
                out.fact(Subject::Src, Fact::VendorId(Source::Bacnet, vendor));
            }
        }
        (77 | 121 | 70 | 44 | 12, _) => character_string(property, value, out),
        _ => {}
    }
}

/// An application-tagged unsigned integer of one to four bytes, and what follows it.
fn unsigned(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let len = usize::from(tag & 0x07);
    if tag & 0xf8 != 0x20 || !(1..=4).contains(&len) {
        return None;
    }
    let (value, rest) = rest.split_at_checked(len)?;
    Some((value.iter().fold(0, |n, &b| n << 8 | u32::from(b)), rest))
}

/// Reports an application-tagged character string as the fact its property stands for.
fn character_string(property: u16, value: &[u8], out: &mut dyn Sink) {
    let (len, rest) = match value {
        [tag @ 0x71..=0x74, rest @ ..] => (usize::from(tag & 0x07), rest),
        [0x75, len @ 0..=253, rest @ ..] => (usize::from(*len), rest),
        [0x75, 254, l0, l1, rest @ ..] => (usize::from(u16::from_be_bytes([*l0, *l1])), rest),
        _ => return,
    };
    let Some([charset, raw @ ..]) = rest.get(..len) else {
        return;
    };
    // Code unit widths: UTF-8 (0) is read in place; UCS-4 (3), UCS-2 (4) and Latin-1 (5) are re-encoded as
    // UTF-8 on the stack, and a string longer than fits is not a name.
    let width = match charset {
        0 => 0,
        3 => 4,
        4 => 2,
        5 => 1,
        _ => return,
    };
    let mut buf = [0u8; 256];
    let bytes = if width == 0 {
        Some(raw)
    } else {
        transcode(raw, width, &mut buf)
    };
    let Some(s) = bytes.and_then(text) else {
        return;
    };
    let fact = match property {
        77 => Fact::Hostname(Source::Bacnet, s),
        121 => Fact::Vendor(Source::Bacnet, s),
        70 => Fact::Model(Source::Bacnet, s),
        _ => Fact::Firmware(Source::Bacnet, s),
    };
    out.fact(Subject::Src, fact);
}

/// Big-endian code units of `width` bytes re-encoded as UTF-8 into `buf`, if all are characters and fit.
fn transcode<'b>(raw: &[u8], width: usize, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let mut used = 0;
    for unit in raw.chunks(width) {
        let code = unit.iter().fold(0, |n, &b| n << 8 | u32::from(b));
        let c = char::from_u32(code).filter(|_| unit.len() == width)?;
        c.encode_utf8(buf.get_mut(used..used + c.len_utf8())?);
        used += c.len_utf8();
    }
    buf.get(..used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::segments;

    fn run(payload: &[u8]) -> Collect {
        let mut c = Collect::default();
        dissect(payload, Dir::ToServer, &mut c);
        c
    }

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn about(c: &Collect, who: Subject) -> Vec<&str> {
        c.0.iter()
            .filter(|(w, _)| *w == who)
            .map(|(_, f)| f.as_str())
            .collect()
    }

    #[test]
    fn jci_controller_answers_read_property() {
        // tshark -V: 10.1.1.165 answers ReadProperty of device,4194303 with object-identifier device,500,
        // vendor-identifier 5, vendor-name 'JCI', firmware-revision '5.1.0.4400', object-name 'KBRNAE',
        // model-name 'MS-NAE4510-2' (all UCS-2), and an empty application-software-version, description and
        // location; 10.1.1.167 sends the requests, Read-BDT and Register-Foreign-Device.
        let segs = segments("iti_bacnet.pcap");
        assert_eq!(segs.len(), 22);
        let mut device = Collect::default();
        let mut client = Collect::default();
        for s in &segs {
            assert!(!s.tcp && s.sport == 47808 && s.dport == 47808);
            assert!(looks_like(&s.payload), "{:02x?}", s.payload);
            let c = run(&s.payload);
            assert!(!c.0.is_empty());
            for (who, fact) in c.0 {
                let from_device = s.src.to_string() == "10.1.1.165";
                let target = if (who == Subject::Src) == from_device {
                    &mut device
                } else {
                    &mut client
                };
                target.0.push((Subject::Src, fact));
            }
        }
        assert_eq!(
            about(&device, Subject::Src)
                .iter()
                .filter(|f| !f.starts_with("Serves"))
                .count(),
            6,
            "{:?}",
            device.0
        );
        assert!(device.has("Serves(Bacnet)") && !device.has("Uses(Bacnet)"));
        assert!(device.has("BacnetInstance(500)"));
        assert!(device.has("VendorId(Bacnet, 5)"));
        assert!(device.has(r#"Vendor(Bacnet, "JCI")"#));
        assert!(device.has(r#"Firmware(Bacnet, "5.1.0.4400")"#));
        assert!(device.has(r#"Hostname(Bacnet, "KBRNAE")"#));
        assert!(device.has(r#"Model(Bacnet, "MS-NAE4510-2")"#));
        assert!(
            about(&client, Subject::Src)
                .iter()
                .all(|f| *f == "Uses(Bacnet)")
        );
    }

    // Hand-made datagrams, each decoded by tshark as noted in its test.
    const I_AM: &str = "81 0b 00 18 01 20 ff ff 00 ff 10 00 c4 02 00 01 f4 22 05 c4 91 00 21 05";
    const WHO_IS: &str = "81 0b 00 0c 01 20 ff ff 00 ff 10 08";
    const WRITE: &str =
        "81 0a 00 1a 01 04 00 05 01 0f 0c 00 00 00 01 19 55 3e 44 42 28 00 00 3f 49 10";
    const REINIT: &str = "81 0a 00 0c 01 04 00 05 02 14 09 01";
    const DCC_DISABLE: &str = "81 0a 00 0c 01 04 00 05 03 11 19 01";
    const DCC_ENABLE: &str = "81 0a 00 0c 01 04 00 05 03 11 19 00";
    const FILE_WRITE: &str =
        "81 0a 00 18 01 04 00 05 04 07 c4 02 80 00 01 0e 31 00 65 03 01 02 03 0f";
    const TIME_SYNC: &str = "81 0b 00 16 01 20 ff ff 00 ff 16 06 a4 7a 0b 1b 05 b4 0c 1e 00 00";
    const ROUTED_I_AM: &str =
        "81 0a 00 18 01 08 00 05 01 0a 10 00 c4 02 00 00 07 22 01 e0 91 03 21 2a";
    const FORWARDED_I_AM: &str =
        "81 04 00 1e c0 a8 01 0a ba c0 01 20 ff ff 00 ff 10 00 c4 02 00 00 07 22 01 e0 91 03 21 2a";
    const NAME_UTF8: &str =
        "81 0a 00 1a 01 00 30 01 0c 0c 02 00 01 f4 19 4d 3e 75 06 00 41 48 55 2d 31 3f";

    #[test]
    fn announcements() {
        // tshark: "i-Am device,500", vendor id Johnson Controls (5), sent to DNET 0xffff (global broadcast).
        let c = run(&hex(I_AM));
        assert_eq!(
            about(&c, Subject::Src),
            [
                "Serves(Bacnet)",
                "BacnetInstance(500)",
                "VendorId(Bacnet, 5)"
            ]
        );
        assert!(
            about(&c, Subject::Dst).is_empty(),
            "nothing about the broadcast address"
        );
        // tshark: "who-Is".
        assert_eq!(c_src(WHO_IS), ["Uses(Bacnet)"]);
        // tshark: "i-Am device,7" vendor 42 from SNET 5 / SADR 10, and forwarded by a BBMD for 192.168.1.10:
        // the device is not the sender.
        assert_eq!(c_src(ROUTED_I_AM), ["Serves(Bacnet)"]);
        assert_eq!(c_src(FORWARDED_I_AM), ["Serves(Bacnet)"]);
        // tshark: "Complex-ACK readProperty device,500 object-name", "AHU-1" in UTF-8 (character set 0).
        assert!(run(&hex(NAME_UTF8)).has(r#"Hostname(Bacnet, "AHU-1")"#));
    }

    fn c_src(h: &str) -> Vec<String> {
        run(&hex(h))
            .0
            .into_iter()
            .filter(|(w, _)| *w == Subject::Src)
            .map(|(_, f)| f)
            .collect()
    }

    #[test]
    fn commands() {
        // tshark: writeProperty analog-input,1 present-value; reinitializeDevice warmstart;
        // deviceCommunicationControl disable (1) and enable (0); atomicWriteFile file,1; timeSynchronization.
        for (h, kind, detail) in [
            (WRITE, "Write", "WriteProperty (15)"),
            (REINIT, "Restart", "ReinitializeDevice (20)"),
            (DCC_DISABLE, "Stop", "DeviceCommunicationControl (17)"),
            (
                DCC_ENABLE,
                "Restart",
                "DeviceCommunicationControl enable (17)",
            ),
            (FILE_WRITE, "Program", "AtomicWriteFile (7)"),
            (TIME_SYNC, "SetTime", "TimeSynchronization (6)"),
        ] {
            let c = run(&hex(h));
            let want = format!(r#"Command {{ proto: Bacnet, kind: {kind}, detail: "{detail}" }}"#);
            assert!(
                about(&c, Subject::Src).contains(&want.as_str()),
                "{h}: {:?}",
                c.0
            );
            assert!(about(&c, Subject::Src).contains(&"Uses(Bacnet)"));
        }
        assert_eq!(about(&run(&hex(WRITE)), Subject::Dst), ["Serves(Bacnet)"]);
    }

    #[test]
    fn looks_like_only_bacnet() {
        for h in [I_AM, WHO_IS, WRITE, FORWARDED_I_AM, NAME_UTF8] {
            assert!(looks_like(&hex(h)));
        }
        for name in [
            "iti_opcua.pcap",
            "z_snmp.pcap",
            "z_dhcp.pcap",
            "z_mdns.pcap",
            "iti_dnp3_1.pcap",
        ] {
            for s in segments(name) {
                assert!(!looks_like(&s.payload), "{name}: {:02x?}", s.payload);
            }
        }
        // A length that disagrees with the datagram's, an unknown function, an NPDU version other than 1.
        assert!(!looks_like(&hex("81 0b 00 0d 01 20 ff ff 00 ff 10 08")));
        assert!(!looks_like(&hex("81 0d 00 04")));
        assert!(!looks_like(&hex("81 0b 00 0c 02 20 ff ff 00 ff 10 08")));
    }

    #[test]
    fn survives_truncation_and_hostile_input() {
        let mut all: Vec<Vec<u8>> = segments("iti_bacnet.pcap")
            .into_iter()
            .map(|s| s.payload)
            .collect();
        all.extend(
            [
                I_AM,
                WHO_IS,
                WRITE,
                REINIT,
                DCC_DISABLE,
                FILE_WRITE,
                TIME_SYNC,
                ROUTED_I_AM,
                FORWARDED_I_AM,
            ]
            .map(hex),
        );
        for p in &all {
            for n in 0..=p.len() {
                run(&p[..n]);
                // The BVLC length follows the cut, so the inner parsers see every prefix too.
                let mut cut = p[..n].to_vec();
                if let Some(len) = cut.get_mut(2..4) {
                    len.copy_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
                }
                run(&cut);
            }
        }
        for h in [
            "81 0a ff ff 01 00 30 01 0c",
            "81 0a 00 02",
            "81 0a 00 08 01 28 00 05 ff 00",
            "81 0a 00 0a 01 20 00 05 ff 00",
            "81 0a 00 0e 01 00 30 01 0c 0c 02 00 01 f4",
            "81 0a 00 14 01 00 30 01 0c 0c 02 00 01 f4 19 4d 3e 75 fe ff",
            "81 0a 00 14 01 00 30 01 0c 0c 02 00 01 f4 19 4d 3e 75 05 04 00 41 d8 00",
            "81 0a 00 12 01 00 30 01 0c 0c 02 00 01 f4 19 4d 3e 72 04 ff",
            "81 0a 00 0d 01 00 10 00 c4 02 00 01 f4",
            "81 0a 00 10 01 00 10 00 c4 02 00 01 f4 25 00 00",
            "81 04 00 08 00 00 00 00",
        ] {
            let c = run(&hex(h));
            assert!(!c.has("Hostname") && !c.has("VendorId"), "{h}: {:?}", c.0);
        }
        // A UCS-2 name longer than the stack buffer is left out rather than cut.
        let mut long = hex("81 0a 02 19 01 00 30 01 0c 0c 02 00 01 f4 19 4d 3e 75 fe 02 03 04");
        long.extend(std::iter::repeat_n([0x00, 0x41], 257).flatten());
        long.push(0x3f);
        assert_eq!(long.len(), 0x219);
        let c = run(&long);
        assert!(c.has("Serves") && !c.has("Hostname"), "{:?}", c.0);
    }
}
