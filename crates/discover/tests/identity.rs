//! Identity, classification and risks on captures built here (frames made with `etherparse` and written as
//! pcap by the test itself), each checked against tshark's own dissection of the same file where tshark has
//! a dissector. Results are read through the report's JSON, as operators and the API read them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use etherparse::PacketBuilder;
use serde_json::Value;
use vouch_discover::{Discovery, Limits};

/// One frame to write: Ethernet source and destination, then the frame's bytes.
struct Capture {
    frames: Vec<Vec<u8>>,
}

const PC_MAC: [u8; 6] = [0x00, 0x1c, 0x23, 0x10, 0x20, 0x30];
const PLC_MAC: [u8; 6] = [0x00, 0x80, 0xf4, 0x01, 0x02, 0x03];

impl Capture {
    fn new() -> Self {
        Capture { frames: Vec::new() }
    }

    fn tcp(
        &mut self,
        from: ([u8; 6], [u8; 4], u16),
        to: ([u8; 6], [u8; 4], u16),
        seq: u32,
        syn: bool,
        ack: Option<u32>,
        payload: &[u8],
    ) {
        let mut b = PacketBuilder::ethernet2(from.0, to.0)
            .ipv4(from.1, to.1, 64)
            .tcp(from.2, to.2, seq, 65535);
        if syn {
            b = b.syn();
        }
        if let Some(a) = ack {
            b = b.ack(a);
        }
        if !payload.is_empty() {
            b = b.psh();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        self.frames.push(out);
    }

    fn udp(&mut self, from: ([u8; 6], [u8; 4], u16), to: ([u8; 6], [u8; 4], u16), payload: &[u8]) {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(from.0, to.0)
            .ipv4(from.1, to.1, 64)
            .udp(from.2, to.2)
            .write(&mut out, payload)
            .unwrap();
        self.frames.push(out);
    }

    /// A whole TCP conversation: handshake, then each (from client?, payload) segment acknowledged in order.
    fn conversation(
        &mut self,
        client: ([u8; 6], [u8; 4], u16),
        server: ([u8; 6], [u8; 4], u16),
        talk: &[(bool, Vec<u8>)],
    ) {
        let (mut cseq, mut sseq) = (1000u32, 5000u32);
        self.tcp(client, server, cseq, true, None, &[]);
        self.tcp(server, client, sseq, true, Some(cseq + 1), &[]);
        cseq += 1;
        sseq += 1;
        for (from_client, p) in talk {
            if *from_client {
                self.tcp(client, server, cseq, false, Some(sseq), p);
                cseq += p.len() as u32;
            } else {
                self.tcp(server, client, sseq, false, Some(cseq), p);
                sseq += p.len() as u32;
            }
        }
    }

    /// Writes a classic pcap (microsecond stamps, Ethernet), one frame per second.
    fn write(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("identity");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let mut out = Vec::new();
        out.extend(0xa1b2_c3d4u32.to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend([0u8; 8]);
        out.extend(65535u32.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        for (i, f) in self.frames.iter().enumerate() {
            out.extend((1_700_000_000 + i as u32).to_le_bytes());
            out.extend(0u32.to_le_bytes());
            out.extend((f.len() as u32).to_le_bytes());
            out.extend((f.len() as u32).to_le_bytes());
            out.extend(f);
        }
        std::fs::write(&path, out).unwrap();
        path
    }
}

fn discover(path: &Path) -> Value {
    let mut run = Discovery::new(Limits::default());
    let file = std::fs::File::open(path).unwrap();
    run.read("built", std::io::BufReader::new(file)).unwrap();
    serde_json::to_value(run.finish(None)).unwrap()
}

fn device<'a>(r: &'a Value, ip: &str) -> &'a Value {
    r["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ips"].as_array().unwrap().iter().any(|i| i == ip))
        .unwrap_or_else(|| panic!("no device {ip}: {r:#}"))
}

fn risks<'a>(d: &'a Value, kind: &str) -> Vec<&'a str> {
    d["risks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == kind)
        .map(|r| r["detail"].as_str().unwrap())
        .collect()
}

