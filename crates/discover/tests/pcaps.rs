//! Every shared capture, discovered end to end and checked against what `tshark` shows for it: the same IP
//! endpoints with the same packet and byte counts, and concrete identity facts per protocol.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use vouch_discover::{DeviceReport, Discovery, Limits, Proto, Report, RiskKind};

fn pcap(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pcaps")
        .join(name)
}

fn discover(name: &str) -> Report {
    let mut run = Discovery::new(Limits::default());
    let file = std::fs::File::open(pcap(name)).unwrap();
    run.read(name, std::io::BufReader::new(file)).unwrap();
    run.finish(None)
}

/// `tshark -z endpoints,ip` and `endpoints,ipv6`: address → (packets, bytes, tx packets, rx packets).
fn tshark_endpoints(name: &str) -> BTreeMap<IpAddr, (u64, u64, u64, u64)> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap(name))
        .args(["-q", "-z", "endpoints,ip", "-z", "endpoints,ipv6"])
        .output()
        .expect("tshark runs (scripts/test installs it)");
    assert!(out.status.success(), "tshark failed on {name}");
    let mut m = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() == 7 {
            if let Ok(ip) = cols[0].parse::<IpAddr>() {
                let n = |i: usize| cols[i].parse::<u64>().unwrap();
                m.insert(ip, (n(1), n(2), n(3), n(5)));
            }
        }
    }
    m
}

fn ours(r: &Report) -> BTreeMap<IpAddr, (u64, u64, u64, u64)> {
    r.endpoints
        .iter()
        .map(|e| (e.address, (e.packets, e.bytes, e.tx.packets, e.rx.packets)))
        .collect()
}

fn device<'a>(r: &'a Report, ip: &str) -> &'a DeviceReport {
    let ip: IpAddr = ip.parse().unwrap();
    r.devices
        .iter()
        .find(|d| d.ips.contains(&ip))
        .unwrap_or_else(|| {
            panic!(
                "no device {ip} in {:#?}",
                r.devices.iter().map(|d| &d.key).collect::<Vec<_>>()
            )
        })
}

fn has_identity(d: &DeviceReport, value: &str) -> bool {
    d.identity.iter().any(|e| e.value.contains(value))
}

const ALL: [&str; 23] = [
    "iti_bacnet.pcap",
    "iti_dnp3_1.pcap",
    "iti_enip_status.pcap",
    "iti_enip_test.pcap",
    "iti_iec104.pcap",
    "iti_mms_goose.pcap",
    "iti_modbus1.pcap",
    "iti_modbus_big.pcap",
    "iti_opcua.pcap",
    "iti_pn_failed.pcap",
    "iti_pn_rt.pcap",
    "iti_s7_1200.pcap",
    "iti_s7_status.pcap",
    "z_cdp.pcap",
    "z_dhcp.pcap",
    "z_dhcp_prl.pcap",
    "z_http_get.pcap",
    "z_lldp.pcap",
    "z_mdns.pcap",
    "z_modbusBig.pcap",
    "z_mqtt.pcap",
    "z_snmp.pcap",
    "z_tls_chrome.pcap",
];

#[test]
fn every_capture_has_the_endpoints_tshark_lists() {
    for name in ALL {
        let r = discover(name);
        let theirs = tshark_endpoints(name);
        let mine = ours(&r);
        assert_eq!(
            mine, theirs,
            "{name}: endpoints (packets, bytes, tx, rx) differ from tshark"
        );
        // Every unicast endpoint is a device; a subnet broadcast (sent to the link's broadcast address) is not.
        for e in &r.endpoints {
            let ip = e.address;
            let unicast = match ip {
                IpAddr::V4(v4) => !(v4.is_multicast() || v4.is_broadcast() || v4.is_unspecified()),
                IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
            };
            if unicast && !e.group {
                device(&r, &ip.to_string());
            } else {
                assert!(
                    !r.devices.iter().any(|d| d.ips.contains(&ip)),
                    "{name}: {ip} is not a device"
                );
            }
        }
        assert_eq!(r.capture.frames, frames(name), "{name}: frame count");
    }
}

fn frames(name: &str) -> u64 {
    let out = Command::new("capinfos")
        .args(["-c", "-M"])
        .arg(pcap(name))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Number of packets:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("capinfos: {text}"))
}

