//! Profinet IO context management (connectionless DCE/RPC on UDP 34964): an IO controller or supervisor
//! connects to an IO device, reads and writes its records and releases it. The RPC object UUID names the
//! device (vendor and device id); a Connect names the controller; an I&M0 record read names the product.

use crate::facts::{CommandKind, Dir, Fact, Proto, Sink, Source, Subject};

use super::{format_into, trimmed};

/// The connectionless RPC header.
const HEADER: usize = 80;
/// The NDR argument header before the blocks of a request or response.
const NDR: usize = 20;
/// The Profinet object and interface UUIDs share these fields (`DEA0000x-6C97-11D1-8271-...`).
const PN_DATA2: u16 = 0x6c97;
const PN_DATA3: u16 = 0x11d1;

/// The RPC header fields discovery reads.
struct Rpc<'a> {
    ptype: u8,
    object: [u8; 16],
    interface: u32,
    opnum: u16,
    body: &'a [u8],
}

/// Reads the header: version 4, a known packet type, and a PN-IO interface or object UUID.
fn rpc(payload: &[u8]) -> Option<Rpc<'_>> {
    let (head, rest) = payload.split_first_chunk::<HEADER>()?;
    if head[0] != 4 || head[1] > 10 {
        return None;
    }
    // drep: the integer representation's high nibble, 1 for little endian.
    let le = head[4] & 0xf0 == 0x10;
    let u16_at = |i: usize| {
        let b = [head[i], head[i + 1]];
        if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    let u32_at = |i: usize| {
        let b = [head[i], head[i + 1], head[i + 2], head[i + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    // A UUID's first three fields follow drep; kept here in network order.
    let uuid = |i: usize| {
        let mut u = [0u8; 16];
        u[..4].copy_from_slice(&u32_at(i).to_be_bytes());
        u[4..6].copy_from_slice(&u16_at(i + 4).to_be_bytes());
        u[6..8].copy_from_slice(&u16_at(i + 6).to_be_bytes());
        u[8..].copy_from_slice(&head[i + 8..i + 16]);
        u
    };
    let object = uuid(8);
    let iface = uuid(24);
    let pn_interface = matches!(
        iface,
        [
            0xde,
            0xa0,
            0x00,
            0x01..=0x04,
            0x6c,
            0x97,
            0x11,
            0xd1,
            0x82,
            0x71,
            0x00,
            0xa0,
            0x24,
            0x42,
            0xdf,
            0x7d
        ]
    );
    if !pn_interface && !is_pn_object(&object) {
        return None;
    }
    let frag = usize::from(u16_at(74));
    Some(Rpc {
        ptype: head[1],
        object,
        interface: if pn_interface { u32::from(iface[3]) } else { 0 },
        opnum: u16_at(68),
        body: rest.get(..frag).unwrap_or(rest),
    })
}

/// Whether a UUID (network order) is a Profinet object UUID, `DEA00000-6C97-11D1-8271-<instance><device><vendor>`.
fn is_pn_object(u: &[u8; 16]) -> bool {
    u[..4] == [0xde, 0xa0, 0, 0]
        && u[4..6] == PN_DATA2.to_be_bytes()
        && u[6..8] == PN_DATA3.to_be_bytes()
        && u[8..10] == [0x82, 0x71]
}

/// Whether a UDP payload is a Profinet IO RPC.
pub fn looks_like(payload: &[u8]) -> bool {
    rpc(payload).is_some()
}

/// Which way an RPC travels: a request goes to the server, a response or fault back. On the controller's
/// interface (DEA00002), the device calls the controller back (ApplicationReady), so the roles of CM (the
/// controller is the client) are kept by turning it round.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    let r = rpc(payload)?;
    let d = match r.ptype {
        0 => Dir::ToServer,
        2 | 3 => Dir::ToClient,
        _ => return None,
    };
    Some(if r.interface == 2 { flip(d) } else { d })
}

fn flip(d: Dir) -> Dir {
    match d {
        Dir::ToServer => Dir::ToClient,
        Dir::ToClient => Dir::ToServer,
    }
}

/// Reads one Profinet IO RPC datagram.
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let Some(r) = rpc(payload) else {
        return;
    };
    let dir = direction(payload).unwrap_or(dir);
    out.fact(dir.server(), Fact::Serves(Proto::ProfinetIo));
    out.fact(dir.client(), Fact::Uses(Proto::ProfinetIo));
    // The object UUID names the RPC's callee: the receiver of a request, the sender of an answer.
    let callee = if r.ptype == 0 {
        Subject::Dst
    } else {
        Subject::Src
    };
    object_ids(&r.object, callee, out);
    let blocks = r.body.get(NDR..).unwrap_or_default();
    match (r.ptype, r.interface, r.opnum) {
        // Connect: the ARBlockReq names the controller (or supervisor) that sent it.
        (0, 1, 0) => connect(blocks, out),
        (0, 1, 3) => out.fact(
            Subject::Src,
            Fact::Command {
                proto: Proto::ProfinetIo,
                kind: CommandKind::Write,
                detail: "PN-IO record write",
            },
        ),
        // Read (and implicit read) responses: an I&M0 record names the product.
        (2, 1, 2 | 5) => read_response(blocks, out),
        _ => {}
    }
}

/// Reports the vendor and device id of a Profinet object UUID.
fn object_ids(u: &[u8; 16], who: Subject, out: &mut dyn Sink) {
    if !is_pn_object(u) {
        return;
    }
    let device = u16::from_be_bytes([u[12], u[13]]);
    let vendor = u16::from_be_bytes([u[14], u[15]]);
    out.fact(who, Fact::VendorId(Source::ProfinetDcp, u32::from(vendor)));
    let mut buf = [0u8; 16];
    if let Some(s) = format_into(&mut buf, format_args!("device id 0x{device:04x}")) {
        out.fact(who, Fact::Platform(Source::ProfinetIo, s));
    }
}

/// A PN-IO block: type, its whole bytes (header included) and what follows.
fn block(bytes: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    let [t0, t1, l0, l1, ..] = bytes else {
        return None;
    };
    let len = 4 + usize::from(u16::from_be_bytes([*l0, *l1]));
    let (b, rest) = bytes.split_at_checked(len).unwrap_or((bytes, &[]));
    Some((u16::from_be_bytes([*t0, *t1]), b, rest))
}

/// The ARBlockReq of a Connect request: AR type, the initiator's object UUID and station name.
fn connect(blocks: &[u8], out: &mut dyn Sink) {
    let Some((0x0101, b, _)) = block(blocks) else {
        return;
    };
    match b.get(6..8) {
        Some([0x00, 0x06]) => out.fact(
            Subject::Src,
            Fact::Platform(Source::ProfinetIo, "IO supervisor"),
        ),
        Some(_) => out.fact(
            Subject::Src,
            Fact::Platform(Source::ProfinetIo, "IO controller"),
        ),
        None => {}
    }
    if let Some(u) = b.get(32..48).and_then(|u| <&[u8; 16]>::try_from(u).ok()) {
        object_ids(u, Subject::Src, out);
    }
    if let Some([n0, n1]) = b.get(56..58) {
        let n = usize::from(u16::from_be_bytes([*n0, *n1]));
        if let Some(name) = b.get(58..58 + n).and_then(trimmed) {
            out.fact(Subject::Src, Fact::StationName(name));
        }
    }
}

/// An IODReadResHeader and its record: I&M0 gives order id, serial number and software revision.
fn read_response(blocks: &[u8], out: &mut dyn Sink) {
    let Some((0x8009, _, record)) = block(blocks) else {
        return;
    };
    let Some((0x0020, im, _)) = block(record) else {
        return;
    };
    if let Some(model) = im.get(8..28).and_then(trimmed) {
        out.fact(Subject::Src, Fact::Model(Source::ProfinetIo, model));
    }
    if let Some(serial) = im.get(28..44).and_then(trimmed) {
        out.fact(Subject::Src, Fact::Serial(Source::ProfinetIo, serial));
    }
    if let Some([prefix, major, minor, bugfix]) = im.get(46..50) {
        let mut buf = [0u8; 16];
        let prefix = char::from(*prefix);
        if prefix.is_ascii_alphabetic() {
            if let Some(v) = format_into(&mut buf, format_args!("{prefix}{major}.{minor}.{bugfix}"))
            {
                out.fact(Subject::Src, Fact::Firmware(Source::ProfinetIo, v));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::facts::Collect;

    /// The object UUID of IO device instance 1, device id 0x0306, vendor 0x002a (Siemens), little endian.
    const DEVICE_OBJECT: [u8; 16] = [
        0x00, 0x00, 0xa0, 0xde, 0x97, 0x6c, 0xd1, 0x11, 0x82, 0x71, 0x00, 0x01, 0x03, 0x06, 0x00,
        0x2a,
    ];
    /// The IO device interface DEA00001-6C97-11D1-8271-00A02442DF7D, little endian.
    const DEVICE_INTERFACE: [u8; 16] = [
        0x01, 0x00, 0xa0, 0xde, 0x97, 0x6c, 0xd1, 0x11, 0x82, 0x71, 0x00, 0xa0, 0x24, 0x42, 0xdf,
        0x7d,
    ];

    /// A connectionless RPC (version 4, little endian, idempotent flag) to or from `iface` with `object`.
    pub(crate) fn rpc_packet(
        ptype: u8,
        object: [u8; 16],
        iface: [u8; 16],
        opnum: u16,
        body: &[u8],
    ) -> Vec<u8> {
        let mut v = vec![4, ptype, 0x20, 0x00, 0x10, 0x00, 0x00, 0x00];
        v.extend_from_slice(&object);
        v.extend_from_slice(&iface);
        v.extend_from_slice(&[0x5a; 16]); // activity
        v.extend_from_slice(&0u32.to_le_bytes()); // server boot
        v.extend_from_slice(&1u32.to_le_bytes()); // interface version
        v.extend_from_slice(&7u32.to_le_bytes()); // sequence number
        v.extend_from_slice(&opnum.to_le_bytes());
        v.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // interface and activity hints
        v.extend_from_slice(&(body.len() as u16).to_le_bytes());
        v.extend_from_slice(&[0, 0, 0, 0]); // fragment number, auth proto, serial low
        v.extend_from_slice(body);
        v
    }

    /// The NDR header (args max or status, args length, max count, offset, actual count), then `blocks`.
    pub(crate) fn ndr(blocks: &[u8]) -> Vec<u8> {
        let n = (blocks.len() as u32).to_le_bytes();
        let mut v = Vec::new();
        for w in [[0u8; 4], n, n, [0; 4], n] {
            v.extend_from_slice(&w);
        }
        v.extend_from_slice(blocks);
        v
    }

    /// An ARBlockReq: IOCAR single (or supervisor), initiator object UUID for device 0x0101 of vendor
    /// 0x002a, station name `name`.
    pub(crate) fn ar_block(ar_type: u16, name: &str) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&ar_type.to_be_bytes());
        b.extend_from_slice(&[0x11; 16]); // AR UUID
        b.extend_from_slice(&1u16.to_be_bytes()); // session key
        b.extend_from_slice(&[0x00, 0x1b, 0x1b, 0x01, 0x02, 0x03]);
        b.extend_from_slice(&[
            0xde, 0xa0, 0x00, 0x00, 0x6c, 0x97, 0x11, 0xd1, 0x82, 0x71, 0x00, 0x01, 0x01, 0x01,
            0x00, 0x2a,
        ]);
        b.extend_from_slice(&0x0000_0011u32.to_be_bytes()); // AR properties
        b.extend_from_slice(&100u16.to_be_bytes()); // activity timeout factor
        b.extend_from_slice(&0x8892u16.to_be_bytes()); // RT UDP port
        b.extend_from_slice(&(name.len() as u16).to_be_bytes());
        b.extend_from_slice(name.as_bytes());
        let mut v = vec![0x01, 0x01];
        v.extend_from_slice(&(b.len() as u16 + 2).to_be_bytes());
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&b);
        v
    }

    /// An IODReadResHeader for index 0xAFF0 and an I&M0 record.
    pub(crate) fn im0_response(order: &str, serial: &str) -> Vec<u8> {
        let mut im = vec![0x00, 0x20, 0x00, 0x38, 0x01, 0x00, 0x00, 0x2a];
        let mut field = |s: &str, n: usize| {
            let mut f = s.as_bytes().to_vec();
            f.resize(n, b' ');
            im.extend_from_slice(&f);
        };
        field(order, 20);
        field(serial, 16);
        im.extend_from_slice(&[0x00, 0x03, b'V', 2, 6, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0x1e]);
        let mut h = vec![0x80, 0x09, 0x00, 0x3c, 0x01, 0x00, 0x00, 0x01];
        h.extend_from_slice(&[0x11; 16]);
        h.extend_from_slice(&0u32.to_be_bytes()); // API
        h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0xaf, 0xf0]); // slot, subslot, padding, index
        h.extend_from_slice(&(im.len() as u32).to_be_bytes());
        h.extend_from_slice(&[0; 24]); // additional values and padding
        h.extend_from_slice(&im);
        h
    }

    fn run(payload: &[u8], dir: Dir) -> Collect {
        let mut c = Collect::default();
        dissect(payload, dir, &mut c);
        c
    }

    #[test]
    fn connect_names_the_controller_and_the_object_the_device() {
        let p = rpc_packet(
            0,
            DEVICE_OBJECT,
            DEVICE_INTERFACE,
            0,
            &ndr(&ar_block(1, "plc-ctrl")),
        );
        assert!(looks_like(&p));
        assert_eq!(direction(&p), Some(Dir::ToServer));
        let c = run(&p, Dir::ToClient);
        assert!(c.0.contains(&(Subject::Dst, "Serves(ProfinetIo)".into())));
        assert!(c.0.contains(&(Subject::Src, "Uses(ProfinetIo)".into())));
        assert!(c.0.contains(&(Subject::Dst, "VendorId(ProfinetDcp, 42)".into())));
        assert!(c.0.contains(&(
            Subject::Dst,
            r#"Platform(ProfinetIo, "device id 0x0306")"#.into()
        )));
        assert!(c.0.contains(&(Subject::Src, r#"StationName("plc-ctrl")"#.into())));
        assert!(c.0.contains(&(
            Subject::Src,
            r#"Platform(ProfinetIo, "IO controller")"#.into()
        )));
        assert!(c.0.contains(&(
            Subject::Src,
            r#"Platform(ProfinetIo, "device id 0x0101")"#.into()
        )));
        let p = rpc_packet(
            0,
            DEVICE_OBJECT,
            DEVICE_INTERFACE,
            0,
            &ndr(&ar_block(6, "pg")),
        );
        assert!(run(&p, Dir::ToServer).has(r#"Platform(ProfinetIo, "IO supervisor")"#));
    }

    #[test]
    fn responses_and_callbacks_keep_the_controller_the_client() {
        let p = rpc_packet(
            2,
            DEVICE_OBJECT,
            DEVICE_INTERFACE,
            2,
            &ndr(&im0_response("6ES7 151-1BA02-0AB0", "S C-X4U421302009")),
        );
        assert_eq!(direction(&p), Some(Dir::ToClient));
        let c = run(&p, Dir::ToServer);
        assert!(c.0.contains(&(Subject::Src, "Serves(ProfinetIo)".into())));
        assert!(c.0.contains(&(
            Subject::Src,
            r#"Model(ProfinetIo, "6ES7 151-1BA02-0AB0")"#.into()
        )));
        assert!(c.0.contains(&(
            Subject::Src,
            r#"Serial(ProfinetIo, "S C-X4U421302009")"#.into()
        )));
        assert!(c.0.contains(&(Subject::Src, r#"Firmware(ProfinetIo, "V2.6.0")"#.into())));
        // ApplicationReady: the device calls the controller's interface (DEA00002); it is still the server.
        let mut controller_iface = DEVICE_INTERFACE;
        controller_iface[0] = 2;
        let p = rpc_packet(0, DEVICE_OBJECT, controller_iface, 4, &ndr(&[]));
        assert_eq!(direction(&p), Some(Dir::ToClient));
        let c = run(&p, Dir::ToServer);
        assert!(c.0.contains(&(Subject::Src, "Serves(ProfinetIo)".into())));
    }

    #[test]
    fn writes_are_commands_reads_are_not() {
        let p = rpc_packet(
            0,
            DEVICE_OBJECT,
            DEVICE_INTERFACE,
            3,
            &ndr(&[0x00, 0x08, 0x00, 0x3c]),
        );
        assert!(run(&p, Dir::ToServer).0.contains(&(
            Subject::Src,
            r#"Command { proto: ProfinetIo, kind: Write, detail: "PN-IO record write" }"#.into()
        )));
        let p = rpc_packet(
            0,
            DEVICE_OBJECT,
            DEVICE_INTERFACE,
            2,
            &ndr(&[0x00, 0x09, 0x00, 0x3c]),
        );
        assert!(!run(&p, Dir::ToServer).has("Command"));
    }

    #[test]
    fn recognition_is_strict() {
        let p = rpc_packet(0, DEVICE_OBJECT, DEVICE_INTERFACE, 0, &[]);
        assert!(looks_like(&p));
        // Another RPC version, another interface and object, too short.
        let mut q = p.clone();
        q[0] = 5;
        assert!(!looks_like(&q));
        let other = rpc_packet(0, [0x33; 16], [0x44; 16], 0, &[]);
        assert!(!looks_like(&other));
        assert!(!looks_like(&p[..79]));
        // The endpoint mapper with a PN object UUID still belongs to the device.
        assert!(looks_like(&rpc_packet(
            0,
            DEVICE_OBJECT,
            [0x44; 16],
            2,
            &[]
        )));
    }

    #[test]
    fn survives_truncation_and_hostile_lengths() {
        let mut all = vec![
            rpc_packet(
                0,
                DEVICE_OBJECT,
                DEVICE_INTERFACE,
                0,
                &ndr(&ar_block(1, "plc-ctrl")),
            ),
            rpc_packet(
                2,
                DEVICE_OBJECT,
                DEVICE_INTERFACE,
                2,
                &ndr(&im0_response("a", "b")),
            ),
        ];
        let mut bad = all[0].clone();
        bad[80 + 20 + 56] = 0xff; // station name length beyond the block
        all.push(bad);
        let mut bad = all[1].clone();
        bad[80 + 20 + 3] = 0x02; // read header shorter than its fields
        all.push(bad);
        crate::testutil::every_prefix(&all, dissect, looks_like, direction);
    }
}
