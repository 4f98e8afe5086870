//! (The OT protocols of the breadth work: DLMS, Profinet IO CM, C37.118, ADS, EGD, RTPS.)
//! Protocol breadth: for each protocol added by the table, a capture of realistic frames (built here with
//! etherparse and written as pcap), discovered end to end, with the identity and the client/server roles
//! checked, and compared with tshark's own field export of the same file where tshark dissects the protocol.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

// ---- b2: DLMS/COSEM, Profinet IO CM, C37.118, Beckhoff ADS, GE EGD, DDS/RTPS ----

/// Tests of the protocols added in the b2 slice; everything of the slice lives here, so that another slice's
/// section of this file merges beside it.
mod b2 {

    /// Frames, captures and checks shared by this section's tests.
    #[allow(dead_code)]
    mod util {
        use std::process::Command;

        use vouch_discover::{DeviceReport, Proto, Report, RiskKind};

        // The capture writer, its hosts and the device lookup are the tests' shared ones.
        pub use crate::common::{Host, Pcap, device};

        /// Whether the device has this identity value, as exactly this text.
        pub fn has(d: &DeviceReport, value: &str) -> bool {
            d.identity.iter().any(|e| e.value == value)
        }

        /// Checks that `server` serves `p`, `client` uses it and does not serve it, and the map says so.
        pub fn roles(r: &Report, client: Host, server: Host, p: Proto) {
            let (c, s) = (device(r, client), device(r, server));
            assert!(s.serves.contains(&p), "{} serves {p:?}: {s:#?}", s.key);
            assert!(!s.uses.contains(&p), "{} does not use {p:?}: {s:#?}", s.key);
            assert!(c.uses.contains(&p), "{} uses {p:?}: {c:#?}", c.key);
            assert!(
                !c.serves.contains(&p),
                "{} does not serve {p:?}: {c:#?}",
                c.key
            );
            let service = p.as_str();
            assert!(
                r.map
                    .iter()
                    .any(|e| e.client == c.key && e.server == s.key && e.service == service),
                "no edge {} -> {} {service}: {:#?}",
                c.key,
                s.key,
                r.map
            );
            assert!(
                !r.map
                    .iter()
                    .any(|e| e.client == s.key && e.server == c.key && e.service == service),
                "reversed edge: {:#?}",
                r.map
            );
        }

        pub fn has_risk(d: &DeviceReport, kind: RiskKind, text: &str) -> bool {
            d.risks
                .iter()
                .any(|k| k.kind == kind && k.detail.contains(text))
        }

        /// The distinct values tshark shows for `field` (`-T fields`), lists split; `args` come before `-T`.
        pub fn tshark_field(
            path: &std::path::Path,
            args: &[&str],
            field: &str,
        ) -> std::collections::BTreeSet<String> {
            let out = Command::new("tshark")
                .args(["-n", "-r"])
                .arg(path)
                .args(args)
                .args(["-T", "fields", "-e", field])
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

        pub const HEAD_END: Host = Host {
            mac: [0x00, 0x50, 0x56, 0x10, 0x00, 0x05],
            ip: [10, 40, 0, 5],
        };
        pub const METER: Host = Host {
            mac: [0x00, 0x0a, 0x9c, 0x20, 0x00, 0x20],
            ip: [10, 40, 0, 20],
        };

        /// Wraps a DLMS APDU (IEC 62056-47): version 1, client wPort 0x10, server wPort 1.
        pub fn dlms(apdu: &[u8]) -> Vec<u8> {
            let mut v = vec![0x00, 0x01, 0x00, 0x10, 0x00, 0x01];
            v.extend_from_slice(&(apdu.len() as u16).to_be_bytes());
            v.extend_from_slice(apdu);
            v
        }

        /// An ACSE APDU with tag `tag`: the LN application context, `middle`, the AP-title component `title_tag`
        /// holding `title`, `after`, and the xDLMS user-information `user`.
        fn acse(
            tag: u8,
            middle: &[u8],
            title_tag: u8,
            title: &[u8; 8],
            after: &[u8],
            user: &[u8],
        ) -> Vec<u8> {
            let mut body = vec![
                0xa1, 0x09, 0x06, 0x07, 0x60, 0x85, 0x74, 0x05, 0x08, 0x01, 0x01,
            ];
            body.extend_from_slice(middle);
            body.extend_from_slice(&[title_tag, 0x0a, 0x04, 0x08]);
            body.extend_from_slice(title);
            body.extend_from_slice(after);
            body.extend_from_slice(&[0xbe, 0x10, 0x04, 0x0e]);
            body.extend_from_slice(user);
            let mut a = vec![tag, body.len() as u8];
            a.extend_from_slice(&body);
            dlms(&a)
        }

        /// A DLMS AARQ with calling-AP-title `title`, low level security and a password (Green Book shape).
        pub fn dlms_aarq(title: &[u8; 8]) -> Vec<u8> {
            let security: &[u8] = &[
                0x8a, 0x02, 0x07, 0x80, 0x8b, 0x07, 0x60, 0x85, 0x74, 0x05, 0x08, 0x02, 0x01, 0xac,
                0x0a, 0x80, 0x08, b'0', b'0', b'0', b'0', b'0', b'0', b'0', b'0',
            ];
            let initiate = [
                0x01, 0x00, 0x00, 0x00, 0x06, 0x5f, 0x1f, 0x04, 0x00, 0x00, 0x7e, 0x1f, 0x04, 0xb0,
            ];
            acse(0x60, &[], 0xa6, title, security, &initiate)
        }

        /// The meter's accepting AARE with responding-AP-title `title`.
        pub fn dlms_aare(title: &[u8; 8]) -> Vec<u8> {
            let result = [
                0xa2, 0x03, 0x02, 0x01, 0x00, 0xa3, 0x05, 0xa1, 0x03, 0x02, 0x01, 0x00,
            ];
            let initiate = [
                0x08, 0x00, 0x06, 0x5f, 0x1f, 0x04, 0x00, 0x00, 0x50, 0x1f, 0x01, 0xf4, 0x00, 0x07,
            ];
            acse(0x61, &result, 0xa4, title, &[], &initiate)
        }
    }

