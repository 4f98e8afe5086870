//! Clients the project does not ship, as they behave on the wire: libest's `estclient` (the C reference EST
//! client many devices build on) replayed byte for byte over a raw TLS 1.2 socket, a re-enrollment whose
//! answer the client lost, and OCSP over GET as RFC 6960 clients send it (raw and URL-encoded `/`), answered
//! with RFC 5019's caching headers.
//!
//! libest is in no package registry reachable here and its source may not enter the project, so the tests
//! replay what its `est_client_http.c` documents and sends (libest 3.2.0p): requests with `User-Agent`,
//! `Connection: close`, `Host: ip:port` and `Accept: */*`; a body followed by two bytes `Content-Length`
//! does not count; the first attempt without credentials, then, on a 401 with a Basic challenge, a new
//! connection with `Authorization: Basic`; TLS 1.2 at most, with the server's IP literal as SNI. It reads
//! each answer until the server closes, parses at most 16 header lines and compares `Content-Type`,
//! `Content-Length` and `WWW-Authenticate` byte for byte, so the checks here do too. `openssl s_client`
//! carries the bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use util::{Api, P256, curl, est_csr, est_curl, openssl, pkcs7_to_pem, terminate};

/// What libest's client parses of an answer.
struct Answer {
    status: u16,
    /// Header lines as sent: (name, value), names not case-folded.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    /// The value of the header spelled exactly `name` (libest's `strncmp`).
    fn exact(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        format!(
            "{} {:?}\n{}",
            self.status,
            self.headers,
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// Sends `request` on a new TLS 1.2 connection to `addr` (SNI: the IP literal, as libest sets it) and reads
/// until the server closes; panics if it does not close within a minute.
fn exchange(d: &Path, addr: &str, request: &[u8], client_cert: Option<(&str, &str)>) -> Answer {
    let ip = addr.rsplit_once(':').unwrap().0;
    let mut args = vec![
        "s_client",
        "-tls1_2",
        "-quiet",
        "-connect",
        addr,
        "-servername",
        ip,
        "-CAfile",
        "root.pem",
        "-verify_return_error",
    ];
    if let Some((cert, key)) = client_cert {
        args.extend_from_slice(&["-cert", cert, "-key", key]);
    }
    let mut child = Command::new("openssl")
        .current_dir(d)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(request).unwrap();
    // stdin stays open: `-quiet` ignores its end, and the answer must end because the server closes.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the server did not close the connection after its answer");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let raw = reader.join().unwrap().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    parse(&raw).unwrap_or_else(|| {
        panic!(
            "no HTTP answer: {:?} (openssl: {stderr})",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse(raw: &[u8]) -> Option<Answer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap_or((l, ""));
            (n.to_owned(), v.trim_start().to_owned())
        })
        .collect();
    Some(Answer {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

/// A request as libest 3.2.0p writes it: its four fixed headers, then the body's, then credentials; a body
/// is followed by `\r\n` that its `Content-Length` does not count.
fn libest_request(
    method: &str,
    op: &str,
    addr: &str,
    body: Option<&str>,
    basic: Option<&str>,
) -> Vec<u8> {
    let mut r = format!(
        "{method} /.well-known/est/{op} HTTP/1.1\r\nUser-Agent: libest 3.2.0p\r\nConnection: close\r\n\
         Host: {addr}\r\nAccept: */*\r\n"
    );
    if let Some(b) = body {
        r += &format!(
            "Content-Type: application/pkcs10\r\nContent-Length: {}\r\n",
            b.len()
        );
    }
    if let Some(userpass) = basic {
        let b64 = base64::engine::general_purpose::STANDARD.encode(userpass);
        r += &format!("Authorization: Basic {b64}\r\n");
    }
    r += "\r\n";
    if let Some(b) = body {
        r += b;
        r += "\r\n";
    }
    r.into_bytes()
}

/// What libest needs of every answer: at most 16 headers, `Content-Length` spelled exactly and equal to
/// the body, no chunking, `Connection: close`.
fn check_framing(a: &Answer) {
    assert!(
        a.headers.len() <= 16,
        "libest parses 16 headers: {}",
        a.text()
    );
    let len: usize = a
        .exact("Content-Length")
        .unwrap_or_else(|| panic!("no `Content-Length`: {}", a.text()))
        .parse()
        .unwrap();
    assert_eq!(len, a.body.len(), "{}", a.text());
    assert!(
        !a.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding")),
        "{}",
        a.text()
    );
    assert_eq!(a.exact("Connection"), Some("close"), "{}", a.text());
}

/// A PKCS#7 certs-only answer as libest reads it: the exact type spelling, base64 in lines of at most 64
/// columns, each ending in a newline. Returns the body as text.
fn check_pkcs7(a: &Answer) -> String {
    assert_eq!(a.status, 200, "{}", a.text());
    check_framing(a);
    assert_eq!(
        a.exact("Content-Type"),
        Some("application/pkcs7-mime; smime-type=certs-only"),
        "{}",
        a.text()
    );
    assert_eq!(a.exact("Content-Transfer-Encoding"), Some("base64"));
    let body = String::from_utf8(a.body.clone()).unwrap();
    assert!(body.ends_with('\n'), "{body:?}");
    let lines: Vec<&str> = body.lines().collect();
    assert!(
        lines.iter().all(|l| l.len() <= 64)
            && lines[..lines.len() - 1].iter().all(|l| l.len() == 64),
        "{body:?}"
    );
    body
}

/// `openssl verify` of `pem` against the root, the issuing CA from `cas.pem`.
fn verify(d: &Path, pem: &str) {
    let (ok, text) = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "cas.pem",
            pem,
        ],
    );
    assert!(ok, "{text}");
}

/// A new P-256 request for `cn` as the body libest sends: base64 DER in 64-column lines.
fn csr_body(d: &Path, name: &str, cn: &str) -> String {
    let file = est_csr(d, name, cn, P256);
    std::fs::read_to_string(d.join(file.trim_start_matches('@'))).unwrap()
}

fn refusals(api: &Api) -> Vec<Value> {
    let (_, events) = api.call("GET", "/api/v1/audit/events?limit=1000", None);
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "enrollment.refused")
        .cloned()
        .collect()
}

/// A device with serial `serial` and a one-time enrollment token for it: (id, token).
fn device_with_token(api: &Api, serial: &str) -> (String, String) {
    let (code, device) = api.call(
        "POST",
        "/api/v1/devices",
        Some(&serde_json::json!({"identifiers": {"serial": serial}})),
    );
    assert_eq!(code, 201, "{device}");
    let id = device["id"].as_str().unwrap().to_owned();
    let (code, t) = api.call(
        "POST",
        &format!("/api/v1/devices/{id}/enrollment-tokens"),
        Some(&serde_json::json!({})),
    );
    assert_eq!(code, 201, "{t}");
    (id, t["token"].as_str().unwrap().to_owned())
}

#[test]
fn libest_estclient_cacerts_enroll_through_the_challenge_and_reenroll_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, api, est) = util::ca_server(d);
    let addr = est
        .trim_start_matches("https://")
        .trim_end_matches("/.well-known/est")
        .to_owned();
    let (id, token) = device_with_token(&api, "SN-LIBEST");

