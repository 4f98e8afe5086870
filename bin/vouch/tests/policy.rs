//! `vouch policy` end to end: defaults on first use, validation that stores nothing, shadow then enforce with
//! the running server picking the change up, and `policy test` replaying the decisions the server recorded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::time::{Duration, Instant};

use util::{curl, ok, serve, terminate, vouch};

fn authorize(addr: &str, token: &str, device: &str, topic: &str) -> serde_json::Value {
    let body = serde_json::json!({
        "principal": {"type": "Device", "id": device},
        "action": "publish",
        "resource": {"type": "Topic", "id": topic},
    })
    .to_string();
    let (status, text) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        "Content-Type: application/json",
        "--data",
        &body,
        &format!("http://{addr}/api/v1/authorize"),
    ]);
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn policies_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let listed = ok(vouch(d).args(["policy", "list"]).output().unwrap());
    for id in ["device-connect", "own-topics", "quarantine-update-only"] {
        assert!(listed.contains(id), "defaults are in place: {listed}");
    }

    // Invalid: refused with Cedar's diagnostics, nothing stored.
    std::fs::write(
        d.join("bad.cedar"),
        r#"@id("bad") permit(principal is Vouch::Device, action, resource in Vouch::Bucket::"x");"#,
    )
    .unwrap();
    let out = vouch(d)
        .args(["policy", "validate", "bad.cedar"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("INVALID") && text.contains("Bucket"),
        "{text}"
    );
    let out = vouch(d)
        .args(["policy", "add", "bad.cedar"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was stored"));
    assert_eq!(
        ok(vouch(d).args(["policy", "list"]).output().unwrap()),
        listed
    );

    // A device, a gateway token, a running server recording decisions.
    let id = ok(vouch(d)
        .args(["device", "add", "--class", "sensor", "-o", "json"])
        .output()
        .unwrap());
    let id: serde_json::Value = serde_json::from_str(&id).unwrap();
    let id = id["id"].as_str().unwrap().to_owned();
    ok(vouch(d)
        .args(["device", "transition", &id, "active"])
        .output()
        .unwrap());
    let pep = ok(vouch(d)
        .args(["token", "create", "--operator", "pep", "--role", "gateway"])
        .output()
        .unwrap());
    let pep = pep
        .split_whitespace()
        .find(|w| w.starts_with("vouch_"))
        .unwrap()
        .to_owned();
    let (child, addr, _, _) = serve(d);
    let own = format!("devices/{id}/telemetry");
    assert_eq!(authorize(&addr, &pep, &id, &own)["decision"], "allow");
    assert_eq!(authorize(&addr, &pep, &id, "plant/x")["decision"], "deny");

    // What would a candidate change? Replayed against what the server recorded.
    std::fs::write(
        d.join("quiet.cedar"),
        r#"@id("no-telemetry") forbid(principal is Vouch::Device, action == Vouch::Action::"publish", resource)
           when { resource in Vouch::TopicFilter::"devices/${device.id}/telemetry" };"#,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        // The server writes its decision log in the background.
        let out = vouch(d)
            .args(["policy", "test", "quiet.cedar", "-o", "json"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            if v["replayed"] == 2 {
                break v;
            }
        }
        assert!(Instant::now() < deadline, "no decisions recorded: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(report["unchanged"], 1, "{report}");
    assert_eq!(
        report["newly_denied"][0]["resource"],
        own.as_str(),
        "{report}"
    );
    assert_eq!(
        report["newly_denied"][0]["by"][0], "no-telemetry",
        "{report}"
    );

    // Adopt it in shadow mode: nothing breaks; then enforce it: the server follows within its poll.
    let added = ok(vouch(d)
        .args(["policy", "add", "quiet.cedar"])
        .output()
        .unwrap());
    assert!(added.contains("stored no-telemetry v1 (shadow)"), "{added}");
    let wait_for = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = authorize(&addr, &pep, &id, &own);
            if v["decision"] == want {
                return v;
            }
            assert!(Instant::now() < deadline, "still {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let v = wait_for("allow");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut v = v;
    while v.get("shadow").is_none() {
        assert!(
            Instant::now() < deadline,
            "the shadow policy never showed: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
        v = authorize(&addr, &pep, &id, &own);
    }
    assert_eq!(v["shadow"]["allowed"], false, "{v}");
    ok(vouch(d)
        .args([
            "policy",
            "mode",
            "no-telemetry",
            "enforce",
            "--reason",
            "observed for a week",
        ])
        .output()
        .unwrap());
    let v = wait_for("deny");
    assert_eq!(v["policies"][0], "no-telemetry", "{v}");
    let shown = ok(vouch(d)
        .args(["policy", "show", "no-telemetry"])
        .output()
        .unwrap());
    assert!(shown.contains("v2") && shown.contains("enforce"), "{shown}");
    terminate(child);
    let verified = ok(vouch(d).args(["audit", "verify"]).output().unwrap());
    assert!(verified.contains("intact"), "{verified}");
}