    use util::*;
    use vouch_discover::{Proto, RiskKind};

    #[test]
    fn dlms_association_names_meter_and_head_end_and_flags_set_and_action() {
        let mut p = Pcap::default();
        let ask = |p: &mut Pcap, apdu: &[u8]| p.tcp(HEAD_END, 51000, METER, 4059, apdu);
        let answer = |p: &mut Pcap, apdu: &[u8]| p.tcp(METER, 4059, HEAD_END, 51000, apdu);
        p.handshake(HEAD_END, 51000, METER, 4059);
        ask(&mut p, &dlms_aarq(b"HES\x00\x00\x00\x00\x07"));
        answer(&mut p, &dlms_aare(b"LGZ\x12\x34\x56\x78\x9a"));
        // GET clock time, its response; SET clock time; ACTION remote disconnect (class 70 method 1).
        ask(
            &mut p,
            &dlms(&[0xc0, 0x01, 0xc1, 0x00, 0x08, 0, 0, 1, 0, 0, 255, 0x02, 0x00]),
        );
        answer(
            &mut p,
            &dlms(&[0xc4, 0x01, 0xc1, 0x00, 0x09, 0x02, 0x07, 0xea]),
        );
        let time = [
            0x09, 0x0c, 0x07, 0xea, 0x0c, 0x02, 0x03, 0x14, 0, 0, 0, 0, 0, 0,
        ];
        let mut set = vec![0xc1, 0x01, 0xc1, 0x00, 0x08, 0, 0, 1, 0, 0, 255, 0x02, 0x00];
        set.extend_from_slice(&time);
        ask(&mut p, &dlms(&set));
        answer(&mut p, &dlms(&[0xc5, 0x01, 0xc1, 0x00]));
        ask(
            &mut p,
            &dlms(&[
                0xc3, 0x01, 0xc1, 0x00, 0x46, 0, 0, 96, 3, 10, 255, 0x01, 0x01, 0x0f, 0x00,
            ]),
        );
        let (_, r) = p.run("dlms.pcap");
        roles(&r, HEAD_END, METER, Proto::Dlms);
        let meter = device(&r, METER);
        assert!(
            has(meter, "LGZ") && has(meter, "123456789a"),
            "{:?}",
            meter.identity
        );
        assert_eq!(meter.vendor.as_deref(), Some("LGZ"));
        assert_eq!(meter.serial.as_deref(), Some("123456789a"));
        assert!(
            has_risk(meter, RiskKind::OtCommand, "SET clock time"),
            "{:?}",
            meter.risks
        );
        assert!(
            has_risk(meter, RiskKind::OtCommand, "remote disconnect"),
            "{:?}",
            meter.risks
        );
        let hes = device(&r, HEAD_END);
        assert!(
            has(hes, "HES") && has(hes, "0000000007"),
            "{:?}",
            hes.identity
        );
        assert!(
            hes.risks
                .iter()
                .any(|k| k.kind == RiskKind::CleartextCredentials),
            "{:?}",
            hes.risks
        );
        assert!(!has(meter, "HES") && !has(hes, "LGZ"));
    }

    #[test]
    fn dlms_request_from_port_0_and_a_push_between_equal_ports_keep_the_meter_the_server() {
        let mut p = Pcap::default();
        // A head-end polling over UDP from source port 0.
        p.udp(
            HEAD_END,
            0,
            METER,
            4059,
            &dlms(&[0xc0, 0x01, 0xc1, 0x00, 0x08, 0, 0, 1, 0, 0, 255, 0x02, 0x00]),
        );
        p.udp(
            METER,
            4059,
            HEAD_END,
            0,
            &dlms(&[0xc4, 0x01, 0xc1, 0x00, 0x09, 0x02, 0x07, 0xea]),
        );
        let (_, r) = p.run("dlms-port0.pcap");
        roles(&r, HEAD_END, METER, Proto::Dlms);

        // A meter pushing a data-notification 4059 → 4059 before any request: the header says it is the server.
        let mut p = Pcap::default();
        p.udp(
            METER,
            4059,
            HEAD_END,
            4059,
            &dlms(&[0x0f, 0x00, 0x00, 0x00, 0x01, 0x00, 0x09, 0x02, 0x12, 0x34]),
        );
        p.udp(
            HEAD_END,
            4059,
            METER,
            4059,
            &dlms(&[
                0xc0, 0x01, 0xc1, 0x00, 0x01, 0, 0, 96, 1, 0, 255, 0x02, 0x00,
            ]),
        );
        p.udp(
            METER,
            4059,
            HEAD_END,
            4059,
            &dlms(&[0xc4, 0x01, 0xc1, 0x00, 0x09, 0x02, 0x12, 0x34]),
        );
        let (_, r) = p.run("dlms-push.pcap");
        roles(&r, HEAD_END, METER, Proto::Dlms);
    }

    /// Profinet IO CM frames, built as IEC 61158-6-10 lays them out (connectionless DCE/RPC, little-endian drep).
    mod pn {
        /// Object UUID DEA00000-6C97-11D1-8271-<instance 1><device id><vendor id>, in the drep's order.
        pub fn object(device: u16, vendor: u16) -> [u8; 16] {
            let mut u = [
                0x00, 0x00, 0xa0, 0xde, 0x97, 0x6c, 0xd1, 0x11, 0x82, 0x71, 0x00, 0x01, 0, 0, 0, 0,
            ];
            u[12..14].copy_from_slice(&device.to_be_bytes());
            u[14..].copy_from_slice(&vendor.to_be_bytes());
            u
        }