    // estclient -g: the CA certificates.
    let a = exchange(
        d,
        &addr,
        &libest_request("GET", "cacerts", &addr, None, None),
        None,
    );
    let body = check_pkcs7(&a);
    let cas = pkcs7_to_pem(d, &body, "cas.pem");
    assert_eq!(cas.matches("BEGIN CERTIFICATE").count(), 2);

    // estclient -e: first without credentials; the 401's challenge makes it retry with them on a new
    // connection.
    let csr = csr_body(d, "dev", "SN-LIBEST");
    let a = exchange(
        d,
        &addr,
        &libest_request("POST", "simpleenroll", &addr, Some(&csr), None),
        None,
    );
    assert_eq!(a.status, 401, "{}", a.text());
    check_framing(&a);
    assert_eq!(
        a.exact("WWW-Authenticate"),
        Some("Basic realm=\"vouch-est\""),
        "{}",
        a.text()
    );
    let basic = format!("estuser:{token}");
    let a = exchange(
        d,
        &addr,
        &libest_request("POST", "simpleenroll", &addr, Some(&csr), Some(&basic)),
        None,
    );
    let body = check_pkcs7(&a);
    pkcs7_to_pem(d, &body, "dev.pem");
    verify(d, "dev.pem");

    // The token is used: libest's retry gets a 401 it understands, not a 403 ("unhandled response").
    let a = exchange(
        d,
        &addr,
        &libest_request("POST", "simpleenroll", &addr, Some(&csr), Some(&basic)),
        None,
    );
    assert_eq!(a.status, 401, "{}", a.text());
    assert_eq!(
        a.exact("WWW-Authenticate"),
        Some("Basic realm=\"vouch-est\"")
    );
    assert!(
        String::from_utf8_lossy(&a.body).contains("used already"),
        "{}",
        a.text()
    );