#[test]
fn enip_list_identity_names_the_rockwell_module() {
    // tshark: enip.lir.name "1756-ENBT/A", enip.lir.vendor 1 (Rockwell Automation/Allen-Bradley).
    let r = discover("iti_enip_test.pcap");
    let d = r
        .devices
        .iter()
        .find(|d| d.model.as_deref() == Some("1756-ENBT/A"))
        .expect("1756-ENBT/A");
    assert_eq!(
        d.vendor.as_deref(),
        Some("Rockwell Automation/Allen-Bradley")
    );
    assert!(d.serves.contains(&Proto::Enip));
    assert!(d.serial.is_some());
    assert_eq!(d.class.as_str(), "plc");
}

#[test]
fn dhcp_fingerprint_and_names() {
    // tshark: option 55 = 1,3,6,42 and option 12 = test0000.
    let r = discover("z_dhcp_prl.pcap");
    let d = r
        .devices
        .iter()
        .find(|d| has_identity(d, "1,3,6,42"))
        .expect("a device with the PRL");
    assert_eq!(d.hostname.as_deref(), Some("test0000"));
    // tshark: client 90:b1:1c:99:49:29 "btest.is.cool" is leased 128.2.6.189.
    let r = discover("z_dhcp.pcap");
    let d = device(&r, "128.2.6.189");
    assert_eq!(
        d.mac.map(|m| m.to_string()).as_deref(),
        Some("90:b1:1c:99:49:29")
    );
    assert_eq!(d.hostname.as_deref(), Some("btest.is.cool"));
    assert!(device(&r, "128.2.6.152").serves.contains(&Proto::Dhcp));
}

#[test]
fn tls_client_fingerprints() {
    // tshark: tls.handshake.ja3 a607f3a5c94c2ee592af1456f36c8367 from 192.168.4.149, SNI google.de.
    let r = discover("z_tls_chrome.pcap");
    let d = device(&r, "192.168.4.149");
    assert!(has_identity(d, "a607f3a5c94c2ee592af1456f36c8367"));
    assert!(has_identity(d, "t12d2011s3_8dd61975155f_06a4338d0495"));
    assert!(has_identity(d, "google.de"));
}

#[test]
fn opc_ua_on_a_non_standard_port() {
    // tshark (with -d tcp.port==12001,opcua): OPC UA on tcp/12001; by default it shows only "data".
    let r = discover("iti_opcua.pcap");
    let server = r
        .devices
        .iter()
        .find(|d| d.serves.contains(&Proto::OpcUa))
        .expect("an OPC UA server");
    assert!(
        r.map
            .iter()
            .any(|e| e.service == "opc-ua" && e.server == server.key)
    );
    assert!(
        server
            .identity
            .iter()
            .any(|e| e.value.starts_with("opc.tcp://")),
        "{:?}",
        server.identity
    );
}

#[test]
fn dnp3_not_enip_in_the_misnamed_capture() {
    // NOTICE.md and tshark: EIP-ViewDeviceStatus is DNP3 on tcp/20000.
    let r = discover("iti_enip_status.pcap");
    assert!(r.map.iter().any(|e| e.service == "dnp3"), "{:?}", r.map);
    assert!(!r.map.iter().any(|e| e.service == "enip"));
    assert!(
        r.devices
            .iter()
            .any(|d| d.serves.contains(&Proto::Dnp3) && d.class.as_str() == "rtu")
    );
}

