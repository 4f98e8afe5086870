//! Discovery semantics an OT analyst checks (issue 16): TCP duplicates and retransmissions are dissected once
//! for every protocol; client and server come from the protocol's own header before any port heuristic; a
//! group address is never a client and a one-way UDP sender is one; S7 block transfers belong to the session's
//! initiator; a host talking to itself is counted as tshark counts it.
//!
//! Every capture is built here from the protocols' specifications (etherparse for the headers), written under
//! the target directory, discovered end to end and, where tshark dissects the protocol, compared with tshark's
//! fields for the same file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;

use common::*;
use vouch_discover::Proto;

// ---- Frames ----

/// CRC-16/DNP (polynomial 0x3D65 reflected, inverted), little-endian after each DNP3 block.
fn dnp3_crc(bytes: &[u8]) -> [u8; 2] {
    let mut crc = 0u16;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xa6bc
            } else {
                crc >> 1
            };
        }
    }
    (!crc).to_le_bytes()
}

/// A DNP3 link frame: control byte, destination, source, then user data in 16-byte blocks with their CRCs.
fn dnp3_frame(ctrl: u8, dst: u16, src: u16, user: &[u8]) -> Vec<u8> {
    let [d0, d1] = dst.to_le_bytes();
    let [s0, s1] = src.to_le_bytes();
    let mut v = vec![0x05, 0x64, 5 + user.len() as u8, ctrl, d0, d1, s0, s1];
    v.extend_from_slice(&dnp3_crc(&v));
    for block in user.chunks(16) {
        v.extend_from_slice(block);
        v.extend_from_slice(&dnp3_crc(block));
    }
    v
}

/// A master's (address 1) request to outstation 10: DIR and PRM set, unconfirmed user data; one transport
/// segment (FIR, FIN) holding one application fragment with function `fc` and `objects`.
fn dnp3_request(seq: u8, fc: u8, objects: &[u8]) -> Vec<u8> {
    let mut user = vec![0xc0 | (seq & 0x3f), 0xc0 | (seq & 0x0f), fc];
    user.extend_from_slice(objects);
    dnp3_frame(0xc4, 10, 1, &user)
}

/// Outstation 10's response to the master (DIR clear): function 0x81 with empty internal indications.
fn dnp3_response(seq: u8) -> Vec<u8> {
    dnp3_frame(
        0x44,
        1,
        10,
        &[0xc0 | (seq & 0x3f), 0xc0 | (seq & 0x0f), 0x81, 0, 0],
    )
}

/// An MBAP-framed Modbus PDU (`pdu` starts at the function code) for unit 1.
fn modbus(tid: u16, pdu: &[u8]) -> Vec<u8> {
    let mut v = tid.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
    v.push(1);
    v.extend_from_slice(pdu);
    v
}

/// A TPKT around a COTP TPDU and its data.
fn tpkt(tpdu: &[u8]) -> Vec<u8> {
    let mut v = vec![3, 0];
    v.extend_from_slice(&(tpdu.len() as u16 + 4).to_be_bytes());
    v.extend_from_slice(tpdu);
    v
}

/// A COTP connection request (0xe0) or confirm (0xd0) with source/destination TSAPs and TPDU size.
fn cotp_connect(kind: u8) -> Vec<u8> {
    tpkt(&[
        0x11, kind, 0x00, 0x01, 0x00, 0x02, 0x00, 0xc1, 0x02, 0x01, 0x00, 0xc2, 0x02, 0x01, 0x02,
        0xc0, 0x01, 0x0a,
    ])
}

/// An S7comm PDU in a COTP data TPDU: ROSCTR, PDU reference, parameters and data (acks carry an error
/// class and code, here zero).
fn s7(rosctr: u8, pdu_ref: u16, param: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x02, 0xf0, 0x80, 0x32, rosctr, 0, 0];
    v.extend_from_slice(&pdu_ref.to_be_bytes());
    v.extend_from_slice(&(param.len() as u16).to_be_bytes());
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    if matches!(rosctr, 2 | 3) {
        v.extend_from_slice(&[0, 0]);
    }
    v.extend_from_slice(param);
    v.extend_from_slice(data);
    tpkt(&v)
}

