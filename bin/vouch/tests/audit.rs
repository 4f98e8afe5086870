//! The audit log against someone with full write access to the database: a data directory made by the `vouch`
//! binary, a signed checkpoint, then the attacker's tool (the `sqlite3` command line) — a removed tail with a
//! rewritten head, an edit with every later hash recomputed, a role raised, an enforced policy widened — each
//! named by `vouch audit verify --checkpoint`; and `vouch serve` signing checkpoints on its schedule into the
//! data directory, an external sink and its log, checked by OpenSSL with the public key alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use util::{ok, serve_with, terminate, vouch};

const CHECKPOINTS: &str = "vouch-data/audit-checkpoints.jsonl";

fn db(d: &Path) -> PathBuf {
    d.join("vouch-data/vouch.db")
}

/// The attacker's tool: `sqlite3 vouch.db SQL`.
fn sqlite3(d: &Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db(d))
        .arg(sql)
        .output()
        .expect("the sqlite3 command line is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn verify(d: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out: Output = vouch(d)
        .args(["audit", "verify"])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn verify_with_checkpoints(d: &Path) -> (Option<i32>, String) {
    verify(d, &["--checkpoint", CHECKPOINTS])
}

/// A data directory as an operator leaves it: the default policies (enforced), an auditor's token, three
/// devices, and a checkpoint of it all. Returns the auditor token's id.
fn fixture(d: &Path) -> String {
    ok(vouch(d).args(["policy", "list"]).output().unwrap());
    let out = ok(vouch(d)
        .args([
            "-o",
            "json",
            "token",
            "create",
            "--operator",
            "ada",
            "--role",
            "auditor",
            "--no-mfa-enrollment",
        ])
        .output()
        .unwrap());
    let token: serde_json::Value = serde_json::from_str(&out).unwrap();
    for serial in ["PLC-1", "PLC-2", "PLC-3"] {
        ok(vouch(d)
            .args(["device", "add", "--class", "plc", "--serial", serial])
            .output()
            .unwrap());
    }
    let out = ok(vouch(d).args(["audit", "checkpoint"]).output().unwrap());
    // Three policies, the token, three devices.
    assert!(out.contains("checkpoint of event 7 signed"), "{out}");
    token["id"].as_str().unwrap().to_owned()
}

#[test]
fn an_intact_store_passes_and_the_key_stays_private() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    let (code, text) = verify_with_checkpoints(d);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("audit log intact: 7 events verified"),
        "{text}"
    );
    assert!(
        text.contains("tokens and policies match the log: 1 tokens, 3 policies"),
        "{text}"
    );
    assert!(
        text.contains("checkpoints: 1 in vouch-data/audit-checkpoints.jsonl (every line checked")
            && text.contains("1 match the log; the newest signed event 7"),
        "{text}"
    );
    assert!(!text.contains("not checkable"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| std::fs::metadata(d.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("vouch-data/audit-checkpoint.key"), 0o600);
        assert_eq!(mode(CHECKPOINTS), 0o600);
    }
    let public = std::fs::read_to_string(d.join("vouch-data/audit-checkpoint.pub")).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");

    // New events after the checkpoint are fine; they are only not anchored yet.
    ok(vouch(d)
        .args(["device", "add", "--class", "camera", "--serial", "CAM-1"])
        .output()
        .unwrap());
    let (code, text) = verify_with_checkpoints(d);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("(events 8 to 8 are after it: not yet anchored)"),
        "{text}"
    );

    // JSON for machines.
    // Only stdout is the document: a log line on stderr (a slow machine's warning) is no part of it.
    let out = vouch(d)
        .args(["-o", "json", "audit", "verify", "--checkpoint", CHECKPOINTS])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout} (stderr: {stderr})"));
    assert_eq!(v["intact"], true);
    assert_eq!(v["checkpoints"]["matching"], 1);
    assert_eq!(v["checkpoints"]["newest"]["seq"], 7);
}

#[test]
fn a_removed_tail_with_a_rewritten_head_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    // Remove the last two devices' events and make the head agree with what is left.
    sqlite3(
        d,
        "DELETE FROM events WHERE seq > 5; \
         UPDATE audit_head SET seq = 5, hash = (SELECT hash FROM events WHERE seq = 5);",
    );
    let (code, text) = verify(d, &[]);
    assert_eq!(code, Some(0), "the chain alone is fooled: {text}");
    let (code, text) = verify_with_checkpoints(d);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("hash chain intact: 5 events verified, but:")
            && text.contains("TAMPERED: log truncated: the checkpoint of ")
            && text.contains(
                "signed event 7, but the log ends at event 5: events 6 to 7 were removed"
            ),
        "{text}"
    );
}

