//! Helpers shared by the binary's tests: run `vouch`, start its server, call it with curl.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
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
    // The token, when there is one, is printed before the server starts listening: it is in the pipe by now.
    let stdout = child.stdout.take().unwrap();
    let (ttx, trx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(t) = line.split_whitespace().find(|w| w.starts_with("vouch_")) {
                let _ = ttx.send(t.to_owned());
            }
        }
    });
    let token = trx.recv_timeout(Duration::from_millis(500)).ok();
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
