//! The PKI against OpenSSL's command line as the third-party client: OpenSSL makes the requests, reads and
//! decrypts what Vouch writes, and verifies the chains Vouch builds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use vouch_pki::{
    CaSubject, CheckedCsr, DeviceProfile, IssuingCa, KeyAlgorithm, Passphrase, PkiError, init_ca,
};
use vouch_types::{DeviceId, Timestamp};

const PASS: &str = "a passphrase long enough";

/// OpenSSL checks validity against the real clock, so these tests issue at the real time.
fn now() -> Timestamp {
    vouch_types::Clock::now(&vouch_types::SystemClock)
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn pass() -> Passphrase {
    Passphrase::new(PASS.into()).unwrap()
}

fn profile() -> DeviceProfile {
    DeviceProfile {
        trust_domain: "plant.example".into(),
        lifetime_days: 7,
        crl_url: "http://127.0.0.1:8080/pki/crl".into(),
        ocsp_url: "http://127.0.0.1:8080/pki/ocsp".into(),
    }
}

/// A CA written to `dir` as root.pem, issuing.pem, issuing.key.pem.
fn ca(dir: &Path, alg: KeyAlgorithm) -> IssuingCa {
    let m = init_ca(
        alg,
        &CaSubject {
            organization: "Acme Plants".into(),
        },
        now(),
        &pass(),
    )
    .unwrap();
    std::fs::write(dir.join("root.pem"), &m.root_cert_pem).unwrap();
    std::fs::write(dir.join("issuing.pem"), &m.issuing_cert_pem).unwrap();
    std::fs::write(dir.join("issuing.key.pem"), &m.issuing_key_pem).unwrap();
    IssuingCa::load(&m.issuing_cert_pem, &m.issuing_key_pem, &pass()).unwrap()
}

/// A DER CSR made by `openssl req` for a new key of `keyopts`.
fn openssl_csr(dir: &Path, name: &str, keyopts: &[&str]) -> Vec<u8> {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let mut args = vec![
        "req",
        "-new",
        "-nodes",
        "-keyout",
        &key,
        "-subj",
        "/CN=device",
        "-outform",
        "DER",
        "-out",
        &csr,
    ];
    args.extend_from_slice(keyopts);
    let (ok, text) = openssl(dir, &args);
    assert!(ok, "{text}");
    std::fs::read(dir.join(csr)).unwrap()
}

const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

#[test]
fn openssl_verifies_the_chain_and_reads_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = ca(d, KeyAlgorithm::EcdsaP256);
    let (ok, text) = openssl(d, &["verify", "-CAfile", "root.pem", "issuing.pem"]);
    assert!(ok, "{text}");

    let csr = CheckedCsr::from_der(&openssl_csr(d, "dev", P256)).unwrap();
    assert_eq!(csr.key_description(), "ECDSA P-256");
    let device = DeviceId::derived("serial:X1");
    let cert = ca.issue_device(&csr, device, &profile(), now()).unwrap();
    std::fs::write(d.join("dev.pem"), cert.pem()).unwrap();
    let (ok, text) = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "-purpose",
            "sslclient",
            "dev.pem",
        ],
    );
    assert!(ok, "{text}");

    let (ok, text) = openssl(d, &["x509", "-in", "dev.pem", "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("URI:spiffe://plant.example/device/{device}")),
        "{text}"
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(text.contains("URI:http://127.0.0.1:8080/pki/crl"), "{text}");
    assert!(
        text.contains("OCSP - URI:http://127.0.0.1:8080/pki/ocsp"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains(&format!("Subject: CN = {device}")), "{text}");
    let (ok, serial) = openssl(d, &["x509", "-in", "dev.pem", "-noout", "-serial"]);
    assert!(ok);
    assert_eq!(
        serial.trim().trim_start_matches("serial=").to_lowercase(),
        cert.serial.to_string()
    );
    let (ok, dates) = openssl(
        d,
        &[
            "x509",
            "-in",
            "dev.pem",
            "-noout",
            "-checkend",
            &(8 * 86_400).to_string(),
        ],
    );
    assert!(
        !ok,
        "a 7-day certificate has expired 8 days from now: {dates}"
    );
}

#[test]
fn openssl_decrypts_the_ca_key_with_the_passphrase_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ca(d, KeyAlgorithm::EcdsaP256);
    let key = std::fs::read_to_string(d.join("issuing.key.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let (ok, text) = openssl(
        d,
        &[
            "pkey",
            "-in",
            "issuing.key.pem",
            "-passin",
            &format!("pass:{PASS}"),
            "-noout",
        ],
    );
    assert!(ok, "{text}");
    let (ok, _) = openssl(
        d,
        &[
            "pkey",
            "-in",
            "issuing.key.pem",
            "-passin",
            "pass:not the passphrase",
            "-noout",
        ],
    );
    assert!(!ok);
}

#[test]
fn ed25519_ca_and_every_accepted_device_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = ca(d, KeyAlgorithm::Ed25519);
    for (name, opts, desc) in [
        ("p256", P256, "ECDSA P-256"),
        (
            "p384",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
            "ECDSA P-384",
        ),
        ("ed", &["-newkey", "ed25519"][..], "Ed25519"),
        ("rsa", &["-newkey", "rsa:2048"][..], "RSA-2048"),
    ] {
        let csr = CheckedCsr::from_der(&openssl_csr(d, name, opts)).unwrap();
        assert_eq!(csr.key_description(), desc);
        let cert = ca
            .issue_device(&csr, DeviceId::new(), &profile(), now())
            .unwrap();
        std::fs::write(d.join(format!("{name}.pem")), cert.pem()).unwrap();
        let (ok, text) = openssl(
            d,
            &[
                "verify",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "issuing.pem",
                &format!("{name}.pem"),
            ],
        );
        assert!(ok, "{name}: {text}");
    }
}

#[test]
fn bad_requests_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let weak_rsa = openssl_csr(d, "rsa1024", &["-newkey", "rsa:1024"]);
    assert!(
        matches!(CheckedCsr::from_der(&weak_rsa), Err(PkiError::WeakKey(m)) if m.contains("RSA-1024"))
    );
    let p192 = openssl_csr(
        d,
        "p192",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime192v1"],
    );
    assert!(
        matches!(CheckedCsr::from_der(&p192), Err(PkiError::WeakKey(m)) if m.contains("1.2.840.10045.3.1.1"))
    );
    let k256 = openssl_csr(
        d,
        "k256",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
    );
    assert!(matches!(
        CheckedCsr::from_der(&k256),
        Err(PkiError::WeakKey(_))
    ));

    let good = openssl_csr(d, "good", P256);
    let mut forged = good.clone();
    let last = forged.len() - 3;
    forged[last] ^= 0x55;
    assert!(matches!(
        CheckedCsr::from_der(&forged),
        Err(PkiError::BadSignature)
    ));
    assert!(matches!(
        CheckedCsr::from_der(&good[..good.len() / 2]),
        Err(PkiError::Malformed { .. })
    ));
    assert!(matches!(
        CheckedCsr::from_der(b"not a csr at all"),
        Err(PkiError::Malformed { .. })
    ));
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    assert!(
        matches!(CheckedCsr::from_der(&trailing), Err(PkiError::Malformed { why, .. }) if why.contains("trailing"))
    );
}