/// The parameters of a block-transfer job (0x1a request download, 0x1b download block, 0x1c download
/// ended): function, status, reserved, then the file name "_0800001P" (OB 1, passive file system).
fn s7_block_job(function: u8) -> Vec<u8> {
    let mut p = vec![function, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09];
    p.extend_from_slice(b"_0800001P");
    if function == 0x1a {
        // Request download adds the load memory and MC7 lengths as text.
        p.push(0x0d);
        p.extend_from_slice(b"1000200000100");
    }
    p
}

/// An IEC 104 I-frame with send/receive numbers and one ASDU: type, cause of transmission, common address 1,
/// information object 1 and its element.
fn iec104_i(ns: u16, nr: u16, type_id: u8, cause: u8, element: &[u8]) -> Vec<u8> {
    let mut asdu = vec![type_id, 1, cause, 0, 1, 0, 1, 0, 0];
    asdu.extend_from_slice(element);
    let [n0, n1] = (ns << 1).to_le_bytes();
    let [r0, r1] = (nr << 1).to_le_bytes();
    let mut v = vec![0x68, 4 + asdu.len() as u8, n0, n1, r0, r1];
    v.extend_from_slice(&asdu);
    v
}

/// An EtherNet/IP SendRRData message (session 0x01020304) carrying one unconnected CIP message.
fn enip_rr(cip: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0xb2, 0];
    body.extend_from_slice(&(cip.len() as u16).to_le_bytes());
    body.extend_from_slice(cip);
    let mut v = vec![0x6f, 0x00];
    v.extend_from_slice(&(body.len() as u16).to_le_bytes());
    v.extend_from_slice(&[4, 3, 2, 1, 0, 0, 0, 0]);
    v.extend_from_slice(&[0; 12]);
    v.extend_from_slice(&body);
    v
}

/// A BACnet/IP original-unicast NPDU (no addresses, expecting a reply) around `apdu`.
fn bacnet(apdu: &[u8]) -> Vec<u8> {
    let mut v = vec![0x81, 0x0a];
    v.extend_from_slice(&(apdu.len() as u16 + 6).to_be_bytes());
    v.extend_from_slice(&[0x01, 0x04]);
    v.extend_from_slice(apdu);
    v
}

/// A DLMS wrapper (IEC 62056-47: version 1, client wPort 0x10, server wPort 1) around an APDU.
fn dlms(apdu: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00, 0x01, 0x00, 0x10, 0x00, 0x01];
    v.extend_from_slice(&(apdu.len() as u16).to_be_bytes());
    v.extend_from_slice(apdu);
    v
}

/// Whether every edge of the map has a device as its client (a group address is never listed as one).
fn clients_are_devices(r: &vouch_discover::Report) -> bool {
    let devices: BTreeSet<&str> = r.devices.iter().map(|d| d.key.as_str()).collect();
    r.map.iter().all(|e| devices.contains(e.client.as_str()))
}

const MASTER: Host = Host {
    mac: [0x00, 0x50, 0x56, 0x10, 0x00, 0x01],
    ip: [10, 50, 0, 1],
};
const OUTSTATION: Host = Host {
    mac: [0x00, 0x50, 0x56, 0x10, 0x00, 0x02],
    ip: [10, 50, 0, 2],
};
const HMI: Host = Host {
    mac: [0x00, 0x50, 0x56, 0x10, 0x00, 0x03],
    ip: [10, 50, 0, 3],
};
const PLC: Host = Host {
    // A Siemens hardware address.
    mac: [0x00, 0x1b, 0x1b, 0x10, 0x00, 0x04],
    ip: [10, 50, 0, 4],
};

