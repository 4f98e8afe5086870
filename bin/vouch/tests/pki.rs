//! The private PKI end to end, as an operator and third-party tools see it: `vouch ca init`, the server,
//! certificates issued from OpenSSL-made requests through the API with curl, and revocation checked by
//! `openssl verify -crl_check` against the served CRL and by `openssl ocsp` against the served responder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::path::Path;

use serde_json::Value;

use util::{
    Api, P256, PASS, csr, curl, est_csr, est_curl, free_port, ok, openssl, pkcs7_to_pem,
    serve_with, terminate, vouch,
};

/// A self-signed CA made by openssl in `d`: `<name>.key`, `<name>.pem`, subject CN `cn`.
fn openssl_ca(d: &Path, name: &str, cn: &str) {
    let (key, pem, subj) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN={cn}"),
    );
    let mut args = vec![
        "req", "-x509", "-keyout", &key, "-out", &pem, "-subj", &subj, "-days", "3650", "-nodes",
    ];
    args.extend_from_slice(P256);
    args.extend_from_slice(&[
        "-addext",
        "basicConstraints=critical,CA:true",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    let (ok, text) = openssl(d, &args);
    assert!(ok, "{text}");
}

#[test]
fn issued_certificates_are_checked_by_openssl_against_the_served_crl_and_ocsp() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(vouch(d)
        .args(["ca", "init", "--organization", "Acme"])
        .env("VOUCH_CA_PASSPHRASE", PASS)
        .output()
        .unwrap());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (server, addr, token, _log) = serve_with(d, &listen, &[("VOUCH_CA_PASSPHRASE", PASS)]);
    let api = Api::new(&addr, token);

    let (code, device) = api.call(
        "POST",
        "/api/v1/devices",
        Some(&serde_json::json!({"class": "sensor"})),
    );
    assert_eq!(code, 201, "{device}");
    let id = device["id"].as_str().unwrap().to_owned();

    // Bad requests: each refused with its reason, nothing issued, each logged.
    let (code, v) = api.call(
        "POST",
        &format!("/api/v1/devices/{id}/certificates"),
        Some(&serde_json::json!({"csr": "not base64!"})),
    );
    assert_eq!(code, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("not base64"), "{v}");
    let weak = csr(d, "weak", &id, &["-newkey", "rsa:1024"]);
    let (code, v) = api.call(
        "POST",
        &format!("/api/v1/devices/{id}/certificates"),
        Some(&serde_json::json!({"csr": weak})),
    );
    assert_eq!(code, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("RSA-1024"), "{v}");
    let other = csr(d, "other", "01a21d48-adbf-706d-9e7d-4cc1d4fc9dc9", P256);
    let (code, v) = api.call(
        "POST",
        &format!("/api/v1/devices/{id}/certificates"),
        Some(&serde_json::json!({"csr": other})),
    );
    assert_eq!(code, 403, "a request naming another device: {v}");
    let (_, certs) = api.call("GET", &format!("/api/v1/devices/{id}/certificates"), None);
    assert_eq!(certs.as_array().unwrap().len(), 0, "nothing issued");
    let (_, events) = api.call("GET", &format!("/api/v1/devices/{id}/events"), None);
    let refused = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "enrollment.refused")
        .count();
    assert_eq!(
        refused, 2,
        "each refusal about this device is logged: {events}"
    );

    // A good request, issued through the API.
    let good = csr(d, "dev", &id, P256);
    let (code, issued) = api.call(
        "POST",
        &format!("/api/v1/devices/{id}/certificates"),
        Some(&serde_json::json!({"csr": good})),
    );
    assert_eq!(code, 201, "{issued}");
    std::fs::write(
        d.join("dev.pem"),
        issued["certificate_pem"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        d.join("issuing.pem"),
        issued["issuing_ca_pem"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::copy(d.join("vouch-data/ca/root.pem"), d.join("root.pem")).unwrap();
    let serial = issued["serial"].as_str().unwrap().to_owned();
    let (_, device) = api.call("GET", &format!("/api/v1/devices/{id}"), None);
    assert_eq!(device["state"], "active", "enrollment completes onboarding");
    assert_eq!(
        device["identifiers"]["cert_fingerprint"],
        issued["fingerprint"]
    );

    let crl_check = || {
        let (code, _) = curl(&[
            "-o",
            &d.join("crl.der").display().to_string(),
            &format!("http://{addr}/pki/crl"),
        ]);
        assert_eq!(code, 200);
        let (ok, text) = openssl(
            d,
            &["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"],
        );
        assert!(ok, "{text}");
        openssl(
            d,
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "issuing.pem",
                "-CRLfile",
                "crl.pem",
                "dev.pem",
            ],
        )
    };
    let ocsp = || {
        openssl(
            d,
            &[
                "ocsp",
                "-issuer",
                "issuing.pem",
                "-cert",
                "dev.pem",
                "-url",
                &format!("http://{addr}/pki/ocsp"),
                "-CAfile",
                "root.pem",
                "-verify_other",
                "issuing.pem",
            ],
        )
    };
    let (ok_crl, text) = crl_check();
    assert!(ok_crl, "the served CRL accepts a good certificate: {text}");
    let (ok_ocsp, text) = ocsp();
    assert!(
        ok_ocsp && text.contains("dev.pem: good") && text.contains("Response verify OK"),
        "{text}"
    );

    let (code, v) = api.call(
        "POST",
        &format!("/api/v1/certificates/{serial}/revoke"),
        Some(&serde_json::json!({"reason": "keyCompromise"})),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "revoked");
    let (_, device) = api.call("GET", &format!("/api/v1/devices/{id}"), None);
    assert_eq!(
        device["state"], "suspended",
        "revocation suspends the device"
    );

    let (ok_crl, text) = crl_check();
    assert!(!ok_crl && text.contains("certificate revoked"), "{text}");
    let (_, text) = ocsp();
    assert!(
        text.contains("dev.pem: revoked") && text.contains("keyCompromise"),
        "{text}"
    );

    // One-time enrollment tokens are issued for the EST bootstrap.
    let (code, v) = api.call(
        "POST",
        &format!("/api/v1/devices/{id}/enrollment-tokens"),
        Some(&serde_json::json!({})),
    );
    assert_eq!(code, 201, "{v}");
    assert!(v["token"].as_str().unwrap().starts_with("vouch-enroll_"));
    let (_, log) = api.call("GET", "/api/v1/audit/events?limit=1000", None);
    assert!(
        !log.to_string()
            .contains(v["token"].as_str().unwrap().split('_').nth(2).unwrap()),
        "no secret in the log"
    );
    let (_, verify) = api.call("GET", "/api/v1/audit/verify", None);
    assert_eq!(verify["intact"], true, "{verify}");
    terminate(server);
}

#[test]
fn a_server_with_a_ca_refuses_to_start_without_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(vouch(d)
        .args(["ca", "init"])
        .env("VOUCH_CA_PASSPHRASE", PASS)
        .output()
        .unwrap());
    let out = vouch(d)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("VOUCH_CA_PASSPHRASE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("VOUCH_CA_PASSPHRASE"));
    let out = vouch(d)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("VOUCH_CA_PASSPHRASE", "a wrong passphrase")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn est_enrollment_with_curl_and_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, api, est) = util::ca_server(d);
    let (_, device) = api.call(
        "POST",
        "/api/v1/devices",
        Some(&serde_json::json!({"identifiers": {"serial": "SN-1"}})),
    );
    let id = device["id"].as_str().unwrap().to_owned();
    let (_, t) = api.call(
        "POST",
        &format!("/api/v1/devices/{id}/enrollment-tokens"),
        Some(&serde_json::json!({})),
    );
    let enroll_token = t["token"].as_str().unwrap().to_owned();
    let basic = format!("device:{enroll_token}");

    // /cacerts: the issuing CA and the root, as PKCS#7 that openssl reads.
    let (code, body) = est_curl(d, &[&format!("{est}/cacerts")]);
    assert_eq!(code, 200, "{body}");
    let cas = pkcs7_to_pem(d, &body, "cas.pem");
    assert_eq!(cas.matches("BEGIN CERTIFICATE").count(), 2);
    let (code, _) = est_curl(d, &[&format!("{est}/csrattrs")]);
    assert_eq!(code, 204);

    // Bad input: each a clear 4xx, nothing issued, an event logged.
    let enroll = |args: &[&str]| {
        let mut all = vec!["-H", "Content-Type: application/pkcs10"];
        all.extend_from_slice(args);
        let url = format!("{est}/simpleenroll");
        all.push(&url);
        est_curl(d, &all)
    };
    let good = est_csr(d, "dev", "SN-1", P256);
    let (code, _) = enroll(&["--data-binary", &good]);
    assert_eq!(code, 401, "no credentials");
    std::fs::write(d.join("garbage.b64"), "!!! not base64 !!!").unwrap();
    let (code, body) = enroll(&["-u", &basic, "--data-binary", "@garbage.b64"]);
    assert_eq!(code, 400, "{body}");
    let truncated = std::fs::read_to_string(d.join("dev.b64")).unwrap();
    std::fs::write(d.join("trunc.b64"), &truncated[..truncated.len() / 2]).unwrap();
    let (code, body) = enroll(&["-u", &basic, "--data-binary", "@trunc.b64"]);
    assert_eq!(code, 400, "{body}");
    let weak = est_csr(d, "weak", "SN-1", &["-newkey", "rsa:1024"]);
    let (code, body) = enroll(&["-u", &basic, "--data-binary", &weak]);
    assert!(code == 400 && body.contains("RSA-1024"), "{code} {body}");
    let other = est_csr(d, "other", "SN-OTHER", P256);
    let (code, body) = enroll(&["-u", &basic, "--data-binary", &other]);
    // 400, not 403: libest handles no 403, and the same request will never pass.
    assert!(code == 400 && body.contains("SN-OTHER"), "{code} {body}");
    std::fs::write(d.join("big.b64"), "A".repeat(70_000)).unwrap();
    let (code, body) = enroll(&["-u", &basic, "--data-binary", "@big.b64"]);
    assert!(
        code == 400 && body.contains("body-too-large"),
        "400 (libest handles no 413), the problem's kind says why: {code} {body}"
    );
    let (_, certs) = api.call("GET", &format!("/api/v1/devices/{id}/certificates"), None);
    assert!(certs.as_array().unwrap().is_empty(), "nothing issued");

    // The real enrollment.
    let (code, body) = enroll(&["-u", &basic, "--data-binary", &good]);
    assert_eq!(code, 200, "{body}");
    pkcs7_to_pem(d, &body, "dev.pem");
    let (ok, text) = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "cas.pem",
            "dev.pem",
        ],
    );
    assert!(ok, "{text}");
    let (_, device) = api.call("GET", &format!("/api/v1/devices/{id}"), None);
    assert_eq!(device["state"], "active");

    // The token was single-use.
    let (code, body) = enroll(&["-u", &basic, "--data-binary", &good]);
    assert!(
        code == 401 && body.contains("used already"),
        "{code} {body}"
    );

    // Re-enrollment over mutual TLS with the current certificate.
    let reenroll = |cert: &str, key: &str, csr_file: &str| {
        est_curl(
            d,
            &[
                "--cert",
                cert,
                "--key",
                key,
                "-H",
                "Content-Type: application/pkcs10",
                "--data-binary",
                csr_file,
                &format!("{est}/simplereenroll"),
            ],
        )
    };
    let renew = est_csr(d, "renew", "SN-1", P256);
    let (code, body) = reenroll("dev.pem", "dev.key", &renew);
    assert_eq!(code, 200, "{body}");
    pkcs7_to_pem(d, &body, "renewed.pem");
    let (code, _) = est_curl(
        d,
        &[
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &renew,
            &format!("{est}/simplereenroll"),
        ],
    );
    assert_eq!(code, 401, "re-enrollment needs a client certificate");

    // A revoked certificate cannot re-enroll.
    let (_, certs) = api.call("GET", &format!("/api/v1/devices/{id}/certificates"), None);
    let renewed_serial = certs[0]["serial"].as_str().unwrap().to_owned();
    let (code, _) = api.call(
        "POST",
        &format!("/api/v1/certificates/{renewed_serial}/revoke"),
        Some(&serde_json::json!({"reason": "keyCompromise"})),
    );
    assert_eq!(code, 200);
    let again = est_csr(d, "again", "SN-1", P256);
    let (code, body) = reenroll("renewed.pem", "renew.key", &again);
    assert!(code == 401 && body.contains("revoked"), "{code} {body}");

    let (_, events) = api.call("GET", "/api/v1/audit/events?limit=1000", None);
    let refused = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "enrollment.refused")
        .count();
    // Every refusal that carried credentials; the two anonymous attempts (no token, no client
    // certificate) were challenged, not logged.
    assert_eq!(
        refused, 7,
        "every refusal with credentials is logged: {events}"
    );
    let (_, verify) = api.call("GET", "/api/v1/audit/verify", None);
    assert_eq!(verify["intact"], true);
    terminate(server);
}