#[test]
fn a_wrong_passphrase_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ca(d, KeyAlgorithm::EcdsaP256);
    let cert = std::fs::read_to_string(d.join("issuing.pem")).unwrap();
    let key = std::fs::read_to_string(d.join("issuing.key.pem")).unwrap();
    let wrong = Passphrase::new("another long passphrase".into()).unwrap();
    assert!(matches!(
        IssuingCa::load(&cert, &key, &wrong),
        Err(PkiError::WrongPassphrase)
    ));
}

/// A CA and one issued device certificate in `dir`: root.pem, issuing.pem, dev.pem.
fn ca_with_device(dir: &Path) -> (IssuingCa, vouch_pki::IssuedCert) {
    let ca = ca(dir, KeyAlgorithm::EcdsaP256);
    let csr = CheckedCsr::from_der(&openssl_csr(dir, "dev", P256)).unwrap();
    let cert = ca
        .issue_device(&csr, DeviceId::new(), &profile(), now())
        .unwrap();
    std::fs::write(dir.join("dev.pem"), cert.pem()).unwrap();
    (ca, cert)
}

#[test]
fn openssl_checks_revocation_against_the_crl() {
    use vouch_types::RevocationReason;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, cert) = ca_with_device(d);
    let write_crl = |revoked: &[(vouch_types::Serial, Timestamp, RevocationReason)], n: u64| {
        let der = ca
            .crl(revoked, now(), now().plus_micros(3_600_000_000), n)
            .unwrap();
        std::fs::write(d.join("crl.der"), der).unwrap();
        let (ok, text) = openssl(
            d,
            &["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"],
        );
        assert!(ok, "{text}");
    };
    let check = || {
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
    write_crl(&[], 1);
    let (ok, text) = check();
    assert!(ok, "a good certificate passes: {text}");
    write_crl(&[(cert.serial, now(), RevocationReason::KeyCompromise)], 2);
    let (ok, text) = check();
    assert!(!ok && text.contains("certificate revoked"), "{text}");
    let (_, crl_text) = openssl(d, &["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(
        crl_text.contains("Key Compromise")
            && crl_text.contains("X509v3 CRL Number: \n                2"),
        "{crl_text}"
    );
    // The CRL verifies against the issuing CA.
    let (ok, text) = openssl(
        d,
        &["crl", "-in", "crl.pem", "-CAfile", "issuing.pem", "-noout"],
    );
    assert!(ok && text.contains("verify OK"), "{text}");
}

#[test]
fn openssl_reads_ocsp_answers_with_its_nonce() {
    use vouch_pki::ocsp::{OcspStatus, parse_request};
    use vouch_types::RevocationReason;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, cert) = ca_with_device(d);
    let (ok, text) = openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "issuing.pem",
            "-cert",
            "dev.pem",
            "-reqout",
            "req.der",
        ],
    );
    assert!(ok, "{text}");
    let req = parse_request(&std::fs::read(d.join("req.der")).unwrap()).unwrap();
    assert_eq!(req.certs.len(), 1);
    assert_eq!(req.certs[0].serial, Some(cert.serial));
    assert!(
        req.nonce_extension_der.is_some(),
        "OpenSSL sends a nonce by default"
    );
    let check = |status: OcspStatus| {
        let der = ca
            .ocsp_response(&req, &|_| status, now(), now().plus_micros(3_600_000_000))
            .unwrap();
        std::fs::write(d.join("resp.der"), der).unwrap();
        openssl(
            d,
            // `-reqin` makes OpenSSL add a fresh nonce of its own, so the nonce is compared below instead.
            &[
                "ocsp",
                "-reqin",
                "req.der",
                "-respin",
                "resp.der",
                "-issuer",
                "issuing.pem",
                "-cert",
                "dev.pem",
                "-CAfile",
                "root.pem",
                "-verify_other",
                "issuing.pem",
                "-no_nonce",
                "-resp_text",
            ],
        )
    };
    let (ok, text) = check(OcspStatus::Good);
    assert!(
        ok && text.contains("dev.pem: good") && text.contains("Response verify OK"),
        "{text}"
    );
    let nonce = |t: &str| {
        t.lines()
            .skip_while(|l| !l.contains("OCSP Nonce"))
            .nth(1)
            .map(|l| l.trim().to_owned())
    };
    let (_, req_text) = openssl(d, &["ocsp", "-reqin", "req.der", "-req_text", "-no_nonce"]);
    assert!(nonce(&req_text).is_some(), "{req_text}");
    assert_eq!(
        nonce(&text),
        nonce(&req_text),
        "the response echoes the request's nonce"
    );
    let (ok, text) = check(OcspStatus::Revoked(now(), RevocationReason::KeyCompromise));
    assert!(
        ok && text.contains("dev.pem: revoked") && text.contains("keyCompromise"),
        "{text}"
    );

    // Another CA's certificate is unknown here.
    let other = tempfile::tempdir().unwrap();
    let (_, _) = ca_with_device(other.path());
    let (ok, text) = openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            &other.path().join("issuing.pem").display().to_string(),
            "-cert",
            &other.path().join("dev.pem").display().to_string(),
            "-reqout",
            "other.der",
        ],
    );
    assert!(ok, "{text}");
    let other_req = parse_request(&std::fs::read(d.join("other.der")).unwrap()).unwrap();
    let der = ca
        .ocsp_response(
            &other_req,
            &|_| OcspStatus::Good,
            now(),
            now().plus_micros(3_600_000_000),
        )
        .unwrap();
    std::fs::write(d.join("other-resp.der"), der).unwrap();
    let (_, text) = openssl(
        d,
        &[
            "ocsp",
            "-respin",
            "other-resp.der",
            "-resp_text",
            "-noverify",
        ],
    );
    assert!(text.contains("Cert Status: unknown"), "{text}");
}

