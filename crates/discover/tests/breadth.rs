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
const B1_DEVICE: Node = Node {
    mac: [0x02, 0x11, 0x22, 0x33, 0x44, 0x20],
    ip: [192, 168, 1, 20],
};

#[test]
fn ssdp_search_answer_off_port_1900() {
    let group = Node {
        mac: [0x01, 0x00, 0x5e, 0x7f, 0xff, 0xfa],
        ip: [239, 255, 255, 250],
    };
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
    let group = Node {
        mac: [0x01, 0x00, 0x5e, 0x7f, 0xff, 0xfa],
        ip: [239, 255, 255, 250],
    };
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