        /// Interface DEA0000n-6C97-11D1-8271-00A02442DF7D (1 device, 2 controller), in the drep's order.
        pub fn interface(n: u8) -> [u8; 16] {
            [
                n, 0x00, 0xa0, 0xde, 0x97, 0x6c, 0xd1, 0x11, 0x82, 0x71, 0x00, 0xa0, 0x24, 0x42,
                0xdf, 0x7d,
            ]
        }

        /// An RPC request (ptype 0) or response (2) with the NDR header and `blocks`.
        pub fn rpc(
            ptype: u8,
            object: [u8; 16],
            iface: [u8; 16],
            opnum: u16,
            blocks: &[u8],
        ) -> Vec<u8> {
            let n = (blocks.len() as u32).to_le_bytes();
            let mut body = Vec::new();
            for w in [[0u8; 4], n, n, [0; 4], n] {
                body.extend_from_slice(&w);
            }
            body.extend_from_slice(blocks);
            let mut v = vec![4, ptype, 0x20, 0x00, 0x10, 0x00, 0x00, 0x00];
            v.extend_from_slice(&object);
            v.extend_from_slice(&iface);
            v.extend_from_slice(&[0xa5; 16]);
            v.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0]);
            v.extend_from_slice(&opnum.to_le_bytes());
            v.extend_from_slice(&[0xff; 4]);
            v.extend_from_slice(&(body.len() as u16).to_le_bytes());
            v.extend_from_slice(&[0; 4]);
            v.extend_from_slice(&body);
            v
        }

        /// A PN-IO block: type, length, version 1.0, then `content`.
        pub fn block(kind: u16, content: &[u8]) -> Vec<u8> {
            let mut v = kind.to_be_bytes().to_vec();
            v.extend_from_slice(&(content.len() as u16 + 2).to_be_bytes());
            v.extend_from_slice(&[1, 0]);
            v.extend_from_slice(content);
            v
        }

        /// ARBlockReq of an IOCAR (type 1) from the controller `station`, whose object UUID has `vendor`.
        pub fn ar_block_req(station: &str, vendor: u16) -> Vec<u8> {
            let mut b = 1u16.to_be_bytes().to_vec();
            b.extend_from_slice(&[0x42; 16]);
            b.extend_from_slice(&[0, 1, 0x00, 0x1b, 0x1b, 0x11, 0x22, 0x33]);
            let mut initiator = object(0x0101, vendor);
            // The block carries UUIDs in network order.
            initiator[..8].copy_from_slice(&[0xde, 0xa0, 0x00, 0x00, 0x6c, 0x97, 0x11, 0xd1]);
            b.extend_from_slice(&initiator);
            b.extend_from_slice(&[0, 0, 0, 0x11, 0, 100, 0x88, 0x92]);
            b.extend_from_slice(&(station.len() as u16).to_be_bytes());
            b.extend_from_slice(station.as_bytes());
            block(0x0101, &b)
        }

