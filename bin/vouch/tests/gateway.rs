//! The gateway as an operator runs it: `vouch serve` with `[gateway]` enabled in front of a real Mosquitto,
//! devices enrolled over EST with curl and OpenSSL, and Mosquitto's own clients (`mosquitto_pub`,
//! `mosquitto_sub`) as third-party devices; a revocation from the command line (another process) cuts a
//! live subscriber, and a standalone `vouch gateway` serves the same store; the windows a standalone gateway
//! observes reach the server's trust service through the store and change scores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::{
    Api, P256, PASS, est_csr, est_curl, free_port, ok, pkcs7_to_pem, serve_with, terminate, vouch,
};

/// Mosquitto on a free loopback port, killed when dropped.
struct Broker(Child, u16);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn broker(d: &Path) -> Broker {
    let port = free_port();
    let conf = d.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("mosquitto");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is installed (scripts/test installs it)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker(child, port)
}

/// Enrolls a new device over EST (an OpenSSL-made key and request, curl as the EST client); writes
/// `<name>.key` and `<name>.pem` in `d` and returns the device id and certificate serial.
fn enroll(d: &Path, api: &Api, est: &str, name: &str) -> (String, String) {
    let serial = format!("SN-{name}");
    let (_, device) = api.call(
        "POST",
        "/api/v1/devices",
        Some(&serde_json::json!({"identifiers": {"serial": serial}})),
    );
    let id = device["id"].as_str().unwrap().to_owned();
    let (_, t) = api.call(
        "POST",
        &format!("/api/v1/devices/{id}/enrollment-tokens"),
        Some(&serde_json::json!({})),
    );
    let basic = format!("device:{}", t["token"].as_str().unwrap());
    let body = est_csr(d, name, &serial, P256);
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
    pkcs7_to_pem(d, &answer, &format!("{name}.pem"));
    let (_, certs) = api.call("GET", &format!("/api/v1/devices/{id}/certificates"), None);
    let serial = certs
        .as_array()
        .or_else(|| certs["items"].as_array())
        .and_then(|a| a.first())
        .and_then(|c| c["serial"].as_str())
        .unwrap_or_else(|| panic!("no certificate listed: {certs}"))
        .to_owned();
    (id, serial)
}