fn identity(d: &Value, field: &str) -> Vec<String> {
    d["identity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["field"] == field)
        .map(|e| e["value"].as_str().unwrap().to_owned())
        .collect()
}

/// tshark's values of `field` (`-T fields`, one line per frame, the frame's occurrences joined by `,`).
fn tshark(path: &Path, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(path)
        .args(["-Y", filter, "-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .expect("tshark runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn mbap(tid: u16, pdu: &[u8]) -> Vec<u8> {
    let mut v = tid.to_be_bytes().to_vec();
    v.extend([0, 0]);
    v.extend((pdu.len() as u16 + 1).to_be_bytes());
    v.push(0);
    v.extend(pdu);
    v
}

/// An engineering station (Control Expert) reads the Modicon's identity, takes its reservation, transfers a
/// program to it, starts it and releases the reservation.
#[test]
fn umas_program_transfer_and_reservation_from_an_engineering_station() {
    let pc = (PC_MAC, [10, 1, 1, 10], 50000);
    let plc = (PLC_MAC, [10, 1, 1, 20], 502);
    let mut ident = vec![0x5a, 0x00, 0xfe];
    ident.extend([0u8; 22]);
    ident.push(12);
    ident.extend(b"BMX P34 2020");
    ident.push(1);
    ident.extend([0u8; 8]);
    let ok = |key: u8| vec![0x5a, key, 0xfe];
    let talk: Vec<(bool, Vec<u8>)> = vec![
        (true, mbap(1, &[0x5a, 0x00, 0x02])),
        (false, mbap(1, &ident)),
        (
            true,
            mbap(
                2,
                &[
                    0x5a, 0x00, 0x10, 0x3b, 0x00, 0x00, 0x00, 0x06, b'E', b'N', b'G', b'-', b'P',
                    b'C',
                ],
            ),
        ),
        (false, mbap(2, &[0x5a, 0x00, 0xfe, 0x42])),
        (true, mbap(3, &[0x5a, 0x42, 0x30, 0x00, 0x01])),
        (false, mbap(3, &ok(0x42))),
        (
            true,
            mbap(
                4,
                &[
                    0x5a, 0x42, 0x31, 0x00, 0x01, 0x01, 0x00, 0x04, 0x00, 0xde, 0xad, 0xbe, 0xef,
                ],
            ),
        ),
        (false, mbap(4, &ok(0x42))),
        (true, mbap(5, &[0x5a, 0x42, 0x32, 0x00, 0x01])),
        (false, mbap(5, &ok(0x42))),
        (true, mbap(6, &[0x5a, 0x42, 0x40, 0xff, 0x00])),
        (false, mbap(6, &ok(0x42))),
        (true, mbap(7, &[0x5a, 0x42, 0x11])),
        (false, mbap(7, &ok(0x42))),
    ];
    let mut c = Capture::new();
    c.conversation(pc, plc, &talk);
    let path = c.write("umas.pcap");

    // tshark (no UMAS dissector in 4.0) reads every PDU as Modbus function 90 from the station and back.
    let theirs = tshark(&path, "modbus", &["ip.src", "modbus.func_code"]);
    assert_eq!(theirs.len(), talk.len(), "{theirs:?}");
    assert!(theirs.iter().all(|l| l.ends_with("|90")), "{theirs:?}");
    let requests = theirs
        .iter()
        .filter(|l| l.starts_with("10.1.1.10|"))
        .count();

    let r = discover(&path);
    let plc = device(&r, "10.1.1.20");
    assert_eq!(plc["model"], "BMX P34 2020", "{plc:#}");
    assert_eq!(plc["vendor"], "Schneider Electric");
    let commands = risks(plc, "ot-command");
    for what in [
        "take PLC reservation",
        "release PLC reservation",
        "program block to the PLC",
        "begin program transfer to the PLC",
        "start PLC",
    ] {
        assert!(
            commands
                .iter()
                .any(|d| d.contains(what) && d.contains("from 10.1.1.10")),
            "{what}: {commands:?}"
        );
    }
    // Every request but READ_ID changes the PLC or its ownership, and each is high.
    assert_eq!(commands.len(), requests - 1, "{commands:?}");
    assert!(
        plc["risks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["kind"] != "ot-command" || r["severity"] == "high")
    );
    let station = device(&r, "10.1.1.10");
    assert_eq!(station["class"], "engineering-station", "{station:#}");
    assert_eq!(plc["class"], "plc");
}

/// A minimal BER encoder for the SNMP messages below.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    if content.len() < 0x80 {
        v.push(content.len() as u8);
    } else {
        v.extend([0x82, (content.len() >> 8) as u8, content.len() as u8]);
    }
    v.extend(content);
    v
}

fn int(n: u32) -> Vec<u8> {
    let b = n.to_be_bytes();
    let skip = b.iter().take(3).take_while(|x| **x == 0).count();
    let mut c = b[skip..].to_vec();
    if c[0] & 0x80 != 0 {
        c.insert(0, 0);
    }
    tlv(0x02, &c)
}

fn oid(arcs: &[u32]) -> Vec<u8> {
    let mut c = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut stack = vec![(a & 0x7f) as u8];
        let mut rest = a >> 7;
        while rest > 0 {
            stack.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        c.extend(stack.iter().rev());
    }
    tlv(0x06, &c)
}

fn varbind(name: &[u32], value: Vec<u8>) -> Vec<u8> {
    tlv(0x30, &[oid(name), value].concat())
}

const SYS: [u32; 7] = [1, 3, 6, 1, 2, 1, 1];

fn sys(n: u32) -> Vec<u32> {
    let mut v = SYS.to_vec();
    v.extend([n, 0]);
    v
}

/// An SNMPv1 trap with community "public" carrying the system group, a v2c answer naming sysLocation and
/// sysContact, and an SNMPv3 report whose engine id names the enterprise 4329 (Siemens) and a MAC address.
#[test]
fn snmp_v1_trap_system_group_and_v3_engine_id_as_tshark_shows() {
    let agent = ([0x00, 0x0e, 0x8c, 0x01, 0x02, 0x03], [10, 2, 0, 5], 1025);
    let manager = ([0x00, 0x1c, 0x23, 0x0a, 0x0b, 0x0c], [10, 2, 0, 1], 162);
    let vars = tlv(
        0x30,
        &[
            varbind(&sys(5), tlv(0x04, b"plc-7")),
            varbind(&sys(6), tlv(0x04, b"Hall 3, cabinet 12")),
            varbind(&sys(4), tlv(0x04, b"ot-team@example.com")),
            varbind(&sys(2), oid(&[1, 3, 6, 1, 4, 1, 4329, 20, 1])),
        ]
        .concat(),
    );
    let trap_pdu = tlv(
        0xa4,
        &[
            oid(&[1, 3, 6, 1, 4, 1, 4329]),
            tlv(0x40, &[10, 2, 0, 5]),
            int(6),
            int(1),
            tlv(0x43, &[0x01, 0x00]),
            vars,
        ]
        .concat(),
    );
    let trap = tlv(0x30, &[int(0), tlv(0x04, b"public"), trap_pdu].concat());

    let get_agent = ([0x00, 0x0e, 0x8c, 0x04, 0x05, 0x06], [10, 2, 0, 6], 161);
    let get_manager = (manager.0, manager.1, 40000);
    let req_vars = tlv(
        0x30,
        &[
            varbind(&sys(6), vec![0x05, 0x00]),
            varbind(&sys(4), vec![0x05, 0x00]),
        ]
        .concat(),
    );
    let get = tlv(
        0x30,
        &[
            int(1),
            tlv(0x04, b"private"),
            tlv(0xa0, &[int(7), int(0), int(0), req_vars].concat()),
        ]
        .concat(),
    );
    let resp_vars = tlv(
        0x30,
        &[
            varbind(&sys(6), tlv(0x04, b"Substation North")),
            varbind(&sys(4), tlv(0x04, b"grid-ops")),
        ]
        .concat(),
    );
    let resp = tlv(
        0x30,
        &[
            int(1),
            tlv(0x04, b"private"),
            tlv(0xa2, &[int(7), int(0), int(0), resp_vars].concat()),
        ]
        .concat(),
    );

    // SNMPv3 report from a third agent: engine id 80 00 10 e9 03 + MAC (RFC 3411 format 3).
    let v3_agent = ([0x00, 0x0e, 0x8c, 0x07, 0x08, 0x09], [10, 2, 0, 7], 161);
    let v3_manager = (manager.0, manager.1, 40001);
    let engine: Vec<u8> = [
        0x80, 0x00, 0x10, 0xe9, 0x03, 0x00, 0x0e, 0x8c, 0x07, 0x08, 0x09,
    ]
    .to_vec();
    let v3 = |engine: &[u8], pdu_tag: u8| {
        let usm = tlv(
            0x30,
            &[
                tlv(0x04, engine),
                int(3),
                int(1234),
                tlv(0x04, b""),
                tlv(0x04, b""),
                tlv(0x04, b""),
            ]
            .concat(),
        );
        let header = tlv(
            0x30,
            &[int(42), int(65507), tlv(0x04, &[0x04]), int(3)].concat(),
        );
        let scoped = tlv(
            0x30,
            &[
                tlv(0x04, engine),
                tlv(0x04, b""),
                tlv(pdu_tag, &[int(9), int(0), int(0), tlv(0x30, &[])].concat()),
            ]
            .concat(),
        );
        tlv(0x30, &[int(3), header, tlv(0x04, &usm), scoped].concat())
    };
    let mut c = Capture::new();
    c.udp(agent, manager, &trap);
    c.udp(get_manager, get_agent, &get);
    c.udp(get_agent, get_manager, &resp);
    c.udp(v3_manager, v3_agent, &v3(&[], 0xa0));
    c.udp(v3_agent, v3_manager, &v3(&engine, 0xa8));
    let path = c.write("snmp.pcap");

    let r = discover(&path);
    // tshark's community of the v1 trap, and what we say about its sender.
    let theirs = tshark(&path, "snmp.trap_element", &["ip.src", "snmp.community"]);
    assert_eq!(theirs, vec!["10.2.0.5|public".to_owned()]);
    let trapper = device(&r, "10.2.0.5");
    assert!(
        !risks(trapper, "cleartext-credentials").is_empty(),
        "{trapper:#}"
    );
    // Every string value tshark shows (hex) is an identity value of the host that sent it.
    for line in tshark(&path, "snmp.value.octets", &["ip.src", "snmp.value.octets"]) {
        let (src, values) = line.split_once('|').unwrap();
        let d = device(&r, src);
        let ours: Vec<String> = d["identity"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"].as_str().unwrap().to_owned())
            .collect();
        for hex in values.split(',') {
            let text = String::from_utf8(hex::decode(hex.replace(':', "")).unwrap()).unwrap();
            assert!(ours.contains(&text), "{src}: {text} missing from {ours:?}");
        }
    }
    assert_eq!(identity(trapper, "location"), vec!["Hall 3, cabinet 12"]);
    assert_eq!(identity(trapper, "contact"), vec!["ot-team@example.com"]);
    assert_eq!(identity(trapper, "hostname"), vec!["plc-7"]);
    let object_ids = tshark(&path, "snmp.trap_element", &["snmp.value.oid"]);
    assert_eq!(identity(trapper, "object_id"), object_ids);
    let answerer = device(&r, "10.2.0.6");
    assert_eq!(identity(answerer, "location"), vec!["Substation North"]);
    assert_eq!(identity(answerer, "contact"), vec!["grid-ops"]);
    // The v3 engine id, hex as tshark shows it, and the enterprise its format names.
    let engine_ids = tshark(
        &path,
        "snmp.engineid.enterprise",
        &[
            "ip.src",
            "snmp.msgAuthoritativeEngineID",
            "snmp.engineid.enterprise",
        ],
    );
    assert_eq!(engine_ids.len(), 1, "{engine_ids:?}");
    let parts: Vec<&str> = engine_ids[0].split('|').collect();
    let v3d = device(&r, parts[0]);
    assert_eq!(
        identity(v3d, "snmp_engine_id"),
        vec![parts[1].replace(':', "")]
    );
    let enterprise: u32 = parts[2].split(',').next().unwrap().parse().unwrap();
    assert_eq!(
        v3d["ot"]["vendor_ids"],
        serde_json::json!([enterprise]),
        "{v3d:#}"
    );
}

fn bacnet_read_property(invoke: u8) -> Vec<u8> {
    let apdu = [
        0x00, 0x05, invoke, 0x0c, 0x0c, 0x02, 0x00, 0x00, 0x01, 0x19, 0x4d,
    ];
    let mut v = vec![0x81, 0x0a, 0, 0, 0x01, 0x04];
    v.extend(apdu);
    let n = v.len() as u16;
    v[2..4].copy_from_slice(&n.to_be_bytes());
    v
}

fn bacnet_ack(invoke: u8) -> Vec<u8> {
    let apdu = [
        0x30, invoke, 0x0c, 0x0c, 0x02, 0x00, 0x00, 0x01, 0x19, 0x4d, 0x3e, 0x75, 0x05, 0x00, b'A',
        b'H', b'U', b'1', 0x3f,
    ];
    let mut v = vec![0x81, 0x0a, 0, 0, 0x01, 0x00];
    v.extend(apdu);
    let n = v.len() as u16;
    v[2..4].copy_from_slice(&n.to_be_bytes());
    v
}

fn mac(i: u8) -> [u8; 6] {
    [0x00, 0x1c, 0x23, 0x33, 0x00, i]
}

/// A scanner sends BACnet ReadProperty to twelve addresses, none answer; a workstation polls the one real
/// controller, which answers.
#[test]
fn contacted_hosts_and_scanners_are_not_classed_by_what_they_were_sent() {
    let mut c = Capture::new();
    let scanner = (mac(66), [10, 3, 0, 66], 47808);
    for i in 1..=12u8 {
        c.udp(
            scanner,
            (mac(i), [10, 3, 0, i], 47808),
            &bacnet_read_property(i),
        );
    }
    let hmi = (mac(50), [10, 3, 0, 50], 47808);
    let ctl = (mac(200), [10, 3, 0, 200], 47808);
    for i in 0..3u8 {
        c.udp(hmi, ctl, &bacnet_read_property(100 + i));
        c.udp(ctl, hmi, &bacnet_ack(100 + i));
    }
    // The scanner also reached the controller once, which answered it.
    c.udp(scanner, ctl, &bacnet_read_property(13));
    c.udp(ctl, scanner, &bacnet_ack(13));
    let path = c.write("bacnet-scan.pcap");
    let r = discover(&path);

    // tshark: the hosts that sent a Complex-ACK (BACnet APDU type 3) are the only ones that answered.
    let answered: BTreeSet<String> = tshark(&path, "bacapp.type == 3", &["ip.src"])
        .into_iter()
        .collect();
    assert_eq!(answered, BTreeSet::from(["10.3.0.200".to_owned()]));
    let requested: BTreeSet<String> = tshark(&path, "bacapp.type == 0", &["ip.dst"])
        .into_iter()
        .collect();
    assert_eq!(requested.len(), 13);
    for ip in &requested {
        let d = device(&r, ip);
        let controller = d["role"] == "BACnet building controller";
        assert_eq!(controller, answered.contains(ip), "{ip}: {d:#}");
    }
    assert_eq!(device(&r, "10.3.0.50")["class"], "hmi");
    let s = device(&r, "10.3.0.66");
    assert_ne!(s["class"], "hmi", "{s:#}");
    assert_eq!(s["role"], "network scanner", "{s:#}");
}

/// Modbus and BACnet reached from public addresses raise a risk naming the source; the same from a local
/// client does not.
#[test]
fn ot_protocols_reached_from_public_addresses() {
    let mut c = Capture::new();
    let plc = (PLC_MAC, [10, 4, 0, 2], 502);
    let read = mbap(1, &[0x03, 0x00, 0x00, 0x00, 0x02]);
    let answer = mbap(1, &[0x03, 0x04, 0, 1, 0, 2]);
    let talk = vec![(true, read), (false, answer)];
    c.conversation(
        ([0x00, 0x1c, 0x23, 0x44, 0, 1], [198, 51, 100, 7], 40000),
        plc,
        &talk,
    );
    c.conversation(
        ([0x00, 0x1c, 0x23, 0x44, 0, 2], [10, 4, 0, 9], 40001),
        plc,
        &talk,
    );
    let ctl = (mac(200), [10, 4, 0, 3], 47808);
    c.udp(
        (mac(9), [203, 0, 113, 9], 47808),
        ctl,
        &bacnet_read_property(1),
    );
    c.udp(ctl, (mac(9), [203, 0, 113, 9], 47808), &bacnet_ack(1));
    let path = c.write("public.pcap");
    let r = discover(&path);

    let mut theirs: Vec<(String, String)> = Vec::new();
    for line in tshark(
        &path,
        "(mbtcp && tcp.dstport == 502) || bacapp.type == 0",
        &["ip.src", "ip.dst"],
    ) {
        let (src, dst) = line.split_once('|').unwrap();
        let ip: IpAddr = src.parse().unwrap();
        let public = match ip {
            IpAddr::V4(v4) => !(v4.is_private() || v4.is_loopback() || v4.is_link_local()),
            IpAddr::V6(_) => true,
        };
        if public {
            theirs.push((src.to_owned(), dst.to_owned()));
        }
    }
    assert_eq!(theirs.len(), 2, "{theirs:?}");
    for (src, dst) in &theirs {
        let exposed = risks(device(&r, dst), "ot-exposed-to-internet");
        assert!(
            exposed.iter().any(|d| d.contains(src.as_str())),
            "{dst}: {exposed:?}"
        );
        assert!(
            device(&r, dst)["risks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["kind"] == "ot-exposed-to-internet" && x["severity"] == "high")
        );
    }
    let plc = device(&r, "10.4.0.2");
    assert_eq!(risks(plc, "ot-exposed-to-internet").len(), 1, "{plc:#}");
}

fn arp(sender: [u8; 6], ip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend(sender);
    f.extend([0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend(sender);
    f.extend(ip);
    f.extend([0; 6]);
    f.extend([ip[0], ip[1], ip[2], 254]);
    f
}

/// The null address and locally administered addresses have no registry vendor; silent hosts of
/// automation makers get their maker's class hint (prefixes from the embedded IEEE registry).
#[test]
fn mac_vendors_and_their_class_hints() {
    let mut c = Capture::new();
    let mut ip = 1u8;
    let mut host = |c: &mut Capture, m: [u8; 6]| {
        c.frames.push(arp(m, [10, 6, 0, ip]));
        ip += 1;
        format!("10.6.0.{}", ip - 1)
    };
    // IP frames from the null and a locally administered address (ARP from them would name no IP host).
    let peer = ([0x00, 0x1c, 0x23, 0x55, 0, 1], [10, 6, 1, 1], 9999);
    c.udp(([0; 6], [10, 6, 1, 2], 9999), peer, b"x");
    c.udp(
        ([0x02, 0x00, 0x00, 0x12, 0x34, 0x56], [10, 6, 1, 3], 9999),
        peer,
        b"x",
    );
    let (null, local) = ("10.6.1.2".to_owned(), "10.6.1.3".to_owned());
    let hinted = [
        ([0x00, 0x0e, 0x8c, 1, 1, 1], "Siemens AG", "plc"),
        (
            [0x00, 0x01, 0x05, 1, 1, 1],
            "Beckhoff Automation GmbH",
            "plc",
        ),
        ([0x00, 0xd6, 0x32, 1, 1, 1], "GE Energy", "rtu"),
        ([0x00, 0x30, 0xa7, 1, 1, 1], "SCHWEITZER ENGINEERING", "rtu"),
        (
            [0x00, 0x40, 0x03, 1, 1, 1],
            "Emerson Process Management Power & Water Solutio",
            "plc",
        ),
        ([0x00, 0x0c, 0xde, 1, 1, 1], "ABB STOTZ-KONTAKT GmbH", "plc"),
        ([0x3c, 0xf7, 0xd1, 1, 1, 1], "OMRON Corporation", "plc"),
    ];
    let unhinted = [
        ([0x44, 0x4b, 0x5d, 1, 1, 1], "GE Healthcare"),
        (
            [0x00, 0x0b, 0x23, 1, 1, 1],
            "Siemens Home & Office Comm. Devices",
        ),
    ];
    let hinted_ips: Vec<String> = hinted.iter().map(|(m, _, _)| host(&mut c, *m)).collect();
    let unhinted_ips: Vec<String> = unhinted.iter().map(|(m, _)| host(&mut c, *m)).collect();
    let path = c.write("macs.pcap");
    let r = discover(&path);
    for ip in [&null, &local] {
        let d = device(&r, ip);
        assert!(d.get("mac_vendor").is_none(), "{ip}: {d:#}");
        assert!(d.get("vendor").is_none(), "{ip}: {d:#}");
    }
    for ((_, vendor, class), ip) in hinted.iter().zip(&hinted_ips) {
        let d = device(&r, ip);
        assert_eq!(d["mac_vendor"], *vendor, "{d:#}");
        assert_eq!(d["class"], *class, "{vendor}: {d:#}");
    }
    for ((_, vendor), ip) in unhinted.iter().zip(&unhinted_ips) {
        let d = device(&r, ip);
        assert_eq!(d["mac_vendor"], *vendor);
        assert_eq!(d["class"], "unknown", "{vendor}: {d:#}");
    }
}
