//! The `vouch` binary as an operator uses it: the Quick start's server probed with curl, the CLI against
//! SQLite and PostgreSQL, tampering caught by `audit verify`, and a bulk import killed with `kill -9`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{curl, ok, serve, terminate, vouch};

#[test]
fn quick_start_server_answers_curl_and_writes_the_admin_token_to_a_private_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, token, log) = serve(dir.path());
    let token = token.expect("first start writes an admin token and prints where");
    assert!(
        dir.path().join("vouch-data/vouch.db").exists(),
        "zero configuration: ./vouch-data"
    );
    let url = |p: &str| format!("http://{addr}{p}");

    assert_eq!(curl(&[&url("/healthz")]).0, 200);
    assert_eq!(curl(&[&url("/readyz")]).0, 200);
    let (code, body) = curl(&[&url("/api/v1/devices")]);
    assert_eq!(code, 401);
    assert!(body.contains("urn:vouch:problem:unauthenticated"), "{body}");
    let auth = format!("Authorization: Bearer {token}");
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"class":"camera","identifiers":{"mac":"ac:cc:8e:00:00:01"},"vendor":"Axis"}"#,
        &url("/api/v1/devices"),
    ]);
    assert_eq!(code, 201, "{body}");
    let (code, body) = curl(&["-H", &auth, &url("/api/v1/devices?class=camera")]);
    assert_eq!(code, 200);
    assert!(body.contains("ac:cc:8e:00:00:01"), "{body}");
    let (code, body) = curl(&["-H", &auth, &url("/metrics")]);
    assert_eq!(code, 200);
    assert!(
        body.contains("vouch_devices{state=\"onboarding\"} 1"),
        "{body}"
    );
    terminate(child);
    let secret = &token[23..];
    let log = log.lock().unwrap();
    assert!(log.iter().any(|l| l.contains("listening")), "{log:?}");
    assert!(
        !log.iter().any(|l| l.contains(secret)),
        "the token's secret never reaches the log"
    );
    drop(log);

    // Everything under the data directory is the service's alone: the directory 0700, its files 0600
    // (the database, its WAL, the second-factor key, the decision log, the first admin token).
    {
        use std::os::unix::fs::PermissionsExt;
        let data = dir.path().join("vouch-data");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        let mut files = 0;
        for entry in std::fs::read_dir(&data).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                files += 1;
                assert_eq!(mode(&path), 0o600, "{}", path.display());
            }
        }
        assert!(
            files >= 3,
            "vouch.db, mfa.key, initial-admin-token at least"
        );
        assert_eq!(
            std::fs::read_to_string(data.join("initial-admin-token"))
                .unwrap()
                .trim(),
            token
        );
    }

    // Second start: same data, no new token; a warning that the file is still there.
    let (child, addr2, again, log) = serve(dir.path());
    assert_eq!(again, None, "the admin token is created only once");
    let (code, body) = curl(&["-H", &auth, &format!("http://{addr2}/api/v1/devices")]);
    assert_eq!(code, 200, "{body}");
    terminate(child);
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("still in its file")),
        "the operator is reminded to move the token"
    );
}