#[test]
fn kill_9_during_a_burst_of_enrollments_loses_no_certificate_a_client_received() {
    const N: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(vouch(d)
        .args(["ca", "init"])
        .env("VOUCH_CA_PASSPHRASE", PASS)
        .output()
        .unwrap());
    std::fs::copy(d.join("vouch-data/ca/root.pem"), d.join("root.pem")).unwrap();
    let (mut server, addr, token, log) =
        serve_with(d, "127.0.0.1:0", &[("VOUCH_CA_PASSPHRASE", PASS)]);
    let est = format!(
        "https://{}/.well-known/est/simpleenroll",
        util::est_addr(&log).unwrap()
    );
    let api = Api::new(&addr, token);

    let mut basics = Vec::new();
    for i in 0..N {
        let serial = format!("BURST-{i}");
        let (_, dev) = api.call(
            "POST",
            "/api/v1/devices",
            Some(&serde_json::json!({"identifiers": {"serial": serial}})),
        );
        let id = dev["id"].as_str().unwrap().to_owned();
        let (_, t) = api.call(
            "POST",
            &format!("/api/v1/devices/{id}/enrollment-tokens"),
            Some(&serde_json::json!({})),
        );
        est_csr(d, &format!("b{i}"), &serial, P256);
        basics.push(format!("d:{}", t["token"].as_str().unwrap()));
    }
    let mut clients: Vec<std::process::Child> = (0..N)
        .map(|i| {
            std::process::Command::new("curl")
                .current_dir(d)
                .args([
                    "-sS",
                    "-o",
                    &format!("ans{i}.b64"),
                    "-w",
                    "%{http_code}",
                    "--cacert",
                    "root.pem",
                    "-u",
                    &basics[i],
                ])
                .args([
                    "-H",
                    "Content-Type: application/pkcs10",
                    "--data-binary",
                    &format!("@b{i}.b64"),
                    &est,
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // Kill the server once a few enrollments are through and others are in flight.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while clients
        .iter_mut()
        .map(|c| c.try_wait())
        .filter(|r| matches!(r, Ok(Some(_))))
        .count()
        < 3
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no enrollment completed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();

    let mut received = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        if String::from_utf8_lossy(&out.stdout) != "200" {
            continue;
        }
        let body = std::fs::read_to_string(d.join(format!("ans{i}.b64"))).unwrap();
        pkcs7_to_pem(d, &body, &format!("got{i}.pem"));
        let (ok, serial) = openssl(
            d,
            &["x509", "-in", &format!("got{i}.pem"), "-noout", "-serial"],
        );
        assert!(ok, "{serial}");
        received.push(serial.trim().trim_start_matches("serial=").to_lowercase());
    }
    assert!(
        received.len() >= 3,
        "some clients received certificates: {}",
        received.len()
    );

    let (server, addr, _, _) = serve_with(d, "127.0.0.1:0", &[("VOUCH_CA_PASSPHRASE", PASS)]);
    let api = Api {
        base: format!("http://{addr}"),
        auth: api.auth,
        otp: None,
    };
    for serial in &received {
        let (code, cert) = api.call("GET", &format!("/api/v1/certificates/{serial}"), None);
        assert_eq!(
            code, 200,
            "certificate {serial}, received by a client, is in the store: {cert}"
        );
    }
    let mut unique = received.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), received.len(), "no serial reused");
    let (_, verify) = api.call("GET", "/api/v1/audit/verify", None);
    assert_eq!(verify["intact"], true, "{verify}");
    eprintln!(
        "{} of {N} enrollments completed before kill -9; all on record after restart",
        received.len()
    );
    terminate(server);
}

#[test]
fn bring_your_own_pki_an_enterprise_root_signs_the_issuing_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        vouch(d)
            .args(args)
            .env("VOUCH_CA_PASSPHRASE", PASS)
            .output()
            .unwrap()
    };
    ok(run(&["ca", "request", "--organization", "Acme"]));
    assert!(d.join("vouch-data/ca/issuing.csr.pem").exists());
    openssl_ca(d, "enterprise-root", "enterprise-root");
    openssl_ca(d, "other-root", "other-root");
    std::fs::write(
        d.join("ca.ext"),
        "basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    let sign = |out: &str, ext: bool| {
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            "vouch-data/ca/issuing.csr.pem",
            "-CA",
            "enterprise-root.pem",
            "-CAkey",
            "enterprise-root.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-out",
            out,
        ];
        if ext {
            args.extend_from_slice(&["-extfile", "ca.ext"]);
        }
        let (ok, text) = openssl(d, &args);
        assert!(ok, "{text}");
    };
    sign("not-a-ca.pem", false);
    sign("issuing.signed.pem", true);

    let out = run(&[
        "ca",
        "import",
        "--cert",
        "issuing.signed.pem",
        "--root",
        "other-root.pem",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed by the given root"));
    let out = run(&[
        "ca",
        "import",
        "--cert",
        "not-a-ca.pem",
        "--root",
        "enterprise-root.pem",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a CA certificate"));
    ok(run(&[
        "ca",
        "import",
        "--cert",
        "issuing.signed.pem",
        "--root",
        "enterprise-root.pem",
    ]));

    // Vouch now issues under the enterprise root.
    let dev: Value = serde_json::from_str(&ok(run(&[
        "-o", "json", "device", "add", "--serial", "NEW-1",
    ])))
    .unwrap();
    let id = dev["id"].as_str().unwrap().to_owned();
    csr(d, "dev", "NEW-1", P256);
    ok(run(&[
        "cert", "issue", &id, "--csr", "dev.csr", "--out", "dev.pem",
    ]));
    let (ok_v, text) = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "enterprise-root.pem",
            "-untrusted",
            "vouch-data/ca/issuing.pem",
            "dev.pem",
        ],
    );
    assert!(ok_v, "{text}");

    // And certificates the enterprise PKI issued before are imported.
    let legacy: Value = serde_json::from_str(&ok(run(&[
        "-o", "json", "device", "add", "--serial", "OLD-1",
    ])))
    .unwrap();
    let legacy_id = legacy["id"].as_str().unwrap().to_owned();
    csr(d, "legacy", "OLD-1", P256);
    let (ok_s, text) = openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "legacy.csr",
            "-CA",
            "enterprise-root.pem",
            "-CAkey",
            "enterprise-root.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            "legacy.pem",
        ],
    );
    assert!(ok_s, "{text}");
    ok(run(&[
        "cert",
        "import",
        "legacy.pem",
        "--device",
        &legacy_id,
    ]));
    let list: Value = serde_json::from_str(&ok(run(&[
        "-o", "json", "cert", "list", "--device", &legacy_id,
    ])))
    .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let shown = ok(run(&["device", "show", &legacy_id]));
    assert!(
        shown.contains("active"),
        "an imported certificate makes the device managed: {shown}"
    );
    assert!(ok(run(&["audit", "verify"])).contains("intact"));
}

