//! Beckhoff ADS/AMS (TCP 48898) and the TwinCAT router's discovery (UDP 48899): engineering tools and HMIs
//! talk to TwinCAT runtimes by AMS NetId and port; ReadDeviceInfo names the runtime, WriteControl switches it
//! between RUN, STOP and CONFIG.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink, Source, Subject};

use super::{format_into, trimmed};

/// AMS/TCP header (reserved, length) and the AMS header.
const TCP_HEADER: usize = 6;
const AMS_HEADER: usize = 32;
/// The state flag of a response.
const RESPONSE: u16 = 0x0001;
/// The state flag every ADS command carries.
const ADS_COMMAND: u16 = 0x0004;

/// The AMS header fields discovery reads, with the ADS data.
struct Ams<'a> {
    source: [u8; 6],
    command: u16,
    flags: u16,
    data: &'a [u8],
}

fn le16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn le32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}

/// An AMS/TCP packet: reserved zero, a length that holds the AMS header and agrees with its data length, a
/// defined command (0–9) and the ADS command flag.
fn ams(payload: &[u8]) -> Option<Ams<'_>> {
    let [0, 0, ..] = payload else {
        return None;
    };
    let len = usize::try_from(le32(payload, 2)?).ok()?;
    let h = payload.get(TCP_HEADER..TCP_HEADER + AMS_HEADER)?;
    let command = le16(h, 16)?;
    let flags = le16(h, 18)?;
    let data_len = usize::try_from(le32(h, 20)?).ok()?;
    if command > 9 || flags & ADS_COMMAND == 0 || len != AMS_HEADER + data_len {
        return None;
    }
    let mut source = [0u8; 6];
    source.copy_from_slice(h.get(8..14)?);
    let data = payload.get(TCP_HEADER + AMS_HEADER..).unwrap_or_default();
    Some(Ams {
        source,
        command,
        flags,
        data: data.get(..data_len).unwrap_or(data),
    })
}

/// The discovery magic of the TwinCAT router (UDP 48899).
const DISCOVERY_MAGIC: [u8; 4] = [0x03, 0x66, 0x14, 0x71];

/// Whether a payload is an AMS/TCP packet or a TwinCAT router discovery datagram.
pub fn looks_like(payload: &[u8]) -> bool {
    ams(payload).is_some() || payload.starts_with(&DISCOVERY_MAGIC)
}

/// A request goes to the server, a response (state flag 0x0001) back; discovery answers carry 0x80 in the
/// service id's top byte.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    if let Some(a) = ams(payload) {
        return Some(if a.flags & RESPONSE != 0 {
            Dir::ToClient
        } else {
            Dir::ToServer
        });
    }
    match payload {
        [0x03, 0x66, 0x14, 0x71, _, _, _, _, _, _, _, 0x80, ..] => Some(Dir::ToClient),
        [0x03, 0x66, 0x14, 0x71, _, _, _, _, _, _, _, 0x00, ..] => Some(Dir::ToServer),
        _ => None,
    }
}

/// Reads one AMS/TCP packet or discovery datagram.
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let Some(dir) = direction(payload).or(looks_like(payload).then_some(dir)) else {
        return;
    };
    out.fact(dir.server(), Fact::Serves(Proto::Ads));
    out.fact(dir.client(), Fact::Uses(Proto::Ads));
    let Some(a) = ams(payload) else {
        if dir == Dir::ToClient {
            discovery_answer(payload, out);
        }
        return;
    };
    net_id(&a.source, Subject::Src, out);
    let response = a.flags & RESPONSE != 0;
    match (a.command, response) {
        // ReadDeviceInfo: result, major, minor, build, then the device name (16 bytes).
        (1, true) => {
            if let (Some(0), Some([major, minor, ..])) = (le32(a.data, 0), a.data.get(4..6)) {
                let mut buf = [0u8; 16];
                let build = le16(a.data, 6).unwrap_or(0);
                if let Some(v) = format_into(&mut buf, format_args!("{major}.{minor}.{build}")) {
                    out.fact(Subject::Src, Fact::Firmware(Source::Ads, v));
                }
                if let Some(name) = a.data.get(8..24).and_then(trimmed) {
                    out.fact(Subject::Src, Fact::Model(Source::Ads, name));
                }
            }
        }
        // Write: index group, offset, length, data. Releasing a symbol handle (0xF006) changes nothing.
        (3, false) if le32(a.data, 0).is_some_and(|g| g != 0xf006) => {
            command(CommandKind::Write, "ADS write", out)
        }
        // WriteControl: the ADS state asked for.
        (5, false) => match le16(a.data, 0) {
            Some(2) => command(CommandKind::Restart, "ADS WriteControl RESET", out),
            Some(4 | 5) => command(CommandKind::Restart, "ADS WriteControl RUN", out),
            Some(6) => command(CommandKind::Stop, "ADS WriteControl STOP", out),
            Some(12) => command(CommandKind::Stop, "ADS WriteControl SHUTDOWN", out),
            Some(15 | 16) => command(CommandKind::Stop, "ADS WriteControl CONFIG", out),
            _ => {}
        },
        _ => {}
    }
}

