//! `vouch compliance` on this host's store: documents imported and checked, the fleet's evidence evaluated
//! against the shipped catalogue, a KEV match raised as the CRA Art. 14 trigger and cleared by an upgrade,
//! and the reports written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::path::{Path, PathBuf};

use serde_json::Value;
use util::{ok, vouch};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/compliance/tests/data")
        .join(name)
}

fn import(d: &Path, args: &[&str]) -> std::process::Output {
    vouch(d)
        .args(["compliance", "import"])
        .args(args)
        .output()
        .unwrap()
}

fn status(d: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let out = vouch(d)
        .args(["-o", "json", "compliance", "status"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

fn failed_controls(row: &Value) -> Vec<&str> {
    row["failed_controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect()
}

#[test]
fn a_kev_match_through_an_imported_sbom_fails_the_cra_controls_until_the_firmware_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let added = ok(vouch(d)
        .args([
            "-o",
            "json",
            "device",
            "add",
            "--class",
            "camera",
            "--serial",
            "CAM-1",
            "--vendor",
            "Northwind Optics",
            "--model",
            "VC-200",
            "--firmware",
            "4.2.1",
        ])
        .output()
        .unwrap());
    let id = serde_json::from_str::<Value>(&added).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Refusals write nothing: an SBOM without the firmware it describes, a file that is not what it is
    // said to be.
    let out = import(
        d,
        &[
            "cyclonedx-sbom",
            fixture("camera-fw-4.2.1.cdx.json").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name MODEL@VERSION"));
    let out = import(d, &["kev", fixture("osv-embedded.json").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a readable kev document"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    ok(import(
        d,
        &[
            "cyclonedx-sbom",
            fixture("camera-fw-4.2.1.cdx.json").to_str().unwrap(),
            "--name",
            "VC-200@4.2.1",
        ],
    ));
    ok(import(
        d,
        &["osv", fixture("osv-embedded.json").to_str().unwrap()],
    ));
    let first = ok(import(d, &["kev", fixture("kev.json").to_str().unwrap()]));
    assert!(first.contains("imported kev kev.json"), "{first}");
    let again = ok(import(d, &["kev", fixture("kev.json").to_str().unwrap()]));
    assert!(again.contains("nothing changed"), "{again}");

    let (code, rows) = status(d, &[]);
    assert_eq!(code, Some(3), "a device fails a control: {rows}");
    let row = &rows.as_array().unwrap()[0];
    assert_eq!(row["device"], id.as_str());
    let failed = failed_controls(row);
    for control in ["eu-cra annex-i.part-i.2.a", "eu-cra art-14"] {
        assert!(failed.contains(&control), "{control} in {failed:?}");
    }
    assert_eq!(
        row["worst"], "critical no-known-exploited-vulnerability",
        "{row}"
    );
    let (_, findings) = status(d, &["--device", &id]);
    let top = &findings.as_array().unwrap()[0];
    assert_eq!(top["severity"], "critical");
    let evidence = top["evidence"].as_str().unwrap();
    assert!(evidence.contains("CVE-2014-6271"), "{evidence}");
    assert!(
        evidence.contains("CRA Art. 14: early warning due"),
        "{evidence}"
    );

    // The reports, written from the same evaluation.
    let oscal = d.join("ar.json");
    let html = d.join("report.html");
    let ocsf = d.join("findings.jsonl");
    ok(vouch(d)
        .args(["compliance", "report", "--oscal"])
        .arg(&oscal)
        .arg("--html")
        .arg(&html)
        .arg("--ocsf")
        .arg(&ocsf)
        .output()
        .unwrap());
    let ar: Value = serde_json::from_slice(&std::fs::read(&oscal).unwrap()).unwrap();
    assert_eq!(
        ar["assessment-results"]["metadata"]["oscal-version"],
        "1.1.2"
    );
    assert!(std::fs::read_to_string(&html).unwrap().contains("CAM-1"));
    let events = std::fs::read_to_string(&ocsf).unwrap();
    assert!(
        events
            .lines()
            .all(|l| { serde_json::from_str::<Value>(l).unwrap()["class_uid"] == 2003 })
    );
    assert!(events.lines().count() > 0);

    // An upgrade the KEV entry does not cover clears the exploited finding (and, with no SBOM kept for the
    // new release, fails the SBOM rule instead).
    ok(vouch(d)
        .args(["device", "update", &id, "--firmware", "4.3.0"])
        .output()
        .unwrap());
    let (_, rows) = status(d, &[]);
    let row = &rows.as_array().unwrap()[0];
    let failed = failed_controls(row);
    assert!(!failed.contains(&"eu-cra art-14"), "{failed:?}");
    assert!(failed.contains(&"eu-cra annex-i.part-ii.1"), "{failed:?}");

    // Every import that changed something is in the tamper-evident log, which still verifies.
    let log = ok(vouch(d).args(["audit", "verify"]).output().unwrap());
    assert!(log.contains("intact") || log.contains("OK"), "{log}");
}