        /// IODReadResHeader for I&M0 (index 0xAFF0) followed by the I&M0 record.
        pub fn im0_read_response(order: &str, serial: &str, sw: [u8; 4]) -> Vec<u8> {
            let pad = |s: &str, n: usize| {
                let mut f = s.as_bytes().to_vec();
                f.resize(n, b' ');
                f
            };
            let mut im = vec![0x00, 0x2a];
            im.extend_from_slice(&pad(order, 20));
            im.extend_from_slice(&pad(serial, 16));
            im.extend_from_slice(&[0x00, 0x05]);
            im.extend_from_slice(&sw);
            im.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 1, 0, 0x1e]);
            let im = block(0x0020, &im);
            let mut h = vec![0, 1];
            h.extend_from_slice(&[0x42; 16]);
            h.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0xaf, 0xf0]);
            h.extend_from_slice(&(im.len() as u32).to_be_bytes());
            h.extend_from_slice(&[0; 24]);
            let mut v = block(0x8009, &h);
            v.extend_from_slice(&im);
            v
        }
    }

    #[test]
    fn profinet_io_cm_names_device_and_controller_and_keeps_their_roles() {
        let controller = Host {
            mac: [0x00, 0x1b, 0x1b, 0x11, 0x22, 0x33],
            ip: [192, 168, 0, 1],
        };
        let device_host = Host {
            mac: [0x00, 0x0e, 0x8c, 0x44, 0x55, 0x66],
            ip: [192, 168, 0, 10],
        };
        let obj = pn::object(0x0306, 0x002a);
        let dev = pn::interface(1);
        let mut p = Pcap::default();
        // Connect, Read I&M0, Write, each answered (controller 49153 → device 34964).
        p.udp(
            controller,
            49153,
            device_host,
            34964,
            &pn::rpc(0, obj, dev, 0, &pn::ar_block_req("plc-line-7", 0x002a)),
        );
        p.udp(
            device_host,
            34964,
            controller,
            49153,
            &pn::rpc(2, obj, dev, 0, &[]),
        );
        p.udp(
            controller,
            49153,
            device_host,
            34964,
            &pn::rpc(0, obj, dev, 2, &pn::block(0x0009, &[0; 60])),
        );
        let im0 = pn::im0_read_response("6ES7 155-6AU01-0BN0", "S C-HBN012345678", [b'V', 4, 2, 1]);
        p.udp(
            device_host,
            34964,
            controller,
            49153,
            &pn::rpc(2, obj, dev, 2, &im0),
        );
        p.udp(
            controller,
            49153,
            device_host,
            34964,
            &pn::rpc(0, obj, dev, 3, &pn::block(0x0008, &[0; 60])),
        );
        p.udp(
            device_host,
            34964,
            controller,
            49153,
            &pn::rpc(2, obj, dev, 3, &[]),
        );
        // ApplicationReady: the device calls the controller's interface, from its own port to the controller's
        // 34964 (the port heuristic would make the device the client).
        let ctrl_obj = pn::object(0x0101, 0x002a);
        p.udp(
            device_host,
            49160,
            controller,
            34964,
            &pn::rpc(
                0,
                ctrl_obj,
                pn::interface(2),
                4,
                &pn::block(0x0112, &[0; 24]),
            ),
        );
        p.udp(
            controller,
            34964,
            device_host,
            49160,
            &pn::rpc(
                2,
                ctrl_obj,
                pn::interface(2),
                4,
                &pn::block(0x8112, &[0; 24]),
            ),
        );
        // A second controller's conversation first seen at the device's answer, both sides on 34964.
        p.udp(
            device_host,
            34964,
            controller,
            34964,
            &pn::rpc(2, obj, dev, 2, &im0),
        );
        let (path, r) = p.run("pnio.pcap");
        roles(&r, controller, device_host, Proto::ProfinetIo);
        let d = device(&r, device_host);
        assert_eq!(
            d.model.as_deref(),
            Some("6ES7 155-6AU01-0BN0"),
            "{:?}",
            d.identity
        );
        assert_eq!(d.serial.as_deref(), Some("S C-HBN012345678"));
        assert_eq!(d.firmware.as_deref(), Some("V4.2.1"));
        assert_eq!(d.vendor.as_deref(), Some("Siemens"));
        assert_eq!(d.ot.get("vendor_ids"), Some(&vec![0x2a]));
        assert!(has(d, "device id 0x0306"));
        assert!(
            has_risk(d, RiskKind::OtCommand, "PN-IO record write"),
            "{:?}",
            d.risks
        );
        let c = device(&r, controller);
        assert!(
            has(c, "plc-line-7") && has(c, "IO controller") && has(c, "device id 0x0101"),
            "{:?}",
            c.identity
        );
        assert!(!has(d, "plc-line-7") && !has(c, "6ES7 155-6AU01-0BN0"));
        // tshark's reading of the same file (its DCE/RPC heuristics find PN-IO on any UDP port).
        let objects = tshark_field(&path, &[], "dcerpc.obj_id");
        assert!(
            objects.contains("dea00000-6c97-11d1-8271-00010306002a"),
            "{objects:?}"
        );
        for (field, mine) in [
            ("pn_io.cminitiator_station_name", "plc-line-7"),
            ("pn_io.order_id", "6ES7 155-6AU01-0BN0"),
            ("pn_io.im_serial_number", "S C-HBN012345678"),
        ] {
            let theirs = tshark_field(&path, &[], field);
            assert!(
                theirs.iter().any(|v| v.trim() == mine),
                "{field}: {theirs:?}"
            );
        }
        let one = |f: &str| {
            tshark_field(&path, &["-Y", "frame.number==4"], f)
                .into_iter()
                .next()
                .unwrap()
        };
        let num = |f: &str| u8::from_str_radix(one(f).trim_start_matches("0x"), 16).unwrap();
        let firmware = format!(
            "{}{}.{}.{}",
            one("pn_io.im_revision_prefix").trim_matches('\''),
            num("pn_io.im_sw_revision_functional_enhancement"),
            num("pn_io.im_revision_bugfix"),
            num("pn_io.im_sw_revision_internal_change"),
        );
        assert_eq!(d.firmware.as_deref(), Some(firmware.as_str()));
        let ops = tshark_field(&path, &[], "dcerpc.opnum");
        assert_eq!(ops.into_iter().collect::<Vec<_>>(), ["0", "2", "3", "4"]);
    }

    /// IEEE C37.118.2 frames (2005 version): common header, body, CRC-CCITT check word.
    mod c37 {
        pub fn frame(kind: u8, id: u16, body: &[u8]) -> Vec<u8> {
            let mut v = vec![0xaa, (kind << 4) | 1];
            v.extend_from_slice(&((16 + body.len()) as u16).to_be_bytes());
            v.extend_from_slice(&id.to_be_bytes());
            v.extend_from_slice(&1_796_212_800u32.to_be_bytes());
            v.extend_from_slice(&0x0000_8000u32.to_be_bytes());
            v.extend_from_slice(body);
            let mut crc: u16 = 0xffff;
            for &b in &v {
                crc ^= u16::from(b) << 8;
                for _ in 0..8 {
                    crc = if crc & 0x8000 != 0 {
                        (crc << 1) ^ 0x1021
                    } else {
                        crc << 1
                    };
                }
            }
            v.extend_from_slice(&crc.to_be_bytes());
            v
        }

        fn name16(s: &str) -> Vec<u8> {
            let mut n = s.as_bytes().to_vec();
            n.resize(16, b' ');
            n
        }

        /// CFG-2 for the PMUs `(station, idcode)`, each with one phasor in 16-bit integer format, at `rate`.
        pub fn cfg2(id: u16, pmus: &[(&str, u16)], rate: i16) -> Vec<u8> {
            let mut b = 1_000_000u32.to_be_bytes().to_vec();
            b.extend_from_slice(&(pmus.len() as u16).to_be_bytes());
            for (stn, pmu_id) in pmus {
                b.extend_from_slice(&name16(stn));
                b.extend_from_slice(&pmu_id.to_be_bytes());
                b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
                b.extend_from_slice(&name16("VA"));
                b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
            }
            b.extend_from_slice(&rate.to_be_bytes());
            frame(3, id, &b)
        }

        /// A data frame for one PMU with one integer phasor and integer frequency.
        pub fn data(id: u16) -> Vec<u8> {
            frame(0, id, &[0, 0, 0x10, 0x00, 0x00, 0x00, 0, 5, 0, 0])
        }
    }

    #[test]
    fn synphasor_pmu_serves_the_pdc_and_names_its_stations() {
        let pdc = Host {
            mac: [0x00, 0x30, 0xa7, 0x00, 0x00, 0x02],
            ip: [10, 50, 0, 2],
        };
        let pmu = Host {
            mac: [0x00, 0x30, 0xa7, 0x00, 0x00, 0x10],
            ip: [10, 50, 0, 10],
        };
        let pmu2 = Host {
            mac: [0x00, 0x30, 0xa7, 0x00, 0x00, 0x11],
            ip: [10, 50, 0, 11],
        };
        let mut p = Pcap::default();
        // TCP: the PDC asks for CFG-2, gets it, turns transmission on, data flows.
        p.handshake(pdc, 50100, pmu, 4712);
        p.tcp(pdc, 50100, pmu, 4712, &c37::frame(4, 7734, &[0, 5]));
        p.tcp(
            pmu,
            4712,
            pdc,
            50100,
            &c37::cfg2(7734, &[("SUB-A PMU1", 7734), ("SUB-A PMU2", 7735)], 30),
        );
        p.tcp(pdc, 50100, pmu, 4712, &c37::frame(4, 7734, &[0, 2]));
        p.tcp(pmu, 4712, pdc, 50100, &c37::data(7734));
        // UDP, one way: a second PMU spontaneously sends to the PDC's 4713 from a high port. Its data and
        // configuration make it the server, whatever the port says.
        p.udp(pmu2, 50200, pdc, 4713, &c37::data(12));
        p.udp(
            pmu2,
            50200,
            pdc,
            4713,
            &c37::cfg2(12, &[("FEEDER 9", 12)], -5),
        );
        p.udp(pmu2, 50200, pdc, 4713, &c37::data(12));
        let (path, r) = p.run("synphasor.pcap");
        roles(&r, pdc, pmu, Proto::Synphasor);
        roles(&r, pdc, pmu2, Proto::Synphasor);
        let d = device(&r, pmu);
        assert!(
            has(d, "SUB-A PMU1") && has(d, "SUB-A PMU2"),
            "{:?}",
            d.identity
        );
        assert!(has(d, "PMU IDCODE 7734, 30 frames/s"), "{:?}", d.identity);
        let d2 = device(&r, pmu2);
        assert!(
            has(d2, "FEEDER 9") && has(d2, "PMU IDCODE 12, 1 frame per 5 s"),
            "{:?}",
            d2.identity
        );
        assert!(device(&r, pdc).identity.is_empty());
        // tshark dissects 4712/tcp and 4713/udp as C37.118 by default. It shows a CFG-2 station name as a text
        // item (`Station #1: "SUB-A PMU1      "`), not a field, so its verbose tree is read for those.
        let out = std::process::Command::new("tshark")
            .arg("-nVr")
            .arg(&path)
            .output()
            .unwrap();
        let tree = String::from_utf8_lossy(&out.stdout);
        let stations: std::collections::BTreeSet<&str> = tree
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("Station #")?
                    .split_once(": \"")?
                    .1
                    .strip_suffix('"')
            })
            .map(str::trim_end)
            .collect();
        assert_eq!(
            stations.into_iter().collect::<Vec<_>>(),
            ["FEEDER 9", "SUB-A PMU1", "SUB-A PMU2"]
        );
        for (id, rate) in [("7734", "30"), ("12", "-5")] {
            let filter = format!("synphasor.idcode_stream_source=={id} && synphasor.frtype==3");
            let rates = tshark_field(&path, &["-Y", &filter], "synphasor.rate_of_transmission");
            assert_eq!(rates.into_iter().collect::<Vec<_>>(), [rate]);
        }
        let ids = tshark_field(&path, &[], "synphasor.idcode_data_source");
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), ["12", "7734", "7735"]);
        let types = tshark_field(&path, &[], "synphasor.frtype");
        assert_eq!(
            types.into_iter().collect::<Vec<_>>(),
            ["0x0000", "0x0003", "0x0004"]
        );
    }

    /// Beckhoff AMS/TCP packets and TwinCAT router discovery datagrams (little endian throughout).
    mod ads {
        pub const PLC: [u8; 6] = [5, 12, 34, 56, 1, 1];
        pub const PC: [u8; 6] = [192, 168, 1, 20, 1, 1];

        /// An AMS/TCP packet `from` → `to` (AMS ports 32905 → 851), command `cmd`, state flags, ADS data.
        pub fn packet(to: [u8; 6], from: [u8; 6], cmd: u16, flags: u16, data: &[u8]) -> Vec<u8> {
            let mut v = vec![0, 0];
            v.extend_from_slice(&(32 + data.len() as u32).to_le_bytes());
            v.extend_from_slice(&to);
            v.extend_from_slice(&851u16.to_le_bytes());
            v.extend_from_slice(&from);
            v.extend_from_slice(&32905u16.to_le_bytes());
            for (w, n) in [
                (u32::from(cmd) | u32::from(flags) << 16, 4),
                (data.len() as u32, 4),
                (0, 4),
                (42, 4),
            ] {
                v.extend_from_slice(&u32::to_le_bytes(w)[..n]);
            }
            v.extend_from_slice(data);
            v
        }

        /// The router's discovery request (service 1) or answer (0x80000001) from `id`, with `tags`.
        pub fn discovery(answer: bool, id: [u8; 6], tags: &[(u16, &[u8])]) -> Vec<u8> {
            let mut v = vec![
                0x03,
                0x66,
                0x14,
                0x71,
                0,
                0,
                0,
                0,
                1,
                0,
                0,
                if answer { 0x80 } else { 0 },
            ];
            v.extend_from_slice(&id);
            v.extend_from_slice(&10000u16.to_le_bytes());
            v.extend_from_slice(&(tags.len() as u32).to_le_bytes());
            for (tag, value) in tags {
                v.extend_from_slice(&tag.to_le_bytes());
                v.extend_from_slice(&(value.len() as u16).to_le_bytes());
                v.extend_from_slice(value);
            }
            v
        }
    }

    #[test]
    fn ads_runtime_identity_commands_and_router_discovery() {
        let pc = Host {
            mac: [0x00, 0x50, 0x56, 0x01, 0x01, 0x14],
            ip: [192, 168, 1, 20],
        };
        let plc = Host {
            mac: [0x00, 0x01, 0x05, 0x1a, 0x2b, 0x3c],
            ip: [192, 168, 1, 50],
        };
        let mut p = Pcap::default();
        p.handshake(pc, 50321, plc, 48898);
        let ask = |p: &mut Pcap, a: &[u8]| p.tcp(pc, 50321, plc, 48898, a);
        let answer = |p: &mut Pcap, a: &[u8]| p.tcp(plc, 48898, pc, 50321, a);
        ask(&mut p, &ads::packet(ads::PLC, ads::PC, 1, 0x0004, &[]));
        let mut info = vec![0, 0, 0, 0, 3, 1, 0xb8, 0x0f];
        info.extend_from_slice(b"Plc30 App\0\0\0\0\0\0\0");
        answer(&mut p, &ads::packet(ads::PC, ads::PLC, 1, 0x0005, &info));
        // WriteControl STOP, then a write of two bytes to %M (index group 0x4020).
        ask(
            &mut p,
            &ads::packet(ads::PLC, ads::PC, 5, 0x0004, &[6, 0, 0, 0, 0, 0, 0, 0]),
        );
        answer(
            &mut p,
            &ads::packet(ads::PC, ads::PLC, 5, 0x0005, &[0, 0, 0, 0]),
        );
        let mut write = 0x4020u32.to_le_bytes().to_vec();
        write.extend_from_slice(&[0, 0, 0, 0, 2, 0, 0, 0, 1, 0]);
        ask(&mut p, &ads::packet(ads::PLC, ads::PC, 3, 0x0004, &write));
        answer(
            &mut p,
            &ads::packet(ads::PC, ads::PLC, 3, 0x0005, &[0, 0, 0, 0]),
        );
        // Router discovery: the tool broadcasts, the runtime answers with host name, TwinCAT and OS versions.
        let broadcast = Host {
            mac: [0xff; 6],
            ip: [255, 255, 255, 255],
        };
        p.udp(
            pc,
            55189,
            broadcast,
            48899,
            &ads::discovery(false, ads::PC, &[]),
        );
        let mut os = Vec::new();
        for w in [148u32, 10, 0, 17763, 2] {
            os.extend_from_slice(&w.to_le_bytes());
        }
        let tags: [(u16, &[u8]); 3] = [(5, b"CX-1A2B3C\0"), (3, &[3, 1, 0xb8, 0x0f]), (4, &os)];
        p.udp(
            plc,
            48899,
            pc,
            55189,
            &ads::discovery(true, ads::PLC, &tags),
        );
        let (path, r) = p.run("ads.pcap");
        roles(&r, pc, plc, Proto::Ads);
        let d = device(&r, plc);
        assert_eq!(d.model.as_deref(), Some("Plc30 App"), "{:?}", d.identity);
        assert_eq!(d.hostname.as_deref(), Some("CX-1A2B3C"));
        assert!(
            has(d, "3.1.4024") && has(d, "TwinCAT 3.1.4024") && has(d, "OS 10.0.17763"),
            "{:?}",
            d.identity
        );
        assert!(has(d, "AMS NetId 5.12.34.56.1.1"));
        assert!(
            has_risk(d, RiskKind::OtCommand, "ADS WriteControl STOP"),
            "{:?}",
            d.risks
        );
        assert!(
            has_risk(d, RiskKind::OtCommand, "ADS write"),
            "{:?}",
            d.risks
        );
        let c = device(&r, pc);
        assert!(
            has(c, "AMS NetId 192.168.1.20.1.1") && !has(c, "Plc30 App"),
            "{:?}",
            c.identity
        );
        // tshark's AMS dissector on the TCP conversation.
        let names = tshark_field(&path, &[], "ams.ads_devicename");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["Plc30 App"]);
        let one =
            |f: &str| tshark_field(&path, &["-Y", "ams.cmdid==1 && ams.state_response==1"], f);
        let version = format!(
            "{}.{}.{}",
            one("ams.ads_versionversion").into_iter().next().unwrap(),
            one("ams.ads_versionrevision").into_iter().next().unwrap(),
            one("ams.ads_versionbuild").into_iter().next().unwrap(),
        );
        assert!(has(d, &version), "tshark says {version}");
        for id in tshark_field(&path, &[], "ams.sendernetid") {
            assert!(
                has(d, &format!("AMS NetId {id}")) || has(c, &format!("AMS NetId {id}")),
                "{id}"
            );
        }
        let states = tshark_field(
            &path,
            &["-Y", "ams.cmdid==5 && ams.state_response==0"],
            "ams.ads_state",
        );
        assert_eq!(states.into_iter().collect::<Vec<_>>(), ["0x0006"]);
    }

    /// An EGD production (PDU type 13, version 1; little endian) from `producer`, exchange `exchange`.
    fn egd_production(producer: [u8; 4], exchange: u32, data: &[u8]) -> Vec<u8> {
        let mut v = vec![13, 1, 0x07, 0x00];
        v.extend_from_slice(&producer);
        for w in [exchange, 1_796_212_800, 500_000_000, 0, 0x0102_0304, 0] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn egd_one_way_producer_serves_its_consumers() {
        let producer = Host {
            mac: [0x00, 0x09, 0x91, 0x01, 0x02, 0x03],
            ip: [10, 60, 0, 5],
        };
        let consumer = Host {
            mac: [0x00, 0x09, 0x91, 0x04, 0x05, 0x06],
            ip: [10, 60, 0, 9],
        };
        let mut p = Pcap::default();
        // A producer on a high port sending to a consumer's 18246, and to a multicast group, several times: the
        // one-way sender is the producer (the port heuristic would call it the client).
        for i in 0..3u8 {
            p.udp(
                producer,
                18246,
                consumer,
                18246,
                &egd_production(producer.ip, 1, &[i; 16]),
            );
            p.udp(
                producer,
                50000,
                consumer,
                18246,
                &egd_production(producer.ip, 2, &[i; 8]),
            );
            p.udp_group(
                producer,
                50000,
                [239, 1, 2, 3],
                18246,
                &egd_production(producer.ip, 3, &[i; 8]),
            );
        }
        let (path, r) = p.run("egd.pcap");
        roles(&r, consumer, producer, Proto::Egd);
        let d = device(&r, producer);
        for x in 1..=3 {
            assert!(
                has(d, &format!("EGD producer 10.60.0.5, exchange {x}")),
                "{:?}",
                d.identity
            );
        }
        assert!(
            !r.devices
                .iter()
                .any(|d| d.ips.contains(&"239.1.2.3".parse().unwrap()))
        );
        // tshark's producer and exchange ids.
        let pids = tshark_field(&path, &[], "egd.pid");
        assert_eq!(pids.into_iter().collect::<Vec<_>>(), ["10.60.0.5"]);
        let exids: Vec<u32> = tshark_field(&path, &[], "egd.exid")
            .iter()
            .map(|v| u32::from_str_radix(v.trim_start_matches("0x"), 16).unwrap())
            .collect();
        assert_eq!(exids, [1, 2, 3]);
    }

    /// An EtherNet/IP implicit I/O datagram (CIP Vol. 2, 2-6): item count 2, Sequenced Address item
    /// (connection id, sequence number), Connected Data item whose data opens with the CIP sequence count.
    fn enip_io(connection: u32, seq: u32, data: &[u8]) -> Vec<u8> {
        let mut v = 2u16.to_le_bytes().to_vec();
        v.extend_from_slice(&0x8002u16.to_le_bytes());
        v.extend_from_slice(&8u16.to_le_bytes());
        v.extend_from_slice(&connection.to_le_bytes());
        v.extend_from_slice(&seq.to_le_bytes());
        v.extend_from_slice(&0x00b1u16.to_le_bytes());
        v.extend_from_slice(&(data.len() as u16 + 2).to_le_bytes());
        v.extend_from_slice(&(seq as u16).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn enip_implicit_io_names_each_producers_connection() {
        // A ControlLogix scanner (Rockwell MAC) sends O→T data to a Point I/O adapter, which produces T→O
        // data to a multicast group and, for a second connection, to the scanner directly.
        let scanner = Host {
            mac: [0x00, 0x00, 0xbc, 0x11, 0x22, 0x33],
            ip: [10, 70, 0, 2],
        };
        let adapter = Host {
            mac: [0x00, 0x00, 0xbc, 0x44, 0x55, 0x66],
            ip: [10, 70, 0, 10],
        };
        let mut p = Pcap::default();
        for i in 1..=4u32 {
            // O→T carries the 32-bit run/idle header before the outputs.
            p.udp(
                scanner,
                2222,
                adapter,
                2222,
                &enip_io(0x0011_0001, i, &[1, 0, 0, 0, 0xff, 0x00]),
            );
            p.udp_group(
                adapter,
                2222,
                [239, 192, 1, 32],
                2222,
                &enip_io(0x0022_0001, i, &[0x0f, 0x00]),
            );
            p.udp(
                adapter,
                2222,
                scanner,
                2222,
                &enip_io(0x0022_0002, i, &[0x03]),
            );
        }
        let (path, r) = p.run("enip_io.pcap");
        let (s, a) = (device(&r, scanner), device(&r, adapter));
        for d in [s, a] {
            assert!(
                d.serves.contains(&Proto::EnipIo) && d.uses.contains(&Proto::EnipIo),
                "both ends produce and consume: {d:#?}"
            );
        }
        assert!(has(s, "EtherNet/IP I/O producer, connection 0x00110001"));
        assert!(has(a, "EtherNet/IP I/O producer, connection 0x00220001"));
        assert!(has(a, "EtherNet/IP I/O producer, connection 0x00220002"));
        assert!(!has(s, "EtherNet/IP I/O producer, connection 0x00220002"));
        assert!(
            !r.devices
                .iter()
                .any(|d| d.ips.contains(&"239.192.1.32".parse().unwrap())),
            "a group is not a device"
        );
        assert!(r.map.iter().any(|e| e.service == "enip-io"), "{:#?}", r.map);
        // tshark reads the same connections from the same datagrams (its ENIP I/O dissector on UDP 2222).
        let ids = tshark_field(&path, &["-Y", "enip.cpf.sai.connid"], "enip.cpf.sai.connid");
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            ["0x00110001", "0x00220001", "0x00220002"]
        );
        for (who, id) in [
            (scanner, "0x00110001"),
            (adapter, "0x00220001"),
            (adapter, "0x00220002"),
        ] {
            let ip: std::net::IpAddr = who.ip.into();
            let senders = tshark_field(
                &path,
                &["-Y", &format!("enip.cpf.sai.connid == {id}")],
                "ip.src",
            );
            assert_eq!(senders.into_iter().collect::<Vec<_>>(), [ip.to_string()]);
        }
    }

    /// RTPS 2.3 messages as the DDSI-RTPS specification lays them out (little-endian submessages).
    mod rtps {
        pub fn message(vendor: u16, prefix: [u8; 12], subs: &[u8]) -> Vec<u8> {
            let mut v = b"RTPS\x02\x03".to_vec();
            v.extend_from_slice(&vendor.to_be_bytes());
            v.extend_from_slice(&prefix);
            v.extend_from_slice(subs);
            v
        }

        fn submessage(id: u8, flags: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![id, flags];
            v.extend_from_slice(&(body.len() as u16).to_le_bytes());
            v.extend_from_slice(body);
            v
        }

        /// SPDP participant DATA: protocol version, vendor id, entity name, ROS 2 user data, sentinel.
        pub fn spdp(vendor: u16, name: &str) -> Vec<u8> {
            let mut body = vec![
                0, 0, 16, 0, 0, 1, 0, 0xc7, 0, 1, 0, 0xc2, 0, 0, 0, 0, 1, 0, 0, 0, 0x00, 0x03, 0, 0,
            ];
            let mut param = |pid: u16, value: &[u8]| {
                let mut value = value.to_vec();
                value.resize(value.len().div_ceil(4) * 4, 0);
                body.extend_from_slice(&pid.to_le_bytes());
                body.extend_from_slice(&(value.len() as u16).to_le_bytes());
                body.extend_from_slice(&value);
            };
            param(0x0015, &[2, 3]);
            param(0x0016, &vendor.to_be_bytes());
            let mut s = ((name.len() + 1) as u32).to_le_bytes().to_vec();
            s.extend_from_slice(name.as_bytes());
            s.push(0);
            param(0x0062, &s);
            param(0x002c, b"\x0b\x00\x00\x00enclave=/;\x00");
            body.extend_from_slice(&[1, 0, 0, 0]);
            submessage(0x15, 0x05, &body)
        }

        /// A user DATA submessage from writer 0x00000103 with a CDR payload.
        pub fn data() -> Vec<u8> {
            let mut body = vec![
                0, 0, 16, 0, 0, 0, 0x01, 0x04, 0, 0, 0x01, 0x03, 0, 0, 0, 0, 7, 0, 0, 0,
            ];
            body.extend_from_slice(&[
                0x00, 0x01, 0, 0, 6, 0, 0, 0, b'h', b'e', b'l', b'l', b'o', 0, 0, 0,
            ]);
            submessage(0x15, 0x05, &body)
        }

        /// A reader's ACKNACK to the writer.
        pub fn acknack() -> Vec<u8> {
            let body = [
                0, 0, 0x01, 0x04, 0, 0, 0x01, 0x03, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
            ];
            submessage(0x06, 0x01, &body)
        }
    }

    #[test]
    fn rtps_participants_announce_vendor_and_name_and_the_writer_serves() {
        let talker = Host {
            mac: [0x02, 0x42, 0xac, 0x11, 0x00, 0x05],
            ip: [10, 70, 0, 5],
        };
        let listener = Host {
            mac: [0x02, 0x42, 0xac, 0x11, 0x00, 0x06],
            ip: [10, 70, 0, 6],
        };
        let (p_talker, p_listener) = (
            [0x01, 0x0f, 0x4c, 0x2f, 0x8a, 0x1b, 0, 0, 1, 0, 0, 0],
            [0x01, 0x10, 0x7e, 0x01, 0x22, 0x33, 0, 0, 1, 0, 0, 0],
        );
        let mut p = Pcap::default();
        // SPDP announcements to the domain 0 multicast group, from ephemeral ports.
        p.udp_group(
            talker,
            53001,
            [239, 255, 0, 1],
            7400,
            &rtps::message(0x010f, p_talker, &rtps::spdp(0x010f, "talker")),
        );
        p.udp_group(
            listener,
            53002,
            [239, 255, 0, 1],
            7400,
            &rtps::message(0x0110, p_listener, &rtps::spdp(0x0110, "listener")),
        );
        // User traffic: the writer's DATA from the higher port 7415 to the reader's 7413 ("lower port serves"
        // would make the reader the server), the reader's ACKNACK back; then the same off the RTPS ports.
        for (wport, rport) in [(7415, 7413), (40001, 40000)] {
            p.udp(
                talker,
                wport,
                listener,
                rport,
                &rtps::message(0x010f, p_talker, &rtps::data()),
            );
            p.udp(
                listener,
                rport,
                talker,
                wport,
                &rtps::message(0x0110, p_listener, &rtps::acknack()),
            );
        }
        let (path, r) = p.run("rtps.pcap");
        // Every participant announces itself (so both serve); on the user traffic the writer serves the reader.
        let t = device(&r, talker);
        let l = device(&r, listener);
        assert!(t.serves.contains(&Proto::Rtps) && l.uses.contains(&Proto::Rtps));
        let edges: Vec<(&str, &str, u64)> = r
            .map
            .iter()
            // The announcements' multicast group is left to the engine's own rule for groups.
            .filter(|e| {
                e.service == "rtps"
                    && !e.client.contains("239.255.0.1")
                    && !e.server.contains("239.255.0.1")
            })
            .map(|e| (e.client.as_str(), e.server.as_str(), e.flows))
            .collect();
        assert_eq!(edges, [(l.key.as_str(), t.key.as_str(), 2)], "{:#?}", r.map);
        assert_eq!(
            t.vendor.as_deref(),
            Some("eProsima Fast DDS"),
            "{:?}",
            t.identity
        );
        assert!(
            has(t, "talker")
                && has(t, "ROS 2")
                && has(t, "RTPS guidPrefix 010f4c2f8a1b000001000000"),
            "{:?}",
            t.identity
        );
        assert_eq!(l.vendor.as_deref(), Some("Eclipse Cyclone DDS"));
        assert!(has(l, "listener") && !has(l, "talker"));
        // tshark's RTPS heuristics find every message, on any port.
        let names = tshark_field(&path, &[], "rtps.param.entityName");
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["listener", "talker"]
        );
        let vendors: Vec<u32> = tshark_field(&path, &[], "rtps.vendorId")
            .iter()
            .map(|v| u32::from_str_radix(v.trim_start_matches("0x"), 16).unwrap())
            .collect();
        let mut mine: Vec<u32> = [t, l]
            .iter()
            .flat_map(|d| d.ot.get("vendor_ids").cloned().unwrap_or_default())
            .collect();
        mine.sort_unstable();
        assert_eq!(vendors, mine);
        let prefixes = tshark_field(
            &path,
            &["-Y", "rtps.param.entityName == \"talker\""],
            "rtps.guidPrefix.src",
        );
        let prefix = prefixes.into_iter().next().unwrap().replace(':', "");
        assert!(
            has(t, &format!("RTPS guidPrefix {prefix}")),
            "tshark says {prefix}"
        );
        assert_eq!(
            tshark_field(&path, &["-Y", "rtps"], "frame.number").len(),
            6
        );
    }
}