// ---- 1. TCP duplicates and retransmissions ----

#[test]
fn dnp3_commands_in_duplicated_segments_count_once() {
    // Each of the master's commands is captured three times with the same sequence number (a SPAN port that
    // duplicates, plus retransmissions), then a segment is missing (a gap) and the warm restart after it must
    // still be read, once, though it is retransmitted too.
    let mut p = Pcap::default();
    p.handshake(MASTER, 50000, OUTSTATION, 20000);
    let mut time = vec![50, 1, 0x07, 0x01];
    time.extend_from_slice(&[0x00, 0x5c, 0x26, 0x0a, 0x8f, 0x01]);
    let commands: [(u8, &[u8]); 3] = [(13, &[]), (18, &[]), (2, &time)];
    for (i, (fc, objects)) in commands.iter().enumerate() {
        let req = dnp3_request(i as u8, *fc, objects);
        let seq = p.tcp(MASTER, 50000, OUTSTATION, 20000, &req);
        for _ in 0..2 {
            p.tcp_at(MASTER, 50000, OUTSTATION, 20000, seq, (false, true), &req);
        }
        p.tcp(OUTSTATION, 20000, MASTER, 50000, &dnp3_response(i as u8));
    }
    p.gap(MASTER, 50000, 20);
    let warm = dnp3_request(3, 14, &[]);
    let seq = p.tcp(MASTER, 50000, OUTSTATION, 20000, &warm);
    p.tcp(OUTSTATION, 20000, MASTER, 50000, &dnp3_response(3));
    p.tcp_at(MASTER, 50000, OUTSTATION, 20000, seq, (false, true), &warm);
    let (path, r) = p.run("dnp3_duplicates.pcap");

    let o = device(&r, OUTSTATION);
    for (text, n) in [
        ("cold restart (13)", 1),
        ("stop application (18)", 1),
        ("write time and date (2)", 1),
        ("warm restart (14)", 1),
    ] {
        assert_eq!(received(o, text), n, "{text}: {:#?}", o.risks);
    }
    // tshark marks every copy after the first as a retransmission (2 + 2 + 2 + 1 frames) and dissects each
    // command once: the counts discovery gives.
    let rows = tshark_rows(
        &path,
        &["-Y", "ip.src == 10.50.0.1 && tcp.len > 0"],
        &["dnp3.al.func", "tcp.analysis.retransmission"],
    );
    let copies = rows.iter().filter(|r| !r[1].is_empty()).count();
    assert_eq!(copies, 7, "tshark: {rows:?}");
    for fc in ["13", "18", "2", "14"] {
        let read = rows.iter().filter(|r| r[0] == fc).count();
        assert_eq!(read, 1, "tshark reads function {fc} {read} times: {rows:?}");
    }
    // Frames and bytes still count every copy, as tshark's endpoints do.
    assert_eq!(endpoints(&r), tshark_endpoints(&path));
}