#[test]
fn malformed_ocsp_requests_are_refused() {
    use vouch_pki::ocsp::parse_request;
    assert!(parse_request(b"").is_err());
    assert!(parse_request(b"\x30\x03\x02\x01\x00").is_err());
    assert!(parse_request(&vec![0x30; 20_000]).is_err());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ca_with_device(d);
    openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "issuing.pem",
            "-cert",
            "dev.pem",
            "-reqout",
            "req.der",
        ],
    );
    let good = std::fs::read(d.join("req.der")).unwrap();
    for cut in [1, good.len() / 2, good.len() - 1] {
        assert!(parse_request(&good[..cut]).is_err(), "truncated at {cut}");
    }
}

#[test]
fn an_rsa_3072_ca_signs_certificates_crls_and_ocsp_answers_openssl_accepts() {
    use vouch_pki::ocsp::{OcspStatus, parse_request};
    use vouch_types::RevocationReason;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = ca(d, KeyAlgorithm::Rsa3072);
    let (ok, text) = openssl(d, &["x509", "-in", "issuing.pem", "-noout", "-text"]);
    assert!(
        ok && text.contains("Public-Key: (3072 bit)") && text.contains("sha256WithRSAEncryption"),
        "{text}"
    );
    let csr = CheckedCsr::from_der(&openssl_csr(d, "dev", P256)).unwrap();
    let cert = ca
        .issue_device(&csr, DeviceId::new(), &profile(), now())
        .unwrap();
    std::fs::write(d.join("dev.pem"), cert.pem()).unwrap();
    let (ok, text) = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "dev.pem",
        ],
    );
    assert!(ok, "{text}");
    let der = ca
        .crl(
            &[(cert.serial, now(), RevocationReason::Superseded)],
            now(),
            now().plus_micros(3_600_000_000),
            1,
        )
        .unwrap();
    std::fs::write(d.join("crl.der"), der).unwrap();
    let (ok, text) = openssl(
        d,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl.der",
            "-CAfile",
            "issuing.pem",
            "-noout",
        ],
    );
    assert!(ok && text.contains("verify OK"), "{text}");
    openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "issuing.pem",
            "-cert",
            "dev.pem",
            "-reqout",
            "req.der",
        ],
    );
    let req = parse_request(&std::fs::read(d.join("req.der")).unwrap()).unwrap();
    let resp = ca
        .ocsp_response(
            &req,
            &|_| OcspStatus::Good,
            now(),
            now().plus_micros(3_600_000_000),
        )
        .unwrap();
    std::fs::write(d.join("resp.der"), resp).unwrap();
    let (ok, text) = openssl(
        d,
        &[
            "ocsp",
            "-respin",
            "resp.der",
            "-issuer",
            "issuing.pem",
            "-cert",
            "dev.pem",
            "-CAfile",
            "root.pem",
            "-verify_other",
            "issuing.pem",
            "-no_nonce",
        ],
    );
    assert!(
        ok && text.contains("dev.pem: good") && text.contains("Response verify OK"),
        "{text}"
    );
}
