//! `vouch serve` under floods of idle connections, with small caps set through the environment: the API and
//! EST listeners keep to their caps (idle sockets shed, silent TLS connections shed) while `curl` gets its
//! answers in time; what was shed is in the metrics and in one summary line per listener, not a line per
//! connection; `vouch config check` shows the limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::{PASS, curl, est_addr, ok, serve_with, terminate, vouch};

const CAP: usize = 64;
const FLOOD: usize = 4 * CAP;

/// `n` connections to `addr` that send nothing.
fn idle(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect()
}

/// How many of `socks` the server closed, waiting (bounded) for at least `want`.
fn closed(socks: &[TcpStream], want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    loop {
        let n = socks
            .iter()
            .filter(|s| {
                let mut s: &TcpStream = s;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => return true,
                        Ok(_) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                        Err(_) => return true,
                    }
                }
            })
            .count();
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn the_api_and_est_answer_beside_idle_floods_and_keep_to_their_caps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(vouch(d)
        .args(["ca", "init"])
        .env("VOUCH_CA_PASSPHRASE", PASS)
        .output()
        .unwrap());
    std::fs::copy(d.join("vouch-data/ca/root.pem"), d.join("root.pem")).unwrap();
    let caps = [
        ("VOUCH_MAX_CONNECTIONS", "64"),
        ("VOUCH_EST_MAX_CONNECTIONS", "64"),
    ];
    let check = ok(vouch(d)
        .args(["config", "check"])
        .envs(caps)
        .output()
        .unwrap());
    assert!(check.contains("server.max_connections   = 64\n"), "{check}");
    assert!(check.contains("est.max_connections      = 64\n"), "{check}");
    assert!(check.contains("gateway.max_sessions     = "), "{check}");
    assert!(check.contains("(derived)"), "{check}");
    let defaults = ok(vouch(d).args(["config", "check"]).output().unwrap());
    assert!(defaults.contains("descriptor limit"), "{defaults}");

    let mut envs = vec![("VOUCH_CA_PASSPHRASE", PASS)];
    envs.extend(caps);
    let (server, addr, token, log) = serve_with(d, "127.0.0.1:0", &envs);
    let est = est_addr(&log).expect("EST started");
    let auth = format!("Authorization: Bearer {}", token.unwrap());

    // The API: four times its cap in idle sockets from curl's own address, then curl.
    let api_flood = idle(&addr, FLOOD);
    let t0 = Instant::now();
    let (code, _) = curl(&["--max-time", "5", &format!("http://{addr}/healthz")]);
    println!(
        "API answered {code} in {:?} beside {FLOOD} idle sockets",
        t0.elapsed()
    );
    assert_eq!(code, 200);
    let gone = closed(&api_flood, FLOOD - CAP);
    assert!(gone >= FLOOD - CAP, "API: only {gone} of {FLOOD} closed");

    // EST: silent TCP connections that never send a ClientHello, then curl over TLS.
    let est_flood = idle(&est, FLOOD);
    let t0 = Instant::now();
    let (code, _) = curl(&[
        "--max-time",
        "5",
        "--cacert",
        &d.join("root.pem").display().to_string(),
        &format!("https://{est}/.well-known/est/cacerts"),
    ]);
    println!(
        "EST answered {code} in {:?} beside {FLOOD} silent connections",
        t0.elapsed()
    );
    assert_eq!(code, 200);
    let gone = closed(&est_flood, FLOOD - CAP);
    assert!(gone >= FLOOD - CAP, "EST: only {gone} of {FLOOD} closed");

    // Counted in the metrics.
    let (code, text) = curl(&["-H", &auth, &format!("http://{addr}/metrics")]);
    assert_eq!(code, 200, "{text}");
    let api_shed = metric(
        &text,
        "vouch_connections_closed_total{listener=\"api\",reason=\"shed_idle\"} ",
    );
    let est_shed = metric(
        &text,
        "vouch_connections_closed_total{listener=\"est\",reason=\"shed_handshake\"} ",
    );
    let api_open = metric(&text, "vouch_connections_open{listener=\"api\"} ");
    println!("shed: api {api_shed}, est {est_shed}; api open {api_open}");
    assert!(api_shed >= (FLOOD - CAP) as u64, "{text}");
    assert!(est_shed >= (FLOOD - CAP) as u64, "{text}");
    assert!(api_open as usize <= CAP, "{text}");

    drop((api_flood, est_flood));
    terminate(server);
    // One summary line per listener (at shutdown here), never one per connection.
    let lines = log.lock().unwrap().clone();
    let summaries = lines
        .iter()
        .filter(|l| l.contains("refused or shed"))
        .count();
    let per_connection = lines
        .iter()
        .filter(|l| l.contains("handshake") && !l.contains("refused or shed"))
        .count();
    assert!((1..=4).contains(&summaries), "{lines:#?}");
    assert_eq!(per_connection, 0, "{lines:#?}");
}
