//! Helpers shared by the binary's tests: run `vouch`, start its server, call it with curl.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `vouch` run in `dir`, with no store or config from the caller's environment.
pub fn vouch(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vouch"));
    c.current_dir(dir)
        .env_remove("VOUCH_STORE_URL")
        .env_remove("VOUCH_CONFIG")
        .env("VOUCH_LOG_LEVEL", "info");
    c
}

/// The command's stdout, after checking that it succeeded.
pub fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// curl with `args`: the HTTP status and the body.
pub fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

/// Starts `vouch serve` on an ephemeral port; returns the child, its address, the token it printed (if any)
/// and the log lines it writes.
pub fn serve(
    dir: &Path,
) -> (
    Child,
    String,
    Option<String>,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    serve_with(dir, "127.0.0.1:0", &[])
}

/// Starts `vouch serve` on `listen` with extra environment variables.
pub fn serve_with(
    dir: &Path,
    listen: &str,
    envs: &[(&str, &str)],
) -> (
    Child,
    String,
    Option<String>,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let mut child = vouch(dir)
        .args(["serve", "--listen", listen, "--est-listen", "127.0.0.1:0"])
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log_lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log_lines.lock().unwrap().push(line.clone());
            if let Some(addr) = line.split(" addr=").nth(1) {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server logs its address");
    // The token, when there is one, is written to a private file whose path is printed before the server
    // starts listening: it is in the pipe by now. The token itself never appears on stdout.
    let stdout = child.stdout.take().unwrap();
    let (ttx, trx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("vouch_") {
                let _ = ttx.send(Err(line));
            } else if let Some(path) = line
                .split_whitespace()
                .find(|w| w.ends_with("initial-admin-token"))
            {
                let _ = ttx.send(Ok(path.to_owned()));
            }
        }
    });
    let token = trx
        .recv_timeout(Duration::from_millis(500))
        .ok()
        .map(|path| {
            let path = path.unwrap_or_else(|line| panic!("a token on stdout: {line}"));
            let path = if Path::new(&path).is_absolute() {
                PathBuf::from(path)
            } else {
                dir.join(path)
            };
            std::fs::read_to_string(path).unwrap().trim().to_owned()
        });
    (child, addr, token, log)
}

/// SIGTERM, then wait for a clean exit.
pub fn terminate(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "graceful shutdown exits 0, got {status:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// openssl with `args` in `dir`: success and combined output.
pub fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The EST address a server logged, if it started EST.
pub fn est_addr(log: &std::sync::Mutex<Vec<String>>) -> Option<String> {
    let lines = log.lock().unwrap();
    lines.iter().find_map(|l| {
        l.split("est_addr=")
            .nth(1)
            .map(|a| a.split_whitespace().next().unwrap_or("").to_owned())
    })
}

/// Enrolls and confirms a second factor (TOTP) for the token in `auth` (`Authorization: Bearer …`) on the
/// server at `base`; returns the code that confirmed it, which keeps working for this token in its step-up
/// session (send it as `X-Vouch-OTP` on privileged calls).
pub fn step_up(base: &str, auth: &str) -> String {
    let (code, body) = curl(&["-X", "POST", "-H", auth, &format!("{base}/api/v1/mfa/totp")]);
    assert_eq!(code, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let secret = data_encoding::BASE32_NOPAD
        .decode(v["secret"].as_str().unwrap().as_bytes())
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let otp = format!(
        "{:06}",
        vouch_api::totp::code(
            vouch_api::totp::Algorithm::Sha1,
            &secret,
            vouch_api::totp::step_at(now),
            6
        )
    );
    let confirm = serde_json::json!({ "code": otp }).to_string();
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        &confirm,
        &format!("{base}/api/v1/mfa/totp/confirm"),
    ]);
    assert_eq!(code, 200, "{body}");
    otp
}

// EST and API helpers shared by the PKI and gateway tests.

pub const PASS: &str = "correct horse battery staple";

pub struct Api {
    pub base: String,
    pub auth: String,
    /// `X-Vouch-OTP: …` once a second factor is confirmed (privileged calls need it).
    pub otp: Option<String>,
}

impl Api {
    pub fn new(addr: &str, token: Option<String>) -> Self {
        let mut api = Self {
            base: format!("http://{addr}"),
            auth: format!("Authorization: Bearer {}", token.unwrap()),
            otp: None,
        };
        let code = step_up(&api.base, &api.auth);
        api.otp = Some(format!("X-Vouch-OTP: {code}"));
        api
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.base);
        let mut args = vec!["-X", method, "-H", self.auth.as_str()];
        if let Some(otp) = &self.otp {
            args.extend_from_slice(&["-H", otp.as_str()]);
        }
        let text;
        if let Some(b) = body {
            text = b.to_string();
            args.extend_from_slice(&["-H", "Content-Type: application/json", "-d", &text]);
        }
        args.push(&url);
        let (code, body) = curl(&args);
        (
            code,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
        )
    }
}

pub fn csr(dir: &Path, name: &str, cn: &str, key: &[&str]) -> String {
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

pub const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

/// curl against the EST server: (HTTP status, body).
pub fn est_curl(d: &Path, args: &[&str]) -> (u16, String) {
    let mut all = vec!["--cacert", "root.pem"];
    all.extend_from_slice(args);
    let out = std::process::Command::new("curl")
        .current_dir(d)
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(&all)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Base64 DER of a new request, as EST clients send it.
pub fn est_csr(d: &Path, name: &str, cn: &str, key: &[&str]) -> String {
    csr(d, name, cn, key);
    let (ok, text) = openssl(
        d,
        &[
            "req",
            "-in",
            &format!("{name}.csr"),
            "-outform",
            "DER",
            "-out",
            &format!("{name}.der"),
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = openssl(
        d,
        &[
            "base64",
            "-in",
            &format!("{name}.der"),
            "-out",
            &format!("{name}.b64"),
        ],
    );
    assert!(ok, "{text}");
    format!("@{name}.b64")
}

/// Decodes an EST PKCS#7 answer with openssl into PEM certificates in `out`.
pub fn pkcs7_to_pem(d: &Path, body: &str, out: &str) -> String {
    std::fs::write(d.join("answer.b64"), body).unwrap();
    let (ok, text) = openssl(
        d,
        &["base64", "-d", "-in", "answer.b64", "-out", "answer.p7"],
    );
    assert!(ok, "{text}");
    let (ok, text) = openssl(
        d,
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "answer.p7",
            "-print_certs",
            "-out",
            out,
        ],
    );
    assert!(ok, "{text}");
    std::fs::read_to_string(d.join(out)).unwrap()
}

/// A fresh CA in `d` (its root copied to `d/root.pem` for curl and OpenSSL), `vouch serve` over it, and what
/// the EST and API tests need: the server, an admin API client with a second factor, and the EST base URL.
pub fn ca_server(d: &Path) -> (Child, Api, String) {
    ok(vouch(d)
        .args(["ca", "init"])
        .env("VOUCH_CA_PASSPHRASE", PASS)
        .output()
        .unwrap());
    std::fs::copy(d.join("vouch-data/ca/root.pem"), d.join("root.pem")).unwrap();
    let (server, addr, token, log) = serve_with(d, "127.0.0.1:0", &[("VOUCH_CA_PASSPHRASE", PASS)]);
    let est = format!(
        "https://{}/.well-known/est",
        est_addr(&log).expect("EST started")
    );
    (server, Api::new(&addr, token), est)
}