    // estclient -r: re-enrollment with the certificate over mutual TLS, no HTTP credentials.
    let renew = csr_body(d, "renew", "SN-LIBEST");
    let a = exchange(
        d,
        &addr,
        &libest_request("POST", "simplereenroll", &addr, Some(&renew), None),
        Some(("dev.pem", "dev.key")),
    );
    let body = check_pkcs7(&a);
    pkcs7_to_pem(d, &body, "renewed.pem");
    verify(d, "renewed.pem");
    let (_, certs) = api.call("GET", &format!("/api/v1/devices/{id}/certificates"), None);
    assert_eq!(certs.as_array().unwrap().len(), 2, "{certs}");

    // The anonymous first attempt is a challenge, not a refusal; the used token's retry carried
    // credentials and is logged.
    let refused = refusals(&api);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].to_string().contains("used already"),
        "{refused:?}"
    );

    // curl, which reads by Content-Length and reuses nothing, is served the same.
    let (code, body) = est_curl(d, &[&format!("{est}/cacerts")]);
    assert_eq!(code, 200, "{body}");
    terminate(server);
}

#[test]
fn a_reenrollment_whose_answer_was_lost_leaves_no_orphan_certificate_valid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, api, est) = util::ca_server(d);
    let (id, token) = device_with_token(&api, "SN-ORPHAN");
    let csr = est_csr(d, "dev", "SN-ORPHAN", P256);
    let (code, body) = est_curl(
        d,
        &[
            "-u",
            &format!("device:{token}"),
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &csr,
            &format!("{est}/simpleenroll"),
        ],
    );
    assert_eq!(code, 200, "{body}");
    pkcs7_to_pem(d, &body, "dev.pem");
    let reenroll = |name: &str| {
        let csr = est_csr(d, name, "SN-ORPHAN", P256);
        est_curl(
            d,
            &[
                "--cert",
                "dev.pem",
                "--key",
                "dev.key",
                "-H",
                "Content-Type: application/pkcs10",
                "--data-binary",
                &csr,
                &format!("{est}/simplereenroll"),
            ],
        )
    };
    let serial_of = |body: &str, file: &str| {
        pkcs7_to_pem(d, body, file);
        let (ok, text) = openssl(d, &["x509", "-in", file, "-noout", "-serial"]);
        assert!(ok, "{text}");
        text.trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase()
    };
    // The first answer is lost on the way: the device still holds only dev.pem and tries again.
    let (code, lost) = reenroll("lost");
    assert_eq!(code, 200, "{lost}");
    let lost = serial_of(&lost, "lost.pem");
    let (code, kept) = reenroll("kept");
    assert_eq!(code, 200, "{kept}");
    let kept = serial_of(&kept, "kept.pem");

    let (_, certs) = api.call("GET", &format!("/api/v1/devices/{id}/certificates"), None);
    let status = |serial: &str| {
        let c = certs
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                c["serial"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches('0')
                    .eq_ignore_ascii_case(serial.trim_start_matches('0'))
            })
            .unwrap_or_else(|| panic!("{serial} in {certs}"));
        (c["status"].clone(), c["revocation_reason"].clone())
    };
    assert_eq!(
        status(&lost).0,
        "revoked",
        "the lost answer is superseded: {certs}"
    );
    assert_eq!(status(&kept).0, "good", "{certs}");
    let (_, dev) = api.call("GET", &format!("/api/v1/devices/{id}"), None);
    assert_eq!(
        dev["state"], "active",
        "superseding suspends nothing: {dev}"
    );
    let valid = certs
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "good")
        .count();
    assert_eq!(
        valid, 2,
        "the presented certificate and the new one: {certs}"
    );
    terminate(server);
}