#[test]
fn industrial_protocols_each_in_their_capture() {
    let r = discover("iti_mms_goose.pcap");
    let broadcast = r
        .endpoints
        .iter()
        .find(|e| e.address.to_string() == "172.16.255.255")
        .unwrap();
    assert!(
        broadcast.group,
        "NBNS/SMB browser traffic to the subnet broadcast"
    );
    for (name, proto, class) in [
        ("iti_dnp3_1.pcap", Proto::Dnp3, "rtu"),
        ("iti_iec104.pcap", Proto::Iec104, "rtu"),
        ("iti_modbus1.pcap", Proto::Modbus, "plc"),
        ("z_modbusBig.pcap", Proto::Modbus, "plc"),
        ("iti_s7_status.pcap", Proto::S7comm, "plc"),
        ("iti_s7_1200.pcap", Proto::S7commPlus, "plc"),
        ("iti_bacnet.pcap", Proto::Bacnet, "plc"),
        ("iti_mms_goose.pcap", Proto::Goose, "rtu"),
    ] {
        let r = discover(name);
        // The device that answers in the protocol, not one that was only contacted in it.
        let d = r.devices.iter().find(|d| d.answers.contains(&proto));
        let d = d.unwrap_or_else(|| panic!("{name}: nobody serves {proto:?}: {:#?}", r.devices));
        assert_eq!(d.class.as_str(), class, "{name}: {d:#?}");
        assert!(!d.evidence.is_empty());
    }
}

#[test]
fn profinet_dcp_talkers() {
    // tshark: 14 DCP Identify requests from Siemens (00:1b:1b) hardware addresses, names such as "pn-io".
    let r = discover("iti_pn_rt.pcap");
    let dcp: Vec<_> = r
        .devices
        .iter()
        .filter(|d| d.uses.contains(&Proto::ProfinetDcp))
        .collect();
    assert!(dcp.len() >= 10, "{:#?}", r.devices);
    assert!(dcp.iter().all(|d| {
        d.mac_vendor
            .as_deref()
            .is_some_and(|v| v.starts_with("Siemens"))
    }));
    assert!(dcp.iter().all(|d| d.class.as_str() == "plc"));
}

#[test]
fn modbus_units_and_writes() {
    // tshark: iti_modbus1 has unit id 1 (mbtcp.unit_id) and function codes incl. writes.
    let r = discover("iti_modbus1.pcap");
    let server = r
        .devices
        .iter()
        .find(|d| d.serves.contains(&Proto::Modbus))
        .unwrap();
    assert!(
        server.ot.get("modbus_units").is_some_and(|u| !u.is_empty()),
        "{:?}",
        server.ot
    );
    assert!(
        server
            .ot
            .get("modbus_functions")
            .is_some_and(|f| !f.is_empty())
    );
}

#[test]
fn link_layer_names() {
    // tshark: CDP device id and platform; LLDP system name.
    let r = discover("z_cdp.pcap");
    assert!(
        r.devices
            .iter()
            .any(|d| d.class.as_str() == "network" && d.hostname.is_some()),
        "{:#?}",
        r.devices
    );
    let r = discover("z_lldp.pcap");
    assert!(
        r.devices
            .iter()
            .any(|d| d.serves.contains(&Proto::Lldp) && d.hostname.is_some()),
        "{:#?}",
        r.devices
    );
}

#[test]
fn mdns_snmp_mqtt_http_identity() {
    let r = discover("z_mdns.pcap");
    assert_eq!(
        device(&r, "10.0.2.7").hostname.as_deref(),
        Some("johanna-QEMU-Virtual-Machine")
    );
    // tshark: sysDescr from 138.68.10.203 starts "Linux ubuntu-512mb-sfo2-01".
    let r = discover("z_snmp.pcap");
    let agent = device(&r, "138.68.10.203");
    assert!(has_identity(agent, "Linux ubuntu-512mb-sfo2-01"));
    assert_eq!(agent.class.as_str(), "it-host");
    assert!(
        device(&r, "138.68.14.240")
            .risks
            .iter()
            .any(|k| k.kind == RiskKind::CleartextCredentials)
    );
    // tshark: mqtt.clientid paho/34AAE54A75D839566E from 10.0.1.4 to the broker 198.41.30.241.
    let r = discover("z_mqtt.pcap");
    let client = device(&r, "10.0.1.4");
    assert!(has_identity(client, "paho/34AAE54A75D839566E"));
    assert!(
        client
            .risks
            .iter()
            .any(|k| k.kind == RiskKind::UnencryptedMqtt)
    );
    assert_eq!(device(&r, "198.41.30.241").class.as_str(), "gateway");
    // tshark: http.user_agent Wget/1.14 (darwin12.2.0), http.server Apache/2.4.3 (Fedora).
    let r = discover("z_http_get.pcap");
    assert!(has_identity(device(&r, "141.142.228.5"), "Wget/1.14"));
    assert!(has_identity(
        device(&r, "192.150.187.43"),
        "Apache/2.4.3 (Fedora)"
    ));
}