fn command(kind: CommandKind, detail: &'static str, out: &mut dyn Sink) {
    out.fact(
        Subject::Src,
        Fact::Command {
            proto: Proto::Ads,
            kind,
            detail,
        },
    );
}

/// Reports an AMS NetId (six bytes, shown dotted) as the subject's.
fn net_id(id: &[u8; 6], who: Subject, out: &mut dyn Sink) {
    let mut buf = [0u8; 40];
    let [a, b, c, d, e, f] = id;
    if let Some(s) = format_into(&mut buf, format_args!("AMS NetId {a}.{b}.{c}.{d}.{e}.{f}")) {
        out.fact(who, Fact::Description(Source::Ads, s));
    }
}

/// A discovery answer: magic, invoke id, service id, AMS NetId, AMS port, tag count, then tags (id, length,
/// value; little endian): 5 host name, 3 TwinCAT version (major, minor, build), 4 OS version info.
fn discovery_answer(payload: &[u8], out: &mut dyn Sink) {
    if let Some(id) = payload
        .get(12..18)
        .and_then(|b| <&[u8; 6]>::try_from(b).ok())
    {
        net_id(id, Subject::Src, out);
    }
    let count = le32(payload, 20).unwrap_or(0);
    let mut rest = payload.get(24..).unwrap_or_default();
    for _ in 0..count.min(32) {
        let (Some(tag), Some(len)) = (le16(rest, 0), le16(rest, 2)) else {
            return;
        };
        let Some(value) = rest.get(4..4 + usize::from(len)) else {
            return;
        };
        rest = rest.get(4 + usize::from(len)..).unwrap_or_default();
        match tag {
            5 => {
                if let Some(name) = trimmed(value) {
                    out.fact(Subject::Src, Fact::Hostname(Source::Ads, name));
                }
            }
            3 => {
                if let [major, minor, b0, b1, ..] = value {
                    let build = u16::from_le_bytes([*b0, *b1]);
                    let mut buf = [0u8; 32];
                    if let Some(v) =
                        format_into(&mut buf, format_args!("TwinCAT {major}.{minor}.{build}"))
                    {
                        out.fact(Subject::Src, Fact::Firmware(Source::Ads, v));
                    }
                }
            }
            4 => {
                // OSVERSIONINFO: size, major, minor, build, platform id.
                if let (Some(major), Some(minor), Some(build)) =
                    (le32(value, 4), le32(value, 8), le32(value, 12))
                {
                    let mut buf = [0u8; 48];
                    if let Some(v) =
                        format_into(&mut buf, format_args!("OS {major}.{minor}.{build}"))
                    {
                        out.fact(Subject::Src, Fact::Platform(Source::Ads, v));
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;

    /// An AMS/TCP packet from `source` (port 32905) to `target` (port 851), command `cmd`, flags, `data`.
    fn packet(target: [u8; 6], source: [u8; 6], cmd: u16, flags: u16, data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0];
        v.extend_from_slice(&((AMS_HEADER + data.len()) as u32).to_le_bytes());
        v.extend_from_slice(&target);
        v.extend_from_slice(&851u16.to_le_bytes());
        v.extend_from_slice(&source);
        v.extend_from_slice(&32905u16.to_le_bytes());
        v.extend_from_slice(&cmd.to_le_bytes());
        v.extend_from_slice(&flags.to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&7u32.to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    const PLC: [u8; 6] = [5, 12, 34, 56, 1, 1];
    const PC: [u8; 6] = [192, 168, 1, 20, 1, 1];

    fn device_info() -> Vec<u8> {
        let mut d = vec![0, 0, 0, 0, 3, 1, 0xb8, 0x0f];
        d.extend_from_slice(b"Plc30 App\0\0\0\0\0\0\0");
        packet(PC, PLC, 1, 0x0005, &d)
    }

    fn discovery() -> Vec<u8> {
        let mut v = DISCOVERY_MAGIC.to_vec();
        v.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0x80]);
        v.extend_from_slice(&PLC);
        v.extend_from_slice(&10000u16.to_le_bytes());
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&[5, 0, 10, 0]);
        v.extend_from_slice(b"CX-1A2B3C\0");
        v.extend_from_slice(&[3, 0, 4, 0, 3, 1, 0xb8, 0x0f]);
        v.extend_from_slice(&[4, 0, 20, 0]);
        for w in [148u32, 10, 0, 17763, 2] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v
    }

    fn run(p: &[u8], dir: Dir) -> Collect {
        let mut c = Collect::default();
        dissect(p, dir, &mut c);
        c
    }

    #[test]
    fn device_info_names_the_runtime() {
        let p = device_info();
        assert!(looks_like(&p));
        assert_eq!(direction(&p), Some(Dir::ToClient));
        let c = run(&p, Dir::ToServer);
        assert!(c.0.contains(&(Subject::Src, "Serves(Ads)".into())));
        assert!(c.0.contains(&(Subject::Src, r#"Model(Ads, "Plc30 App")"#.into())));
        assert!(c.0.contains(&(Subject::Src, r#"Firmware(Ads, "3.1.4024")"#.into())));
        assert!(c.0.contains(&(
            Subject::Src,
            r#"Description(Ads, "AMS NetId 5.12.34.56.1.1")"#.into()
        )));
    }

    #[test]
    fn write_control_and_write_are_commands() {
        let stop = packet(PLC, PC, 5, 0x0004, &[6, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(direction(&stop), Some(Dir::ToServer));
        let c = run(&stop, Dir::ToClient);
        assert!(c.0.contains(&(Subject::Src, "Uses(Ads)".into())));
        assert!(c.0.contains(&(
            Subject::Src,
            r#"Command { proto: Ads, kind: Stop, detail: "ADS WriteControl STOP" }"#.into()
        )));
        let run_mode = packet(PLC, PC, 5, 0x0004, &[5, 0, 0, 0, 0, 0, 0, 0]);
        assert!(
            run(&run_mode, Dir::ToServer).has(r#"kind: Restart, detail: "ADS WriteControl RUN""#)
        );
        let mut w = 0x4020u32.to_le_bytes().to_vec();
        w.extend_from_slice(&[0, 0, 0, 0, 2, 0, 0, 0, 1, 0]);
        assert!(run(&packet(PLC, PC, 3, 0x0004, &w), Dir::ToServer).has("ADS write"));
        let mut release = 0xf006u32.to_le_bytes().to_vec();
        release.extend_from_slice(&[0, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0]);
        assert!(!run(&packet(PLC, PC, 3, 0x0004, &release), Dir::ToServer).has("Command"));
        // A read is not a command, nor is a WriteControl response.
        assert!(!run(&packet(PLC, PC, 2, 0x0004, &[0; 12]), Dir::ToServer).has("Command"));
        assert!(!run(&packet(PC, PLC, 5, 0x0005, &[0; 4]), Dir::ToClient).has("Command"));
    }

    #[test]
    fn discovery_answer_names_the_host() {
        let p = discovery();
        assert!(looks_like(&p));
        assert_eq!(direction(&p), Some(Dir::ToClient));
        let c = run(&p, Dir::ToServer);
        assert!(c.0.contains(&(Subject::Src, r#"Hostname(Ads, "CX-1A2B3C")"#.into())));
        assert!(c.0.contains(&(Subject::Src, r#"Firmware(Ads, "TwinCAT 3.1.4024")"#.into())));
        assert!(c.0.contains(&(Subject::Src, r#"Platform(Ads, "OS 10.0.17763")"#.into())));
        assert!(c.has("AMS NetId 5.12.34.56.1.1"));
        let mut req = DISCOVERY_MAGIC.to_vec();
        req.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0]);
        req.extend_from_slice(&PC);
        assert_eq!(direction(&req), Some(Dir::ToServer));
    }

    #[test]
    fn recognition_is_strict() {
        let p = device_info();
        for (i, v) in [(0, 1), (2, 0x20), (22, 10), (24, 0x01)] {
            let mut q = p.clone();
            q[i] = v;
            assert!(!looks_like(&q), "{i}: {q:02x?}");
        }
        assert!(!looks_like(&p[..37]));
    }

    #[test]
    fn survives_truncation_and_hostile_lengths() {
        let mut all = vec![device_info(), discovery(), packet(PLC, PC, 5, 4, &[6, 0])];
        let mut bad = discovery();
        bad[20] = 0xff; // more tags than there are
        all.push(bad);
        let mut bad = discovery();
        bad[26] = 0xff; // a tag longer than the datagram
        all.push(bad);
        crate::testutil::every_prefix(&all, dissect, looks_like, direction);
    }
}