#[test]
fn an_idevid_from_a_trusted_manufacturer_is_exchanged_for_a_vouch_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(vouch(d)
        .args(["ca", "init"])
        .env("VOUCH_CA_PASSPHRASE", PASS)
        .output()
        .unwrap());
    std::fs::copy(d.join("vouch-data/ca/root.pem"), d.join("root.pem")).unwrap();
    // A manufacturer CA and the IDevIDs it put into devices at the factory.
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for ca in ["mfr", "rogue"] {
        openssl_ca(d, ca, &format!("{ca} CA"));
    }
    std::fs::write(d.join("idevid.ext"), "basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n").unwrap();
    let idevid = |name: &str, serial: &str, ca: &str| {
        let (key, req, pem) = (
            format!("{name}.key"),
            format!("{name}.req"),
            format!("{name}.pem"),
        );
        let subj = format!("/CN=widget/serialNumber={serial}");
        let mut args = vec!["req", "-new", "-keyout", &key, "-out", &req, "-subj", &subj];
        args.extend_from_slice(&ec);
        assert!(openssl(d, &args).0);
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        let (ok, text) = openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &req,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "3650",
                "-extfile",
                "idevid.ext",
                "-out",
                &pem,
            ],
        );
        assert!(ok, "{text}");
    };
    idevid("good", "SN-77", "mfr");
    idevid("unknown", "SN-404", "mfr");
    idevid("rogue-dev", "SN-77", "rogue");

    let mfr = d.join("mfr.pem").display().to_string();
    let (server, addr, token, log) = serve_with(
        d,
        "127.0.0.1:0",
        &[
            ("VOUCH_CA_PASSPHRASE", PASS),
            ("VOUCH_EST_MANUFACTURER_CAS", &mfr),
        ],
    );
    let est = format!(
        "https://{}/.well-known/est/simpleenroll",
        util::est_addr(&log).unwrap()
    );
    let api = Api::new(&addr, token);
    let (_, device) = api.call(
        "POST",
        "/api/v1/devices",
        Some(&serde_json::json!({"identifiers": {"serial": "SN-77"}})),
    );
    let id = device["id"].as_str().unwrap().to_owned();
    let ldevid_csr = est_csr(d, "ldevid", "SN-77", P256);
    let enroll = |cert: &str, key: &str| {
        est_curl(
            d,
            &[
                "--cert",
                cert,
                "--key",
                key,
                "-H",
                "Content-Type: application/pkcs10",
                "--data-binary",
                &ldevid_csr,
                &est,
            ],
        )
    };

    let (code, _) = enroll("rogue-dev.pem", "rogue-dev.key");
    assert_ne!(
        code, 200,
        "an IDevID from an untrusted manufacturer does not even complete the handshake"
    );
    let (code, body) = enroll("unknown.pem", "unknown.key");
    // 401 with a challenge (libest then tries its HTTP credentials, RFC 7030 §3.2.3), not 403.
    assert!(code == 401 && body.contains("SN-404"), "{code} {body}");
    let (code, body) = enroll("good.pem", "good.key");
    assert_eq!(code, 200, "{body}");
    pkcs7_to_pem(d, &body, "ldevid.pem");
    let (ok_v, text) = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "vouch-data/ca/issuing.pem",
            "ldevid.pem",
        ],
    );
    assert!(ok_v, "{text}");
    let (_, device) = api.call("GET", &format!("/api/v1/devices/{id}"), None);
    assert_eq!(device["state"], "active");
    let (code, body) = enroll("good.pem", "good.key");
    assert!(
        code == 401 && body.contains("not awaiting onboarding"),
        "an IDevID bootstraps once: {code} {body}"
    );
    terminate(server);
}

