//! `vouch discover` and the discovery API end to end: real captures in, inventory, map and risks out; merged
//! into the registry as unmanaged devices; one onboarded and enrolled over EST (curl + OpenSSL), after which
//! discovery sees it as managed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::path::{Path, PathBuf};

use util::{Api, P256, curl, est_csr, est_curl, ok, terminate, vouch};

fn pcap(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pcaps")
        .join(name)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn discover_reports_merges_and_onboards_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Report, map and summary from a real capture.
    let out = ok(vouch(d)
        .arg("discover")
        .arg(pcap("iti_enip_test.pcap"))
        .args(["--json", "report.json", "--dot", "map.dot"])
        .output()
        .unwrap());
    assert!(out.contains("1756-ENBT/A"), "{out}");
    let report = json(&std::fs::read_to_string(d.join("report.json")).unwrap());
    assert!(
        report["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["model"] == "1756-ENBT/A" && x["class"] == "plc")
    );
    let dot = std::fs::read_to_string(d.join("map.dot")).unwrap();
    assert!(dot.starts_with("digraph") && dot.contains("enip"), "{dot}");

    // A capture cut inside a frame: the error names the offset; what came before is still listed.
    let bytes = std::fs::read(pcap("iti_modbus1.pcap")).unwrap();
    std::fs::write(d.join("cut.pcap"), &bytes[..bytes.len() - 30]).unwrap();
    let out = vouch(d)
        .args(["discover", "cut.pcap", "--merge"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success());
    assert!(stderr.contains("truncated at byte offset"), "{stderr}");
    assert!(stderr.contains("nothing was merged"), "{stderr}");
    assert!(stdout.contains("10.0.0.57"), "{stdout}");
    let list = ok(vouch(d)
        .args(["-o", "json", "device", "list"])
        .output()
        .unwrap());
    assert_eq!(json(&list)["items"].as_array().unwrap().len(), 0, "{list}");

    // Merge: every device discovered is created unmanaged, with how it was seen.
    let out = vouch(d)
        .arg("discover")
        .arg(pcap("iti_modbus1.pcap"))
        .arg("--merge")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(stderr.contains("new (unmanaged)"), "{stderr}");
    let list = json(&ok(vouch(d)
        .args(["-o", "json", "device", "list", "--managed", "false"])
        .output()
        .unwrap()));
    let items = list["items"].as_array().unwrap().clone();
    assert!(items.len() >= 2, "{list}");
    let server = items
        .iter()
        .find(|x| x["class"] == "plc")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(server["state"], "discovered");
    assert!(
        server["labels"]["discovery/last-seen"].is_string(),
        "{server}"
    );
    let id = server["id"].as_str().unwrap().to_owned();

    // Merging the same capture again creates nothing; a second capture reports what is new since.
    let out = vouch(d)
        .arg("discover")
        .arg(pcap("iti_modbus1.pcap"))
        .arg(pcap("z_mqtt.pcap"))
        .args(["--merge", "--json", "again.json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    let again = json(&std::fs::read_to_string(d.join("again.json")).unwrap());
    assert!(
        !again["changes"]["new_devices"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let known = again["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["registry"]["device_id"] == id.as_str())
        .unwrap();
    assert!(known["registry"]["matched_by"].is_string(), "{known}");
    assert!(
        stderr.contains(&format!("{} known", items.len())),
        "{stderr}"
    );

    // Onboarding issues a one-time enrollment token and moves the device on; again gives a fresh token.
    let out = ok(vouch(d)
        .args(["-o", "json", "device", "onboard", &id])
        .output()
        .unwrap());
    let onboarded = json(&out);
    assert_eq!(onboarded["state"], "onboarding");
    assert!(
        onboarded["token"].as_str().unwrap().len() > 32,
        "{onboarded}"
    );
    let show = json(&ok(vouch(d)
        .args(["-o", "json", "device", "show", &id])
        .output()
        .unwrap()));
    assert_eq!(show["state"], "onboarding");
    ok(vouch(d).args(["device", "onboard", &id]).output().unwrap());
    // A retired device cannot be onboarded.
    let other = items.iter().find(|x| x["id"] != id.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(vouch(d)
        .args(["device", "transition", &other, "retired"])
        .output()
        .unwrap());
    let out = vouch(d)
        .args(["device", "onboard", &other])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retired"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn upload(api: &Api, file: &Path) -> (u16, serde_json::Value) {
    let url = format!("{}/api/v1/discovery/captures", api.base);
    let data = format!("@{}", file.display());
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &api.auth,
        "-H",
        "Content-Type: application/vnd.tcpdump.pcap",
        "--data-binary",
        &data,
        &url,
    ]);
    (
        code,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
    )
}

#[test]
fn upload_map_onboard_and_enroll_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, api, est) = util::ca_server(d);

    // Nothing uploaded yet.
    let (code, _) = api.call("GET", "/api/v1/discovery/map", None);
    assert_eq!(code, 404);
    // Not a capture: refused with the reason, nothing created.
    std::fs::write(
        d.join("junk.pcap"),
        b"definitely not a capture file, just text",
    )
    .unwrap();
    let (code, body) = upload(&api, &d.join("junk.pcap"));
    assert_eq!(code, 422, "{body}");
    assert!(body.to_string().contains("not a pcap"), "{body}");
    let (_, list) = api.call("GET", "/api/v1/devices", None);
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");

    // A real capture: merged, with the map as JSON.
    let (code, body) = upload(&api, &pcap("iti_enip_test.pcap"));
    assert_eq!(code, 200, "{body}");
    assert!(body["merged"]["created"].as_u64().unwrap() >= 2, "{body}");
    let plc = body["report"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["model"] == "1756-ENBT/A")
        .unwrap()
        .clone();
    assert_eq!(plc["registry"]["managed"], false);
    let id = plc["registry"]["device_id"].as_str().unwrap().to_owned();
    let (code, map) = api.call("GET", "/api/v1/discovery/map", None);
    assert_eq!(code, 200, "{map}");
    assert!(
        map["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["service"] == "enip" && e["forward"]["packets"].as_u64().unwrap() > 0),
        "{map}"
    );
    assert!(
        map["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["device_id"] == id.as_str())
    );

    // Onboard it and enroll it over EST with the token (curl, an OpenSSL key and request; CN = device id).
    let (code, onboarded) = api.call(
        "POST",
        &format!("/api/v1/devices/{id}/onboard"),
        Some(&serde_json::json!({"reason": "found on the line-3 capture"})),
    );
    assert_eq!(code, 201, "{onboarded}");
    assert_eq!(onboarded["state"], "onboarding");
    let basic = format!("device:{}", onboarded["token"].as_str().unwrap());
    let body = est_csr(d, "plc", &id, P256);
    let (code, answer) = est_curl(
        d,
        &[
            "-u",
            &basic,
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &body,
            &format!("{est}/simpleenroll"),
        ],
    );
    assert_eq!(code, 200, "{answer}");
    let (_, device) = api.call("GET", &format!("/api/v1/devices/{id}"), None);
    assert_eq!(device["state"], "active", "{device}");

    // The next capture sees it as managed, matched by its hardware address.
    let (code, body) = upload(&api, &pcap("iti_enip_test.pcap"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["merged"]["created"], 0, "{body}");
    let again = body["report"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["model"] == "1756-ENBT/A")
        .unwrap()
        .clone();
    assert_eq!(again["registry"]["device_id"], id.as_str());
    assert_eq!(again["registry"]["managed"], true, "{again}");
    assert_eq!(again["registry"]["matched_by"], "mac");
    // The device's history tells the story: discovered, onboarding, enrolled.
    let (_, events) = api.call("GET", &format!("/api/v1/devices/{id}/events"), None);
    let actions: Vec<String> = events["items"]
        .as_array()
        .or_else(|| events.as_array())
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(actions.iter().any(|a| a == "device.created"), "{actions:?}");
    assert!(
        actions.iter().any(|a| a.contains("transitioned")),
        "{actions:?}"
    );
    terminate(server);
}

/// Live capture on loopback (cargo feature `live`; needs CAP_NET_RAW, which the test runner has as root): an
/// MQTT client's CONNECT on an arbitrary port is recognised by its bytes and names the client.
#[cfg(feature = "live")]
#[test]
fn live_capture_on_loopback_reads_what_crosses_it() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let child = vouch(d)
        .args([
            "discover",
            "--interface",
            "lo",
            "--duration",
            "4",
            "--json",
            "live.json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Give libpcap a moment to open the interface, then talk over loopback.
    std::thread::sleep(Duration::from_millis(1500));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
        let _ = s.write_all(&[0x20, 0x02, 0x00, 0x00]); // CONNACK
    });
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let id = b"live-sensor-42";
    let mut connect = vec![
        0x10,
        (10 + 2 + id.len()) as u8,
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        2,
        0,
        60,
    ];
    connect.extend_from_slice(&(id.len() as u16).to_be_bytes());
    connect.extend_from_slice(id);
    c.write_all(&connect).unwrap();
    let mut ack = [0u8; 4];
    c.read_exact(&mut ack).unwrap();
    server.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&std::fs::read_to_string(d.join("live.json")).unwrap());
    let client = report["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["identity"].to_string().contains("live-sensor-42"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(client["uses"].to_string().contains("mqtt"), "{client}");
    assert!(
        report["map"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["service"] == "mqtt"),
        "{report}"
    );
}

#[test]
fn a_second_upload_while_one_runs_is_refused_at_once_and_the_last_report_stays_readable() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, addr, token, _log) = util::serve(d);
    let api = Api {
        base: format!("http://{addr}"),
        auth: format!("Authorization: Bearer {}", token.unwrap()),
        otp: None,
    };
    let (code, body) = upload(&api, &pcap("iti_enip_test.pcap"));
    assert_eq!(code, 200, "{body}");

    // An upload whose body is still coming: it holds the one upload slot (the server asked for its body).
    let mut running = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        running,
        "POST /api/v1/discovery/captures HTTP/1.1\r\nHost: vouch\r\n{}\r\n\
         Content-Type: application/vnd.tcpdump.pcap\r\nContent-Length: 200000000\r\nExpect: 100-continue\r\n\r\n",
        api.auth
    )
    .unwrap();
    running
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = running.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    running.write_all(&[0xd4, 0xc3, 0xb2, 0xa1]).unwrap();

    // A second upload meanwhile: refused at once, with when to come back; the last report is still there.
    let url = format!("{}/api/v1/discovery/captures", api.base);
    let data = format!("@{}", pcap("iti_modbus1.pcap").display());
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-i",
            "--max-time",
            "10",
            "-X",
            "POST",
            "-H",
            &api.auth,
        ])
        .args(["-H", "Content-Type: application/vnd.tcpdump.pcap"])
        .args(["--data-binary", &data, &url])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(answer.starts_with("http/1.1 429"), "{answer}");
    assert!(answer.contains("retry-after: 10"), "{answer}");
    assert!(answer.contains("upload-in-progress"), "{answer}");
    let (code, last) = api.call("GET", "/api/v1/discovery", None);
    assert_eq!(code, 200, "{last}");
    assert!(last.to_string().contains("1756-ENBT/A"), "{last}");

    // The first upload's client gives up: the slot is free again.
    drop(running);
    let mut accepted = false;
    for _ in 0..100 {
        let (code, _) = upload(&api, &pcap("iti_modbus1.pcap"));
        if code == 200 {
            accepted = true;
            break;
        }
        assert_eq!(code, 429);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(accepted, "the slot was never freed");
    terminate(server);
}