/// mosquitto_pub/mosquitto_sub arguments to reach the gateway as device `name` (`id`).
fn tls_args(port: u16, name: &str, id: &str) -> Vec<String> {
    [
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "--cafile",
        "root.pem",
        "--cert",
        &format!("{name}.pem"),
        "--key",
        &format!("{name}.key"),
        "-i",
        id,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn pub_(d: &Path, args: &[String], extra: &[&str]) -> (bool, String) {
    let out = Command::new("mosquitto_pub")
        .current_dir(d)
        .args(args)
        .args(extra)
        .output()
        .expect("mosquitto_pub is installed");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A running mosquitto_sub, its output lines on a channel.
fn sub(d: &Path, args: &[String], extra: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new("mosquitto_sub")
        .current_dir(d)
        .args(args)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed");
    let (tx, rx) = std::sync::mpsc::channel();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    (child, rx)
}

/// The port of the address logged as `key=ADDR` in `line`.
fn port_in(line: &str, key: &str) -> Option<u16> {
    line.split(&format!("{key}="))
        .nth(1)
        .and_then(|a| a.split_whitespace().next())
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
}

fn logged_addr(log: &std::sync::Mutex<Vec<String>>, key: &str) -> Option<u16> {
    let lines = log.lock().unwrap();
    lines.iter().find_map(|l| port_in(l, key))
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mosquitto_clients_with_est_certificates_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(vouch(d)
        .args(["ca", "init"])
        .env("VOUCH_CA_PASSPHRASE", PASS)
        .output()
        .unwrap());
    std::fs::copy(d.join("vouch-data/ca/root.pem"), d.join("root.pem")).unwrap();
    let broker = broker(d);
    let upstream = format!("127.0.0.1:{}", broker.1);
    let (server, addr, token, log) = serve_with(
        d,
        "127.0.0.1:0",
        &[
            ("VOUCH_CA_PASSPHRASE", PASS),
            ("VOUCH_GATEWAY_ENABLED", "true"),
            ("VOUCH_GATEWAY_LISTEN", "127.0.0.1:0"),
            ("VOUCH_GATEWAY_UPSTREAM", &upstream),
        ],
    );
    let est = format!(
        "https://{}/.well-known/est",
        util::est_addr(&log).expect("EST started")
    );
    let gw = wait_for("the gateway", || logged_addr(&log, "gateway_addr"));
    let api = Api::new(&addr, token);
    let (a, a_serial) = enroll(d, &api, &est, "a");
    let (b, _) = enroll(d, &api, &est, "b");
    let a_args = tls_args(gw, "a", &a);
    let b_args = tls_args(gw, "b", &b);

    // A subscribes to its own tree through the gateway (3.1.1) and gets what an operator sends it on the
    // broker; what A publishes through the gateway (5.0) reaches a watcher on the broker. (Two sessions of
    // one device would take each other over: the client id is the device.)
    let own = format!("devices/{a}/#");
    let (mut a_sub, lines) = sub(d, &a_args, &["-t", &own, "-v", "-q", "1"]);
    let watch_args: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        &broker.1.to_string(),
        "-i",
        "watcher",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (mut watcher, watched) = sub(d, &watch_args, &["-t", "#", "-v"]);
    std::thread::sleep(Duration::from_millis(500));
    let (okp, text) = pub_(
        d,
        &watch_args,
        &[
            "-i",
            "operator",
            "-q",
            "1",
            "-t",
            &format!("devices/{a}/cmd/reboot"),
            "-m",
            "now",
        ],
    );
    assert!(okp, "{text}");
    let got = lines
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| {
            panic!(
                "nothing received; server log:\n{}",
                log.lock().unwrap().join("\n")
            )
        });
    assert_eq!(got, format!("devices/{a}/cmd/reboot now"));
    assert_eq!(
        watched.recv_timeout(Duration::from_secs(10)).unwrap(),
        format!("devices/{a}/cmd/reboot now")
    );
    let (okp, text) = pub_(
        d,
        &tls_args(gw, "b", &b),
        &[
            "-V",
            "5",
            "-q",
            "1",
            "-t",
            &format!("devices/{b}/telemetry"),
            "-m",
            "21.5",
        ],
    );
    assert!(okp, "{text}");
    assert_eq!(
        watched.recv_timeout(Duration::from_secs(10)).unwrap(),
        format!("devices/{b}/telemetry 21.5")
    );

    // B may not publish into A's tree: refused (5.0 tells it), and A's subscriber sees nothing.
    let (_, text) = pub_(
        d,
        &b_args,
        &[
            "-V",
            "5",
            "-q",
            "1",
            "-t",
            &format!("devices/{a}/cmd"),
            "-m",
            "spoof",
        ],
    );
    assert!(text.to_lowercase().contains("not authori"), "{text}");
    assert!(lines.recv_timeout(Duration::from_millis(500)).is_err());
    assert!(watched.recv_timeout(Duration::from_millis(100)).is_err());

    // B may not subscribe to A's tree: the only filter is refused.
    let (mut b_sub, b_lines) = sub(d, &b_args, &["-t", &own, "-V", "5", "-W", "5"]);
    let refusal = wait_for("mosquitto_sub to report the refusal", || {
        b_lines.recv_timeout(Duration::from_millis(100)).ok()
    });
    assert!(refusal.to_lowercase().contains("denied"), "{refusal}");
    let _ = b_sub.kill();
    let _ = b_sub.wait();

    // A certificate from another CA (a self-signed one) is refused in the handshake.
    let (okt, text) = util::openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "rogue.key",
            "-out",
            "rogue.pem",
            "-subj",
            &format!("/CN={a}"),
            "-days",
            "1",
        ],
    );
    assert!(okt, "{text}");
    let (okp, text) = pub_(
        d,
        &tls_args(gw, "rogue", &a),
        &["-t", &format!("devices/{a}/x"), "-m", "x"],
    );
    assert!(!okp, "a foreign certificate was let in: {text}");
    assert!(lines.recv_timeout(Duration::from_millis(300)).is_err());

    // Revoked from the command line (another process, on the same store): the live subscriber is cut.
    let t0 = Instant::now();
    ok(vouch(d)
        .args(["cert", "revoke", &a_serial, "--reason", "keyCompromise"])
        .output()
        .unwrap());
    let exited = wait_for("mosquitto_sub to be disconnected", || {
        a_sub.try_wait().unwrap().map(|_| Instant::now())
    });
    println!(
        "CLI revocation → mosquitto_sub disconnected in {:?} (including the CLI's own start)",
        exited.duration_since(t0)
    );
    let (okp, text) = pub_(
        d,
        &a_args,
        &["-t", &format!("devices/{a}/telemetry"), "-m", "again"],
    );
    assert!(!okp, "a revoked certificate connected: {text}");
    assert!(text.to_lowercase().contains("not authori"), "{text}");

    // A second, standalone gateway on the same store serves B (gateways hold no state of their own).
    let (second, port2) = standalone_gateway(d, &upstream);
    let (okp, text) = pub_(
        d,
        &tls_args(port2, "b", &b),
        &[
            "-V",
            "5",
            "-q",
            "1",
            "-t",
            &format!("devices/{b}/telemetry"),
            "-m",
            "via-2",
        ],
    );
    assert!(okp, "{text}");
    let (okp, _) = pub_(
        d,
        &tls_args(port2, "a", &a),
        &["-t", &format!("devices/{a}/t"), "-m", "x"],
    );
    assert!(!okp, "the second gateway let a revoked certificate in");
    assert_eq!(
        watched.recv_timeout(Duration::from_secs(10)).unwrap(),
        format!("devices/{b}/telemetry via-2")
    );
    // Nothing else ever reached the broker.
    assert!(watched.recv_timeout(Duration::from_millis(300)).is_err());
    let _ = watcher.kill();
    let _ = watcher.wait();
    util::terminate(second);
    terminate(server);
}

