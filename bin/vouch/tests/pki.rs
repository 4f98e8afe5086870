//! The private PKI end to end, as an operator and third-party tools see it: `vouch ca init`, the server,
//! certificates issued from OpenSSL-made requests through the API with curl, and revocation checked by
//! `openssl verify -crl_check` against the served CRL and by `openssl ocsp` against the served responder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::path::Path;

use serde_json::Value;
use util::{curl, free_port, ok, openssl, serve_with, terminate, vouch};

const PASS: &str = "correct horse battery staple";

struct Api {
    base: String,
    auth: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut args = vec!["-X", method, "-H", self.auth.as_str()];
        let text;
        if let Some(b) = body {
            text = b.to_string();
            args.extend_from_slice(&["-H", "Content-Type: application/json", "-d", &text]);
        }
        args.push(&url);
        let (code, body) = curl(&args);
        (
            code,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }
}

fn csr(dir: &Path, name: &str, cn: &str, key: &[&str]) -> String {
    let (key_file, csr_file) = (format!("{name}.key"), format!("{name}.csr"));
    let subj = format!("/CN={cn}");
    let mut args = vec![
        "req", "-new", "-nodes", "-keyout", &key_file, "-out", &csr_file, "-subj", &subj,
    ];
    args.extend_from_slice(key);
    let (ok, text) = openssl(dir, &args);
    assert!(ok, "{text}");
    std::fs::read_to_string(dir.join(csr_file)).unwrap()
}

const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

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
    let api = Api {
        base: format!("http://{addr}"),
        auth: format!("Authorization: Bearer {}", token.unwrap()),
    };

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