#[test]
fn a_retransmission_that_carries_more_is_read_from_where_the_stream_was() {
    // The client's write single register is retransmitted together with the next request (write multiple
    // registers), which had not been sent before: the write single is read once, the write multiple once.
    let mut p = Pcap::default();
    p.handshake(HMI, 49500, PLC, 502);
    let single = modbus(1, &[6, 0x00, 0x10, 0x00, 0x2a]);
    let multiple = modbus(2, &[16, 0x00, 0x20, 0x00, 0x02, 0x04, 0, 1, 0, 2]);
    let seq = p.tcp(HMI, 49500, PLC, 502, &single);
    let mut both = single.clone();
    both.extend_from_slice(&multiple);
    p.tcp_at(HMI, 49500, PLC, 502, seq, (false, true), &both);
    p.gap(HMI, 49500, multiple.len() as u32);
    p.tcp(PLC, 502, HMI, 49500, &single);
    p.tcp(
        PLC,
        502,
        HMI,
        49500,
        &modbus(2, &[16, 0x00, 0x20, 0x00, 0x02]),
    );
    let (path, r) = p.run("modbus_coalesced_retransmission.pcap");
    let plc = device(&r, PLC);
    assert_eq!(
        received(plc, "write single register (6)"),
        1,
        "{:#?}",
        plc.risks
    );
    assert_eq!(
        received(plc, "write multiple registers (16)"),
        1,
        "{:#?}",
        plc.risks
    );
    // tshark reads the write single once too (it leaves the coalesced segment undissected, so it does not see
    // the write multiple at all: discovery reads the part that is new).
    let rows = tshark_rows(
        &path,
        &["-Y", "ip.src == 10.50.0.3 && modbus.func_code"],
        &["modbus.func_code", "tcp.analysis.retransmission"],
    );
    let firsts: Vec<&str> = rows
        .iter()
        .filter(|r| r[1].is_empty())
        .map(|r| r[0].as_str())
        .collect();
    assert_eq!(firsts, ["6"], "tshark: {rows:?}");
    assert_eq!(endpoints(&r), tshark_endpoints(&path));
}

// ---- 2. Client and server from the protocol's own header ----

#[test]
fn dlms_request_from_port_0_leaves_the_meter_serving() {
    // No handshake in the capture; the head-end's GET request comes from port 0, below the meter's 4059.
    let head_end = MASTER;
    let meter = OUTSTATION;
    let mut p = Pcap::default();
    let get = [0xc0, 0x01, 0xc1, 0x00, 0x08, 0, 0, 1, 0, 0, 255, 0x02, 0x00];
    p.tcp(head_end, 0, meter, 4059, &dlms(&get));
    p.tcp(
        meter,
        4059,
        head_end,
        0,
        &dlms(&[0xc4, 0x01, 0xc1, 0x00, 0x09, 0x02, 0x07, 0xea]),
    );
    let (_, r) = p.run("dlms_port0.pcap");
    assert!(edge(&r, head_end, meter, "dlms"), "{:#?}", r.map);
    assert!(device(&r, meter).serves.contains(&Proto::Dlms));
    assert!(!device(&r, head_end).serves.contains(&Proto::Dlms));
}

#[test]
fn iec104_station_answering_a_low_client_port_is_the_server() {
    // Mid-conversation: the controlled station (2404) reports spontaneously to a controlling station whose
    // port, 1030, is below 2404; then the controlling station sends a single command (activation, cause 6)
    // and the station confirms it (cause 7).
    let station = OUTSTATION;
    let control = MASTER;
    let mut p = Pcap::default();
    p.tcp(station, 2404, control, 1030, &iec104_i(5, 3, 1, 3, &[0x01]));
    p.tcp(control, 1030, station, 2404, &[0x68, 4, 0x01, 0, 12, 0]);
    p.tcp(
        control,
        1030,
        station,
        2404,
        &iec104_i(3, 6, 45, 6, &[0x01]),
    );
    p.tcp(
        station,
        2404,
        control,
        1030,
        &iec104_i(6, 4, 45, 7, &[0x01]),
    );
    let (path, r) = p.run("iec104_low_port.pcap");
    assert!(edge(&r, control, station, "iec104"), "{:#?}", r.map);
    let s = device(&r, station);
    assert!(s.serves.contains(&Proto::Iec104), "{s:#?}");
    assert_eq!(received(s, "single command (45)"), 1, "{:#?}", s.risks);
    // tshark: the activation comes from the controlling station, the spontaneous report and the
    // confirmation from the station.
    let rows = tshark_rows(
        &path,
        &["-Y", "iec60870_asdu"],
        &["ip.src", "iec60870_asdu.causetx"],
    );
    let from = |cause: &str| {
        rows.iter()
            .find(|r| r[1] == cause)
            .map(|r| r[0].parse::<IpAddr>().unwrap())
    };
    assert_eq!(from("6"), Some(IpAddr::from(control.ip)), "{rows:?}");
    assert_eq!(from("3"), Some(IpAddr::from(station.ip)), "{rows:?}");
}