#[test]
fn an_edit_with_every_later_hash_recomputed_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = fixture(d);
    // Make the auditor an admin, in the table and in its token.created event (event 4), and reseal the chain
    // from there on with Vouch's own hashing, so that the chain and the tables agree again.
    let events = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store =
                vouch_store_sqlite::SqliteStore::open(db(d), vouch_store_sqlite::Durability::Full)
                    .unwrap();
            vouch_store::Store::events(&store, None, 100).await.unwrap()
        })
    };
    assert_eq!(events[3].draft.action.as_str(), "token.created");
    let conn = rusqlite::Connection::open(db(d)).unwrap();
    let mut prev = events[2].hash;
    for e in &events[3..] {
        let mut draft = e.draft.clone();
        if e.seq.0 == 4 {
            let after = draft.after.take().unwrap();
            assert!(after.contains("\"role\":\"auditor\""), "{after}");
            draft.after = Some(after.replace("\"role\":\"auditor\"", "\"role\":\"admin\""));
        }
        let sealed = draft.seal(e.seq, e.at, prev);
        conn.execute(
            "UPDATE events SET after = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![
                sealed.draft.after,
                &sealed.prev_hash.0[..],
                &sealed.hash.0[..],
                e.seq.0 as i64
            ],
        )
        .unwrap();
        prev = sealed.hash;
    }
    conn.execute("UPDATE audit_head SET hash = ?1", [&prev.0[..]])
        .unwrap();
    drop(conn);
    sqlite3(
        d,
        &format!("UPDATE tokens SET role = 'admin' WHERE hex(id) = upper('{token}')"),
    );
    let (code, text) = verify(d, &[]);
    assert_eq!(code, Some(0), "without a checkpoint, nothing shows: {text}");
    let (code, text) = verify_with_checkpoints(d);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("TAMPERED: log rewritten: the checkpoint of ")
            && text.contains("signed event 7 with hash")
            && text.contains("events at or before it were edited and the chain recomputed"),
        "{text}"
    );
}

#[test]
fn a_raised_role_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = fixture(d);
    sqlite3(d, "UPDATE tokens SET role = 'admin' WHERE operator = 'ada'");
    let (code, text) = verify_with_checkpoints(d);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains(&format!(
            "TAMPERED: token {token}: role is admin in the database, auditor in the log (event 4)"
        )),
        "{text}"
    );
    // The log and the checkpoint are untouched: only the table is named.
    assert!(text.contains("1 match the log"), "{text}");
}

#[test]
fn a_widened_enforced_policy_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    // Every device may now publish and subscribe anywhere.
    sqlite3(
        d,
        "UPDATE policy_versions SET text = replace(text, 'devices/${device.id}/#', '#') \
         WHERE id = 'own-topics'",
    );
    let (code, text) = verify_with_checkpoints(d);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains(
            "TAMPERED: policy own-topics version 1: its text in the database is not the text in the log (event 2)"
        ),
        "{text}"
    );
}

#[test]
fn a_forged_checkpoint_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    let line = std::fs::read_to_string(d.join(CHECKPOINTS)).unwrap();
    // A checkpoint that claims the log was shorter, so that a truncation would pass.
    std::fs::write(
        d.join("forged.jsonl"),
        line.replace("\"seq\":7", "\"seq\":5"),
    )
    .unwrap();
    let (code, text) = verify(d, &["--checkpoint", "forged.jsonl"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains(
            "TAMPERED: checkpoint forged or unreadable: line 1 of forged.jsonl: bad signature: the checkpoint \
             was forged or edited"
        ) && text.contains("no valid checkpoint in forged.jsonl"),
        "{text}"
    );
    // Another key's checkpoints cannot vouch for anything.
    let other = tempfile::tempdir().unwrap();
    fixture(other.path());
    let (code, text) = verify(
        d,
        &[
            "--checkpoint",
            CHECKPOINTS,
            "--key",
            other
                .path()
                .join("vouch-data/audit-checkpoint.pub")
                .to_str()
                .unwrap(),
        ],
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("not by the given key"), "{text}");
}