#[test]
fn cli_manages_devices_and_audit_verify_names_a_tampered_event() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(vouch(dir.path())
        .args([
            "-o", "json", "device", "add", "--class", "plc", "--serial", "PLC-1", "--vendor",
            "Siemens", "--label", "line=3",
        ])
        .output()
        .unwrap());
    let device: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = device["id"].as_str().unwrap().to_owned();
    ok(vouch(dir.path())
        .args(["device", "transition", &id, "active"])
        .output()
        .unwrap());
    let out = ok(vouch(dir.path())
        .args([
            "device",
            "transition",
            &id,
            "restricted",
            "--reason",
            "anomaly",
        ])
        .output()
        .unwrap());
    assert!(out.contains("restricted"), "{out}");
    let bad = vouch(dir.path())
        .args(["device", "transition", &id, "onboarding"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("cannot go from restricted to onboarding")
    );
    let list = ok(vouch(dir.path())
        .args(["device", "list", "--managed", "true"])
        .output()
        .unwrap());
    assert!(list.contains(&id) && list.contains("restricted"), "{list}");
    let events = ok(vouch(dir.path())
        .args(["device", "events", &id])
        .output()
        .unwrap());
    assert_eq!(
        events.lines().filter(|l| l.contains("device.")).count(),
        3,
        "{events}"
    );
    let out = ok(vouch(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap());
    assert!(out.contains("intact: 3 events verified"), "{out}");

    // Edit the log behind Vouch's back.
    let db = rusqlite::Connection::open(dir.path().join("vouch-data/vouch.db")).unwrap();
    db.execute("UPDATE events SET reason = 'routine' WHERE seq = 3", [])
        .unwrap();
    drop(db);
    let out = vouch(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "a tampered log fails verification"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("event 3 was altered"), "{text}");
}

#[test]
fn config_check_names_unknown_keys_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vouch.toml"),
        "[server]\nlisten = \"127.0.0.1:9000\"\nport = 1\n",
    )
    .unwrap();
    let out = vouch(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `port`"));
    std::fs::write(
        dir.path().join("vouch.toml"),
        "[server]\nlisten = \"127.0.0.1:9000\"\n",
    )
    .unwrap();
    let out = ok(vouch(dir.path())
        .args(["config", "check"])
        .env(
            "VOUCH_STORE_URL",
            "postgres://vouch:s3cret@db.example:5432/vouch",
        )
        .output()
        .unwrap());
    assert!(
        out.contains("server.listen            = 127.0.0.1:9000"),
        "{out}"
    );
    assert!(
        out.contains("postgres://vouch:***@db.example:5432/vouch") && !out.contains("s3cret"),
        "{out}"
    );
}