#[test]
fn ca_keys_held_in_softhsm_sign_certificates_openssl_verifies() {
    let module = std::env::var("VOUCH_TEST_SOFTHSM_MODULE")
        .unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".into());
    assert!(
        Path::new(&module).exists(),
        "SoftHSM2 is not installed ({module}): scripts/test installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("tokens")).unwrap();
    let conf = d.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            d.join("tokens").display()
        ),
    )
    .unwrap();
    let conf = conf.display().to_string();
    let init = std::process::Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "vouch",
            "--pin",
            "123456",
            "--so-pin",
            "654321",
        ])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let env = [
        ("SOFTHSM2_CONF", conf.as_str()),
        ("VOUCH_HSM_PIN", "123456"),
    ];

    let out = vouch(d)
        .args([
            "ca",
            "init",
            "--organization",
            "HSM",
            "--hsm-module",
            &module,
            "--hsm-token",
            "vouch",
        ])
        .envs(env)
        .output()
        .unwrap();
    ok(out);
    let ca_dir = d.join("vouch-data/ca");
    let names: Vec<String> = std::fs::read_dir(&ca_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".key.pem")),
        "no private key on disk: {names:?}"
    );
    let text = std::fs::read_to_string(ca_dir.join("issuing.key.hsm")).unwrap();
    assert!(!text.contains("123456"), "the PIN is not stored");
    std::fs::copy(ca_dir.join("root.pem"), d.join("root.pem")).unwrap();
    let (ok_v, text) = openssl(
        d,
        &["verify", "-CAfile", "root.pem", "vouch-data/ca/issuing.pem"],
    );
    assert!(ok_v, "{text}");

    // A wrong PIN stops the server; the right one lets the HSM sign device certificates.
    let bad = vouch(d)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--est-listen",
            "127.0.0.1:0",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .env("VOUCH_HSM_PIN", "000000")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("PIN"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let (server, addr, token, _) = serve_with(d, "127.0.0.1:0", &env);
    let api = Api::new(&addr, token);
    let (_, device) = api.call(
        "POST",
        "/api/v1/devices",
        Some(&serde_json::json!({"identifiers": {"serial": "HSM-1"}})),
    );
    let id = device["id"].as_str().unwrap().to_owned();
    let pem = csr(d, "dev", "HSM-1", P256);
    let (code, issued) = api.call(
        "POST",
        &format!("/api/v1/devices/{id}/certificates"),
        Some(&serde_json::json!({"csr": pem})),
    );
    assert_eq!(code, 201, "{issued}");
    std::fs::write(
        d.join("dev.pem"),
        issued["certificate_pem"].as_str().unwrap(),
    )
    .unwrap();
    let (ok_v, text) = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "vouch-data/ca/issuing.pem",
            "dev.pem",
        ],
    );
    assert!(ok_v, "{text}");
    // CRLs and OCSP answers are signed by the HSM too.
    let (code, _) = curl(&[
        "-o",
        &d.join("crl.der").display().to_string(),
        &format!("http://{addr}/pki/crl"),
    ]);
    assert_eq!(code, 200);
    let (ok_c, text) = openssl(
        d,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl.der",
            "-CAfile",
            "vouch-data/ca/issuing.pem",
            "-noout",
        ],
    );
    assert!(ok_c && text.contains("verify OK"), "{text}");
    terminate(server);
}