/// Starts a standalone `vouch gateway` in `d` in front of `upstream`; returns it and its port.
fn standalone_gateway(d: &Path, upstream: &str) -> (Child, u16) {
    let mut gateway = vouch(d)
        .args(["gateway", "--listen", "127.0.0.1:0", "--upstream", upstream])
        .env("VOUCH_CA_PASSPHRASE", PASS)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let err = gateway.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let port = wait_for("the standalone gateway", || {
        rx.recv_timeout(Duration::from_millis(100))
            .ok()
            .and_then(|l| port_in(&l, "gateway_addr"))
    });
    (gateway, port)
}

#[test]
fn a_standalone_gateways_windows_change_scores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One-second windows; loopback is plant-a's network.
    std::fs::write(
        d.join("vouch.toml"),
        "[gateway]\nwindow_secs = 1\n\n[trust.zones]\nplant-a = [\"127.0.0.0/8\"]\n",
    )
    .unwrap();
    let broker = broker(d);
    let upstream = format!("127.0.0.1:{}", broker.1);
    // The server runs no gateway of its own (not enabled): only the standalone one sees the device.
    let (server, api, est) = util::ca_server(d);
    let (a, _) = enroll(d, &api, &est, "a");
    // Registered in plant-b; it will connect from plant-a's network: it is out of its zone.
    let (code, v) = api.call(
        "PATCH",
        &format!("/api/v1/devices/{a}"),
        Some(&serde_json::json!({"zone": "plant-b"})),
    );
    assert_eq!(code, 200, "{v}");
    let (gateway, port) = standalone_gateway(d, &upstream);
    let (okp, text) = pub_(
        d,
        &tls_args(port, "a", &a),
        &["-t", &format!("devices/{a}/telemetry"), "-m", "21.5"],
    );
    assert!(okp, "{text}");
    let trust = wait_for(
        "the server to score the device from the standalone gateway's window",
        || {
            let (_, t) = api.call("GET", &format!("/api/v1/devices/{a}/trust"), None);
            t["score"].as_u64().filter(|s| *s < 100).map(|_| t)
        },
    );
    let reasons = trust["reasons"].as_array().unwrap();
    let location = reasons
        .iter()
        .find(|r| r["component"] == "location")
        .unwrap_or_else(|| panic!("no location reason: {trust}"));
    let why = location["why"].as_str().unwrap();
    assert!(why.contains("plant-a") && why.contains("plant-b"), "{why}");
    assert!(location["penalty"].as_u64().unwrap() > 0, "{location}");
    util::terminate(gateway);
    terminate(server);
}