#[test]
fn dnp3_outstation_first_seen_answering_is_the_server() {
    // Mid-conversation, the outstation's response comes first, to a master on port 1030 (below 20000).
    let mut p = Pcap::default();
    p.tcp(OUTSTATION, 20000, MASTER, 1030, &dnp3_response(1));
    p.tcp(
        MASTER,
        1030,
        OUTSTATION,
        20000,
        &dnp3_request(2, 1, &[60, 1, 6]),
    );
    p.tcp(OUTSTATION, 20000, MASTER, 1030, &dnp3_response(2));
    let (path, r) = p.run("dnp3_mid_stream.pcap");
    assert!(edge(&r, MASTER, OUTSTATION, "dnp3"), "{:#?}", r.map);
    assert!(!edge(&r, OUTSTATION, MASTER, "dnp3"), "{:#?}", r.map);
    // tshark's DIR bit: set (1) only in the master's frames.
    let rows = tshark_rows(&path, &["-Y", "dnp3"], &["ip.src", "dnp3.ctl.dir"]);
    for row in &rows {
        let master = row[0].parse::<IpAddr>().unwrap() == IpAddr::from(MASTER.ip);
        assert_eq!(row[1] == "1", master, "{rows:?}");
    }
}

#[test]
fn s7_plc_first_seen_sending_a_download_block_job_is_the_server() {
    // Mid-download: the first packet seen is the PLC's Download block job (S7 has the PLC send it to the PC);
    // the engineering PC's port, 100, is below the PLC's 102.
    let mut p = Pcap::default();
    p.tcp(PLC, 102, HMI, 100, &s7(1, 7, &s7_block_job(0x1b), &[]));
    p.tcp(
        HMI,
        100,
        PLC,
        102,
        &s7(
            3,
            7,
            &[0x1b, 0x00],
            &[0x00, 0x04, 0x00, 0xfb, 0x70, 0x70, 0x01, 0x01],
        ),
    );
    let (path, r) = p.run("s7_mid_download.pcap");
    assert!(edge(&r, HMI, PLC, "s7comm"), "{:#?}", r.map);
    let plc = device(&r, PLC);
    assert!(plc.serves.contains(&Proto::S7comm), "{plc:#?}");
    assert_eq!(
        received(plc, "download block (0x1b)"),
        1,
        "{:#?}",
        plc.risks
    );
    let rows = tshark_rows(
        &path,
        &["-Y", "s7comm"],
        &["ip.src", "s7comm.header.rosctr"],
    );
    assert_eq!(rows[0], [IpAddr::from(PLC.ip).to_string(), "1".to_owned()]);
}

#[test]
fn modbus_request_from_port_502_to_port_502_tells_the_client() {
    // Both ends on 502 (a device polling another from its own server port): the request's shape (read holding
    // registers asks with 4 bytes, answers with a byte count) and the write it sends decide, not the ports.
    let client = HMI;
    let server = PLC;
    let mut p = Pcap::default();
    p.tcp(
        client,
        502,
        server,
        502,
        &modbus(1, &[3, 0x00, 0x00, 0x00, 0x02]),
    );
    p.tcp(server, 502, client, 502, &modbus(1, &[3, 4, 0, 1, 0, 2]));
    p.tcp(
        client,
        502,
        server,
        502,
        &modbus(2, &[6, 0x00, 0x10, 0x00, 0x2a]),
    );
    p.tcp(
        server,
        502,
        client,
        502,
        &modbus(2, &[6, 0x00, 0x10, 0x00, 0x2a]),
    );
    let (_, r) = p.run("modbus_502_502.pcap");
    assert!(edge(&r, client, server, "modbus"), "{:#?}", r.map);
    let s = device(&r, server);
    assert_eq!(
        received(s, "write single register (6)"),
        1,
        "{:#?}",
        s.risks
    );
    assert_eq!(received(device(&r, client), "modbus"), 0);
}

