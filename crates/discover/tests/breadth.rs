//! Protocol breadth, end to end: for each protocol, a pcap of realistic frames (built here with etherparse, from
//! the protocol's public specification) is written, discovered, and checked for identity and client/server
//! roles, and where tshark has a dissector, against tshark's own field export on the same file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// ---------------------------------------------------------------------------------------------------------
// Helper b1's protocols: SSDP off port 1900, WS-Discovery, HART-IP, KNXnet/IP, Omron FINS, PTP, Ubiquiti
// discovery, TP-Link smart home, Tuya local. Its helpers live in `b1`.
// ---------------------------------------------------------------------------------------------------------

// Not every protocol's test uses every frame builder.
#[allow(dead_code)]
mod b1 {
    use std::collections::BTreeSet;
    use std::net::IpAddr;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use etherparse::PacketBuilder;
    use vouch_discover::{DeviceReport, Discovery, Limits, Report};

    /// A host in a built capture: hardware and IPv4 address.
    #[derive(Clone, Copy)]
    pub struct Node {
        pub mac: [u8; 6],
        pub ip: [u8; 4],
    }

    /// A UDP datagram from `a`:`sport` to `b`:`dport` (to a group address, `b.mac` is the group's).
    pub fn udp(a: Node, sport: u16, b: Node, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(a.mac, b.mac)
            .ipv4(a.ip, b.ip, 64)
            .udp(sport, dport)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// A TCP segment with ACK and PSH set, and SYN only where `syn` (then no ACK: an opening SYN).
    pub fn tcp(
        a: Node,
        sport: u16,
        b: Node,
        dport: u16,
        seq: u32,
        ack: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(a.mac, b.mac)
            .ipv4(a.ip, b.ip, 64)
            .tcp(sport, dport, seq, 64240)
            .ack(ack)
            .psh()
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// The three-way handshake from `a` (client) to `b`; returns the client's and server's next sequence numbers.
    pub fn handshake(
        frames: &mut Vec<Vec<u8>>,
        a: Node,
        sport: u16,
        b: Node,
        dport: u16,
    ) -> (u32, u32) {
        let (cs, ss) = (1000u32, 5000u32);
        let mut syn = Vec::new();
        PacketBuilder::ethernet2(a.mac, b.mac)
            .ipv4(a.ip, b.ip, 64)
            .tcp(sport, dport, cs, 64240)
            .syn()
            .write(&mut syn, &[])
            .unwrap();
        let mut synack = Vec::new();
        PacketBuilder::ethernet2(b.mac, a.mac)
            .ipv4(b.ip, a.ip, 64)
            .tcp(dport, sport, ss, 64240)
            .syn()
            .ack(cs + 1)
            .write(&mut synack, &[])
            .unwrap();
        frames.push(syn);
        frames.push(synack);
        (cs + 1, ss + 1)
    }

    /// An Ethernet II frame of `ether_type` carrying `payload`.
    pub fn ether(src: [u8; 6], dst: [u8; 6], ether_type: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(14 + payload.len());
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ether_type.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Writes `frames` as a classic pcap (Ethernet), one second apart.
    pub fn write_pcap(name: &str, frames: &[Vec<u8>]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vouch-breadth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (i, f) in frames.iter().enumerate() {
            out.extend_from_slice(&(1_796_000_000 + i as u32).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(f);
        }
        std::fs::write(&path, out).unwrap();
        path
    }

    /// Discovery's report on one capture file.
    pub fn discover(path: &Path) -> Report {
        let mut run = Discovery::new(Limits::default());
        let file = std::fs::File::open(path).unwrap();
        run.read("breadth", std::io::BufReader::new(file)).unwrap();
        run.finish(None)
    }

    /// The device with this IPv4 address.
    pub fn device(r: &Report, ip: [u8; 4]) -> &DeviceReport {
        let ip = IpAddr::from(ip);
        r.devices
            .iter()
            .find(|d| d.ips.contains(&ip))
            .unwrap_or_else(|| panic!("no device {ip} in {:#?}", r.devices))
    }

    /// Every identity value of a device.
    pub fn identity(d: &DeviceReport) -> Vec<String> {
        d.identity.iter().map(|e| e.value.clone()).collect()
    }

    /// The distinct values tshark shows for `field` (`-T fields`, lists split on commas), with extra arguments
    /// (`-d udp.port==N,proto`) before them.
    pub fn tshark_field(path: &Path, extra: &[&str], field: &str) -> BTreeSet<String> {
        let out = Command::new("tshark")
            .args(["-n", "-r"])
            .arg(path)
            .args(extra)
            .args(["-T", "fields", "-E", "occurrence=a", "-e", field])
            .output()
            .expect("tshark runs (scripts/test installs it)");
        assert!(
            out.status.success(),
            "tshark: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split(['\n', ',', '\t'])
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// Asserts that every value tshark shows for `field` is among the device's identity values (exactly, or
    /// inside one).
    pub fn agrees(path: &Path, extra: &[&str], field: &str, d: &DeviceReport) {
        let theirs = tshark_field(path, extra, field);
        assert!(!theirs.is_empty(), "tshark shows no {field}");
        let mine = identity(d);
        for v in &theirs {
            assert!(
                mine.iter().any(|m| m == v || m.contains(v.as_str())),
                "{field} {v} (tshark) missing from {mine:?}"
            );
        }
    }

    /// Whether the map has an edge from client `c` to server `s` for `service`.
    pub fn edge(r: &Report, c: [u8; 4], s: [u8; 4], service: &str) -> bool {
        let key = |ip: [u8; 4]| {
            r.devices
                .iter()
                .find(|d| d.ips.contains(&IpAddr::from(ip)))
                .map(|d| d.key.clone())
                .unwrap_or_default()
        };
        let (c, s) = (key(c), key(s));
        r.map
            .iter()
            .any(|e| e.client == c && e.server == s && e.service == service)
    }
}

use b1::*;
use vouch_discover::Proto;

const B1_SEARCHER: Node = Node {
    mac: [0x02, 0x11, 0x22, 0x33, 0x44, 0x10],
    ip: [192, 168, 1, 10],
};
/// 239.255.255.250, the SSDP and WS-Discovery group.
const B1_SSDP_GROUP: Node = Node {
    mac: [0x01, 0x00, 0x5e, 0x7f, 0xff, 0xfa],
    ip: [239, 255, 255, 250],
};
const B1_DEVICE: Node = Node {
    mac: [0x02, 0x11, 0x22, 0x33, 0x44, 0x20],
    ip: [192, 168, 1, 20],
};

#[test]
fn ssdp_search_answer_off_port_1900() {
    let group = B1_SSDP_GROUP;
    let search = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: ssdp:all\r\nUSER-AGENT: Android/14 UPnP/1.1 Browser/1.0\r\n\r\n";
    // UPnP Device Architecture 1.1 §1.3.3: the device answers by unicast, from a port of its own.
    let answer = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nDATE: Wed, 02 Dec 2026 19:00:00 GMT\r\nEXT:\r\nLOCATION: http://192.168.1.20:49152/rootDesc.xml\r\nSERVER: Linux/3.10 UPnP/1.0 IpCam/4.2\r\nST: urn:schemas-upnp-org:device:Basic:1\r\nUSN: uuid:2fac1234-31f8-11b4-a222-08002b34c003::urn:schemas-upnp-org:device:Basic:1\r\n\r\n";
    // UPnP 1.1 also lets a control point search one device by unicast, at the SEARCHPORT it announced.
    let unicast = b"M-SEARCH * HTTP/1.1\r\nHOST: 192.168.1.20:49153\r\nMAN: \"ssdp:discover\"\r\nST: upnp:rootdevice\r\n\r\n";
    let frames = vec![
        udp(B1_SEARCHER, 50000, group, 1900, search),
        udp(B1_DEVICE, 49153, B1_SEARCHER, 50000, answer),
        udp(B1_SEARCHER, 50001, B1_DEVICE, 49153, unicast),
        udp(B1_DEVICE, 49153, B1_SEARCHER, 50001, answer),
    ];
    let path = write_pcap("ssdp.pcap", &frames);
    let r = discover(&path);
    let dev = device(&r, B1_DEVICE.ip);
    let searcher = device(&r, B1_SEARCHER.ip);
    assert!(dev.serves.contains(&Proto::Ssdp), "{dev:#?}");
    assert!(!dev.uses.contains(&Proto::Ssdp), "{dev:#?}");
    assert!(searcher.uses.contains(&Proto::Ssdp) && !searcher.serves.contains(&Proto::Ssdp));
    assert!(
        edge(&r, B1_SEARCHER.ip, B1_DEVICE.ip, "ssdp"),
        "{:#?}",
        r.map
    );
    assert!(
        !edge(&r, B1_DEVICE.ip, B1_SEARCHER.ip, "ssdp"),
        "{:#?}",
        r.map
    );
    let ids = identity(dev);
    assert!(
        ids.contains(&"2fac1234-31f8-11b4-a222-08002b34c003".to_owned()),
        "{ids:?}"
    );
    // tshark reads SSDP on 1900 only: told the device's port, its HTTP fields name the same server and URL.
    let d = ["-d", "udp.port==49153,ssdp"];
    agrees(&path, &d, "http.server", dev);
    agrees(&path, &d, "http.location", dev);
}

/// A WS-Discovery envelope (2005/04) with this action and body.
fn b1_wsd(action: &str, body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:wprt="http://schemas.microsoft.com/windows/2006/08/wdp/print"><s:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/{action}</a:Action><a:MessageID>urn:uuid:0a6dc791-2be6-4991-9af1-454778a1917a</a:MessageID></s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    )
    .into_bytes()
}

#[test]
fn ws_discovery_camera_and_printer() {
    let group = B1_SSDP_GROUP;
    let printer = Node {
        mac: [0x02, 0x11, 0x22, 0x33, 0x44, 0x40],
        ip: [192, 168, 1, 40],
    };
    let probe = b1_wsd(
        "Probe",
        "<d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe>",
    );
    let matches = b1_wsd(
        "ProbeMatches",
        "<d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:5f2d2c66-1dd2-11b2-8000-accc8e123456</a:Address></a:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/AXIS%20P1375 onvif://www.onvif.org/hardware/P1375 onvif://www.onvif.org/location/country/sweden</d:Scopes><d:XAddrs>http://192.168.1.20/onvif/device_service</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches>",
    );
    let hello = b1_wsd(
        "Hello",
        "<d:Hello><a:EndpointReference><a:Address>urn:uuid:16a65700-007c-1000-bb49-30055c123456</a:Address></a:EndpointReference><d:Types>wprt:PrintDeviceType</d:Types><d:XAddrs>http://192.168.1.40:80/WebServices/Device</d:XAddrs><d:MetadataVersion>2</d:MetadataVersion></d:Hello>",
    );
    let frames = vec![
        udp(B1_SEARCHER, 51000, group, 3702, &probe),
        // ONVIF cameras answer from 3702; others from a port of their own (recognised by the envelope).
        udp(B1_DEVICE, 3702, B1_SEARCHER, 51000, &matches),
        udp(printer, 3702, group, 3702, &hello),
        udp(B1_DEVICE, 40123, B1_SEARCHER, 51000, &matches),
    ];
    let path = write_pcap("wsd.pcap", &frames);
    let r = discover(&path);
    let cam = device(&r, B1_DEVICE.ip);
    assert!(cam.serves.contains(&Proto::WsDiscovery), "{cam:#?}");
    assert_eq!(cam.class.as_str(), "camera", "{cam:#?}");
    assert_eq!(cam.model.as_deref(), Some("P1375"));
    assert_eq!(cam.hostname.as_deref(), Some("AXIS P1375"));
    let ids = identity(cam);
    for v in [
        "http://192.168.1.20/onvif/device_service",
        "5f2d2c66-1dd2-11b2-8000-accc8e123456",
        "country/sweden",
    ] {
        assert!(ids.contains(&v.to_owned()), "{v} in {ids:?}");
    }
    let searcher = device(&r, B1_SEARCHER.ip);
    assert!(
        searcher.uses.contains(&Proto::WsDiscovery)
            && !searcher.serves.contains(&Proto::WsDiscovery)
    );
    assert!(
        edge(&r, B1_SEARCHER.ip, B1_DEVICE.ip, "ws-discovery"),
        "{:#?}",
        r.map
    );
    assert!(
        !edge(&r, B1_DEVICE.ip, B1_SEARCHER.ip, "ws-discovery"),
        "{:#?}",
        r.map
    );
    let prn = device(&r, printer.ip);
    assert!(prn.serves.contains(&Proto::WsDiscovery));
    assert_eq!(prn.role, "printer", "{prn:#?}");
    // tshark has no WS-Discovery dissector; its XML heuristic shows the elements' text, in which every URL,
    // type and endpoint we read must appear.
    let cdata = tshark_field(&path, &["--enable-heuristic", "xml_udp"], "xml.cdata");
    for v in [
        "http://192.168.1.20/onvif/device_service",
        "http://192.168.1.40:80/WebServices/Device",
        "urn:uuid:5f2d2c66-1dd2-11b2-8000-accc8e123456",
    ] {
        assert!(
            cdata.iter().any(|c| c.contains(v)),
            "{v} in tshark's {cdata:?}"
        );
    }
}

/// A HART-IP message (version 1) around `body`.
fn b1_hart(kind: u8, id: u8, seq: u16, body: &[u8]) -> Vec<u8> {
    let mut m = vec![1, kind, id, 0];
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A token-passing PDU (long address 26 E1 12 34 56) with its checksum.
fn b1_hart_pdu(frame: u8, command: u8, data: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x80 | frame,
        0x26,
        0xe1,
        0x12,
        0x34,
        0x56,
        command,
        data.len() as u8,
    ];
    p.extend_from_slice(data);
    p.push(p.iter().fold(0, |a, b| a ^ b));
    p
}

#[test]
fn hart_ip_gateway_identity() {
    let ams = B1_SEARCHER;
    let gw = B1_DEVICE;
    // HART 7 command 0: Rosemount (0x0026), expanded device type 0x26E1, device id 12 34 56.
    let cmd0 = [
        0u8,
        0,
        254,
        0x26,
        0xe1,
        5,
        7,
        9,
        3,
        2 << 3 | 1,
        0,
        0x12,
        0x34,
        0x56,
        5,
        4,
        0,
        7,
        0,
        0x00,
        0x26,
        0x00,
        0x26,
        0,
    ];
    // Command 13: tag "GW-7" and descriptor "NORTH UNIT GW" in packed ASCII, then a date.
    let pack = |t: &[u8]| -> Vec<u8> {
        t.chunks(4)
            .flat_map(|c| {
                let w = c.iter().fold(0u32, |w, &ch| w << 6 | u32::from(ch & 0x3f));
                [(w >> 16) as u8, (w >> 8) as u8, w as u8]
            })
            .collect()
    };
    let mut cmd13 = vec![0, 0];
    cmd13.extend(pack(b"GW-7    "));
    cmd13.extend(pack(b"NORTH UNIT GW   "));
    cmd13.extend([2, 12, 125]);
    let mut cmd20 = vec![0, 0];
    cmd20.extend(b"WHART-GW-NORTH-01");
    cmd20.resize(34, 0);
    let mut frames = Vec::new();
    let (mut c, mut s) = handshake(&mut frames, ams, 50500, gw, 5094);
    let mut exchange = |frames: &mut Vec<Vec<u8>>, req: Vec<u8>, rsp: Vec<u8>| {
        frames.push(tcp(ams, 50500, gw, 5094, c, s, &req));
        c += req.len() as u32;
        frames.push(tcp(gw, 5094, ams, 50500, s, c, &rsp));
        s += rsp.len() as u32;
    };
    // Session initiate (primary master, 30 s inactivity timer), then commands 0, 13, 20, and a reset.
    let init = [1u8, 0, 0, 0x75, 0x30];
    exchange(
        &mut frames,
        b1_hart(0, 0, 1, &init),
        b1_hart(1, 0, 1, &init),
    );
    exchange(
        &mut frames,
        b1_hart(0, 3, 2, &b1_hart_pdu(2, 0, &[])),
        b1_hart(1, 3, 2, &b1_hart_pdu(6, 0, &cmd0)),
    );
    exchange(
        &mut frames,
        b1_hart(0, 3, 3, &b1_hart_pdu(2, 13, &[])),
        b1_hart(1, 3, 3, &b1_hart_pdu(6, 13, &cmd13)),
    );
    exchange(
        &mut frames,
        b1_hart(0, 3, 4, &b1_hart_pdu(2, 20, &[])),
        b1_hart(1, 3, 4, &b1_hart_pdu(6, 20, &cmd20)),
    );
    exchange(
        &mut frames,
        b1_hart(0, 3, 5, &b1_hart_pdu(2, 42, &[])),
        b1_hart(1, 3, 5, &b1_hart_pdu(6, 42, &[0, 0])),
    );
    let path = write_pcap("hartip.pcap", &frames);
    let r = discover(&path);
    let d = device(&r, gw.ip);
    assert!(
        d.serves.contains(&Proto::HartIp) && !d.uses.contains(&Proto::HartIp),
        "{d:#?}"
    );
    assert_eq!(d.vendor.as_deref(), Some("Rosemount (Emerson)"));
    assert_eq!(d.class.as_str(), "gateway", "{d:#?}");
    let a = device(&r, ams.ip);
    assert!(a.uses.contains(&Proto::HartIp) && !a.serves.contains(&Proto::HartIp));
    assert!(edge(&r, ams.ip, gw.ip, "hart-ip"), "{:#?}", r.map);
    assert!(
        d.risks
            .iter()
            .any(|k| k.detail.contains("device reset (42)")),
        "{:#?}",
        d.risks
    );
    // tshark's own reading of the same file.
    agrees(&path, &[], "hart_ip.pt.rsp.tag", d);
    agrees(&path, &[], "hart_ip.pt.rsp.descriptor", d);
    let theirs = tshark_field(&path, &[], "hart_ip.pt.rsp.manufacturer_Id");
    let mine: Vec<String> = d.ot["vendor_ids"].iter().map(u32::to_string).collect();
    assert!(
        !theirs.is_empty() && theirs.iter().all(|v| mine.contains(v)),
        "{theirs:?} {mine:?}"
    );
    let ids = tshark_field(&path, &[], "hart_ip.pt.rsp.device_id");
    assert!(!ids.is_empty());
    for v in ids {
        let hex = v.replace(':', "");
        assert_eq!(d.serial.as_deref(), Some(hex.as_str()));
    }
}

/// A KNXnet/IP frame: header (06 10, service, total length) and body.
fn b1_knx(service: u16, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0x06, 0x10];
    f.extend_from_slice(&service.to_be_bytes());
    f.extend_from_slice(&((6 + body.len()) as u16).to_be_bytes());
    f.extend_from_slice(body);
    f
}

#[test]
fn knx_search_and_tunnelled_group_write() {
    let group = Node {
        mac: [0x01, 0x00, 0x5e, 0x00, 0x17, 0x0c],
        ip: [224, 0, 23, 12],
    };
    let ets = B1_SEARCHER;
    let router = B1_DEVICE;
    let hpai = |n: Node, port: u16| {
        let mut h = vec![8, 1];
        h.extend_from_slice(&n.ip);
        h.extend_from_slice(&port.to_be_bytes());
        h
    };
    // Device information: TP1, 1.1.250, serial 00 02 11 22 33 44 (ABB), MAC, "IP Router Floor 2"; then the
    // supported service families.
    let mut dib = vec![
        54, 1, 0x02, 0, 0x11, 0xfa, 0, 0, 0x00, 0x02, 0x11, 0x22, 0x33, 0x44, 224, 0, 23, 12,
    ];
    dib.extend_from_slice(&router.mac);
    let mut name = b"IP Router Floor 2".to_vec();
    name.resize(30, 0);
    dib.extend(name);
    dib.extend([6, 2, 2, 1, 4, 1]);
    let search = b1_knx(0x0201, &hpai(ets, 50100));
    let mut answer = hpai(router, 3671);
    answer.extend(&dib);
    let answer = b1_knx(0x0202, &answer);
    // Connect (tunnel), then an L_Data.req GroupValueWrite(1) from 1.1.255 to 1/2/3 on channel 7.
    let mut connect = hpai(ets, 50101);
    connect.extend(hpai(ets, 50101));
    connect.extend([4, 4, 2, 0]);
    let connect = b1_knx(0x0205, &connect);
    let mut connected = vec![7, 0];
    connected.extend(hpai(router, 3671));
    connected.extend([4, 4, 0x11, 0xff]);
    let connected = b1_knx(0x0206, &connected);
    let write = b1_knx(
        0x0420,
        &[
            4, 7, 0, 0, 0x11, 0, 0xbc, 0xe0, 0x11, 0xff, 0x0a, 0x03, 1, 0x00, 0x81,
        ],
    );
    let ack = b1_knx(0x0421, &[4, 7, 0, 0]);
    let frames = vec![
        udp(ets, 50100, group, 3671, &search),
        udp(router, 3671, ets, 50100, &answer),
        udp(ets, 50101, router, 3671, &connect),
        udp(router, 3671, ets, 50101, &connected),
        udp(ets, 50101, router, 3671, &write),
        udp(router, 3671, ets, 50101, &ack),
    ];
    let path = write_pcap("knx.pcap", &frames);
    let r = discover(&path);
    let d = device(&r, router.ip);
    assert!(
        d.serves.contains(&Proto::Knx) && !d.uses.contains(&Proto::Knx),
        "{d:#?}"
    );
    assert_eq!(d.vendor.as_deref(), Some("ABB"));
    assert_eq!(d.hostname.as_deref(), Some("IP Router Floor 2"));
    assert_eq!(d.serial.as_deref(), Some("000211223344"));
    assert!(identity(d).contains(&"1.1.250".to_owned()));
    let e = device(&r, ets.ip);
    assert!(
        e.uses.contains(&Proto::Knx) && !e.serves.contains(&Proto::Knx),
        "{e:#?}"
    );
    assert!(edge(&r, ets.ip, router.ip, "knx"), "{:#?}", r.map);
    assert!(
        d.risks
            .iter()
            .any(|k| k.detail.contains("group value write")),
        "{:#?}",
        d.risks
    );
    // tshark's KNX/IP dissector on the same file.
    agrees(&path, &[], "knxip.device.name", d);
    // tshark exports the individual address as its 16-bit value; we show it area.line.device. (The
    // connect answer's tunnel address, which the interface lends the client, is not the device's.)
    let addrs = tshark_field(&path, &["-Y", "knxip.device.name"], "knxip.knxaddr");
    assert!(!addrs.is_empty());
    for v in addrs {
        let a = u16::from_str_radix(v.trim_start_matches("0x"), 16).unwrap();
        let dotted = format!("{}.{}.{}", a >> 12, (a >> 8) & 0xf, a & 0xff);
        assert!(identity(d).contains(&dotted), "tshark {v} = {dotted}");
    }
    let serials = tshark_field(&path, &[], "knxip.sernr");
    assert!(!serials.is_empty());
    for v in serials {
        let n = v.strip_prefix("0x").map_or_else(
            || v.parse::<u64>().unwrap(),
            |h| u64::from_str_radix(h, 16).unwrap(),
        );
        assert_eq!(
            d.serial.as_deref(),
            Some(format!("{n:012x}").as_str()),
            "tshark {v}"
        );
    }
}

/// A FINS frame from node 10 to node 1 with this ICF and command code, then `rest`.
fn b1_fins(icf: u8, mrc: u8, src: u8, rest: &[u8]) -> Vec<u8> {
    let mut f = vec![icf, 0, 2, 0, 1, 0, 0, 10, 0, 0x2a, mrc, src];
    f.extend_from_slice(rest);
    f
}

#[test]
fn fins_controller_model_and_commands() {
    let hmi = B1_SEARCHER;
    let plc = B1_DEVICE;
    let mut data = vec![0, 0];
    let mut model = b"CJ2M-CPU31".to_vec();
    model.resize(20, b' ');
    let mut version = b"02.01".to_vec();
    version.resize(20, b' ');
    data.extend(model);
    data.extend(version);
    // For system use (40 bytes), then the area data (12): the whole answer to parameter 00 is 94 bytes.
    data.extend([0; 52]);
    let mut frames = vec![
        // The engineering tool asks from a port of its own; the PLC answers to it.
        udp(hmi, 50200, plc, 9600, &b1_fins(0x80, 5, 1, &[0])),
        udp(plc, 9600, hmi, 50200, &b1_fins(0xc0, 5, 1, &data)),
        udp(hmi, 50200, plc, 9600, &b1_fins(0x80, 4, 2, &[0xff, 0xff])),
        udp(plc, 9600, hmi, 50200, &b1_fins(0xc0, 4, 2, &[0, 0])),
    ];
    // The same over TCP: node address exchange, then a memory area write (D100, one word).
    let tcp_fins = |cmd: u8, body: &[u8]| {
        let mut s = b"FINS".to_vec();
        s.extend(((8 + body.len()) as u32).to_be_bytes());
        s.extend([0, 0, 0, cmd, 0, 0, 0, 0]);
        s.extend_from_slice(body);
        s
    };
    let (c, s) = handshake(&mut frames, hmi, 50201, plc, 9600);
    let hello = tcp_fins(0, &[0, 0, 0, 0]);
    let ok = tcp_fins(1, &[0, 0, 0, 10, 0, 0, 0, 1]);
    let write = tcp_fins(
        2,
        &b1_fins(0x80, 1, 2, &[0x82, 0, 100, 0, 0, 1, 0x12, 0x34]),
    );
    frames.push(tcp(hmi, 50201, plc, 9600, c, s, &hello));
    frames.push(tcp(plc, 9600, hmi, 50201, s, c + hello.len() as u32, &ok));
    let c = c + hello.len() as u32;
    frames.push(tcp(hmi, 50201, plc, 9600, c, s + ok.len() as u32, &write));
    let path = write_pcap("fins.pcap", &frames);
    let r = discover(&path);
    let d = device(&r, plc.ip);
    assert!(
        d.serves.contains(&Proto::Fins) && !d.uses.contains(&Proto::Fins),
        "{d:#?}"
    );
    assert_eq!(d.model.as_deref(), Some("CJ2M-CPU31"));
    assert_eq!(d.firmware.as_deref(), Some("02.01"));
    assert_eq!(d.class.as_str(), "plc");
    for what in ["stop (04 02)", "memory area write (01 02)"] {
        assert!(
            d.risks.iter().any(|k| k.detail.contains(what)),
            "{what}: {:#?}",
            d.risks
        );
    }
    let h = device(&r, hmi.ip);
    assert!(h.uses.contains(&Proto::Fins) && !h.serves.contains(&Proto::Fins));
    assert!(edge(&r, hmi.ip, plc.ip, "fins"), "{:#?}", r.map);
    agrees(&path, &[], "omron.controller.model", d);
    agrees(&path, &[], "omron.controller.version", d);
}

/// A PTPv2 message of `kind` from clock `clock` port 1, sequence `seq`, with `body` after the 34-byte header.
fn b1_ptp(kind: u8, clock: [u8; 8], seq: u16, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, 2];
    m.extend(((34 + body.len()) as u16).to_be_bytes());
    m.extend([0, 0, 0x02, 0x00]);
    m.extend([0; 12]);
    m.extend(clock);
    m.extend([0, 1]);
    m.extend(seq.to_be_bytes());
    m.extend([0, 1]);
    m.extend_from_slice(body);
    m
}

#[test]
fn ptp_grandmaster_and_slave() {
    let group = Node {
        mac: [0x01, 0x00, 0x5e, 0x00, 0x01, 0x81],
        ip: [224, 0, 1, 129],
    };
    let master = B1_DEVICE;
    let slave = B1_SEARCHER;
    let gm = [0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, 0x01];
    let sc = [0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x10];
    // Announce: origin timestamp, UTC offset 37, priority1 128, class 6, accuracy 0x21, variance, priority2
    // 128, grandmaster identity, steps removed 0, time source GPS (0x20).
    let mut an = vec![0; 10];
    an.extend([0, 37, 0, 128, 6, 0x21, 0x4e, 0x5d, 128]);
    an.extend(gm);
    an.extend([0, 0, 0x20]);
    let mut resp = vec![0; 10];
    resp.extend(sc);
    resp.extend([0, 1]);
    let frames = vec![
        udp(master, 320, group, 320, &b1_ptp(0x0b, gm, 1, &an)),
        udp(master, 319, group, 319, &b1_ptp(0x00, gm, 2, &[0; 10])),
        udp(master, 320, group, 320, &b1_ptp(0x08, gm, 2, &[0; 10])),
        // The slave's delay request goes to the group from its event port; the master answers it unicast.
        udp(slave, 319, group, 319, &b1_ptp(0x01, sc, 3, &[0; 10])),
        udp(master, 320, slave, 320, &b1_ptp(0x09, gm, 3, &resp)),
        // A boundary clock on the link layer, announcing the same grandmaster.
        ether(
            [0x02, 0x11, 0x22, 0x33, 0x44, 0x50],
            [0x01, 0x1b, 0x19, 0x00, 0x00, 0x00],
            0x88f7,
            &b1_ptp(
                0x0b,
                [0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x50],
                9,
                &an,
            ),
        ),
    ];
    let path = write_pcap("ptp.pcap", &frames);
    let r = discover(&path);
    let m = device(&r, master.ip);
    assert!(
        m.serves.contains(&Proto::Ptp) && !m.uses.contains(&Proto::Ptp),
        "{m:#?}"
    );
    let s = device(&r, slave.ip);
    assert!(
        s.uses.contains(&Proto::Ptp) && !s.serves.contains(&Proto::Ptp),
        "{s:#?}"
    );
    assert!(edge(&r, slave.ip, master.ip, "ptp"), "{:#?}", r.map);
    assert!(
        identity(m)
            .iter()
            .any(|v| v.starts_with("PTP grandmaster 00:1b:19:ff:fe:00:00:01 (clock class 6")),
        "{:?}",
        identity(m)
    );
    let bc = r
        .devices
        .iter()
        .find(|d| d.mac.map(|x| x.octets()) == Some([0x02, 0x11, 0x22, 0x33, 0x44, 0x50]))
        .expect("the boundary clock");
    assert!(bc.serves.contains(&Proto::Ptp));
    // tshark's clock identities (0x-prefixed 64-bit values) are ours in EUI-64 form.
    let colon = |v: &str| {
        let n = u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap();
        n.to_be_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let all: Vec<String> = r.devices.iter().flat_map(identity).collect();
    for field in ["ptp.v2.clockidentity", "ptp.v2.an.grandmasterclockidentity"] {
        let theirs = tshark_field(&path, &[], field);
        assert!(!theirs.is_empty(), "{field}");
        for v in theirs {
            let id = colon(&v);
            assert!(
                all.iter().any(|m| m.contains(&id)),
                "{field} {id} in {all:?}"
            );
        }
    }
}

#[test]
fn ubiquiti_discovery_answer() {
    let bcast = Node {
        mac: [0xff; 6],
        ip: [255, 255, 255, 255],
    };
    let tool = B1_SEARCHER;
    let ap = B1_DEVICE;
    let tlv = |kind: u8, value: &[u8]| {
        let mut t = vec![kind];
        t.extend((value.len() as u16).to_be_bytes());
        t.extend_from_slice(value);
        t
    };
    let mut mac_ip = ap.mac.to_vec();
    mac_ip.extend(ap.ip);
    let body = [
        tlv(0x02, &mac_ip),
        tlv(0x01, &ap.mac),
        tlv(0x0a, &[0, 0, 0x0e, 0x10]),
        tlv(0x0b, b"ap-lobby"),
        tlv(0x0c, b"U7PG2"),
        tlv(0x03, b"BZ.qca956x.v6.5.55.14777.230208.0914"),
        tlv(0x14, b"UAP-AC-Pro-Gen2"),
        tlv(0x16, b"6.5.55.14777"),
    ]
    .concat();
    let mut answer = vec![1, 0];
    answer.extend((body.len() as u16).to_be_bytes());
    answer.extend(body);
    let frames = vec![
        udp(tool, 50300, bcast, 10001, &[1, 0, 0, 0]),
        udp(ap, 10001, tool, 50300, &answer),
    ];
    let path = write_pcap("ubnt.pcap", &frames);
    let r = discover(&path);
    let d = device(&r, ap.ip);
    assert!(
        d.serves.contains(&Proto::Ubiquiti) && !d.uses.contains(&Proto::Ubiquiti),
        "{d:#?}"
    );
    assert_eq!(d.hostname.as_deref(), Some("ap-lobby"));
    assert_eq!(d.vendor.as_deref(), Some("Ubiquiti"));
    assert_eq!(d.class.as_str(), "network");
    let t = device(&r, tool.ip);
    assert!(t.uses.contains(&Proto::Ubiquiti) && !t.serves.contains(&Proto::Ubiquiti));
    assert!(edge(&r, tool.ip, ap.ip, "ubiquiti"), "{:#?}", r.map);
    // tshark decodes ubdp only when told the port.
    let ubdp = ["-d", "udp.port==10001,ubdp"];
    for field in [
        "ubdp.hostname",
        "ubdp.model",
        "ubdp.firmware",
        "ubdp.firmware_full",
    ] {
        agrees(&path, &ubdp, field, d);
    }
    // It shows the product code with the name it knows for it ("U7PG2: UniFi AP-AC-Pro Gen2").
    let products = tshark_field(&path, &ubdp, "ubdp.product");
    assert!(!products.is_empty());
    for p in products {
        let code = p.split(':').next().unwrap().trim().to_owned();
        assert!(identity(d).contains(&code), "{code} in {:?}", identity(d));
    }
}

/// TP-Link's XOR autokey (first key 171).
fn b1_tplink(text: &[u8]) -> Vec<u8> {
    let mut key = 171u8;
    text.iter()
        .map(|&p| {
            key ^= p;
            key
        })
        .collect()
}

#[test]
fn tplink_smarthome_sysinfo_and_relay() {
    let bcast = Node {
        mac: [0xff; 6],
        ip: [192, 168, 1, 255],
    };
    let app = B1_SEARCHER;
    let plug = B1_DEVICE;
    let ask = b1_tplink(br#"{"system":{"get_sysinfo":{}}}"#);
    let info = b1_tplink(br#"{"system":{"get_sysinfo":{"sw_ver":"1.5.4 Build 180815 Rel.121440","hw_ver":"2.0","type":"IOT.SMARTPLUGSWITCH","model":"HS110(EU)","mac":"02:11:22:33:44:20","dev_name":"Smart Wi-Fi Plug With Energy Monitoring","alias":"Kitchen plug","relay_state":1,"deviceId":"8006A1B2C3D4E5F60718293A4B5C6D7E8F901234","err_code":0}}}"#);
    let off = b1_tplink(br#"{"system":{"set_relay_state":{"state":0}}}"#);
    let done = b1_tplink(br#"{"system":{"set_relay_state":{"err_code":0}}}"#);
    let mut frames = vec![
        udp(app, 50400, bcast, 9999, &ask),
        udp(plug, 9999, app, 50400, &info),
    ];
    let framed = |m: &[u8]| {
        let mut f = (m.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(m);
        f
    };
    let (c, s) = handshake(&mut frames, app, 50401, plug, 9999);
    let (off, done) = (framed(&off), framed(&done));
    frames.push(tcp(app, 50401, plug, 9999, c, s, &off));
    frames.push(tcp(plug, 9999, app, 50401, s, c + off.len() as u32, &done));
    let path = write_pcap("tplink.pcap", &frames);
    let r = discover(&path);
    let d = device(&r, plug.ip);
    assert!(
        d.serves.contains(&Proto::TplinkSmarthome) && !d.uses.contains(&Proto::TplinkSmarthome),
        "{d:#?}"
    );
    assert_eq!(d.model.as_deref(), Some("HS110(EU)"));
    assert_eq!(d.hostname.as_deref(), Some("Kitchen plug"));
    assert_eq!(d.firmware.as_deref(), Some("1.5.4 Build 180815 Rel.121440"));
    assert_eq!(d.vendor.as_deref(), Some("TP-Link"));
    assert!(
        d.risks.iter().any(|k| k.detail.contains("set relay state")),
        "{:#?}",
        d.risks
    );
    let a = device(&r, app.ip);
    assert!(
        a.uses.contains(&Proto::TplinkSmarthome) && !a.serves.contains(&Proto::TplinkSmarthome)
    );
    assert!(
        edge(&r, app.ip, plug.ip, "tplink-smarthome"),
        "{:#?}",
        r.map
    );
    // tshark decrypts the same messages; each value we report is in its plaintext.
    let msgs = tshark_field(&path, &[], "tplink_smarthome.msg");
    for (key, v) in [
        ("model", "HS110(EU)"),
        ("alias", "Kitchen plug"),
        ("sw_ver", "1.5.4 Build 180815 Rel.121440"),
        ("deviceId", "8006A1B2C3D4E5F60718293A4B5C6D7E8F901234"),
    ] {
        let pair = format!("\"{key}\":\"{v}\"");
        assert!(
            msgs.iter().any(|m| m.contains(&pair)),
            "{pair} in tshark's {msgs:?}"
        );
        assert!(
            identity(d).contains(&v.to_owned()),
            "{v} in {:?}",
            identity(d)
        );
    }
}

/// A Tuya frame (prefix, sequence, command, length, return code, payload, CRC, suffix).
fn b1_tuya(command: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x00, 0x00, 0x55, 0xaa];
    f.extend(1u32.to_be_bytes());
    f.extend(command.to_be_bytes());
    f.extend(((4 + payload.len() + 8) as u32).to_be_bytes());
    f.extend([0; 4]);
    f.extend_from_slice(payload);
    f.extend([0x12, 0x34, 0x56, 0x78]);
    f.extend([0x00, 0x00, 0xaa, 0x55]);
    f
}

#[test]
fn tuya_broadcasts_clear_and_encrypted() {
    use aes::cipher::{BlockEncrypt as _, KeyInit as _, generic_array::GenericArray};
    use md5::Digest as _;
    let bcast = Node {
        mac: [0xff; 6],
        ip: [255, 255, 255, 255],
    };
    let plug = B1_DEVICE;
    let bulb = Node {
        mac: [0x02, 0x11, 0x22, 0x33, 0x44, 0x60],
        ip: [192, 168, 1, 60],
    };
    let app = B1_SEARCHER;
    let clear = br#"{"ip":"192.168.1.20","gwId":"bf0011223344556677aabb","active":2,"ability":0,"mode":0,"encrypt":false,"productKey":"keyclearplug0001","version":"3.1"}"#;
    let secret = br#"{"ip":"192.168.1.60","gwId":"bf3a5c7e9d1f2b4a6c8e0d","active":2,"ability":0,"mode":0,"encrypt":true,"productKey":"keyj3w8cmutjwgsw","version":"3.3"}"#;
    // Protocol 3.3: AES-128-ECB, PKCS#7, under MD5("yGAdlopoPVldABfn") as tinytuya and tuyapi publish it.
    let key: [u8; 16] = md5::Md5::digest(b"yGAdlopoPVldABfn").into();
    let cipher = aes::Aes128::new(&key.into());
    let pad = 16 - secret.len() % 16;
    let mut enc = secret.to_vec();
    enc.resize(secret.len() + pad, pad as u8);
    for block in enc.chunks_exact_mut(16) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    let mut frames = vec![
        udp(plug, 49152, bcast, 6666, &b1_tuya(0x00, clear)),
        udp(bulb, 49153, bcast, 6667, &b1_tuya(0x13, &enc)),
    ];
    // The app controls the bulb over tcp/6668 (under the bulb's own key: not read).
    let (c, s) = handshake(&mut frames, app, 50500, bulb, 6668);
    let query = b1_tuya(0x0a, &[0x5a; 32]);
    frames.push(tcp(app, 50500, bulb, 6668, c, s, &query));
    frames.push(tcp(
        bulb,
        6668,
        app,
        50500,
        s,
        c + query.len() as u32,
        &b1_tuya(0x0a, &[0xa5; 48]),
    ));
    let path = write_pcap("tuya.pcap", &frames);
    let r = discover(&path);
    let p = device(&r, plug.ip);
    assert!(p.serves.contains(&Proto::Tuya), "{p:#?}");
    assert!(
        identity(p).contains(&"bf0011223344556677aabb".to_owned()),
        "{:?}",
        identity(p)
    );
    assert_eq!(p.vendor.as_deref(), Some("Tuya"));
    let b = device(&r, bulb.ip);
    assert!(
        b.serves.contains(&Proto::Tuya) && !b.uses.contains(&Proto::Tuya),
        "{b:#?}"
    );
    for v in [
        "bf3a5c7e9d1f2b4a6c8e0d",
        "keyj3w8cmutjwgsw",
        "Tuya protocol 3.3",
    ] {
        assert!(
            identity(b).contains(&v.to_owned()),
            "{v} in {:?}",
            identity(b)
        );
    }
    let a = device(&r, app.ip);
    assert!(
        a.uses.contains(&Proto::Tuya) && !a.serves.contains(&Proto::Tuya),
        "{a:#?}"
    );
    assert!(edge(&r, app.ip, bulb.ip, "tuya"), "{:#?}", r.map);
    // tshark 4.0 has no Tuya dissector (`tshark -G protocols` lists none), so there is nothing to compare with.
}
