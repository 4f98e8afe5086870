//! Entry points for the fuzz targets (`crates/discover/fuzz`): one per dissector, plus the whole path from
//! capture bytes to report. Each must return for any input without panicking.

use crate::facts::{Collect, Dir};
use crate::proto;

/// The dissectors with a fuzz target, by target name.
pub const DISSECTORS: [&str; 18] = [
    "modbus", "dnp3", "iec104", "s7", "enip", "opcua", "bacnet", "lldp", "cdp", "pndcp", "goose",
    "dhcp", "dns", "snmp", "tls", "http", "mqtt", "banner",
];

/// Runs dissector `name` over `data` both ways (and its `looks_like`), as the engine would.
pub fn dissector(name: &str, data: &[u8]) {
    let mut out = Collect::default();
    for dir in [Dir::ToServer, Dir::ToClient] {
        match name {
            "modbus" => {
                proto::modbus::looks_like(data);
                proto::modbus::dissect(data, dir, &mut out)
            }
            "dnp3" => {
                proto::dnp3::looks_like(data);
                proto::dnp3::dissect(data, dir, &mut out)
            }
            "iec104" => {
                proto::iec104::looks_like(data);
                proto::iec104::dissect(data, dir, &mut out)
            }
            "s7" => {
                proto::s7::looks_like(data);
                proto::s7::dissect(data, dir, &mut out);
                proto::cotp_kind(data);
            }
            "enip" => {
                proto::enip::looks_like(data);
                proto::enip::dissect(data, dir, &mut out)
            }
            "opcua" => {
                proto::opcua::looks_like(data);
                proto::opcua::dissect(data, dir, &mut out)
            }
            "bacnet" => {
                proto::bacnet::looks_like(data);
                proto::bacnet::dissect(data, dir, &mut out)
            }
            "lldp" => proto::lldp::dissect(data, &mut out),
            "cdp" => proto::cdp::dissect(data, &mut out),
            "pndcp" => {
                proto::pndcp::is_dcp(data);
                proto::pndcp::dissect(data, &mut out)
            }
            "goose" => proto::goose::dissect(data, &mut out),
            "dhcp" => proto::dhcp::dissect(data, &mut out),
            "dns" => {
                proto::dns::dissect_dns(data, dir, &mut out);
                proto::dns::dissect_mdns(data, &mut out);
                proto::dns::dissect_nbns(data, &mut out);
            }
            "snmp" => proto::snmp::dissect(data, dir, &mut out),
            "tls" => {
                proto::tls::looks_like(data);
                proto::tls::dissect(data, dir, &mut out);
            }
            "http" => {
                proto::http::looks_like(data);
                proto::http::dissect(data, dir, &mut out);
                proto::http::looks_like_ssdp(data);
                proto::http::ssdp_direction(data);
                proto::http::dissect_ssdp(data, &mut out);
            }
            "mqtt" => {
                proto::mqtt::looks_like(data);
                proto::mqtt::dissect(data, dir, &mut out);
            }
            "banner" => {
                proto::banner::dissect_ssh(data, dir, &mut out);
                proto::banner::dissect_ftp(data, dir, &mut out);
                proto::banner::dissect_telnet(data, dir, &mut out);
            }
            _ => {}
        }
    }
    // Detection must not panic either, whatever the port.
    for port in [0, 21, 102, 502, 2404, 4840, 20000, 44818] {
        proto::detect_tcp(data, port);
    }
    proto::detect_udp(data, 47808, 47808);
}

/// Reads `data` as a capture file and builds the report and its DOT map.
pub fn capture(data: &[u8]) {
    let mut run = crate::Discovery::new(crate::Limits {
        max_flows: 64,
        ..crate::Limits::default()
    });
    let _ = run.read("fuzz", data);
    let report = run.finish(None);
    let _ = report.to_dot();
}

/// Runs one row of the protocol table over `data[1..]`, chosen by `data[0]`: its recognition, its header
/// direction, its reading both ways, and detection on its ports. Every protocol in the table is fuzzed through
/// this target, including those without a target of their own.
pub fn table(data: &[u8]) {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let table = proto::TABLE;
    let Some(spec) = table.get(usize::from(pick) % table.len()) else {
        return;
    };
    let mut out = Collect::default();
    if let Some(looks) = spec.looks_like {
        looks(payload);
    }
    (spec.direction)(payload);
    for dir in [Dir::ToServer, Dir::ToClient] {
        match spec.read {
            proto::Read::Each(f) => f(payload, dir, &mut out),
            proto::Read::Head(f) => {
                f(payload, dir, &mut out);
            }
            proto::Read::Nothing => {}
        }
        for &(lo, _) in spec.udp {
            proto::datagram(spec.proto, payload, dir, lo, &mut out);
        }
    }
    for &port in spec.tcp {
        proto::detect_tcp(payload, port);
    }
    for &(lo, hi) in spec.udp {
        proto::detect_udp(payload, lo, hi);
        proto::detect_udp(payload, 50000, lo);
    }
    for &t in spec.ether {
        proto::ether(t, payload, &mut out);
    }
}