#[test]
fn enip_adapter_first_seen_replying_is_the_server() {
    // Mid-conversation: the adapter's reply to a write tag (service 0xcd = 0x4d | 0x80) comes first, to a
    // scanner on port 1030 (below 44818); then the scanner's next write tag.
    let scanner = HMI;
    let adapter = OUTSTATION;
    let write = [
        0x4d, 0x03, 0x91, 0x04, b'T', b'a', b'g', b'1', 0xc4, 0x00, 0x01, 0x00, 1, 0, 0, 0,
    ];
    let mut p = Pcap::default();
    p.tcp(
        adapter,
        44818,
        scanner,
        1030,
        &enip_rr(&[0xcd, 0x00, 0x00, 0x00]),
    );
    p.tcp(scanner, 1030, adapter, 44818, &enip_rr(&write));
    p.tcp(
        adapter,
        44818,
        scanner,
        1030,
        &enip_rr(&[0xcd, 0x00, 0x00, 0x00]),
    );
    let (path, r) = p.run("enip_mid_stream.pcap");
    assert!(edge(&r, scanner, adapter, "enip"), "{:#?}", r.map);
    assert!(device(&r, adapter).serves.contains(&Proto::Enip));
    assert!(!device(&r, scanner).serves.contains(&Proto::Enip));
    // tshark's request/response flag: responses only from the adapter.
    let rows = tshark_rows(&path, &["-Y", "cip"], &["ip.src", "cip.rr"]);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        let from_adapter = row[0].parse::<IpAddr>().unwrap() == IpAddr::from(adapter.ip);
        assert_eq!(row[1] == "1" || row[1] == "0x01", from_adapter, "{rows:?}");
    }
}

#[test]
fn bacnet_complex_ack_first_seen_comes_from_the_device() {
    // Both ends on 47808; the controller's ReadProperty answer (Complex-ACK, object-name) is seen first, then
    // the workstation's next confirmed request.
    let workstation = HMI;
    let controller = OUTSTATION;
    let mut ack = vec![
        0x30, 0x01, 0x0c, 0x0c, 0x02, 0x00, 0x00, 0x64, 0x19, 0x4d, 0x3e, 0x75, 6, 0,
    ];
    ack.extend_from_slice(b"AHU-1");
    ack.push(0x3f);
    let read = [
        0x00, 0x05, 0x02, 0x0c, 0x0c, 0x02, 0x00, 0x00, 0x64, 0x19, 0x4d,
    ];
    let mut p = Pcap::default();
    p.udp(controller, 47808, workstation, 47808, &bacnet(&ack));
    p.udp(workstation, 47808, controller, 47808, &bacnet(&read));
    let (path, r) = p.run("bacnet_ack_first.pcap");
    assert!(edge(&r, workstation, controller, "bacnet"), "{:#?}", r.map);
    assert!(!edge(&r, controller, workstation, "bacnet"), "{:#?}", r.map);
    // tshark's APDU types: 3 (Complex-ACK) from the controller, 0 (confirmed request) from the workstation.
    let rows = tshark_rows(&path, &["-Y", "bacapp"], &["ip.src", "bacapp.type"]);
    assert_eq!(
        rows,
        [
            [IpAddr::from(controller.ip).to_string(), "3".to_owned()],
            [IpAddr::from(workstation.ip).to_string(), "0".to_owned()],
        ]
    );
}

// ---- 3. Group addresses and one-way UDP senders ----

