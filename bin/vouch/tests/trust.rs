//! The trust loop end to end against the real parts: `vouch demo` starts `vouch serve` with its gateway in
//! front of a real Mosquitto; a simulated fleet enrolls over EST, connects through the gateway over mTLS and
//! publishes; every attack scenario is played. Each must be detected and acted on by a playbook, each
//! quarantined device released once it behaves again, and the clone's certificate revoked — checked both in
//! the run's summary and in the store it leaves behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use util::vouch;

#[test]
fn every_scenario_is_detected_acted_on_and_released_through_gateway_and_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    let out = vouch(dir.path())
        .args([
            "demo",
            "--devices",
            "30",
            "--windows",
            "30",
            "--window-secs",
            "2",
            "--warmup",
            "10",
            "--attack-windows",
            "3",
            "--release-after",
            "6",
            "--quiet",
            "--json",
            "--keep",
        ])
        .arg(&keep)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(keep.join("serve.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}\nserve.log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let attacks = summary["attacks"].as_array().unwrap();
    assert_eq!(attacks.len(), 7, "{summary:#}");
    let data = keep.join("data");
    let cli = |args: &[&str]| -> serde_json::Value {
        let out = vouch(dir.path())
            .args(args)
            .args(["--output", "json"])
            .env("VOUCH_DATA_DIR", &data)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text} {out:?}"))
    };
    for a in attacks {
        let scenario = a["scenario"].as_str().unwrap();
        let actions: Vec<&str> = a["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(
            a["detected_after"].is_number(),
            "{scenario} was not detected: {a:#}"
        );
        assert!(
            a["lowest_trust"].as_u64().unwrap() < 80,
            "{scenario} barely moved the score: {a:#}"
        );
        let device = a["device_id"].as_str().unwrap();
        let record = cli(&["device", "show", device]);
        let groups = record["groups"].to_string();
        if scenario == "clone" {
            assert!(actions.contains(&"revoke"), "{scenario}: {a:#}");
            let certs = cli(&["cert", "list", "--device", device]);
            let revoked = certs
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["status"].as_str().unwrap_or("").starts_with("revoked"))
                .count();
            assert!(
                revoked >= 1,
                "the clone's certificate is not revoked: {certs:#}"
            );
        } else {
            assert!(
                actions.contains(&"quarantine"),
                "{scenario} was not quarantined: {a:#}"
            );
            assert!(
                actions.contains(&"release"),
                "{scenario} was not released after behaving again: {a:#}"
            );
            assert!(
                !groups.contains("\"quarantine\""),
                "{scenario}: still in quarantine at the end: {groups}"
            );
        }
    }
    // The trust history of an attacked device, through the CLI: the drop with its reason, then recovery.
    let scan = attacks.iter().find(|a| a["scenario"] == "scan").unwrap();
    let trust = cli(&["device", "trust", scan["device_id"].as_str().unwrap()]);
    let history = trust["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|p| p["score"].as_u64().unwrap() < 40
                && !p["reasons"].as_array().unwrap().is_empty()),
        "{trust:#}"
    );
    assert!(trust["score"].as_u64().unwrap() >= 70, "{trust:#}");
    // Findings for SIEMs, and the chain still verifies after all those writes from two processes.
    assert!(summary["events"]["finding.raised"].as_u64().unwrap() >= 7);
    assert!(summary["events"]["response.released"].as_u64().unwrap() >= 6);
    let false_alarms = summary["false_alarms"].as_array().unwrap().len();
    assert!(
        false_alarms <= 3,
        "{false_alarms} false alarms: {summary:#}"
    );
    let verify = vouch(dir.path())
        .args(["audit", "verify"])
        .env("VOUCH_DATA_DIR", keep.join("data"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("intact"),
        "{verify:?}"
    );
}