#[test]
fn serve_signs_checkpoints_on_its_schedule_into_the_sink_and_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let elsewhere = tempfile::tempdir().unwrap();
    let sink = elsewhere.path().join("vouch-checkpoints.jsonl");
    let (child, addr, token, log) = serve_with(
        d,
        "127.0.0.1:0",
        &[
            ("VOUCH_AUDIT_INTERVAL_SECS", "1"),
            ("VOUCH_AUDIT_SINK", sink.to_str().unwrap()),
        ],
    );
    let lines = |p: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let newest_seq = |p: &Path| lines(p).last().map_or(0, |c| c["seq"].as_u64().unwrap());
    let wait_for_seq = |p: &Path, seq: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while newest_seq(p) < seq {
            assert!(
                Instant::now() < deadline,
                "no checkpoint of event {seq} within 30 s: {:?}",
                lines(p)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // The defaults (3 policies), the first admin token and its permit to enroll a second factor.
    wait_for_seq(&d.join(CHECKPOINTS), 5);
    let auth = format!("Authorization: Bearer {}", token.unwrap());
    let (code, body) = util::curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"class":"plc","identifiers":{"serial":"PLC-9"}}"#,
        &format!("http://{addr}/api/v1/devices"),
    ]);
    assert_eq!(code, 201, "{body}");
    wait_for_seq(&d.join(CHECKPOINTS), 6);
    let (code, body) = util::curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"class":"plc","identifiers":{"serial":"PLC-10"}}"#,
        &format!("http://{addr}/api/v1/devices"),
    ]);
    assert_eq!(code, 201, "{body}");
    // The API's verify route compares the tables with the log too (checkpoints are files: the CLI's part).
    let api_verify = || {
        let (code, body) =
            util::curl(&["-H", &auth, &format!("http://{addr}/api/v1/audit/verify")]);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    assert_eq!(api_verify()["intact"], true);
    sqlite3(d, "UPDATE tokens SET operator = 'mallory'");
    let v = api_verify();
    assert_eq!(v["intact"], false, "{v}");
    assert_eq!(v["first_break"], serde_json::Value::Null, "{v}");
    assert!(
        v["findings"][0]
            .as_str()
            .unwrap()
            .ends_with("operator is mallory in the database, initial admin in the log (event 4)"),
        "{v}"
    );
    sqlite3(d, "UPDATE tokens SET operator = 'initial admin'");
    // Stopped right away: the shutdown checkpoint covers the last event.
    terminate(child);
    assert_eq!(newest_seq(&d.join(CHECKPOINTS)), 7);
    // The schedule ticked every second, but a head that did not move was not signed again.
    let seqs: Vec<u64> = lines(&d.join(CHECKPOINTS))
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let local = std::fs::read_to_string(d.join(CHECKPOINTS)).unwrap();
    assert_eq!(
        std::fs::read_to_string(&sink).unwrap(),
        local,
        "the sink holds the same checkpoints"
    );
    let logged = log.lock().unwrap();
    let last_line = local.lines().last().unwrap();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("audit checkpoint signed") && l.contains(last_line)),
        "each checkpoint is in the log too: {logged:?}"
    );
    drop(logged);

    // An auditor with the public key and the sink's copy only.
    let public = elsewhere.path().join("vouch.pub");
    std::fs::copy(d.join("vouch-data/audit-checkpoint.pub"), &public).unwrap();
    let (code, text) = verify(
        d,
        &[
            "--checkpoint",
            sink.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("the newest signed event 7"), "{text}");

    // And with their own tools: the signed bytes are the line without `sig`.
    let v: serde_json::Value = serde_json::from_str(last_line).unwrap();
    let sig = hex_decode(v["sig"].as_str().unwrap());
    let body = last_line
        .split_once(",\"sig\":")
        .map(|(head, _)| format!("{head}}}"))
        .unwrap();
    let e = elsewhere.path();
    std::fs::write(e.join("body"), &body).unwrap();
    std::fs::write(e.join("sig"), &sig).unwrap();
    let openssl = |body: &str| {
        std::fs::write(e.join("body"), body).unwrap();
        util::openssl(
            e,
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "vouch.pub",
                "-rawin",
                "-in",
                "body",
                "-sigfile",
                "sig",
            ],
        )
    };
    let (good, text) = openssl(&body);
    assert!(
        good && text.contains("Signature Verified Successfully"),
        "{text}"
    );
    let (good, text) = openssl(&body.replace("\"seq\":7", "\"seq\":6"));
    assert!(!good, "an edited checkpoint fails OpenSSL too: {text}");
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
