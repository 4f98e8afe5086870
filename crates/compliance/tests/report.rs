//! The reports, checked by independent tools: the OSCAL assessment results by compliance-trestle (PyPI),
//! the HTML page by headless Chromium (its DOM and a screenshot), the OCSF events by the JSON Schema of
//! OCSF 1.2.0's class 2003 (ocsf-json-schema, checked by jsonschema; PyPI) and the attributes it requires. scripts/test installs the tools; a developer's run without them fails
//! saying so.
//!
//! Why one long file: each report format is checked by its own external tool here, with the fleet they share.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;
use vouch_compliance::report::{Assessed, Period, ReportError, Scope, html, ocsf, oscal};
use vouch_compliance::*;
use vouch_types::Timestamp;

/// The test fleet: a camera with a known-exploited vulnerability (evaluated with the OSV advisories and the
/// KEV catalogue loaded), a PLC with a default credential, a clean PLC.
struct Fleet {
    cat: Catalogue,
    results: Vec<DeviceResult>,
    seen: Timestamp,
}

const NAMES: [&str; 3] = ["Gate camera", "Line 3 <PLC> & \"co\"", "Line 4 PLC"];

/// The PLC's fault in most tests: a default account seen in clear text.
fn default_account(plc: &mut DeviceEvidence) {
    plc.credentials = vec![ClearTextCredential {
        protocol: "telnet".into(),
        user: Some("admin".into()),
    }];
}

/// The fleet, with `fault` done to the PLC (none: the PLC is fixed).
fn fleet_with(fault: Option<&dyn Fn(&mut DeviceEvidence)>) -> Fleet {
    let cat = Catalogue::shipped().unwrap();
    let mut db = db();
    db.import_osv(&data("osv-embedded.json")).unwrap();
    db.import_kev(&data("kev.json")).unwrap();
    let mut cam = device(1, CAMERA);
    let seen = now().plus_micros(-2 * HOUR);
    cam.first_seen
        .insert(VulnId::parse("CVE-2014-6271").unwrap(), seen);
    let mut plc = device(2, PLC3000);
    if let Some(fault) = fault {
        fault(&mut plc);
    }
    let clean = device(3, PLC3000);
    // The PLCs' SBOM has bash too: they are evaluated without the advisories, so only the camera is hit.
    let mut results = evaluate_all(&cat, &db, &[cam]);
    results.extend(evaluate_all(&cat, &common::db(), &[plc, clean]));
    Fleet { cat, results, seen }
}

impl Fleet {
    fn assessed(&self) -> Vec<Assessed<'_>> {
        self.results
            .iter()
            .zip(NAMES)
            .map(|(result, name)| Assessed { result, name })
            .collect()
    }
}

fn scope<'a>(f: &'a Fleet, devices: &'a [Assessed<'a>]) -> Scope<'a> {
    Scope {
        title: "Plant 3, March",
        catalogue: &f.cat,
        devices,
        period: Period {
            start: now().plus_micros(-DAY),
            end: now(),
        },
        generated: now().plus_micros(HOUR),
        version: "0.1.0",
    }
}

fn venv() -> PathBuf {
    std::env::var_os("VOUCH_VENV").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/vouch-venv"),
        PathBuf::from,
    )
}

fn tool(path: &Path, what: &str) -> PathBuf {
    assert!(
        path.exists() || which(path).is_some(),
        "{what} ({}) is missing: run scripts/test, which installs it",
        path.display()
    );
    which(path).unwrap_or_else(|| path.to_path_buf())
}