#[test]
fn group_addresses_are_never_clients() {
    let tv = Host {
        mac: [0x00, 0x50, 0x56, 0x10, 0x00, 0x30],
        ip: [10, 70, 0, 30],
    };
    let producer = Host {
        mac: [0x00, 0x50, 0x56, 0x10, 0x00, 0x32],
        ip: [10, 70, 0, 32],
    };
    let mut p = Pcap::default();
    // An SSDP NOTIFY (an announcement, which its header sends "to clients") to the SSDP group.
    p.udp_group(
        tv,
        1900,
        [239, 255, 255, 250],
        1900,
        b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\
          USN: uuid:1::upnp:rootdevice\r\nLOCATION: http://10.70.0.30:8080/d.xml\r\n\r\n",
    );
    // An unknown protocol broadcast from a port below the destination's.
    p.udp_group(tv, 2000, [10, 70, 255, 255], 30000, b"hello, anyone");
    // GE EGD produced to a multicast group: the producer serves EGD, the group is still no client.
    let mut egd = vec![13, 1, 0x2a, 0x00, 10, 70, 0, 32];
    egd.extend_from_slice(&3u32.to_le_bytes());
    egd.extend_from_slice(&[0; 20]);
    egd.extend_from_slice(&[1, 2, 3, 4]);
    p.udp_group(producer, 18246, [239, 1, 1, 1], 18246, &egd);
    let (_, r) = p.run("groups.pcap");
    assert!(clients_are_devices(&r), "{:#?}", r.map);
    assert!(device(&r, producer).serves.contains(&Proto::Egd));
    for (service, server) in [("ssdp", "239.255.255.250"), ("udp/30000", "10.70.255.255")] {
        assert!(
            r.map.iter().any(|e| e.client == device(&r, tv).key
                && e.service == service
                && e.server.contains(server)),
            "{service}: {:#?}",
            r.map
        );
    }
}

#[test]
fn a_one_way_udp_sender_is_the_client() {
    // A sensor streams readings from port 4000 to a collector's port 9000 and is never answered; a pair that
    // does answer each other keeps "the lower port serves".
    let sensor = MASTER;
    let collector = OUTSTATION;
    let mut p = Pcap::default();
    for i in 0..3u8 {
        p.udp(sensor, 4000, collector, 9000, &[i; 12]);
    }
    p.udp(HMI, 7000, collector, 5000, b"ping");
    p.udp(collector, 5000, HMI, 7000, b"pong");
    let (_, r) = p.run("udp_one_way.pcap");
    assert!(edge(&r, sensor, collector, "udp/9000"), "{:#?}", r.map);
    assert!(edge(&r, HMI, collector, "udp/5000"), "{:#?}", r.map);
    assert_eq!(r.map.len(), 2, "{:#?}", r.map);
}

// ---- 4. S7 block transfers belong to the session's initiator ----