#[test]
fn map_and_dot() {
    let r = discover("iti_modbus1.pcap");
    assert!(
        r.map
            .iter()
            .any(|e| e.service == "modbus" && e.forward.packets > 0 && e.back.packets > 0)
    );
    let dot = r.to_dot();
    assert!(dot.starts_with("digraph") && dot.contains("modbus") && dot.trim_end().ends_with('}'));
}

#[test]
fn a_second_run_reports_what_changed() {
    let before = discover("iti_modbus1.pcap");
    let mut run = Discovery::new(Limits::default());
    for name in ["iti_modbus1.pcap", "z_mqtt.pcap"] {
        run.read(name, std::fs::File::open(pcap(name)).unwrap())
            .unwrap();
    }
    let after = run.finish(Some(&before));
    let changes = after.changes.as_ref().unwrap();
    assert!(
        changes
            .new_devices
            .iter()
            .any(|k| k.contains("10.0.1.4") || !k.is_empty())
    );
    assert!(!changes.new_talkers.is_empty());
    assert!(changes.gone_devices.is_empty());
    let new = after
        .devices
        .iter()
        .find(|d| d.ips.contains(&"10.0.1.4".parse().unwrap()))
        .unwrap();
    assert!(new.risks.iter().any(|r| r.kind == RiskKind::NewTalker));
}