#[test]
fn cli_runs_against_postgresql() {
    let url = match std::env::var("VOUCH_TEST_POSTGRES_URL") {
        Ok(u) => u,
        Err(_) => {
            let c = vouch_store_postgres::testing::TempCluster::start()
                .unwrap_or_else(|e| panic!("no PostgreSQL: {e}"));
            let u = c.url("postgres");
            std::mem::forget(c);
            u
        }
    };
    let db = format!("vouch_cli_{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(vouch_store_postgres::testing::create_database(&url, &db))
        .unwrap();
    let url = vouch_store_postgres::testing::with_database(&url, &db);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("fleet.csv");
    std::fs::write(
        &csv,
        "serial,class,vendor,groups\nA1,sensor,Acme,floor-1\nA2,sensor,Acme,floor-1;floor-2\n",
    )
    .unwrap();
    for _ in 0..2 {
        ok(vouch(dir.path())
            .env("VOUCH_STORE_URL", &url)
            .args(["device", "import", "fleet.csv"])
            .output()
            .unwrap());
    }
    let list = ok(vouch(dir.path())
        .env("VOUCH_STORE_URL", &url)
        .args(["device", "list", "--group", "floor-2"])
        .output()
        .unwrap());
    assert_eq!(list.lines().count(), 2, "header and one device: {list}");
    let out = ok(vouch(dir.path())
        .env("VOUCH_STORE_URL", &url)
        .args(["audit", "verify"])
        .output()
        .unwrap());
    assert!(out.contains("intact: 2 events verified"), "{out}");
}

#[test]
fn bad_import_records_are_named_and_stop_the_import() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.csv"),
        "serial,mac\nS1,00:11:22:33:44:55\nS2,not-a-mac\n",
    )
    .unwrap();
    let out = vouch(dir.path())
        .args(["device", "import", "a.csv", "--batch-size", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("record 2 of a.csv is invalid") && err.contains("MAC address"),
        "{err}"
    );
    std::fs::write(dir.path().join("b.csv"), "serial,colour\nS1,red\n").unwrap();
    let out = vouch(dir.path())
        .args(["device", "import", "b.csv"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown CSV column `colour`"));
    std::fs::write(
        dir.path().join("c.jsonl"),
        "{\"serial\": \"J1\"}\n{\"serial\": \"J2\", \"colour\": 1}\n",
    )
    .unwrap();
    let out = vouch(dir.path())
        .args(["device", "import", "c.jsonl"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `colour`"));
    std::fs::write(dir.path().join("d.json"), "[{\"vendor\": \"x\"}]").unwrap();
    let out = vouch(dir.path())
        .args(["device", "import", "d.json"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs an id, serial or mac"));
    // An import may not set what the trust service and the playbooks write, any more than an edit may.
    std::fs::write(
        dir.path().join("e.csv"),
        "serial,labels\nS9,site=plant-1;trust/score=100\n",
    )
    .unwrap();
    let out = vouch(dir.path())
        .args(["device", "import", "e.csv"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("record 1 of e.csv is invalid") && err.contains("written by Vouch"),
        "{err}"
    );
}

/// Writes `n` devices as CSV.
fn fleet_csv(path: &Path, n: u32) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(w, "serial,mac,class,vendor,zone,labels,groups").unwrap();
    for i in 0..n {
        writeln!(
            w,
            "SN{i:09},02:00:{:02x}:{:02x}:{:02x}:{:02x},sensor,Acme,plant-{}/line-{},tier={},fleet-{}",
            i >> 24, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff, i % 4, i % 9, i % 3, i % 10
        )
        .unwrap();
    }
}

fn device_count(db: &Path) -> u64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT COUNT(*) FROM devices", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

#[test]
fn kill_9_during_a_million_device_import_loses_nothing_and_a_rerun_completes_it() {
    const N: u32 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("fleet.csv");
    fleet_csv(&csv, N);
    let db = dir.path().join("vouch-data/vouch.db");

    let mut child = vouch(dir.path())
        .args(["device", "import", "fleet.csv"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some batches have committed and well before the end.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if db.exists() && device_count(&db) >= 100_000 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "the import made no progress");
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = device_count(&db);
    assert!(
        partial > 0 && partial < u64::from(N),
        "killed part-way: {partial}"
    );

    let out = ok(vouch(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap());
    assert!(out.contains("intact"), "{out}");
    let verified: u64 = out.split_whitespace().find_map(|w| w.parse().ok()).unwrap();
    assert_eq!(
        verified,
        device_count(&db),
        "one event per committed device, nothing half-written"
    );

    let out = ok(vouch(dir.path())
        .args(["-o", "json", "device", "import", "fleet.csv"])
        .output()
        .unwrap());
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["records"], u64::from(N));
    assert_eq!(
        summary["created"].as_u64().unwrap() + summary["existing"].as_u64().unwrap(),
        u64::from(N)
    );
    assert!(summary["existing"].as_u64().unwrap() >= partial);
    assert_eq!(
        device_count(&db),
        u64::from(N),
        "exactly one million devices, no duplicates"
    );
    let out = ok(vouch(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap());
    assert!(
        out.contains(&format!("intact: {N} events verified")),
        "{out}"
    );
}

#[test]
fn ca_init_writes_an_encrypted_ca_that_openssl_verifies_and_logs_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pass = "correct horse battery staple";
    let out = vouch(dir.path())
        .args(["ca", "init"])
        .env_remove("VOUCH_CA_PASSPHRASE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("VOUCH_CA_PASSPHRASE"));
    let out = vouch(dir.path())
        .args(["ca", "init"])
        .env("VOUCH_CA_PASSPHRASE", "short")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12 characters"));

    let text = ok(vouch(dir.path())
        .args(["ca", "init", "--organization", "Acme Plants"])
        .env("VOUCH_CA_PASSPHRASE", pass)
        .output()
        .unwrap());
    assert!(text.contains("CN=Acme Plants Vouch Root CA"), "{text}");
    let ca = dir.path().join("vouch-data/ca");
    for key in ["root.key.pem", "issuing.key.pem"] {
        let meta = std::fs::metadata(ca.join(key)).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{key} is owner-only"
        );
        let pem = std::fs::read_to_string(ca.join(key)).unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{key} is encrypted"
        );
    }
    assert!(!text.contains(pass));
    let verify = Command::new("openssl")
        .current_dir(&ca)
        .args(["verify", "-CAfile", "root.pem", "issuing.pem"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    let again = vouch(dir.path())
        .args(["ca", "init"])
        .env("VOUCH_CA_PASSPHRASE", pass)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to replace it"));
    let shown = ok(vouch(dir.path())
        .args(["-o", "json", "ca", "show"])
        .output()
        .unwrap());
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        shown["issuing"]["issuer"],
        "O=Acme Plants, CN=Acme Plants Vouch Root CA"
    );
    let audit = ok(vouch(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap());
    assert!(audit.contains("intact: 1 events verified"), "{audit}");
}

#[test]
fn cert_commands_issue_list_hold_and_release() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pass = "correct horse battery staple";
    ok(vouch(d)
        .args(["ca", "init"])
        .env("VOUCH_CA_PASSPHRASE", pass)
        .output()
        .unwrap());
    let dev: serde_json::Value = serde_json::from_str(&ok(vouch(d)
        .args(["-o", "json", "device", "add", "--serial", "PLC-7"])
        .output()
        .unwrap()))
    .unwrap();
    let id = dev["id"].as_str().unwrap().to_owned();
    let token = ok(vouch(d).args(["cert", "token", &id]).output().unwrap());
    assert!(token.contains("vouch-enroll_"), "{token}");
    let req = Command::new("openssl")
        .current_dir(d)
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "k.pem",
            "-subj",
            "/CN=PLC-7",
            "-out",
            "r.csr",
        ])
        .output()
        .unwrap();
    assert!(req.status.success());
    let out = vouch(d)
        .args(["cert", "issue", &id, "--csr", "r.csr", "--out", "c.pem"])
        .env_remove("VOUCH_CA_PASSPHRASE")
        .output()
        .unwrap();
    assert!(!out.status.success(), "issuing needs the CA passphrase");
    ok(vouch(d)
        .args(["cert", "issue", &id, "--csr", "r.csr", "--out", "c.pem"])
        .env("VOUCH_CA_PASSPHRASE", pass)
        .output()
        .unwrap());
    let verify = Command::new("openssl")
        .current_dir(d)
        .args([
            "verify",
            "-CAfile",
            "vouch-data/ca/root.pem",
            "-untrusted",
            "vouch-data/ca/issuing.pem",
            "c.pem",
        ])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let list: serde_json::Value = serde_json::from_str(&ok(vouch(d)
        .args(["-o", "json", "cert", "list", "--device", &id])
        .output()
        .unwrap()))
    .unwrap();
    let serial = list[0]["serial"].as_str().unwrap().to_owned();
    let soon = ok(vouch(d)
        .args(["cert", "list", "--expiring-within", "30"])
        .output()
        .unwrap());
    assert!(soon.contains(&serial), "{soon}");
    ok(vouch(d)
        .args(["cert", "revoke", &serial, "--reason", "certificateHold"])
        .output()
        .unwrap());
    assert!(ok(vouch(d).args(["device", "show", &id]).output().unwrap()).contains("suspended"));
    ok(vouch(d)
        .args(["cert", "release", &serial])
        .output()
        .unwrap());
    assert!(ok(vouch(d).args(["device", "show", &id]).output().unwrap()).contains("active"));
    let audit = ok(vouch(d).args(["audit", "verify"]).output().unwrap());
    assert!(audit.contains("intact"), "{audit}");
}

#[test]
fn bench_policy_runs_small_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(vouch(dir.path())
        .args([
            "bench",
            "policy",
            "--devices",
            "2000",
            "--policies",
            "100",
            "--decisions",
            "2000",
            "--requests",
            "500",
            "--peer-decisions",
            "500",
            "--json",
        ])
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert!(v["decisions_per_second"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["policies"], 100, "{v}");
    assert_eq!(v["decisions"], 2000, "{v}");
    // With the Rego peer built in, it must agree with Vouch on every request.
    for peer in v["peers"].as_array().unwrap() {
        assert_eq!(peer["agreement_full"].as_f64(), Some(1.0), "{peer}");
    }
}

#[test]
fn bench_trust_runs_small_and_flags_the_bursts() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(vouch(dir.path())
        .args(["bench", "trust", "--devices", "200", "--windows", "50"])
        .output()
        .unwrap());
    assert!(
        out.contains("10000 windows (200 devices × 50) scored"),
        "{out}"
    );
    // Two devices in 200 burst at windows 24 and 49, after the baseline warmed up.
    assert!(
        out.contains("4 windows flagged as anomalous; lowest score 30"),
        "{out}"
    );
    assert!(out.contains("whole engine (TrustEngine::observe"), "{out}");
}

#[test]
fn bench_detect_runs_small_without_peers_and_reports_every_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let small = [
        "bench",
        "detect",
        "--devices",
        "60",
        "--windows",
        "48",
        "--warmup",
        "8",
        "--attacks-per-scenario",
        "1",
        "--attack-windows",
        "4",
        "--no-peers",
    ];
    let out = ok(vouch(dir.path()).args(small).output().unwrap());
    for s in [
        "scan",
        "exfiltration",
        "topic-enumeration",
        "credential-stuffing",
        "firmware-downgrade",
        "clone",
        "location",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(s) && l.contains("vouch")),
            "{s}: {out}"
        );
    }
    assert!(out.contains("2880 observations"), "{out}");
    assert!(out.contains("device-days with a false alarm"), "{out}");
    let out = ok(vouch(dir.path())
        .args(small)
        .arg("--json")
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    let vouch_ = &v["detectors"][0];
    assert_eq!(vouch_["detector"], "vouch", "{v}");
    assert_eq!(vouch_["scenarios"].as_array().unwrap().len(), 7, "{v}");
    assert_eq!(vouch_["overall"]["attacks"], 7, "{v}");
    assert!(v.get("peers").is_none(), "{v}");
}

/// What a playbook writes on a device it quarantines, through the store as the trust service does.
fn quarantine_marks(db: &Path, id: &str) {
    use vouch_store::Store as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store =
            vouch_store_sqlite::SqliteStore::open(db, vouch_store_sqlite::Durability::Normal)
                .unwrap();
        let id: vouch_types::DeviceId = id.parse().unwrap();
        let labels: vouch_types::Labels =
            "trust/score=12;response/quarantined-by=isolate-on-low-trust;line=3"
                .parse()
                .unwrap();
        let patch = vouch_types::DevicePatch {
            labels: Some(labels),
            ..Default::default()
        };
        let change = vouch_store::Change {
            actor: vouch_types::Actor::System("playbook".into()),
            reason: None,
            at: vouch_types::Timestamp::from_unix_micros(1_764_000_000_000_000),
        };
        store
            .edit_device(
                id,
                vouch_store::DeviceEdit::Patch(Box::new(patch)),
                None,
                change,
            )
            .await
            .unwrap();
    });
}

#[test]
fn cli_label_edits_keep_the_trust_score_and_a_playbooks_quarantine_and_cannot_forge_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(vouch(d)
        .args(["-o", "json", "device", "add", "--label", "line=3"])
        .output()
        .unwrap());
    let device: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = device["id"].as_str().unwrap().to_owned();
    quarantine_marks(&d.join("vouch-data/vouch.db"), &id);

    // Replacing the labels keeps what the trust service and the playbook wrote.
    let out = ok(vouch(d)
        .args(["-o", "json", "device", "update", &id, "--label", "line=4"])
        .output()
        .unwrap());
    let device: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        device["labels"],
        serde_json::json!({
            "line": "4",
            "response/quarantined-by": "isolate-on-low-trust",
            "trust/score": "12"
        }),
        "{device}"
    );

    // Setting them is refused, and nothing changes: the same rule as the API's 422.
    for forged in [
        "trust/score=100",
        "response/quarantined-by=me",
        "trust/band=high",
    ] {
        let out = vouch(d)
            .args(["device", "update", &id, "--label", forged])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("written by Vouch"),
            "{forged}: {stderr}"
        );
    }
    let out = vouch(d)
        .args(["device", "add", "--label", "trust/score=100"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = ok(vouch(d)
        .args(["-o", "json", "device", "show", &id])
        .output()
        .unwrap());
    let device: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(device["labels"]["trust/score"], "12", "{device}");
    assert_eq!(
        device["revision"], 3,
        "no refused edit wrote anything: {device}"
    );
}
