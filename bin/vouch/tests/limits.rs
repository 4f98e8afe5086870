//! Hostile policy texts against the real binary: `vouch serve` over a socket answers a validate nesting or
//! chaining up to 100,000 deep (with an auditor's token) with 413/422 naming the limit and still answers
//! `/healthz`; the CLI's validate, add and test print the same refusal; a deep policy smuggled into the
//! database makes `vouch serve` refuse to start, naming it, instead of overflowing its stack. And a
//! configuration file nested 100,000 deep (arrays, inline tables, dotted keys, table headers) is refused by
//! `vouch config check` without a crash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::process::Stdio;
use std::time::{Duration, Instant};

use util::{curl, ok, serve, terminate, vouch};

fn when(cond: &str) -> String {
    format!(
        "@id(\"deep\")\npermit(principal is Vouch::Device, action == Vouch::Action::\"publish\", \
         resource) when {{ {cond} }};\n"
    )
}

fn validate(
    addr: &str,
    token: &str,
    text: &str,
    dir: &std::path::Path,
) -> (u16, serde_json::Value) {
    // The body from a file: 100,000 levels do not fit on a command line.
    let body = dir.join("body.json");
    std::fs::write(&body, serde_json::json!({ "text": text }).to_string()).unwrap();
    let (status, text) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &format!("@{}", body.display()),
        &format!("http://{addr}/api/v1/policies/validate"),
    ]);
    (status, serde_json::from_str(&text).unwrap_or_default())
}

#[test]
fn hostile_policies_are_refused_by_the_server_and_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let auditor = ok(vouch(d)
        .args([
            "token",
            "create",
            "--operator",
            "audit",
            "--role",
            "auditor",
        ])
        .output()
        .unwrap());
    let auditor = auditor
        .split_whitespace()
        .find(|w| w.starts_with("vouch_"))
        .unwrap()
        .to_owned();
    let (child, addr, _, log) = serve(d);
    let shapes = [
        (
            "parens",
            150,
            when(&format!("{}true{}", "(".repeat(150), ")".repeat(150))),
        ),
        (
            "parens",
            100_000,
            when(&format!(
                "{}true{}",
                "(".repeat(100_000),
                ")".repeat(100_000)
            )),
        ),
        (
            "lists",
            100_000,
            when(&format!(
                "{}1{}.isEmpty()",
                "[".repeat(100_000),
                "]".repeat(100_000)
            )),
        ),
        (
            "records",
            500,
            when(&format!(
                "{}1{} == {{}}",
                "{a:".repeat(500),
                "}".repeat(500)
            )),
        ),
        (
            "if",
            5_000,
            when(&format!(
                "{}true{}",
                "if true then ".repeat(5_000),
                " else false".repeat(5_000)
            )),
        ),
        ("and", 20_000, when(&vec!["true"; 20_000].join("&&"))),
        (
            "bangs",
            100_000,
            when(&format!("{}true", "!".repeat(100_000))),
        ),
        (
            "member",
            50_000,
            when(&format!("context{} == 1", ".a".repeat(50_000))),
        ),
    ];
    for (shape, n, text) in &shapes {
        let (status, v) = validate(&addr, &auditor, text, d);
        let detail = v["detail"].as_str().unwrap_or_default();
        assert_eq!(status, 422, "{shape} {n}: {v}");
        assert_eq!(v["type"], "urn:vouch:problem:policy-too-complex", "{v}");
        assert!(
            detail.contains("the limit is 32") || detail.contains("the limit is 256"),
            "{shape} {n}: {v}"
        );
        let (status, body) = curl(&[&format!("http://{addr}/healthz")]);
        assert_eq!(
            status, 200,
            "the server still answers after {shape} {n}: {body}"
        );
    }
    let (status, v) = validate(&addr, &auditor, &shapes[0].2, d);
    assert_eq!(status, 422);
    assert_eq!(
        v["detail"],
        "policy nests 151 levels deep (brackets and if-then-else count one level each); the limit is 32"
    );
    // Too large to look at: 413 naming the limit.
    let huge = when(&format!(
        "{}true{}",
        "(".repeat(200_000),
        ")".repeat(200_000)
    ));
    let (status, v) = validate(&addr, &auditor, &huge, d);
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["detail"], "a policy request body must be at most 256 KiB");
    let (status, _) = curl(&[&format!("http://{addr}/healthz")]);
    assert_eq!(status, 200);

    // The command line: the same gate, the same words.
    std::fs::write(d.join("deep.cedar"), &shapes[0].2).unwrap();
    let out = vouch(d)
        .args(["policy", "validate", "deep.cedar"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("INVALID")
            && text.contains("policy nests 151 levels deep")
            && text.contains("the limit is 32"),
        "{text}"
    );
    for args in [
        &["policy", "add", "deep.cedar"][..],
        &["policy", "test", "deep.cedar"][..],
    ] {
        let out = vouch(d).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("policy nests 151 levels deep"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("overflow"), "{err}");
    }
    std::fs::write(d.join("huge.cedar"), &huge).unwrap();
    let out = vouch(d)
        .args(["policy", "validate", "huge.cedar"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the limit is 262144 bytes"), "{err}");
    let listed = ok(vouch(d).args(["policy", "list"]).output().unwrap());
    assert!(!listed.contains("deep"), "nothing was stored: {listed}");

    assert!(
        !log.lock().unwrap().iter().any(|l| l.contains("overflow")),
        "no stack overflow"
    );
    terminate(child);

    // A deep policy edited into the database: the server refuses to start, naming the policy and the limit.
    let db = rusqlite::Connection::open(d.join("vouch-data/vouch.db")).unwrap();
    let deep = when(&format!("{}true{}", "(".repeat(30_000), ")".repeat(30_000)))
        .replace("\"deep\"", "\"own-topics\"");
    let changed = db
        .execute(
            "UPDATE policy_versions SET text = ?1 WHERE id = 'own-topics'",
            [&deep],
        )
        .unwrap();
    assert!(changed >= 1);
    db.execute("UPDATE policy_state SET generation = generation + 1", [])
        .unwrap();
    drop(db);
    let mut child = vouch(d)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--est-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the server should refuse to start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "a clean refusal, not a signal: {err}"
    );
    assert!(
        err.contains("policy `own-topics`: policy nests 30001 levels deep")
            && err.contains("the limit is 32"),
        "{err}"
    );
    assert!(!err.contains("overflow"), "{err}");
}

#[test]
fn configuration_nested_100000_deep_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 100_000;
    let keys = vec!["a"; n].join(".");
    let files = [
        (
            "arrays",
            format!("[server]\nlisten = {}1{}\n", "[".repeat(n), "]".repeat(n)),
        ),
        (
            "inline tables",
            format!("server = {}1{}\n", "{a = ".repeat(n), "}".repeat(n)),
        ),
        ("dotted keys", format!("{keys} = 1\n")),
        ("table header", format!("[{keys}]\nb = 1\n")),
        ("array of tables", format!("[[{keys}]]\nb = 1\n")),
        ("server dotted keys", format!("server.{keys} = 1\n")),
    ];
    for (name, text) in files {
        let file = d.join("vouch.toml");
        std::fs::write(&file, text).unwrap();
        let out = vouch(d)
            .args(["config", "check", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: a clean refusal: {err}");
        assert!(err.contains("invalid configuration"), "{name}: {err}");
        assert!(!err.contains("overflow"), "{name}: {err}");
    }
}