#[test]
fn s7_download_is_the_engineering_stations_doing() {
    // An engineering PC downloads OB 1 to a Siemens PLC: COTP connect, setup communication, the PC's Request
    // download; the PLC's Download block jobs (two) and Download ended, each acknowledged with data by the
    // PC; then the PC activates the block (PI _INSE).
    let pc = HMI;
    let mut p = Pcap::default();
    let to_plc = |p: &mut Pcap, b: &[u8]| {
        p.tcp(pc, 49200, PLC, 102, b);
    };
    let to_pc = |p: &mut Pcap, b: &[u8]| {
        p.tcp(PLC, 102, pc, 49200, b);
    };
    p.handshake(pc, 49200, PLC, 102);
    to_plc(&mut p, &cotp_connect(0xe0));
    to_pc(&mut p, &cotp_connect(0xd0));
    let setup = [0xf0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xe0];
    to_plc(&mut p, &s7(1, 1, &setup, &[]));
    to_pc(&mut p, &s7(3, 1, &setup, &[]));
    to_plc(&mut p, &s7(1, 2, &s7_block_job(0x1a), &[]));
    to_pc(&mut p, &s7(3, 2, &[0x1a], &[]));
    for (n, more) in [(3u16, 0x01u8), (4, 0x00)] {
        to_pc(&mut p, &s7(1, n, &s7_block_job(0x1b), &[]));
        let block = [0x00, 0x04, 0x00, 0xfb, 0x70, 0x70, 0x01, 0x01];
        to_plc(&mut p, &s7(3, n, &[0x1b, more], &block));
    }
    to_pc(&mut p, &s7(1, 5, &s7_block_job(0x1c), &[]));
    to_plc(&mut p, &s7(3, 5, &[0x1c], &[]));
    let mut pi = vec![
        0x28, 0, 0, 0, 0, 0, 0, 0xfd, 0x00, 0x0a, 0x00, 0x01, 0x30, 0x38,
    ];
    pi.extend_from_slice(&[0x30, 0x30, 0x30, 0x30, 0x31, 0x50, 0x05]);
    pi.extend_from_slice(b"_INSE");
    to_plc(&mut p, &s7(1, 6, &pi, &[]));
    to_pc(&mut p, &s7(3, 6, &[0x28], &[]));
    let (path, r) = p.run("s7_download.pcap");

    let plc = device(&r, PLC);
    let station = device(&r, pc);
    assert_eq!(plc.class.as_str(), "plc", "{plc:#?}");
    assert_eq!(
        station.class.as_str(),
        "engineering-station",
        "{station:#?}"
    );
    let from_pc = format!("from {}", IpAddr::from(pc.ip));
    for (text, n) in [
        ("request download (0x1a)", 1),
        ("download block (0x1b)", 2),
        ("download ended (0x1c)", 1),
        ("_INSE", 1),
    ] {
        assert_eq!(received(plc, text), n, "{text}: {:#?}", plc.risks);
        assert!(
            plc.risks
                .iter()
                .any(|k| k.detail.contains(text) && k.detail.contains(&from_pc)),
            "{text}: {:#?}",
            plc.risks
        );
    }
    assert_eq!(received(station, "s7comm"), 0, "{:#?}", station.risks);
    // tshark: who sent each block-transfer job. The PLC sends Download block and Download ended; the PC
    // Request download; all four are the session of the PC, which opened the COTP connection.
    let rows = tshark_rows(
        &path,
        &["-Y", "s7comm.header.rosctr == 1"],
        &["ip.src", "s7comm.param.func"],
    );
    let sender = |func: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r[1] == func)
            .map(|r| r[0].clone())
            .collect()
    };
    let (pc_ip, plc_ip) = (
        IpAddr::from(pc.ip).to_string(),
        IpAddr::from(PLC.ip).to_string(),
    );
    assert_eq!(sender("0x1a"), std::slice::from_ref(&pc_ip), "{rows:?}");
    assert_eq!(sender("0x1b"), [plc_ip.clone(), plc_ip.clone()], "{rows:?}");
    assert_eq!(sender("0x1c"), [plc_ip], "{rows:?}");
    let cr = tshark_rows(&path, &["-Y", "cotp.type == 0x0e"], &["ip.src"]);
    assert_eq!(cr, [[pc_ip]]);
}

// ---- 5. Self-talk ----

#[test]
fn a_host_talking_to_itself_is_counted_as_tshark_counts_it() {
    // On a loopback interface: 127.0.0.1 to itself three times, ::1 to itself twice.
    let mut p = Pcap::loopback();
    for _ in 0..3 {
        p.loop_udp("127.0.0.1".parse().unwrap(), 40000, 5000, b"hello");
    }
    for _ in 0..2 {
        p.loop_udp("::1".parse().unwrap(), 40001, 5001, b"hello, six");
    }
    let (path, r) = p.run("loopback_self.pcap");
    let theirs = tshark_endpoints(&path);
    assert_eq!(theirs.len(), 2, "{theirs:?}");
    assert_eq!(endpoints(&r), theirs);
}