#[test]
fn ocsp_get_takes_raw_and_encoded_slashes_and_answers_with_rfc_5019_caching_headers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, api, _est) = util::ca_server(d);
    let base = api.base.clone();
    let (_, device) = api.call(
        "POST",
        "/api/v1/devices",
        Some(&serde_json::json!({"class": "sensor"})),
    );
    let id = device["id"].as_str().unwrap().to_owned();
    // Requests for freshly issued certificates until one's base64 holds a `/` (most do: the CertID's
    // SHA-1 hashes are random-looking).
    let mut found = None;
    for i in 0..20 {
        let name = format!("dev{i}");
        let csr = util::csr(d, &name, &id, P256);
        let (code, issued) = api.call(
            "POST",
            &format!("/api/v1/devices/{id}/certificates"),
            Some(&serde_json::json!({"csr": csr})),
        );
        assert_eq!(code, 201, "{issued}");
        std::fs::write(
            d.join(format!("{name}.pem")),
            issued["certificate_pem"].as_str().unwrap(),
        )
        .unwrap();
        std::fs::write(
            d.join("issuing.pem"),
            issued["issuing_ca_pem"].as_str().unwrap(),
        )
        .unwrap();
        let (ok, text) = openssl(
            d,
            &[
                "ocsp",
                "-issuer",
                "issuing.pem",
                "-cert",
                &format!("{name}.pem"),
                "-no_nonce",
                "-reqout",
                "req.der",
            ],
        );
        assert!(ok, "{text}");
        let b64 = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(d.join("req.der")).unwrap());
        if b64.contains('/') {
            found = Some((name, b64));
            break;
        }
    }
    let (name, b64) = found.expect("a request with a `/` in 20");
    let encoded = b64
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D");
    for (form, path) in [("raw", b64.clone()), ("URL-encoded", encoded)] {
        let out = Command::new("curl")
            .current_dir(d)
            .args([
                "-sS",
                "--path-as-is",
                "-D",
                "headers.txt",
                "-o",
                "resp.der",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("{base}/pki/ocsp/{path}"))
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            code,
            "200",
            "{form}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (ok, text) = openssl(
            d,
            &[
                "ocsp",
                "-respin",
                "resp.der",
                "-issuer",
                "issuing.pem",
                "-cert",
                &format!("{name}.pem"),
                "-CAfile",
                "root.pem",
                "-verify_other",
                "issuing.pem",
            ],
        );
        assert!(
            ok && text.contains(": good") && text.contains("Response verify OK"),
            "{form}: {text}"
        );
        let headers = std::fs::read_to_string(d.join("headers.txt")).unwrap();
        let header = |n: &str| {
            headers.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(n).then(|| v.trim().to_owned())
            })
        };
        let cc = header("cache-control").unwrap_or_else(|| panic!("{form}: {headers}"));
        for part in ["public", "no-transform", "must-revalidate"] {
            assert!(cc.contains(part), "{form}: {cc}");
        }
        let max_age: u64 = cc
            .split(',')
            .find_map(|p| p.trim().strip_prefix("max-age="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(max_age > 0, "{cc}");
        let expires = httpdate::parse_http_date(&header("expires").unwrap()).unwrap();
        let modified = httpdate::parse_http_date(&header("last-modified").unwrap()).unwrap();
        assert!(modified < expires, "{headers}");
        let etag = header("etag").unwrap();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
            "{etag}"
        );
        // Expires is the response's nextUpdate, as openssl prints it.
        let (_, text) = openssl(
            d,
            &["ocsp", "-respin", "resp.der", "-resp_text", "-noverify"],
        );
        let next = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Next Update: "))
            .unwrap_or_else(|| panic!("{text}"))
            .to_owned();
        assert_eq!(
            httpdate::fmt_http_date(expires),
            openssl_time_to_http(&next),
            "{text}"
        );
    }
    // A request that is not base64 is a clear 400.
    let (code, _) = curl(&[&format!("{base}/pki/ocsp/not*base64")]);
    assert_eq!(code, 400);
    terminate(server);
}

/// `Dec  3 06:10:59 2026 GMT` (openssl's time) as an HTTP date, by `date`.
fn openssl_time_to_http(t: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", t, "+%s"])
        .output()
        .unwrap();
    let secs: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}