#[test]
fn cert_import_takes_a_certificate_from_a_configured_ca_once_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        vouch(d)
            .args(args)
            .env("VOUCH_CA_PASSPHRASE", PASS)
            .output()
            .unwrap()
    };
    ok(run(&["ca", "init", "--organization", "Acme"]));
    openssl_ca(d, "enterprise", "Enterprise Devices");
    let dev: Value = serde_json::from_str(&ok(run(&[
        "-o", "json", "device", "add", "--serial", "IMP-1",
    ])))
    .unwrap();
    let id = dev["id"].as_str().unwrap().to_owned();
    csr(d, "dev", "IMP-1", P256);
    let (signed, text) = openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "dev.csr",
            "-CA",
            "enterprise.pem",
            "-CAkey",
            "enterprise.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            "dev.pem",
        ],
    );
    assert!(signed, "{text}");

    // The enterprise CA is not trusted for devices yet.
    let out = run(&["cert", "import", "dev.pem", "--device", &id]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not signed by a trusted CA"), "{stderr}");

    // Configured as an issuer of imported certificates: imported once, the device active.
    std::fs::write(
        d.join("vouch.toml"),
        "[gateway]\nclient_cas = [\"enterprise.pem\"]\n",
    )
    .unwrap();
    let imported: Value = serde_json::from_str(&ok(run(&[
        "-o", "json", "cert", "import", "dev.pem", "--device", &id,
    ])))
    .unwrap();
    assert_eq!(imported[0]["device_id"], id.as_str(), "{imported}");
    let shown: Value =
        serde_json::from_str(&ok(run(&["-o", "json", "device", "show", &id]))).unwrap();
    assert_eq!(shown["state"], "active", "{shown}");
    let out = run(&["cert", "import", "dev.pem", "--device", &id]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already recorded"), "{stderr}");
}