fn which(p: &Path) -> Option<PathBuf> {
    if p.components().count() > 1 {
        return p.exists().then(|| p.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(p))
        .find(|c| c.exists())
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `trestle validate` on `doc`, inside a fresh trestle workspace.
fn trestle_validate(doc: &[u8]) -> (bool, String) {
    let trestle = tool(&venv().join("bin/trestle"), "compliance-trestle");
    let ws = tempfile::tempdir().unwrap();
    let (ok, out) = run(Command::new(&trestle).arg("init").current_dir(ws.path()));
    assert!(ok, "trestle init: {out}");
    let dir = ws.path().join("assessment-results/fleet");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("assessment-results.json");
    std::fs::write(&file, doc).unwrap();
    run(Command::new(&trestle)
        .args(["validate", "-f"])
        .arg(&file)
        .current_dir(ws.path()))
}

#[test]
fn oscal_assessment_results_validate_with_trestle_and_a_broken_one_does_not() {
    let f = fleet_with(Some(&default_account));
    let devices = f.assessed();
    let s = scope(&f, &devices);
    let doc = oscal::to_json(&s).unwrap();
    let (ok, out) = trestle_validate(&doc);
    assert!(ok, "trestle refused the document: {out}");
    assert!(out.contains("VALID"), "{out}");

    // Deterministic: the same inputs, evaluated again, give the same bytes.
    let again = fleet_with(Some(&default_account));
    let devices2 = again.assessed();
    assert_eq!(oscal::to_json(&scope(&again, &devices2)).unwrap(), doc);

    // Its content: one observation per device per check, a finding per applicable control.
    let v: Value = serde_json::from_slice(&doc).unwrap();
    let ar = &v["assessment-results"];
    let plan = format!(
        "#{}",
        ar["back-matter"]["resources"][0]["uuid"].as_str().unwrap()
    );
    assert_eq!(
        ar["import-ap"]["href"],
        plan.as_str(),
        "import-ap names the catalogue"
    );
    let r = &ar["results"][0];
    assert_eq!(
        r["observations"].as_array().unwrap().len(),
        3 * f.cat.checks().len()
    );
    let findings = r["findings"].as_array().unwrap();
    let state = |token: &str, item: usize| -> String {
        let uuid = &r["local-definitions"]["inventory-items"][item]["uuid"];
        findings
            .iter()
            .find(|x| {
                x["target"]["target-id"] == token
                    && x["related-observations"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|o| {
                            r["observations"].as_array().unwrap().iter().any(|ob| {
                                ob["uuid"] == o["observation-uuid"]
                                    && ob["subjects"][0]["subject-uuid"] == *uuid
                            })
                        })
            })
            .map(|x| x["target"]["status"]["state"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(state("eu-cra_art-14", 0), "not-satisfied");
    assert_eq!(state("eu-cra_art-14", 2), "satisfied");
    assert_eq!(state("eu-cra_annex-i.part-i.2.b", 1), "not-satisfied");
    assert!(
        String::from_utf8_lossy(&doc).contains("CVE-2014-6271"),
        "the KEV evidence is in the observations"
    );

    // The validator is not a rubber stamp: without the required metadata title it refuses.
    let mut broken = v.clone();
    broken["assessment-results"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("title");
    let (ok, out) = trestle_validate(&serde_json::to_vec(&broken).unwrap());
    assert!(
        !ok,
        "trestle accepted a document without metadata.title: {out}"
    );
    assert!(out.contains("INVALID") && out.contains("title"), "{out}");
    // Nor does it take a finding whose status is not OSCAL's.
    let mut broken = v;
    broken["assessment-results"]["results"][0]["findings"][0]["target"]["status"]["state"] =
        Value::from("fine");
    let (ok, out) = trestle_validate(&serde_json::to_vec(&broken).unwrap());
    assert!(!ok, "trestle accepted a finding state of \"fine\": {out}");
    assert!(
        out.contains("INVALID") && out.contains("status.state"),
        "{out}"
    );
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Headless Chromium on `page` with `args`, with a throw-away profile.
fn chromium(page: &Path, args: &[&str]) -> Vec<u8> {
    let bin =
        std::env::var_os("VOUCH_CHROMIUM").map_or_else(|| PathBuf::from("chromium"), PathBuf::from);
    let bin = tool(&bin, "chromium");
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        // A container's /dev/shm is often too small for the renderer.
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args);
    if running_as_root() {
        cmd.arg("--no-sandbox");
    }
    let out = cmd
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 900;

#[test]
fn the_html_report_renders_in_headless_chromium_with_its_figures() {
    let f = fleet_with(Some(&default_account));
    let devices = f.assessed();
    let s = scope(&f, &devices);
    let page = html::render(&s).unwrap();
    let sum = s.summary();
    assert_eq!(sum.devices, 3);
    assert_eq!(sum.kev.len(), 1);
    assert!(sum.failed > 0 && sum.passed > 0);

    // Self-contained and static: nothing fetched, nothing run.
    for banned in [
        "://", "<script", "<link", "<img", "<iframe", "@import", "url(",
    ] {
        assert!(!page.contains(banned), "{banned} in the page");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.html");
    std::fs::write(&file, &page).unwrap();

    // The DOM Chromium built: the figures, the pass rate, the KEV deadlines, the escaped name.
    let dom = String::from_utf8(chromium(&file, &["--dump-dom"])).unwrap();
    let fig = |id: &str, v: &str| {
        let needle = format!("id=\"{id}\">{v}</dd>");
        assert!(dom.contains(&needle), "{needle} not in the DOM");
    };
    fig("fig-devices", "3");
    fig("fig-controls", &f.cat.controls().len().to_string());
    fig("fig-evaluated", &(3 * f.cat.controls().len()).to_string());
    fig("fig-passed", &sum.passed.to_string());
    fig("fig-failed", &sum.failed.to_string());
    fig("fig-na", &sum.not_applicable.to_string());
    fig("fig-rate", &sum.pass_rate_text());
    fig("fig-kev", "1");
    assert!(sum.pass_rate_text().ends_with('%'));
    let early = f.seen.plus_micros(24 * HOUR).to_string();
    let notify = f.seen.plus_micros(72 * HOUR).to_string();
    assert!(
        dom.contains(&early) && dom.contains(&notify),
        "KEV deadlines"
    );
    assert!(dom.contains("CVE-2014-6271"));
    assert!(
        dom.contains("Line 3 &lt;PLC&gt; &amp; \"co\""),
        "the name is text"
    );
    assert!(!dom.contains("<PLC>"));
    for h in [
        "Summary",
        "Controls by framework",
        "Failing controls",
        "Devices",
    ] {
        assert!(dom.contains(&format!("\">{h}</h2>")), "heading {h}");
    }
    assert!(dom.contains("EU Cyber Resilience Act") && dom.contains("IEC 62443-4-2"));

    // The screenshot: a real PNG of the window's size, not blank, with the bar's pass and fail colours.
    let shot = dir.path().join("shot.png");
    chromium(
        &file,
        &[
            &format!("--screenshot={}", shot.display()),
            &format!("--window-size={WIDTH},{HEIGHT}"),
        ],
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let pixels: Vec<[u8; 3]> = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let near = |p: &[u8; 3], c: [u8; 3]| p.iter().zip(c).all(|(&a, b)| a.abs_diff(b) <= 10);
    let count = |c: [u8; 3]| pixels.iter().filter(|p| near(p, c)).count();
    let not_white = pixels.iter().filter(|p| !near(p, [255, 255, 255])).count();
    assert!(
        not_white > pixels.len() / 50,
        "a blank page: {not_white} pixels drawn"
    );
    // The bar is 32 px high across the page: each share is at least a 1% sliver of it.
    let (pass, fail) = (count(html::PASS_COLOUR), count(html::FAIL_COLOUR));
    assert!(pass > 32 * 100, "pass colour: {pass} pixels");
    assert!(fail > 32 * 10, "fail colour: {fail} pixels");
    assert!(
        pass > fail,
        "more pairs pass than fail, so the bar is greener: {pass} vs {fail}"
    );
}

/// `tests/ocsf_validate.py` (ocsf-json-schema's OCSF 1.2.0 JSON Schema, checked by jsonschema) on `lines`.
fn ocsf_validate(lines: &[u8]) -> (bool, String) {
    let python = tool(&venv().join("bin/python"), "the validators' venv");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, lines).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ocsf_validate.py");
    run(Command::new(python)
        .arg(script)
        .arg(ocsf::OCSF_VERSION)
        .arg(&file))
}

/// The attributes OCSF 1.2 requires of a Compliance Finding (class 2003, with those of its `finding` and
/// `base_event` parents) and of the objects it uses, as the schema's files list them.
const REQUIRED: &[&str] = &[
    "activity_id",
    "category_uid",
    "class_uid",
    "type_uid",
    "severity_id",
    "time",
    "metadata",
    "finding_info",
    "compliance",
];

/// The PLC's default-credential event for ETSI EN 303 645 5.1, as the SIEM receives it.
const PLC_EVENT: &str = concat!(
    r#"{"activity_id":1,"activity_name":"Create","category_uid":2,"category_name":"Findings","class_uid"#,
    r#"":2003,"class_name":"Compliance Finding","type_uid":200301,"type_name":"Compliance Finding: Crea"#,
    r#"te","severity_id":4,"severity":"High","time":1772712000000,"message":"etsi-en-303-645 5.1 on Lin"#,
    r#"e 3 <PLC> & \"co\": fail","status_id":1,"status":"New","metadata":{"product":{"name":"Vouch","ve"#,
    r#"ndor_name":"Vouch project","version":"0.1.0"},"profiles":["host"],"version":"1.2.0"},"finding_in"#,
    r#"fo":{"uid":"6268797c-4bca-5c88-b522-c422fcf37ef6","title":"etsi-en-303-645 5.1 on Line 3 <PLC> &"#,
    r#" \"co\"","desc":"No universal default passwords; default account `admin` seen in clear text over"#,
    r#" telnet","types":["Compliance"]},"compliance":{"standards":["ETSI EN 303 645"],"control":"5.1",""#,
    r#"status_id":3,"status":"Fail"},"device":{"type_id":7,"type":"IOT","uid":"17e99e9e-5728-58f7-8c1e-"#,
    r#"57c3ac85a4e3","name":"Line 3 <PLC> & \"co\""}}"#,
);

fn require(v: &Value, path: &[&str]) {
    let mut at = v;
    for p in path {
        at = at
            .get(p)
            .unwrap_or_else(|| panic!("{} missing in {v}", path.join(".")));
    }
    assert!(!at.is_null() && at != "", "{} empty", path.join("."));
}

#[test]
fn ocsf_events_validate_against_the_class_2003_schema() {
    let f = fleet_with(Some(&default_account));
    let devices = f.assessed();
    let s = scope(&f, &devices);
    let lines = ocsf::to_json_lines(&s).unwrap();
    let events: Vec<Value> = lines
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let (ok, out) = ocsf_validate(&lines);
    assert!(ok, "the OCSF schema refused the events: {out}");
    assert!(
        out.contains(&format!("{} events, 0 errors", events.len())),
        "{out}"
    );
    // The validator is not a rubber stamp: an event without its finding's uid, or with a severity OCSF does
    // not define, is refused.
    let mut broken = events[0].clone();
    broken["finding_info"]
        .as_object_mut()
        .unwrap()
        .remove("uid");
    let (ok, out) = ocsf_validate(&serde_json::to_vec(&broken).unwrap());
    assert!(
        !ok && out.contains("finding_info") && out.contains("uid"),
        "{out}"
    );
    let mut broken = events[0].clone();
    broken["severity_id"] = Value::from(42);
    let (ok, out) = ocsf_validate(&serde_json::to_vec(&broken).unwrap());
    assert!(!ok && out.contains("severity_id"), "{out}");

    let failed = s.summary().failed;
    assert_eq!(
        events.len(),
        failed,
        "one Create per failing (device, control)"
    );
    for e in &events {
        for k in REQUIRED {
            require(e, &[k]);
        }
        require(e, &["metadata", "product", "name"]);
        require(e, &["metadata", "product", "vendor_name"]);
        require(e, &["metadata", "version"]);
        require(e, &["finding_info", "uid"]);
        require(e, &["finding_info", "title"]);
        require(e, &["compliance", "standards"]);
        require(e, &["device", "type_id"]);
        assert_eq!(e["class_uid"], 2003);
        assert_eq!(e["category_uid"], 2);
        assert_eq!(e["type_uid"], 200_301);
        assert_eq!(e["metadata"]["version"], "1.2.0");
        assert_eq!(e["time"], now().unix_micros() / 1000);
    }
    let kev: Vec<&Value> = events
        .iter()
        .filter(|e| e["compliance"]["control"] == "art-14")
        .collect();
    assert_eq!(kev.len(), 1);
    assert_eq!(kev[0]["severity_id"], 5);
    assert_eq!(kev[0]["finding_info"]["types"][1], "CRA Art. 14");
    let desc = kev[0]["finding_info"]["desc"].as_str().unwrap();
    assert!(
        desc.contains(&f.seen.plus_micros(24 * HOUR).to_string()),
        "{desc}"
    );

    // One event byte for byte: the PLC's default credential fails ETSI EN 303 645 5.1.
    let line = lines
        .split(|&b| b == b'\n')
        .find(|l| {
            let e: Value = serde_json::from_slice(l).unwrap_or_default();
            e["device"]["name"] == NAMES[1] && e["compliance"]["control"] == "5.1"
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(line), PLC_EVENT);

    // The PLC fixed: every one of its findings closes, with the same uid; nothing else changes.
    let fixed = fleet_with(None);
    let before = &f.results[1];
    let after = Assessed {
        result: &fixed.results[1],
        name: NAMES[1],
    };
    let closes = ocsf::changes(&s, &after, Some(before)).unwrap();
    let opened: Vec<&Value> = events
        .iter()
        .filter(|e| e["device"]["name"] == NAMES[1])
        .collect();
    assert_eq!(closes.len(), opened.len());
    for (c, o) in closes.iter().zip(&opened) {
        assert_eq!(c.activity_id, 3);
        assert_eq!(c.type_uid, 200_303);
        assert_eq!(c.compliance.status, "Pass");
        assert_eq!(
            c.finding_info.uid,
            o["finding_info"]["uid"].as_str().unwrap()
        );
    }
    assert!(
        ocsf::changes(&s, &after, Some(after.result))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_scope_that_does_not_fit_together_is_refused() {
    let f = fleet_with(Some(&default_account));
    let devices = f.assessed();
    let good = scope(&f, &devices);
    let mut s = good;
    s.period.end = s.period.start.plus_micros(-1);
    assert!(matches!(
        oscal::to_json(&s),
        Err(ReportError::BadPeriod { .. })
    ));
    let mut s = good;
    s.period.end = now().plus_micros(-1);
    assert!(matches!(
        html::render(&s),
        Err(ReportError::OutsidePeriod { .. })
    ));
    let twice = [devices[0], devices[0]];
    let s = Scope {
        devices: &twice,
        ..good
    };
    assert!(matches!(
        ocsf::to_json_lines(&s),
        Err(ReportError::Duplicate { .. })
    ));
    let other = Catalogue::load(&[(
        "x.toml",
        "[[control]]\nframework = \"eu-cra\"\nid = \"x\"\ntitle = \"x\"\nrules = [\"logging\"]\n",
    )])
    .unwrap();
    let s = Scope {
        catalogue: &other,
        ..good
    };
    assert!(matches!(
        oscal::to_json(&s),
        Err(ReportError::OtherCatalogue { .. })
    ));
    let bad = [Assessed {
        result: &f.results[0],
        name: "a\u{1b}[31m",
    }];
    let s = Scope {
        devices: &bad,
        ..good
    };
    assert!(matches!(html::render(&s), Err(ReportError::BadText { .. })));
    // An empty scope is still a valid document and page.
    let s = Scope {
        devices: &[],
        ..good
    };
    let (ok, out) = trestle_validate(&oscal::to_json(&s).unwrap());
    assert!(ok, "{out}");
    assert!(
        html::render(&s)
            .unwrap()
            .contains("id=\"fig-rate\">n/a</dd>")
    );
}

#[test]
fn hostile_evidence_stays_text_in_every_report() {
    let user = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    // A policy grant is free text from the policy engine: the page must show it, never run it.
    let f = fleet_with(Some(&|plc: &mut DeviceEvidence| {
        plc.permissive_grants = vec![user.to_owned()]
    }));
    let devices = f.assessed();
    let s = scope(&f, &devices);
    let page = html::render(&s).unwrap();
    assert!(!page.contains("<script") && !page.contains("<img"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.html");
    std::fs::write(&file, &page).unwrap();
    let dom = String::from_utf8(chromium(&file, &["--dump-dom"])).unwrap();
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "shown as text"
    );
    assert!(
        !dom.contains("<script") && !dom.contains("<img"),
        "nothing parsed as markup"
    );
    // The machine formats carry it as a string.
    let doc: Value = serde_json::from_slice(&oscal::to_json(&s).unwrap()).unwrap();
    assert!(doc.to_string().contains("alert(1)"));
    let lines = ocsf::to_json_lines(&s).unwrap();
    assert!(String::from_utf8_lossy(&lines).contains(user));
}

#[test]
fn html_escapes_every_markup_character() {
    assert_eq!(
        html::esc("<a href='x'>\"&amp;\"</a>"),
        "&lt;a href=&#39;x&#39;&gt;&quot;&amp;amp;&quot;&lt;/a&gt;"
    );
}