#[test]
fn truncated_and_corrupt_captures_name_the_offset_and_keep_what_came_before() {
    let bytes = std::fs::read(pcap("iti_modbus1.pcap")).unwrap();
    // Cut in the middle of a frame.
    let cut = bytes.len() - 30;
    let mut run = Discovery::new(Limits::default());
    let err = run.read("cut", &bytes[..cut]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("truncated at byte offset"), "{msg}");
    let offset = err.offset().unwrap();
    assert!(offset > 24 && (offset as usize) < cut, "{offset}");
    let r = run.finish(None);
    assert!(
        r.capture.frames > 100,
        "frames before the cut are kept: {}",
        r.capture.frames
    );
    assert!(!r.devices.is_empty());
    assert_eq!(r.capture.errors.len(), 1);
    // A record header announcing an absurd length.
    let mut bad = bytes.clone();
    let second = 24 + 16 + u32::from_le_bytes(bytes[24 + 8..24 + 12].try_into().unwrap()) as usize;
    bad[second + 8..second + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let mut run = Discovery::new(Limits::default());
    let err = run.read("bad", &bad[..]).unwrap_err();
    assert_eq!(err.offset(), Some(second as u64), "{err}");
    assert_eq!(run.finish(None).capture.frames, 1);
    // Not a capture at all.
    let mut run = Discovery::new(Limits::default());
    let err = run
        .read("text", &b"hello, this is not a capture file at all"[..])
        .unwrap_err();
    assert!(err.to_string().contains("not a pcap or pcapng"), "{err}");
}

#[test]
fn pcapng_written_by_editcap_reads_the_same() {
    let dir = tempfile_dir();
    let ng = dir.join("modbus.pcapng");
    let st = Command::new("editcap")
        .args(["-F", "pcapng"])
        .arg(pcap("iti_modbus1.pcap"))
        .arg(&ng)
        .status()
        .unwrap();
    assert!(st.success());
    let a = discover("iti_modbus1.pcap");
    let mut run = Discovery::new(Limits::default());
    run.read("ng", std::fs::File::open(&ng).unwrap()).unwrap();
    let b = run.finish(None);
    assert_eq!(ours(&a), ours(&b));
    assert_eq!(a.capture.first, b.capture.first);
    assert_eq!(a.map, b.map);
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("vouch-discover-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_tiny_flow_table_still_counts_everything() {
    let big = discover("z_modbusBig.pcap");
    let mut run = Discovery::new(Limits {
        max_flows: 2,
        ..Limits::default()
    });
    run.read(
        "big",
        std::fs::File::open(pcap("z_modbusBig.pcap")).unwrap(),
    )
    .unwrap();
    let small = run.finish(None);
    assert_eq!(ours(&big), ours(&small));
    assert!(small.capture.flows_evicted > 0);
    let total = |r: &Report| {
        r.map
            .iter()
            .map(|e| e.forward.packets + e.back.packets)
            .sum::<u64>()
    };
    assert_eq!(total(&big), total(&small));
}

/// The distinct values tshark shows for `field` (`-T fields`), lists split.
fn tshark_field(name: &str, field: &str) -> std::collections::BTreeSet<String> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap(name))
        .args(["-T", "fields", "-e", field])
        .output()
        .expect("tshark runs (scripts/test installs it)");
    String::from_utf8_lossy(&out.stdout)
        .split(['\n', ',', '\t'])
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Identity values are compared with tshark's own field exports in the same run, not with copies of them.
#[test]
fn identity_fields_agree_with_tshark() {
    let all_identity = |r: &Report| -> Vec<String> {
        r.devices
            .iter()
            .flat_map(|d| d.identity.iter().map(|e| e.value.clone()))
            .collect()
    };
    for (name, field) in [
        ("z_tls_chrome.pcap", "tls.handshake.ja3"),
        ("z_tls_chrome.pcap", "tls.handshake.extensions_server_name"),
        ("iti_enip_test.pcap", "enip.lir.name"),
        ("z_dhcp.pcap", "dhcp.option.hostname"),
        ("z_mqtt.pcap", "mqtt.clientid"),
        ("z_http_get.pcap", "http.user_agent"),
        ("z_http_get.pcap", "http.server"),
        ("z_lldp.pcap", "lldp.tlv.system.name"),
        ("iti_pn_failed.pcap", "lldp.tlv.system.name"),
        ("z_cdp.pcap", "cdp.deviceid"),
        ("z_cdp.pcap", "cdp.platform"),
    ] {
        let theirs = tshark_field(name, field);
        assert!(!theirs.is_empty(), "{name}: tshark shows no {field}");
        let mine = all_identity(&discover(name));
        for v in &theirs {
            assert!(
                mine.iter().any(|m| m == v || m.contains(v.as_str())),
                "{name}: {field} {v} missing from {mine:?}"
            );
        }
    }
    // DHCP parameter request list, as tshark lists the items.
    let prl: Vec<String> = tshark_field("z_dhcp_prl.pcap", "dhcp.option.request_list_item")
        .into_iter()
        .collect();
    let mut sorted: Vec<u32> = prl.iter().map(|v| v.parse().unwrap()).collect();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 3, 6, 42]);
    assert!(all_identity(&discover("z_dhcp_prl.pcap")).contains(&"1,3,6,42".to_owned()));
    // Modbus unit ids and DNP3 addresses (tshark's, less the broadcast 65535, which names no device).
    for (name, field, key) in [
        ("iti_modbus1.pcap", "mbtcp.unit_id", "modbus_units"),
        ("iti_modbus_big.pcap", "mbtcp.unit_id", "modbus_units"),
        ("z_modbusBig.pcap", "mbtcp.unit_id", "modbus_units"),
        ("iti_dnp3_1.pcap", "dnp3.src", "dnp3_addresses"),
        ("iti_dnp3_1.pcap", "dnp3.dst", "dnp3_addresses"),
        (
            "iti_bacnet.pcap",
            "bacapp.instance_number",
            "bacnet_instances",
        ),
    ] {
        let theirs: std::collections::BTreeSet<u32> = tshark_field(name, field)
            .iter()
            .map(|v| v.parse().unwrap())
            .filter(|v| *v != 65535 && *v != 4_194_303)
            .collect();
        let r = discover(name);
        let mine: std::collections::BTreeSet<u32> = r
            .devices
            .iter()
            .flat_map(|d| d.ot.get(key).cloned().unwrap_or_default())
            .collect();
        assert_eq!(mine, theirs, "{name}: {field}");
    }
}

#[test]
fn lldp_and_netbios_name_the_scada_pc() {
    // tshark: LLDP system name and the NetBIOS browser announcement both say SCADA-PC-060839 (10.10.10.70).
    let r = discover("iti_pn_failed.pcap");
    let pc = device(&r, "10.10.10.70");
    assert!(
        pc.identity.iter().any(|e| e.value == "SCADA-PC-060839"),
        "{:?}",
        pc.identity
    );
}
